//! [`RequireRoleLayer`]: lets a request through only if its selected role is allowed.
//!
//! It reads the [`Identity`](crate::Identity) the [`SessionLayer`](crate::SessionLayer) put
//! into extensions and checks its **selected** role (`identity.role`, the one injected as
//! `X-Hasura-Role`), so a user holding `admin` among other roles reaches an admin-only route
//! only while asking for `admin`.
//!
//! | request | answer |
//! |---|---|
//! | empty role set (any role, anonymous included) | through |
//! | selected role in the set | through |
//! | otherwise | 401 `authorization-required` with `WWW-Authenticate: Bearer` |
//! | otherwise, with [`forbid_authenticated(true)`](RequireRoleLayer::forbid_authenticated) and a valid session | 403 `insufficient-role` |
//! | otherwise, a browser navigation with [`redirect_browsers`](RequireRoleLayer::redirect_browsers) | 302 (303 for a form post) to the login or "no access" page, see [`BrowserRedirects`] |
//! | no `Identity` in extensions (the session layer is missing: a bug) | 500, logged at error level |
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use session_core::{Identity, RequireRoleLayer};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let svc = ServiceBuilder::new()
//!     .layer(RequireRoleLayer::new(["admin"]))
//!     .service(service_fn(|_req: Request<()>| async {
//!         Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
//!     }));
//!
//! let mut req = Request::new(());
//! req.extensions_mut().insert(Identity::new("7", "user", ["user", "admin"]));
//! let res = svc.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), 401);
//! # }
//! ```

mod future;
mod layer;
mod redirect;
mod service;

pub use future::ResponseFuture;
pub use layer::RequireRoleLayer;
pub use redirect::BrowserRedirects;
pub use service::RequireRole;

#[cfg(test)]
mod tests;
