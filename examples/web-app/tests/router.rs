//! The app's routes, called in-process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn get(path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let res = example_web_app::router()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn page_and_script_are_served_with_a_strict_csp() {
    let (status, headers, body) = get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    for id in [
        "login-form",
        "username",
        "password",
        "user-id",
        "role",
        "admin",
        "logout",
    ] {
        assert!(body.contains(&format!("id=\"{id}\"")), "#{id} missing");
    }
    // No inline script and nothing from another origin: the CSP would block it anyway.
    assert!(body.contains("<script src=\"/app.js\"></script>"));
    assert!(
        !body.contains("://"),
        "the page loads nothing from another origin"
    );

    let (status, headers, js) = get("/app.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    // Every call carries the cookie, and the page never touches a token.
    assert_eq!(
        js.matches("fetch(").count(),
        js.matches("credentials: 'include'").count()
    );
    assert!(!js.contains("document.cookie"));
    assert!(!js.to_ascii_lowercase().contains("token"));
}

#[tokio::test]
async fn health_and_unknown_paths() {
    assert_eq!(get("/healthz").await.0, StatusCode::OK);
    assert_eq!(get("/nope").await.0, StatusCode::NOT_FOUND);
}
