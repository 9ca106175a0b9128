//! Sessions and roles for the gateway: who is calling, and may they.
//!
//! # Layers, in the order a request meets them
//!
//! | layer | what it does |
//! |---|---|
//! | *(route-core's `RouteCorsLayer`, in front)* | answers preflights; so the refusals below carry CORS headers |
//! | [`SessionLayer`] | bearer token or session cookie → [`Identity`]; strips every client `X-Hasura-*` header and injects the identity; 400 / 401 / 403 / 503 |
//! | [`csrf::CsrfLayer`] | refuses cross-site, cookie-authenticated state changes, and (with `guard_logins`) cross-site logins |
//! | [`issuer::IssuerLayer`] | a login service's answer mints or ends a session; every other answer loses any session cookie it tried to set |
//! | [`RequireRoleLayer`] | the route's roles: 401 / 403, or a redirect for a browser navigation ([`BrowserRedirects`]) |
//! | [`tunnels::Tunnels`] | anywhere before route-core's proxy: a WebSocket closes when its session is revoked |
//!
//! The session layer must come before the others: they read the [`Identity`] and
//! [`Credential`] it leaves in the request's extensions. An embedder that mints sessions in its
//! own login handler uses [`issuer::Login`] instead of the issuer layer. Which origins are the
//! project's (CSRF, redirects) is route-core's `ProjectOrigins`, the one rule CORS uses too.
//!
//! # Pieces
//!
//! - [`Identity`]: the caller (user id, selected role, allowed roles, and the session's extra
//!   `x-hasura-*` [variables](Identity::variables)), anonymous when there is no credential.
//! - [`extract_credential`]: `Authorization: Bearer <token>` or the session cookie, with one
//!   [`CredentialError`] per failure.
//! - [`Token`] / [`TokenHash`]: 256-bit random tokens; stores only see SHA-256 of them.
//! - [`Resolver`]: the request → identity seam: it gets a [`ResolveRequest`] (the request head,
//!   the credential, the requested role). [`StoreResolver`] for session stores;
//!   [`ResolverChain`] puts several behind one, choosing by the credential's shape.
//! - [`SessionStore`]: create, resolve, touch, revoke, revoke a user, list a user
//!   ([`MemoryStore`] built in); [`Revocations`] tells listeners in the process about every
//!   revocation.
//! - [`CookieConfig`]: the session cookie and the cookie that clears it;
//!   [`sets_session_cookie`]: whether a response's `Set-Cookie` would plant it, read as a browser
//!   reads one ([`parse_set_cookie`]).
//! - With the `redis` feature: `RedisStore` (sessions shared by replicas; its module docs hold
//!   the key schema) and `CachingResolver` (a local cache that pub/sub revocations clear at
//!   once).
//! - With the `jwt` feature: `jwt::JwtResolver`, JWTs verified with static keys or a JWKS,
//!   configured as Hasura GraphQL Engine's `HASURA_GRAPHQL_JWT_SECRET` (`jwt::JwtConfig`).
//! - With the `webhook` feature: `webhook::WebhookResolver`, Hasura's auth webhook.
//! - Both use `http_client::HttpClient` (platform roots plus `SSL_CERT_FILE`, bounded in time
//!   and size) and [`cache::ExpiringCache`].
//!
//! Every refusal is one of [`rejection::ALL`], route-core's `Rejection`s: the workspace's one
//! error vocabulary. The layers never return an error of their own.
//!
//! # Example
//!
//! ```
//! use std::{convert::Infallible, sync::Arc, time::Duration};
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use session_core::csrf::{CsrfConfig, CsrfLayer, CsrfRule};
//! use session_core::{
//!     MemoryStore, NewSession, RequireRoleLayer, SessionConfig, SessionLayer, SessionStore,
//!     StoreResolver,
//! };
//! use route_core::ProjectOrigins;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = Arc::new(MemoryStore::new());
//! let (token, session) = store
//!     .create(NewSession {
//!         user_id: "alice".into(),
//!         roles: vec!["user".into(), "admin".into()],
//!         default_role: Some("user".into()),
//!         ttl: Duration::from_secs(3600),
//!         ..Default::default()
//!     })
//!     .await
//!     .unwrap();
//! assert_eq!(session.id, token.hash()); // the store keeps only the hash
//!
//! let resolver = Arc::new(StoreResolver::new(store.clone()));
//! let origins = ProjectOrigins::new(&["example.com".to_owned()], &[]);
//! let csrf = Arc::new(CsrfRule::new(origins, &CsrfConfig::default()));
//! let app = ServiceBuilder::new()
//!     .layer(SessionLayer::new(resolver, SessionConfig::default()))
//!     .layer(CsrfLayer::new(csrf))
//!     .layer(RequireRoleLayer::new(["admin"]))
//!     .service(service_fn(|req: Request<()>| async move {
//!         let role = req.headers()["x-hasura-role"].clone();
//!         Ok::<_, Infallible>(Response::new(Full::<Bytes>::from(role.as_bytes().to_vec())))
//!     }));
//!
//! let bearer = format!("Bearer {}", token.expose());
//! // The default role is `user`: not allowed here.
//! let req = Request::builder().header("authorization", &bearer).body(()).unwrap();
//! assert_eq!(app.clone().oneshot(req).await.unwrap().status(), StatusCode::UNAUTHORIZED);
//! // Asking for `admin`, one of the session's roles, is.
//! let req = Request::builder()
//!     .header("authorization", &bearer)
//!     .header("x-hasura-role", "admin")
//!     .body(())
//!     .unwrap();
//! assert_eq!(app.clone().oneshot(req).await.unwrap().status(), StatusCode::OK);
//! // A cross-site POST with the session cookie never reaches the service.
//! let cookie = format!("gateway_session={}", token.expose());
//! let req = Request::builder()
//!     .method("POST")
//!     .header("cookie", &cookie)
//!     .header("x-hasura-role", "admin")
//!     .header("origin", "https://evil.test")
//!     .body(())
//!     .unwrap();
//! assert_eq!(app.clone().oneshot(req).await.unwrap().status(), StatusCode::FORBIDDEN);
//! // Revocation is immediate.
//! store.revoke(&token.hash()).await.unwrap();
//! let req = Request::builder().header("authorization", &bearer).body(()).unwrap();
//! assert_eq!(app.oneshot(req).await.unwrap().status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```
//!
//! # Fuzzing
//!
//! The parsers' fuzz entry points live in the `fuzzing` module, compiled only with
//! `--cfg fuzzing`; see `fuzz/README.md` at the workspace root.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

use std::future::Future;
use std::pin::Pin;

pub mod cache;
mod chain;
mod config;
mod credential;
pub mod csrf;
#[cfg(feature = "http-client")]
pub mod http_client;
mod identity;
pub mod issuer;
#[cfg(feature = "jwt")]
pub mod jwt;
pub mod rejection;
pub mod require_role;
mod resolver;
mod session;
pub mod session_layer;
mod set_cookie;
mod store;
mod token;
pub mod tunnels;
#[cfg(feature = "webhook")]
pub mod webhook;

// Also compiled for this crate's unit tests, which run the entry points on seed inputs.
#[cfg(any(fuzzing, test))]
pub mod fuzzing;
#[cfg(any(test, feature = "test-util"))]
pub mod test_util;

pub use chain::ResolverChain;
pub use config::{ConfigError, SessionConfig};
pub use credential::{extract_credential, Credential, CredentialError, CredentialSource};
pub use identity::{AnonymousConfig, Identity};
#[cfg(feature = "jwt")]
pub use jwt::{JwtConfig, JwtResolver};
pub use rejection::json_rejection;
pub use require_role::{BrowserRedirects, RequireRole, RequireRoleLayer};
pub use resolver::{ResolveError, ResolveRequest, ResolveToken, Resolver, StoreResolver};
pub use session::{
    NewSession, Session, SessionValidationError, Variables, MAX_ROLES, MAX_ROLE_LEN, MAX_TTL,
    MAX_USER_ID_LEN, MAX_VARIABLES, MAX_VARIABLE_NAME_LEN, MAX_VARIABLE_VALUE_LEN,
};
pub use session_layer::{SessionLayer, SessionService};
pub use set_cookie::{parse_set_cookie, sets_session_cookie, CookieConfig, SameSite};
#[cfg(feature = "redis")]
pub use store::{
    CacheConfig, CachingResolver, ClusterTarget, RedisAuth, RedisConfig, RedisConn, RedisNode,
    RedisStore, RedisTarget, SentinelTarget, PROPAGATION_METRIC,
};
pub use store::{
    MemoryStore, Revocation, Revocations, SessionStore, StoreError, DEFAULT_MAX_PER_USER,
};
pub use token::{constant_time_eq, Token, TokenHash, MAX_TOKEN_LEN};
#[cfg(feature = "webhook")]
pub use webhook::{WebhookConfig, WebhookMode, WebhookResolver};

/// A boxed, `Send` future: what the object-safe async traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
