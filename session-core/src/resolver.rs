//! The token → [`Identity`] seam: [`Resolver`], and [`StoreResolver`] for session stores.
//!
//! The [`SessionLayer`](crate::SessionLayer) depends only on this trait, so other credential
//! schemes (JWT/JWKS, webhook introspection) plug in without touching the layers.

use std::sync::Arc;
use std::time::Duration;

use crate::identity::Identity;
use crate::store::{SessionStore, StoreError};
use crate::token::Token;
use crate::BoxFuture;

/// Why a resolver could not answer.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// The backing store or service is unreachable: the layer answers 503 with `Retry-After`
    /// (fail closed).
    #[error("resolver unavailable: {0}")]
    Unavailable(String),
    /// Anything else that went wrong; the layer answers 500.
    #[error("resolver failed: {0}")]
    Internal(String),
}

impl From<StoreError> for ResolveError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => ResolveError::Unavailable(m),
            other => ResolveError::Internal(other.to_string()),
        }
    }
}

/// Turns a token into an identity. Object safe: `Arc<dyn Resolver>`.
pub trait Resolver: Send + Sync + 'static {
    /// `Ok(None)` = unknown, expired or revoked token. An `Ok(Some)` identity should be
    /// authenticated ([`Identity::new`]) with `role` set to the default role.
    fn resolve<'a>(
        &'a self,
        token: &'a Token,
    ) -> BoxFuture<'a, Result<Option<Identity>, ResolveError>>;

    /// The same answer as [`resolve`](Resolver::resolve) when it is at hand without waiting (an
    /// in-memory store, a local cache); `None` means "call `resolve`". The provided
    /// implementation returns `None`. The layer calls this first, so an in-memory hit allocates
    /// no future.
    fn resolve_now(&self, token: &Token) -> Option<Result<Option<Identity>, ResolveError>> {
        let _ = token;
        None
    }
}

/// A [`Resolver`] over a [`SessionStore`]: looks the session up by the token's hash and returns
/// its identity with the default role.
#[derive(Clone)]
pub struct StoreResolver {
    store: Arc<dyn SessionStore>,
    slide: Option<Duration>,
}

impl std::fmt::Debug for StoreResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreResolver")
            .field("slide", &self.slide)
            .finish_non_exhaustive()
    }
}

impl StoreResolver {
    /// A resolver without sliding expiry.
    pub fn new(store: Arc<dyn SessionStore>) -> Self {
        StoreResolver { store, slide: None }
    }

    /// Every successful resolution also pushes the session's expiry to at least now + `ttl`.
    pub fn with_sliding_expiry(self, ttl: Duration) -> Self {
        StoreResolver {
            slide: Some(ttl),
            ..self
        }
    }
}

impl Resolver for StoreResolver {
    fn resolve<'a>(
        &'a self,
        token: &'a Token,
    ) -> BoxFuture<'a, Result<Option<Identity>, ResolveError>> {
        Box::pin(async move {
            let id = token.hash();
            Ok(self.store.resolve_identity(&id, self.slide).await?)
        })
    }

    fn resolve_now(&self, token: &Token) -> Option<Result<Option<Identity>, ResolveError>> {
        self.store
            .resolve_identity_now(&token.hash(), self.slide)
            .map(|r| r.map_err(ResolveError::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::NewSession;
    use crate::store::MemoryStore;

    fn new_session(ttl: Duration) -> NewSession {
        NewSession {
            user_id: "u1".into(),
            roles: vec!["user".into(), "admin".into()],
            default_role: Some("admin".into()),
            ttl,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn resolves_default_role_both_ways() {
        let store = MemoryStore::new();
        let (token, _) = store
            .create(new_session(Duration::from_secs(60)))
            .await
            .unwrap();
        let r = StoreResolver::new(Arc::new(store));
        let want = Identity::new("u1", "admin", ["user", "admin"]);
        assert_eq!(r.resolve(&token).await.unwrap(), Some(want.clone()));
        assert_eq!(r.resolve_now(&token).unwrap().unwrap(), Some(want));
        assert_eq!(r.resolve(&Token::generate()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn sliding_expiry_extends_the_session() {
        let store = MemoryStore::new();
        let (token, _) = store
            .create(new_session(Duration::from_secs(10)))
            .await
            .unwrap();
        let r = StoreResolver::new(Arc::new(store.clone()))
            .with_sliding_expiry(Duration::from_secs(100));
        store.advance_clock(Duration::from_secs(8));
        assert!(r.resolve_now(&token).unwrap().unwrap().is_some());
        store.advance_clock(Duration::from_secs(8));
        // Without the slide the session would have expired at 10 s.
        assert!(r.resolve(&token).await.unwrap().is_some());

        let plain = StoreResolver::new(Arc::new(store.clone()));
        store.advance_clock(Duration::from_secs(200));
        assert_eq!(plain.resolve(&token).await.unwrap(), None);
    }

    #[tokio::test]
    async fn store_errors_map_to_resolve_errors() {
        let r = StoreResolver::new(Arc::new(crate::test_util::FailingStore));
        assert!(matches!(
            r.resolve(&Token::generate()).await,
            Err(ResolveError::Unavailable(_))
        ));
        assert!(r.resolve_now(&Token::generate()).is_none());
    }
}
