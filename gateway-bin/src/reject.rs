//! The gateway binary's own rejections: every one a JSON response `{"error", "code"}`, built
//! here and only here.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use route_core::Body;

/// A JSON error response.
pub fn json<B: From<Bytes>>(status: StatusCode, code: &str, message: &str) -> Response<B> {
    let body = serde_json::json!({ "error": message, "code": code }).to_string();
    let mut res = Response::new(B::from(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// 503 with `Retry-After`, for a session store that cannot be reached.
pub fn store_unavailable() -> Response<Body> {
    let mut res = json(
        StatusCode::SERVICE_UNAVAILABLE,
        "session-store-unavailable",
        "the session store is unavailable; try again shortly",
    );
    res.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    res
}
