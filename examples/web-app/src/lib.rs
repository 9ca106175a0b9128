//! An example browser app behind the gateway, served at `app.<domain>`.
//!
//! It is one static page and one script, with no build step and nothing from a CDN. The page
//! never handles a session token: it logs in by posting to the login service at
//! `auth.<domain>/login`, and the gateway answers with the session cookie (`HttpOnly`, `Secure`,
//! `Domain=<domain>`), which the browser then sends with every
//! `fetch(…, {credentials: 'include'})` to the project's other subdomains. It shows the identity
//! the echo service at `data.<domain>` received (`x-hasura-user-id`, `x-hasura-role`), can try
//! the admin-only service at `admin.<domain>`, and logs out.
//!
//! The other services' URLs follow the page's own: same scheme, same port, the first label of
//! the host replaced (`https://app.example.com` calls `https://data.example.com/whoami`).
//!
//! | Route | Answer |
//! |---|---|
//! | `GET /` | the page |
//! | `GET /app.js` | its script |
//! | `GET /healthz` | 200 |
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:4003").await?;
//! example_web_app::serve(listener).await?;
//! # Ok(())
//! # }
//! ```

#![deny(rust_2018_idioms)]
#![forbid(unsafe_code)]

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The page.
pub const INDEX_HTML: &str = include_str!("static/index.html");
/// The page's script.
pub const APP_JS: &str = include_str!("static/app.js");

/// Scripts only from the app itself, no inline script, no framing. `fetch` may reach the
/// project's other subdomains, which the page only knows at run time: any http(s) origin.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   connect-src 'self' https: http:; img-src 'self' data:; form-action 'self' https: http:; \
                   frame-ancestors 'none'; base-uri 'none'";

/// The app's routes: `GET /`, `GET /app.js` and `GET /healthz`.
pub fn router() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route("/healthz", get(|| async { "ok" }))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Serves [`router`] on `listener` until the listener fails.
///
/// # Errors
///
/// The I/O error that stopped the server.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router()).await
}
