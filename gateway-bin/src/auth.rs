//! Composes `[auth]` into the request path: the session store's resolver, the JWT resolver and
//! the webhook as one session-core [`ResolverChain`], and their readiness for `/readyz`.

use std::sync::Arc;

use session_core::http_client::{HttpClient, HttpClientConfig};
use session_core::jwt::JwtResolver;
use session_core::webhook::WebhookResolver;
use session_core::{Resolver, ResolverChain};

use crate::admin::Readiness;
use crate::app::StartError;
use crate::config::Auth;

/// The request path's resolver: `sessions` alone when `[auth]` is empty (the hot path keeps
/// its one call), else the chain of session-core's documented order.
pub fn resolver(auth: &Auth, sessions: Arc<dyn Resolver>) -> Result<Arc<dyn Resolver>, StartError> {
    if !auth.is_configured() {
        return Ok(sessions);
    }
    // One client (one pool, one trust store) for the key sets and the webhook.
    let client = HttpClient::new(HttpClientConfig::default())
        .map_err(|e| StartError::Auth(format!("HTTPS client: {e}")))?;
    let mut chain = ResolverChain::new().sessions(sessions);
    if !auth.jwt.is_empty() {
        let jwt = JwtResolver::new(auth.jwt.clone(), client.clone())
            .map_err(|e| StartError::Auth(format!("jwt: {e}")))?;
        tracing::info!(configs = auth.jwt.len(), "JWT resolver on");
        chain = chain.jwt(Arc::new(jwt));
    }
    if let Some(webhook) = &auth.webhook {
        let hook = WebhookResolver::with_client(webhook, client)
            .map_err(|e| StartError::Auth(format!("webhook: {e}")))?;
        tracing::info!(mode = ?webhook.mode, "auth webhook on");
        chain = chain.webhook(Arc::new(hook));
    }
    Ok(Arc::new(chain))
}

/// `/readyz`: the Redis store's check, then the resolvers' (a JWKS not fetched yet).
pub fn readiness(redis: Option<Readiness>, resolver: Arc<dyn Resolver>) -> Readiness {
    Arc::new(move || {
        if let Some(check) = &redis {
            check()?;
        }
        match resolver.not_ready() {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    })
}
