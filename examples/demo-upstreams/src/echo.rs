//! The echo service.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};

/// A router that answers **any** method and path with 200 and a JSON
/// description of the request:
///
/// ```json
/// {
///   "service": "data",
///   "method": "POST",
///   "path": "/things",
///   "query": "a=1&b=2",
///   "headers": { "x-hasura-role": "user", "accept": ["a", "b"] },
///   "body_bytes": 42
/// }
/// ```
///
/// `query` is `null` when the URI has none. Header names are lowercase; a
/// header sent once maps to a string, one sent several times to an array of
/// strings in the order received (bytes that are not UTF-8 are replaced with
/// U+FFFD). The body is counted as it streams and never buffered, so any size
/// is accepted; a body that fails mid-stream gets 400.
pub fn echo_router(service_name: &'static str) -> Router {
    Router::new().fallback(move |request: Request| echo(service_name, request))
}

async fn echo(service: &'static str, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body_bytes = match count_body(body).await {
        Ok(n) => n,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": format!("cannot read request body: {error}"), "code": "bad-body" })),
            )
                .into_response()
        }
    };
    Json(json!({
        "service": service,
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers_json(&parts.headers),
        "body_bytes": body_bytes,
    }))
    .into_response()
}

async fn count_body(mut body: Body) -> Result<u64, axum::Error> {
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            total += data.len() as u64;
        }
    }
    Ok(total)
}

fn headers_json(headers: &HeaderMap) -> Value {
    let mut map = Map::new();
    for name in headers.keys() {
        let mut values: Vec<Value> = headers
            .get_all(name)
            .iter()
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let value = if values.len() == 1 {
            values.swap_remove(0)
        } else {
            Value::Array(values)
        };
        map.insert(name.as_str().to_owned(), value);
    }
    Value::Object(map)
}
