//! An example login service that sits **behind** the gateway as a
//! `session_issuer = true` service.
//!
//! It checks a username and password against argon2 password hashes kept in
//! memory and, on success, answers with the `X-Gateway-Session-*` response
//! headers (see [`headers`]). The gateway consumes and strips those headers,
//! mints a session for the user and sets the session cookie; the login service
//! itself never sees or issues tokens.
//!
//! | Endpoint       | Answer                                                                 |
//! |----------------|------------------------------------------------------------------------|
//! | `POST /login`  | JSON or form body `username`, `password`. 200 + session headers, or 401 |
//! | `POST /logout` | 200 + `X-Gateway-Session-End: true`                                      |
//! | `GET /`        | a small HTML login form                                                 |
//! | `GET /healthz` | 200                                                                     |
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use example_login_service::{serve, Users};
//!
//! // alice / alice-password (roles: user) and bob / bob-password (roles: user, admin).
//! let users = Users::demo()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
//! serve(listener, users).await?;
//! # Ok(())
//! # }
//! ```
//!
//! To use the router in-process (in tests, or inside another axum app):
//!
//! ```
//! # fn main() -> Result<(), example_login_service::Error> {
//! let app: axum::Router = example_login_service::router(example_login_service::Users::demo()?);
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

#![deny(rust_2018_idioms)]
#![forbid(unsafe_code)]

mod error;
pub mod headers;
mod service;
mod users;

pub use error::Error;
pub use service::{router, serve};
pub use users::{hash_password, Users};
