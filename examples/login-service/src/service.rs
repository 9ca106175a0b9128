//! The HTTP side: routes, handlers and the rejection responses.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::{headers, Users};

/// Login bodies are two short strings; anything bigger is not a login.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// Shared by every request; built once in [`router`].
struct AppState {
    users: Arc<Users>,
    /// Each argon2 verification takes tens of MiB and a core for tens of
    /// milliseconds; bound how many run at once so a burst of logins queues
    /// instead of exhausting memory through the blocking pool.
    hashing: Arc<Semaphore>,
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

/// The login service's routes: `POST /login`, `POST /logout`, `GET /` (login
/// form) and `GET /healthz`.
///
/// Every answer, rejections included, is an HTTP response; the router never
/// fails. Request bodies above 16 KiB are refused with 413.
pub fn router(users: Users) -> Router {
    let permits = std::thread::available_parallelism().map_or(2, usize::from);
    let state = Arc::new(AppState {
        users: Arc::new(users),
        hashing: Arc::new(Semaphore::new(permits)),
    });
    Router::new()
        .route("/", get(login_page))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/healthz", get(healthz))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves [`router`] on `listener` until the listener fails.
///
/// # Errors
///
/// The I/O error that stopped the server.
pub async fn serve(listener: tokio::net::TcpListener, users: Users) -> std::io::Result<()> {
    axum::serve(listener, router(users)).await
}

async fn login(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let credentials = match read_credentials(request).await {
        Ok(credentials) => credentials,
        Err(rejection) => return rejection,
    };

    let Ok(permit) = Arc::clone(&state.hashing).acquire_owned().await else {
        return internal_error();
    };
    let users = Arc::clone(&state.users);
    let username = credentials.username.clone();
    // The permit moves into the task: if the client goes away, the
    // verification still counts until it has actually finished.
    let verified = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        users.verify(&credentials.username, &credentials.password)
    })
    .await;

    let account = match verified {
        Ok(Some(account)) => account,
        Ok(None) => {
            // The username is not logged: people type passwords into that field.
            tracing::info!("login failed");
            return error_response(
                StatusCode::UNAUTHORIZED,
                "invalid username or password",
                "invalid-credentials",
            );
        }
        Err(error) => {
            tracing::error!(%error, "password verification task failed");
            return internal_error();
        }
    };
    tracing::info!(%username, user_id = %account.user_id, "login succeeded");

    let mut response = Json(json!({
        "user_id": account.user_id,
        "roles": account.roles,
    }))
    .into_response();
    let response_headers = response.headers_mut();
    response_headers.extend(account.session_headers.clone());
    if let Some(ttl) = state.users.session_ttl() {
        response_headers.insert(HeaderName::from_static(headers::SESSION_TTL), ttl.clone());
    }
    no_store(response_headers);
    response
}

async fn logout() -> Response {
    let mut response = Json(json!({ "logged_out": true })).into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(
        HeaderName::from_static(headers::SESSION_END),
        HeaderValue::from_static("true"),
    );
    no_store(response_headers);
    response
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn login_page() -> Html<&'static str> {
    Html(LOGIN_PAGE)
}

/// Reads the credentials from a JSON or an `application/x-www-form-urlencoded`
/// body; anything else is a 4xx response.
async fn read_credentials(request: Request) -> Result<Credentials, Response> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let essence = content_type.split(';').next().unwrap_or("").trim();

    if essence == "application/json" || essence.ends_with("+json") {
        match Json::<Credentials>::from_request(request, &()).await {
            Ok(Json(credentials)) => Ok(credentials),
            Err(rejection) => Err(bad_request(rejection.status(), rejection.body_text())),
        }
    } else if essence == "application/x-www-form-urlencoded" {
        match Form::<Credentials>::from_request(request, &()).await {
            Ok(Form(credentials)) => Ok(credentials),
            Err(rejection) => Err(bad_request(rejection.status(), rejection.body_text())),
        }
    } else {
        Err(error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected an application/json or application/x-www-form-urlencoded body",
            "unsupported-media-type",
        ))
    }
}

fn bad_request(status: StatusCode, detail: String) -> Response {
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "body-too-large"
    } else {
        "invalid-request"
    };
    // Never echo the body back: it may hold a password.
    tracing::debug!(%status, %detail, "rejected login body");
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "request body is too large"
    } else {
        "expected a body with username and password"
    };
    error_response(status, message, code)
}

fn internal_error() -> Response {
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error",
        "internal",
    )
}

/// The workspace's rejection shape: `{"error": ..., "code": ...}`.
fn error_response(status: StatusCode, error: &str, code: &str) -> Response {
    let mut response = (status, Json(json!({ "error": error, "code": code }))).into_response();
    no_store(response.headers_mut());
    response
}

/// Login and logout answers are per-user and must never be cached.
fn no_store(headers: &mut HeaderMap) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

const LOGIN_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Log in</title>
</head>
<body>
<h1>Log in</h1>
<form method="post" action="/login">
  <p><label>Username <input name="username" autocomplete="username" required></label></p>
  <p><label>Password <input name="password" type="password" autocomplete="current-password" required></label></p>
  <p><button type="submit">Log in</button></p>
</form>
<form method="post" action="/logout">
  <p><button type="submit">Log out</button></p>
</form>
</body>
</html>
"#;
