//! The app of the `embed-axum` example, as a library so that its integration test can drive the
//! same `Router` (see `src/main.rs` for how to run it).

use std::sync::Arc;

use axum::routing::get;
use axum::{Extension, Router};
use session_core::{
    Identity, RequireRoleLayer, SessionConfig, SessionLayer, SessionStore, StoreResolver,
};

/// The app: `GET /` for anyone (anonymous included), `GET /admin` for the `admin` role only.
///
/// `SessionLayer` wraps the whole router, so every handler finds an [`Identity`] in the request
/// extensions; `RequireRoleLayer` guards one route.
pub fn app(store: Arc<dyn SessionStore>) -> Router {
    let resolver = Arc::new(StoreResolver::new(store));
    let config = SessionConfig {
        // Plain HTTP on localhost: a `Secure` cookie would never come back.
        cookie: session_core::CookieConfig {
            secure: false,
            ..Default::default()
        },
        ..SessionConfig::default()
    };
    Router::new()
        .route("/", get(whoami))
        .route(
            "/admin",
            get(admin).route_layer(RequireRoleLayer::new(["admin"])),
        )
        .layer(SessionLayer::new(resolver, config))
}

async fn whoami(Extension(identity): Extension<Identity>) -> String {
    format!(
        "user {} with role {} (authenticated: {})\n",
        identity.user_id,
        identity.role,
        identity.is_authenticated()
    )
}

async fn admin(Extension(identity): Extension<Identity>) -> String {
    format!("welcome, admin {}\n", identity.user_id)
}
