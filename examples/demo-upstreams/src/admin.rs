//! The admin-only demo service.

use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

/// The identity header the gateway injects with the caller's user id.
const USER_ID_HEADER: &str = "x-hasura-user-id";

/// An "admins only" demo service. `GET /` answers 200 with
///
/// ```json
/// {"service": "admin", "message": "only admins see this", "user_id": "2"}
/// ```
///
/// where `user_id` is the `x-hasura-user-id` request header (`null` when
/// absent or not UTF-8). The service itself checks nothing: restricting it
/// to the `admin` role is the gateway's job. Other paths get 404, other
/// methods on `/` get 405.
pub fn admin_router() -> Router {
    Router::new().route("/", get(admin))
}

async fn admin(headers: HeaderMap) -> Json<Value> {
    let user_id = headers.get(USER_ID_HEADER).and_then(|v| v.to_str().ok());
    Json(json!({
        "service": "admin",
        "message": "only admins see this",
        "user_id": user_id,
    }))
}
