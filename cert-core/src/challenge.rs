//! HTTP-01 answers for the plain listener.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::CertStore;

/// The path prefix of HTTP-01 validation requests.
pub const HTTP01_PATH_PREFIX: &str = "/.well-known/acme-challenge/";

/// Pending HTTP-01 answers: token → key authorization.
///
/// The plain-HTTP listener routes `GET`/`HEAD /.well-known/acme-challenge/{token}` here:
/// [`respond`](Self::respond) (or [`respond_shared`](Self::respond_shared) with a shared
/// store) gives the body for a 200 `text/plain` answer, and `None` means 404. Nothing else
/// about the request matters, and no other path is ever answered from here.
///
/// Tokens are matched exactly and must be base64url (`[A-Za-z0-9_-]`), so encoded or dotted
/// paths (`/.well-known/acme-challenge/%2e%2e/x`, `..`) never match (security case 17).
///
/// Cheap to clone; clones share the table.
#[derive(Clone, Default)]
pub struct ChallengeResponder {
    tokens: Arc<RwLock<HashMap<String, String>>>,
    store: Option<Arc<dyn CertStore>>,
}

impl fmt::Debug for ChallengeResponder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChallengeResponder")
            .field("pending", &self.tokens.read().len())
            .field("shared_store", &self.store.is_some())
            .finish()
    }
}

impl ChallengeResponder {
    /// An empty responder that only knows challenges set in this process.
    pub fn new() -> Self {
        Self::default()
    }

    /// A responder that also asks `store` for challenges published by other replicas (see
    /// [`respond_shared`](Self::respond_shared)).
    pub fn with_store(store: Arc<dyn CertStore>) -> Self {
        Self {
            tokens: Arc::default(),
            store: Some(store),
        }
    }

    /// Publishes the answer for `token` locally.
    pub fn insert(&self, token: &str, key_authorization: &str) {
        self.tokens
            .write()
            .insert(token.to_owned(), key_authorization.to_owned());
    }

    /// Withdraws the local answer for `token`.
    pub fn remove(&self, token: &str) {
        self.tokens.write().remove(token);
    }

    /// The local answer for `token`, if pending.
    pub fn key_authorization(&self, token: &str) -> Option<String> {
        self.tokens.read().get(token).cloned()
    }

    /// The token in an HTTP-01 request path, if `path` is exactly
    /// `/.well-known/acme-challenge/{token}` with a base64url token.
    pub fn token_from_path(path: &str) -> Option<&str> {
        let token = path.strip_prefix(HTTP01_PATH_PREFIX)?;
        let valid = !token.is_empty()
            && token.len() <= 256
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid.then_some(token)
    }

    /// Whether the plain listener should hand this path to the responder instead of
    /// redirecting it (it starts with the challenge prefix).
    pub fn is_challenge_path(path: &str) -> bool {
        path.starts_with(HTTP01_PATH_PREFIX)
    }

    /// The response body for a challenge request path answered from this process, or `None`
    /// (404).
    pub fn respond(&self, path: &str) -> Option<String> {
        Self::token_from_path(path).and_then(|t| self.key_authorization(t))
    }

    /// Like [`respond`](Self::respond), then falls back to the shared store so any replica
    /// answers a validation for an order placed by another. A store error counts as "not
    /// found" (the CA retries), and is logged.
    pub async fn respond_shared(&self, path: &str) -> Option<String> {
        let token = Self::token_from_path(path)?;
        if let Some(ka) = self.key_authorization(token) {
            return Some(ka);
        }
        let store = self.store.as_ref()?;
        match store.load_challenge(token).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "loading a shared ACME challenge failed");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let r = ChallengeResponder::new();
        r.insert("abc_-1", "abc_-1.thumb");
        assert_eq!(
            r.respond("/.well-known/acme-challenge/abc_-1").as_deref(),
            Some("abc_-1.thumb")
        );
        for p in [
            "/.well-known/acme-challenge/",
            "/.well-known/acme-challenge/abc_-1/",
            "/.well-known/acme-challenge/%61bc_-1",
            "/.well-known/acme-challenge/../abc_-1",
            "//.well-known/acme-challenge/abc_-1",
            "/.well-known/acme-challenge/unknown",
        ] {
            assert_eq!(r.respond(p), None, "{p}");
        }
        r.remove("abc_-1");
        assert_eq!(r.respond("/.well-known/acme-challenge/abc_-1"), None);
    }
}
