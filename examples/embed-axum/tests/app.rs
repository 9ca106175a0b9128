//! Drives the example's `Router` with `tower::ServiceExt::oneshot`.

// Test helpers abort the test on failure, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use example_embed_axum::app;
use http_body_util::BodyExt;
use session_core::{MemoryStore, NewSession, SessionStore, Token};
use tower::ServiceExt;

async fn session(store: &MemoryStore, user: &str, roles: &[&str]) -> Token {
    store
        .create(NewSession {
            user_id: user.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            default_role: None,
            ttl: Duration::from_secs(60),
        })
        .await
        .unwrap()
        .0
}

async fn get(router: axum::Router, path: &str, headers: &[(&str, String)]) -> (StatusCode, String) {
    let mut req = Request::builder().uri(path);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let res = router
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn anonymous_reaches_the_open_route_only() {
    let store = MemoryStore::new();
    let router = app(Arc::new(store));
    let (status, body) = get(router.clone(), "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "user 0 with role anonymous (authenticated: false)\n");
    // A client-sent identity header changes nothing.
    let (_, body) = get(router.clone(), "/", &[("x-hasura-role", "admin".into())]).await;
    assert!(body.contains("role anonymous"));
    let (status, body) = get(router, "/admin", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("\"code\":\"authorization-required\""));
}

#[tokio::test]
async fn sessions_and_roles() {
    let store = MemoryStore::new();
    let alice = session(&store, "alice", &["user"]).await;
    let root = session(&store, "root", &["user", "admin"]).await;
    let router = app(Arc::new(store.clone()));
    let bearer = |t: &Token| ("authorization", format!("Bearer {}", t.expose()));

    let (status, body) = get(router.clone(), "/", &[bearer(&alice)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "user alice with role user (authenticated: true)\n");

    // alice lacks admin: asking for it is refused by the session layer.
    let (status, _) = get(
        router.clone(),
        "/admin",
        &[bearer(&alice), ("x-hasura-role", "admin".into())],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // root holds admin but must select it.
    let (status, _) = get(router.clone(), "/admin", &[bearer(&root)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = get(
        router.clone(),
        "/admin",
        &[bearer(&root), ("x-hasura-role", "admin".into())],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "welcome, admin root\n");

    // The cookie works too.
    let (status, body) = get(
        router.clone(),
        "/",
        &[("cookie", format!("gateway_session={}", root.expose()))],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("user root"));

    // Revoked: the bearer now gets 401.
    store.revoke(&root.hash()).await.unwrap();
    let (status, body) = get(router, "/", &[bearer(&root)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("invalid-token"));
}
