//! The console: three static files embedded in the binary, served on the admin listener.
//!
//! The page needs no secret to load; it asks for the admin secret, keeps it in
//! `sessionStorage` (never a cookie, so the browser never sends it by itself) and sends it as a
//! bearer token with every call to the public admin API. It has no endpoint of its own.
//!
//! Every file is served with a strict Content Security Policy (`default-src 'self'`, no inline
//! script or style), `X-Frame-Options: DENY`, `nosniff`, no referrer and no caching.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX_HTML: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const CONSOLE_CSS: &str = include_str!("console/console.css");

/// The policy on every console response: only this origin's files, no inline code, no
/// framing, no plugins, forms and fetches to this origin only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `/console`, `/console/`, `/console/app.js` and `/console/console.css`.
pub(super) fn router() -> axum::Router {
    let index = || async { asset("text/html; charset=utf-8", INDEX_HTML) };
    axum::Router::new()
        .route("/console", get(index))
        .route("/console/", get(index))
        .route(
            "/console/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/console/console.css",
            get(|| async { asset("text/css; charset=utf-8", CONSOLE_CSS) }),
        )
}
