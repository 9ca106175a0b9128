//! [`WebhookResolver`]: Hasura GraphQL Engine's auth webhook, as a [`Resolver`].
//!
//! Every request the session layer hands over (with or without a credential) is described to
//! a webhook that the operator runs; its answer says who the caller is.
//!
//! # The call
//!
//! - **`GET`** ([`WebhookMode::Get`], the default): the client's headers, without hop-by-hop
//!   ones (`Connection` and the names it lists, `Keep-Alive`, `TE`, `Trailer`,
//!   `Transfer-Encoding`, `Upgrade`, every `Proxy-*`), `Host`, `Content-Length`, `Expect`, nor
//!   the headers that would change the form of the answer (`Accept-Encoding`, `Range`,
//!   `If-Range`, `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`). When
//!   the client asked for a role, the webhook also gets `X-Hasura-Role: <that role>`, as Hasura
//!   sends it, so that it chooses the role (the header is still stripped before the upstream).
//! - **`POST`** ([`WebhookMode::Post`]): `{"headers": {...the same headers...}, "request":
//!   {"method": "GET", "url": "/path?query"}}` (header names in lowercase, a repeated header
//!   joined into one value), never the client's body.
//!
//! # The answer
//!
//! - **`200`** with a JSON object of `X-Hasura-*` variables (keys compared without case):
//!   `X-Hasura-Role` (required) is the role, and the only allowed role unless
//!   `X-Hasura-Allowed-Roles` (a list, or a comma-separated string, holding the role) is sent;
//!   `X-Hasura-User-Id` is the user id (`"0"` when absent); every other `X-Hasura-*` key is a
//!   session variable forwarded to the upstream (numbers and booleans as their text). The
//!   identity is [not backed by a session](Identity::without_session).
//! - **`401`**: [`ResolveError::Unauthorized`]; the layer answers 401.
//! - **Anything else** (another status, a body that is not such an object, a `200` without a
//!   role, a timeout, a refused connection): [`ResolveError::Unavailable`], so the layer
//!   answers 503 (fail closed), and a warning is logged with the reason (the status,
//!   `timeout`…; never a header value).
//!
//! # The cache
//!
//! As in Hasura, a `200` answer is cached for as long as its `Cache-Control: max-age` or its
//! `Expires` says, read from the body's fields (`"Cache-Control": "max-age=600"`) or else from
//! the response's headers, and at most [`WebhookConfig::cache_max_ttl`]; an answer without
//! either is not cached, nor is any other status. The cache holds at most
//! [`WebhookConfig::cache_entries`] answers, keyed by SHA-256 over every `Authorization` and
//! `Cookie` value, the requested role and each of [`WebhookConfig::cache_key_headers`]' values.
//! In the `POST` mode the request's method and URL are part of the key too, since the webhook
//! sees them. A webhook whose answer depends on anything else (another header) must name it
//! there or send no cache fields.

mod answer;
mod config;
mod request;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Method, StatusCode, Uri};

pub use config::{
    WebhookConfig, WebhookError, WebhookMode, DEFAULT_CACHE_ENTRIES, DEFAULT_CACHE_MAX_TTL,
    DEFAULT_TIMEOUT,
};

use crate::cache::ExpiringCache;
use crate::http_client::{HttpClient, HttpClientConfig, HttpClientError};
use crate::identity::Identity;
use crate::resolver::{ResolveError, ResolveRequest, Resolver};
use crate::BoxFuture;

/// The largest answer read from the webhook; a Hasura answer is a handful of variables.
const MAX_ANSWER: usize = 64 * 1024;

/// The auth webhook as a [`Resolver`] (see the [module docs](self)). Cloning is cheap; clones
/// share the client and the cache.
#[derive(Clone)]
pub struct WebhookResolver {
    hook: Arc<Webhook>,
}

struct Webhook {
    url: Uri,
    mode: WebhookMode,
    client: HttpClient,
    cache: ExpiringCache<[u8; 32], Identity>,
    cache_max_ttl: Duration,
    key_headers: Vec<HeaderName>,
    /// The config's timeout, applied around the client's own: a shared client's timeout is
    /// set for its other users (a JWKS fetch), not for this webhook.
    timeout: Duration,
}

impl std::fmt::Debug for WebhookResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a secret in its query: only its host is shown.
        f.debug_struct("WebhookResolver")
            .field("host", &self.hook.url.host())
            .field("mode", &self.hook.mode)
            .field("cached", &self.hook.cache.len())
            .finish_non_exhaustive()
    }
}

impl WebhookResolver {
    /// Checks `config` ([`WebhookConfig::validate`]) and builds the resolver with its own HTTP
    /// client (platform roots plus `SSL_CERT_FILE`; the config's timeout).
    pub fn new(config: &WebhookConfig) -> Result<Self, WebhookError> {
        let client = HttpClient::new(HttpClientConfig {
            timeout: config.timeout,
            max_body: MAX_ANSWER,
            ..HttpClientConfig::default()
        })
        .map_err(WebhookError::Client)?;
        Self::with_client(config, client)
    }

    /// As [`new`](WebhookResolver::new), over a client the caller built (extra trust roots, a
    /// client shared with other resolvers). Each call still ends at the config's `timeout`
    /// (or at the client's own, if shorter).
    pub fn with_client(config: &WebhookConfig, client: HttpClient) -> Result<Self, WebhookError> {
        let (url, key_headers) = config.checked()?;
        Ok(WebhookResolver {
            hook: Arc::new(Webhook {
                url,
                mode: config.mode,
                client,
                cache: ExpiringCache::new(config.cache_entries),
                cache_max_ttl: config.cache_max_ttl,
                key_headers,
                timeout: config.timeout,
            }),
        })
    }

    /// How many answers the cache holds now (expired ones included until they are dropped).
    pub fn cached(&self) -> usize {
        self.hook.cache.len()
    }

    /// Forgets every cached answer (the webhook's rules changed).
    pub fn clear_cache(&self) {
        self.hook.cache.clear();
    }

    fn key(&self, request: &ResolveRequest<'_>) -> [u8; 32] {
        let post = match self.hook.mode {
            WebhookMode::Post => Some((request.method(), request.uri())),
            WebhookMode::Get => None,
        };
        request::cache_key(
            request.headers(),
            request.requested_role(),
            &self.hook.key_headers,
            post,
        )
    }

    /// The outgoing call for `request`.
    fn call(&self, request: &ResolveRequest<'_>) -> Result<http::Request<Bytes>, ResolveError> {
        let headers = request::forwarded_headers(request.headers(), request.requested_role());
        let hook = &self.hook;
        let built = match hook.mode {
            WebhookMode::Get => {
                let mut req = http::Request::new(Bytes::new());
                *req.method_mut() = Method::GET;
                *req.uri_mut() = hook.url.clone();
                *req.headers_mut() = headers;
                Ok(req)
            }
            WebhookMode::Post => http::Request::builder()
                .method(Method::POST)
                .uri(hook.url.clone())
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .header(ACCEPT, HeaderValue::from_static("application/json"))
                .body(Bytes::from(request::post_body(
                    &headers,
                    request.method(),
                    request.uri(),
                ))),
        };
        built.map_err(|e| ResolveError::Internal(format!("cannot build the webhook call: {e}")))
    }

    /// Calls the webhook and reads its answer.
    async fn ask(&self, request: &ResolveRequest<'_>) -> Result<Option<Identity>, ResolveError> {
        let key = self.key(request);
        if let Some(hit) = self.hook.cache.get(&key) {
            return Ok(Some(hit));
        }
        let call = self.call(request)?;
        let host = self.hook.url.host().unwrap_or_default();
        let sent = tokio::time::timeout(self.hook.timeout, self.hook.client.send(call)).await;
        let answer = match sent.unwrap_or(Err(HttpClientError::Timeout)) {
            Ok(answer) => answer,
            Err(e) => {
                let reason = match &e {
                    HttpClientError::Timeout => "timeout",
                    HttpClientError::Connect(_) => "cannot connect",
                    HttpClientError::TooLarge => "answer too large",
                    _ => "request failed",
                };
                tracing::warn!(host, reason, error = %e, "auth webhook failed; answering 503");
                outcome(request, "error");
                return Err(ResolveError::Unavailable(format!("auth webhook: {reason}")));
            }
        };
        match answer.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => {
                outcome(request, "unauthorized");
                return Err(ResolveError::Unauthorized(
                    "the auth webhook refused the request".to_owned(),
                ));
            }
            status => {
                tracing::warn!(host, %status, "auth webhook answered an unexpected status; answering 503");
                outcome(request, "error");
                return Err(ResolveError::Unavailable(format!(
                    "auth webhook answered {status}"
                )));
            }
        }
        let now = SystemTime::now();
        let read = serde_json::from_slice::<serde_json::Value>(answer.body())
            .ok()
            .and_then(|v| match v {
                serde_json::Value::Object(map) => Some(map),
                _ => None,
            })
            .ok_or(answer::BadAnswer::NotAnObject)
            .and_then(|body| Ok((answer::identity(&body)?, body)));
        let (identity, body) = match read {
            Ok(read) => read,
            Err(why) => {
                tracing::warn!(host, reason = %why, "auth webhook's 200 gives no identity; answering 503");
                outcome(request, "error");
                return Err(ResolveError::Unavailable(format!("auth webhook: {why}")));
            }
        };
        outcome(request, "ok");
        if let (Some(ttl), false) = (
            answer::lifetime(&body, answer.headers(), now),
            request.is_dry_run(),
        ) {
            let ttl = ttl.min(self.hook.cache_max_ttl);
            self.hook
                .cache
                .insert(key, identity.clone(), Instant::now() + ttl);
        }
        Ok(Some(identity))
    }
}

/// Counts one webhook call by how it ended (`ok`, `unauthorized`, `error`); an explained
/// request is not counted.
fn outcome(request: &ResolveRequest<'_>, outcome: &'static str) {
    if !request.is_dry_run() {
        metrics::counter!("gateway_webhook_calls_total", "outcome" => outcome).increment(1);
    }
}

impl Resolver for WebhookResolver {
    fn resolve<'a>(
        &'a self,
        request: &'a ResolveRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<Identity>, ResolveError>> {
        Box::pin(self.ask(request))
    }

    /// A cached answer, if any; a miss (or a cache of 0 entries) calls the webhook.
    fn resolve_now(
        &self,
        request: &ResolveRequest<'_>,
    ) -> Option<Result<Option<Identity>, ResolveError>> {
        if self.hook.cache.is_empty() {
            // Nothing cached (or no cache): skip hashing the credentials twice.
            return None;
        }
        self.hook.cache.get(&self.key(request)).map(|i| Ok(Some(i)))
    }

    /// The webhook decides for requests without a credential too (it may read any header).
    fn resolves_without_credential(&self) -> bool {
        true
    }
}
