//! The request → [`Identity`] seam: [`Resolver`], what it is asked ([`ResolveRequest`]), and
//! [`StoreResolver`] for session stores.
//!
//! The [`SessionLayer`](crate::SessionLayer) depends only on this trait, so other credential
//! schemes (JWT/JWKS, webhook introspection) plug in without touching the layers. A resolver
//! gets the request's head, not only the token: a webhook forwards the client's headers and
//! decides for requests without a credential too, and a JWT may come from a cookie of its own.

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{HeaderMap, Method, Uri};

use crate::credential::{find_cookie, Credential, CredentialError, CredentialSource};
use crate::identity::Identity;
use crate::store::{SessionStore, StoreError};
use crate::token::Token;
use crate::BoxFuture;

/// Why a resolver could not answer, or refused the request outright.
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
    /// The resolver refused the request (an auth webhook answered 401): the layer answers 401
    /// whatever the credential's source, and nothing is proxied.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
}

impl From<StoreError> for ResolveError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => ResolveError::Unavailable(m),
            other => ResolveError::Internal(other.to_string()),
        }
    }
}

/// What a [`Resolver`] is asked: the request's head, the credential the
/// [`SessionLayer`](crate::SessionLayer) found in it, and the role the client asked for.
///
/// The headers are the client's, with the client's own identity headers (`X-Hasura-*`)
/// already stripped, and its credentials still present (the layer removes those after the
/// resolver answered, for routes that do not forward them). The requested role is kept apart
/// because it was stripped too: a webhook passes it on, a token resolver ignores it (the layer
/// selects the role against the identity's `allowed_roles` afterwards).
#[derive(Clone, Copy, Debug)]
pub struct ResolveRequest<'a> {
    head: Option<Head<'a>>,
    credential: Option<&'a Credential>,
    requested_role: Option<&'a str>,
    dry_run: bool,
}

/// The parts of a request head a resolver reads (borrowed from `Parts` or a `Request`).
#[derive(Clone, Copy, Debug)]
struct Head<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
}

impl<'a> ResolveRequest<'a> {
    /// The request `head`, the `credential` the layer read from it (bearer token or session
    /// cookie), and the role asked for with `X-Hasura-Role`.
    pub fn new(
        head: &'a Parts,
        credential: Option<&'a Credential>,
        requested_role: Option<&'a str>,
    ) -> Self {
        ResolveRequest {
            head: Some(Head {
                method: &head.method,
                uri: &head.uri,
                headers: &head.headers,
            }),
            credential,
            requested_role,
            dry_run: false,
        }
    }

    /// [`new`](Self::new) for a whole request (its head is read in place).
    pub fn from_request<B>(
        request: &'a http::Request<B>,
        credential: Option<&'a Credential>,
        requested_role: Option<&'a str>,
    ) -> Self {
        ResolveRequest {
            head: Some(Head {
                method: request.method(),
                uri: request.uri(),
                headers: request.headers(),
            }),
            credential,
            requested_role,
            dry_run: false,
        }
    }

    /// Just a credential: no headers, `GET`, no URI (tests, and embedders resolving a token
    /// outside a request).
    pub fn for_credential(credential: &'a Credential) -> Self {
        ResolveRequest {
            head: None,
            credential: Some(credential),
            requested_role: None,
            dry_run: false,
        }
    }

    /// Marks the request as only explained ([`route_core::decision::DecisionRecord::dry_run`]):
    /// the resolver must answer as it would, without side effects (no sliding expiry, no
    /// metric counted).
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// True for a request that is only explained (see [`ResolveRequest::with_dry_run`]).
    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// The credential the layer found: `Authorization: Bearer` or the session cookie.
    pub fn credential(&self) -> Option<&'a Credential> {
        self.credential
    }

    /// The credential's token.
    pub fn token(&self) -> Option<&'a Token> {
        self.credential.map(|c| &c.token)
    }

    /// The request's headers (empty for [`for_credential`](Self::for_credential)).
    pub fn headers(&self) -> &'a HeaderMap {
        static EMPTY: std::sync::LazyLock<HeaderMap> = std::sync::LazyLock::new(HeaderMap::new);
        match self.head {
            Some(head) => head.headers,
            None => &EMPTY,
        }
    }

    /// The request's method (`GET` without a head).
    pub fn method(&self) -> &'a Method {
        match self.head {
            Some(head) => head.method,
            None => &Method::GET,
        }
    }

    /// The request's URI as received (`None` without a head).
    pub fn uri(&self) -> Option<&'a Uri> {
        self.head.map(|h| h.uri)
    }

    /// The role the client asked for with `X-Hasura-Role` (one value; the layer refused
    /// requests that sent several).
    pub fn requested_role(&self) -> Option<&'a str> {
        self.requested_role
    }

    /// The value of the cookie `name`, read from every `Cookie` header the way the session
    /// cookie is (the `cookie` crate; surrounding double quotes removed). `Ok(None)` when
    /// absent; an error when it appears twice, or in a header that is not UTF-8.
    pub fn cookie(&self, name: &str) -> Result<Option<&'a str>, CredentialError> {
        find_cookie(self.headers(), name)
    }

    /// The token, when the credential came from `Authorization: Bearer`.
    pub fn bearer_token(&self) -> Option<&'a Token> {
        self.credential
            .filter(|c| c.source == CredentialSource::Bearer)
            .map(|c| &c.token)
    }
}

/// Turns a request into an identity. Object safe: `Arc<dyn Resolver>`.
///
/// # What the answer means
///
/// - `Ok(Some(identity))`: authenticated; `role` should be the default role (the layer applies
///   the client's `X-Hasura-Role` against `allowed_roles`).
/// - `Ok(None)`: the credential is not valid (unknown, expired, revoked, a bad signature). A
///   bearer token gets 401 with `WWW-Authenticate: Bearer error="invalid_token"`; a session
///   cookie is cleared and the request goes on as anonymous; without a credential of the
///   layer's (a JWT read from a cookie of its own) the request goes on as anonymous.
/// - [`ResolveError`]: 503 (unavailable, fail closed), 500, or 401 (refused).
pub trait Resolver: Send + Sync + 'static {
    /// Resolves `request`.
    fn resolve<'a>(
        &'a self,
        request: &'a ResolveRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<Identity>, ResolveError>>;

    /// The same answer as [`resolve`](Resolver::resolve) when it is at hand without waiting (an
    /// in-memory store, a local cache, a signature check with keys held); `None` means "call
    /// `resolve`". The provided implementation returns `None`. The layer calls this first, so
    /// an in-memory hit allocates no future.
    fn resolve_now(
        &self,
        request: &ResolveRequest<'_>,
    ) -> Option<Result<Option<Identity>, ResolveError>> {
        let _ = request;
        None
    }

    /// Whether the layer must ask this resolver about requests that carry neither a bearer
    /// token nor the session cookie (an auth webhook decides those too; a JWT may sit in a
    /// cookie of its own). The provided implementation returns `false`: such requests are
    /// anonymous without a call, which keeps anonymous traffic free of resolver work.
    fn resolves_without_credential(&self) -> bool {
        false
    }

    /// Cookies, besides the session cookie, that carry this resolver's credentials. The layer
    /// asks once, when it is built, and removes them with the session cookie before a request
    /// goes to a route that does not forward credentials.
    fn credential_cookies(&self) -> Vec<String> {
        Vec::new()
    }

    /// `None` when the resolver can answer; otherwise why not (a JWKS not fetched yet).
    /// The gateway's `/readyz` reports it.
    fn not_ready(&self) -> Option<String> {
        None
    }
}

/// Conveniences for resolving a bare token (tests, admin tools): a bearer credential without
/// a request.
pub trait ResolveToken: Resolver {
    /// [`Resolver::resolve`] for `token` presented as a bearer token.
    fn resolve_token<'a>(
        &'a self,
        token: &'a Token,
    ) -> BoxFuture<'a, Result<Option<Identity>, ResolveError>> {
        Box::pin(async move {
            let credential = Credential {
                token: token.clone(),
                source: CredentialSource::Bearer,
            };
            self.resolve(&ResolveRequest::for_credential(&credential))
                .await
        })
    }

    /// [`Resolver::resolve_now`] for `token` presented as a bearer token.
    fn resolve_token_now(&self, token: &Token) -> Option<Result<Option<Identity>, ResolveError>> {
        let credential = Credential {
            token: token.clone(),
            source: CredentialSource::Bearer,
        };
        self.resolve_now(&ResolveRequest::for_credential(&credential))
    }
}

impl<R: Resolver + ?Sized> ResolveToken for R {}

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
        request: &'a ResolveRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<Identity>, ResolveError>> {
        Box::pin(async move {
            let Some(token) = request.token() else {
                return Ok(None);
            };
            // An explained request reads the session without sliding it.
            let slide = self.slide.filter(|_| !request.is_dry_run());
            Ok(self.store.resolve_identity(&token.hash(), slide).await?)
        })
    }

    fn resolve_now(
        &self,
        request: &ResolveRequest<'_>,
    ) -> Option<Result<Option<Identity>, ResolveError>> {
        let Some(token) = request.token() else {
            return Some(Ok(None));
        };
        let slide = self.slide.filter(|_| !request.is_dry_run());
        self.store
            .resolve_identity_now(&token.hash(), slide)
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
        assert_eq!(r.resolve_token(&token).await.unwrap(), Some(want.clone()));
        assert_eq!(r.resolve_token_now(&token).unwrap().unwrap(), Some(want));
        assert_eq!(r.resolve_token(&Token::generate()).await.unwrap(), None);
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
        assert!(r.resolve_token_now(&token).unwrap().unwrap().is_some());
        store.advance_clock(Duration::from_secs(8));
        // Without the slide the session would have expired at 10 s.
        assert!(r.resolve_token(&token).await.unwrap().is_some());

        let plain = StoreResolver::new(Arc::new(store.clone()));
        store.advance_clock(Duration::from_secs(200));
        assert_eq!(plain.resolve_token(&token).await.unwrap(), None);
    }

    #[tokio::test]
    async fn store_errors_map_to_resolve_errors() {
        let r = StoreResolver::new(Arc::new(crate::test_util::FailingStore));
        assert!(matches!(
            r.resolve_token(&Token::generate()).await,
            Err(ResolveError::Unavailable(_))
        ));
        assert!(r.resolve_token_now(&Token::generate()).is_none());
    }
}
