//! [`SessionLayer`]: strips client identity headers, resolves the credential, selects the role,
//! injects the identity headers and puts the [`Identity`](crate::Identity) into extensions.
//!
//! # What it does, in order
//!
//! 1. Captures the client's role request (the configured role header, `X-Hasura-Role`), then
//!    removes every client header whose name starts with the identity prefix (any case, `_` read
//!    as `-`, so `X_Hasura_Role` goes too), the three configured names, and any such name listed
//!    in `Connection` (so a later hop-by-hop pass cannot delete the injected headers).
//! 2. Extracts the credential ([`extract_credential`](crate::extract_credential) rules). A
//!    duplicate or malformed credential answers 400.
//! 3. Unless `forward_credentials` is set, removes the bearer `Authorization` header and the
//!    session cookie (other cookies and non-Bearer `Authorization` headers stay).
//! 4. Resolves the token with the [`Resolver`](crate::Resolver) (first
//!    [`resolve_now`](crate::Resolver::resolve_now), which allocates nothing for in-memory
//!    stores, then the boxed [`resolve`](crate::Resolver::resolve) future).
//! 5. Selects the role: the session's default role, or the role the client asked for if it is
//!    one of the allowed roles. Anonymous requests ignore the role request (the client gets the
//!    anonymous role, never an error).
//! 6. Injects the user id, role and allowed-roles headers (exactly one of each) and the
//!    session's variables ([`Identity::variables`](crate::Identity::variables), each under the
//!    identity prefix, so step 1 already removed any client copy), inserts the `Identity` and,
//!    for a resolved session, the [`Credential`](crate::Credential) into extensions, and calls
//!    the inner service.
//!
//! # Outcomes
//!
//! | request | answer |
//! |---|---|
//! | no credential (or a non-Bearer `Authorization`) | anonymous |
//! | valid credential | the session's identity |
//! | unknown/expired/revoked bearer | 401, `WWW-Authenticate: Bearer error="invalid_token"` |
//! | unknown/expired/revoked/malformed cookie | anonymous, and the response gets a `Max-Age=0` `Set-Cookie` |
//! | duplicate or malformed credential | 400 |
//! | role header asks for a role outside the allowed roles | 403 |
//! | role header twice on an authenticated request | 400 |
//! | resolver unavailable | 503 with `Retry-After` (fail closed) |
//! | resolver internal error, identity that is not a legal header value, variable outside the identity prefix | 500 |
//!
//! # Example
//!
//! ```
//! use std::{convert::Infallible, sync::Arc, time::Duration};
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use session_core::{
//!     Identity, MemoryStore, NewSession, SessionConfig, SessionLayer, SessionStore, StoreResolver,
//! };
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = MemoryStore::new();
//! let (token, _) = store
//!     .create(NewSession {
//!         user_id: "42".into(),
//!         roles: vec!["user".into()],
//!         ttl: Duration::from_secs(3600),
//!         ..Default::default()
//!     })
//!     .await
//!     .unwrap();
//! let resolver = Arc::new(StoreResolver::new(Arc::new(store)));
//!
//! let svc = ServiceBuilder::new()
//!     .layer(SessionLayer::new(resolver, SessionConfig::default()))
//!     .service(service_fn(|req: Request<()>| async move {
//!         assert_eq!(req.headers()["x-hasura-user-id"], "42");
//!         assert_eq!(req.headers()["x-hasura-role"], "user");
//!         assert!(req.headers().get("authorization").is_none()); // not forwarded
//!         let who = req.extensions().get::<Identity>().unwrap();
//!         Ok::<_, Infallible>(Response::new(Full::<Bytes>::from(who.user_id.to_string())))
//!     }));
//!
//! let req = Request::builder()
//!     .header("authorization", format!("Bearer {}", token.expose()))
//!     .header("x-hasura-user-id", "1") // a client-sent identity header never survives
//!     .body(())
//!     .unwrap();
//! let res = svc.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), 200);
//! # }
//! ```

mod future;
mod layer;
mod service;
mod strip;

pub use future::ResponseFuture;
pub use layer::SessionLayer;
pub use service::SessionService;
pub(crate) use strip::IdentityNames;

#[cfg(test)]
mod tests;
