//! Tests for the demo upstreams, driven through the routers with `oneshot`.

// Test code: a failed unwrap is a failed test, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Method, Request, Response, StatusCode};
use example_demo_upstreams::{admin_router, echo_router, serve};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

async fn json_body(response: Response<Body>) -> Value {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn echo_reflects_method_path_query_headers_and_body_length() {
    let request = Request::builder()
        .method(Method::PUT)
        .uri("/things/42?a=1&b=two")
        .header("X-Hasura-User-Id", "2")
        .header("x-hasura-role", "admin")
        .header("x-hasura-allowed-roles", "user,admin")
        .header("accept", "application/json")
        .header("accept", "text/plain")
        .body(Body::from("hello world"))
        .unwrap();
    let response = echo_router("data").oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let body = json_body(response).await;
    assert_eq!(body["service"], "data");
    assert_eq!(body["method"], "PUT");
    assert_eq!(body["path"], "/things/42");
    assert_eq!(body["query"], "a=1&b=two");
    assert_eq!(body["body_bytes"], 11);
    let headers = &body["headers"];
    assert_eq!(headers["x-hasura-user-id"], "2");
    assert_eq!(headers["x-hasura-role"], "admin");
    assert_eq!(headers["x-hasura-allowed-roles"], "user,admin");
    assert_eq!(headers["accept"], json!(["application/json", "text/plain"]));
}

#[tokio::test]
async fn echo_answers_any_method_and_path_with_null_query() {
    for method in [
        Method::GET,
        Method::POST,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
    ] {
        let request = Request::builder()
            .method(method.clone())
            .uri("/")
            .body(Body::empty())
            .unwrap();
        let response = echo_router("other").oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{method}");
        let body = json_body(response).await;
        assert_eq!(body["service"], "other");
        assert_eq!(body["method"], method.as_str());
        assert_eq!(body["path"], "/");
        assert_eq!(body["query"], Value::Null);
        assert_eq!(body["body_bytes"], 0);
        assert_eq!(body["headers"], json!({}));
    }
}

#[tokio::test]
async fn echo_counts_large_bodies_without_a_limit() {
    // Larger than axum's default 2 MB extractor limit.
    let size = 3 * 1024 * 1024;
    let request = Request::post("/upload")
        .body(Body::from(vec![0u8; size]))
        .unwrap();
    let response = echo_router("data").oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_body(response).await["body_bytes"], size);
}

#[tokio::test]
async fn admin_reports_the_user_id_header() {
    let request = Request::get("/")
        .header("x-hasura-user-id", "2")
        .header("x-hasura-role", "admin")
        .body(Body::empty())
        .unwrap();
    let response = admin_router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json_body(response).await,
        json!({ "service": "admin", "message": "only admins see this", "user_id": "2" })
    );
}

#[tokio::test]
async fn admin_without_user_id_reports_null_and_other_paths_are_404() {
    let app = admin_router();
    let response = app
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_body(response).await["user_id"], Value::Null);

    let response = app
        .oneshot(Request::get("/elsewhere").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn serve_answers_over_a_real_socket() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve(listener, echo_router("data")));

    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /x?y=1 HTTP/1.1\r\nhost: data.test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body: Value = serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["path"], "/x");
    assert_eq!(body["query"], "y=1");
    assert_eq!(body["headers"]["host"], "data.test");

    server.abort();
}
