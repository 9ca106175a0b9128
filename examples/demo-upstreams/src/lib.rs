//! The gateway quickstart's example upstreams.
//!
//! - [`echo_router`]: answers any method and path with a JSON description of
//!   the request, so you can see the identity headers the gateway injected
//!   (`x-hasura-user-id`, `x-hasura-role`, `x-hasura-allowed-roles`).
//! - [`admin_router`]: an "admins only" service; the gateway's route config is
//!   what keeps everyone else out.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use example_demo_upstreams::{admin_router, echo_router, serve};
//!
//! let data = tokio::net::TcpListener::bind("127.0.0.1:4001").await?;
//! let admin = tokio::net::TcpListener::bind("127.0.0.1:4002").await?;
//! tokio::try_join!(
//!     serve(data, echo_router("data")),
//!     serve(admin, admin_router()),
//! )?;
//! # Ok(())
//! # }
//! ```

#![deny(rust_2018_idioms)]
#![forbid(unsafe_code)]

mod admin;
mod echo;

pub use admin::admin_router;
pub use echo::echo_router;

/// Serves `router` on `listener` until the listener fails.
///
/// # Errors
///
/// The I/O error that stopped the server.
pub async fn serve(listener: tokio::net::TcpListener, router: axum::Router) -> std::io::Result<()> {
    axum::serve(listener, router).await
}
