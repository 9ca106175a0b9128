//! Tests for the login service's HTTP contract, driven through the router with
//! `oneshot` (no sockets).

// Test code: a failed unwrap is a failed test, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use example_login_service::{hash_password, headers, router, Error, Users};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const SESSION_HEADERS: [&str; 4] = [
    headers::SESSION_USER_ID,
    headers::SESSION_ROLES,
    headers::SESSION_DEFAULT_ROLE,
    headers::SESSION_TTL,
];

fn json_login(username: &str, password: &str) -> Request<Body> {
    let body = serde_json::json!({ "username": username, "password": password }).to_string();
    Request::post("/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap()
}

fn form_login(form: &'static str) -> Request<Body> {
    Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap()
}

async fn json_body(response: Response<Body>) -> Value {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

fn header_str<'a>(response: &'a Response<Body>, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

fn assert_no_session_headers(response: &Response<Body>) {
    for name in SESSION_HEADERS.iter().chain([&headers::SESSION_END]) {
        assert!(
            response.headers().get(*name).is_none(),
            "unexpected {name} on a rejected login"
        );
    }
}

#[tokio::test]
async fn json_login_for_bob_sets_session_headers() {
    let response = router(Users::demo().unwrap())
        .oneshot(json_login("bob", "bob-password"))
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header_str(&response, headers::SESSION_USER_ID), Some("2"));
    assert_eq!(
        header_str(&response, headers::SESSION_ROLES),
        Some("user,admin")
    );
    assert_eq!(
        header_str(&response, headers::SESSION_DEFAULT_ROLE),
        Some("user")
    );
    assert_eq!(header_str(&response, headers::SESSION_TTL), Some("3600"));
    assert_eq!(header_str(&response, "cache-control"), Some("no-store"));
    assert_eq!(
        json_body(response).await,
        serde_json::json!({ "user_id": "2", "roles": ["user", "admin"] })
    );
}

#[tokio::test]
async fn form_login_for_alice_sets_session_headers() {
    let response = router(Users::demo().unwrap())
        .oneshot(form_login("username=alice&password=alice-password"))
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header_str(&response, headers::SESSION_USER_ID), Some("1"));
    assert_eq!(header_str(&response, headers::SESSION_ROLES), Some("user"));
    assert_eq!(
        header_str(&response, headers::SESSION_DEFAULT_ROLE),
        Some("user")
    );
    assert_eq!(
        json_body(response).await,
        serde_json::json!({ "user_id": "1", "roles": ["user"] })
    );
}

#[tokio::test]
async fn json_content_type_with_charset_is_accepted() {
    let mut request = json_login("alice", "alice-password");
    request.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/json; charset=utf-8".parse().unwrap(),
    );
    let response = router(Users::demo().unwrap())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn wrong_password_is_401_without_session_headers() {
    let app = router(Users::demo().unwrap());
    for request in [
        json_login("alice", "bob-password"),
        form_login("username=bob&password=wrong"),
        json_login("alice", ""),
    ] {
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_no_session_headers(&response);
        assert_eq!(
            json_body(response).await,
            serde_json::json!({
                "error": "invalid username or password",
                "code": "invalid-credentials"
            })
        );
    }
}

#[tokio::test]
async fn unknown_user_is_the_same_401() {
    let response = router(Users::demo().unwrap())
        .oneshot(json_login("mallory", "alice-password"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_no_session_headers(&response);
    assert_eq!(
        json_body(response).await,
        serde_json::json!({
            "error": "invalid username or password",
            "code": "invalid-credentials"
        })
    );
}

#[tokio::test]
async fn malformed_or_unsupported_bodies_are_4xx_without_session_headers() {
    let app = router(Users::demo().unwrap());

    let missing_field = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"username":"alice"}"#))
        .unwrap();
    let response = app.clone().oneshot(missing_field).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_no_session_headers(&response);
    assert_eq!(json_body(response).await["code"], "invalid-request");

    let text = Request::post("/login")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("alice:alice-password"))
        .unwrap();
    let response = app.clone().oneshot(text).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_no_session_headers(&response);
    assert_eq!(json_body(response).await["code"], "unsupported-media-type");

    let huge = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(vec![b' '; 64 * 1024]))
        .unwrap();
    let response = app.oneshot(huge).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_no_session_headers(&response);
}

#[tokio::test]
async fn logout_sets_the_end_header() {
    let response = router(Users::demo().unwrap())
        .oneshot(Request::post("/logout").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header_str(&response, headers::SESSION_END), Some("true"));
    for name in SESSION_HEADERS {
        assert!(response.headers().get(name).is_none());
    }
    assert_eq!(
        json_body(response).await,
        serde_json::json!({ "logged_out": true })
    );
}

#[tokio::test]
async fn login_page_and_healthz() {
    let app = router(Users::demo().unwrap());

    let response = app
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header_str(&response, "content-type")
        .unwrap()
        .starts_with("text/html"));
    let page = response.into_body().collect().await.unwrap().to_bytes();
    let page = std::str::from_utf8(&page).unwrap();
    assert!(page.contains(r#"action="/login""#));
    assert!(page.contains(r#"name="password""#));

    let response = app
        .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn users_file_round_trip() {
    let hash = hash_password("carol-password").unwrap();
    let file = format!(
        r#"
        session_ttl_secs = 600

        [[users]]
        username = "carol"
        user_id = "c-42"
        roles = ["user", "editor"]
        default_role = "editor"
        password_hash = "{hash}"

        [[users]]
        username = "dave"
        user_id = "7"
        roles = ["user"]
        password_hash = "{hash}"
        "#
    );
    let users = Users::from_toml_str(&file).unwrap();
    assert_eq!(users.len(), 2);
    let app = router(users);

    let response = app
        .clone()
        .oneshot(json_login("carol", "carol-password"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header_str(&response, headers::SESSION_USER_ID),
        Some("c-42")
    );
    assert_eq!(
        header_str(&response, headers::SESSION_ROLES),
        Some("user,editor")
    );
    assert_eq!(
        header_str(&response, headers::SESSION_DEFAULT_ROLE),
        Some("editor")
    );
    assert_eq!(header_str(&response, headers::SESSION_TTL), Some("600"));

    // No default_role in the file: no default-role header.
    let response = app
        .oneshot(json_login("dave", "carol-password"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header_str(&response, headers::SESSION_USER_ID), Some("7"));
    assert!(response
        .headers()
        .get(headers::SESSION_DEFAULT_ROLE)
        .is_none());
}

#[test]
fn users_file_without_ttl_sends_no_ttl_header_value() {
    let hash = hash_password("pw").unwrap();
    let users = Users::from_toml_str(&format!(
        r#"[[users]]
        username = "erin"
        user_id = "9"
        roles = ["user"]
        password_hash = "{hash}""#
    ))
    .unwrap();
    assert!(format!("{users:?}").contains("session_ttl: None"));
    // Hashes never show up in Debug output.
    assert!(!format!("{users:?}").contains("argon2"));
}

fn user_file(password_hash: &str) -> String {
    format!(
        r#"[[users]]
        username = "alice"
        user_id = "1"
        roles = ["user"]
        password_hash = "{password_hash}""#
    )
}

#[test]
fn users_file_with_a_bad_hash_is_a_clear_error() {
    for bad in [
        "not-a-hash",
        "plaintext-password",
        // Syntactically PHC, but not argon2.
        "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        // argon2 parameters, but no salt and no hash.
        "$argon2id$v=19$m=19456,t=2,p=1",
    ] {
        let error = Users::from_toml_str(&user_file(bad)).unwrap_err();
        assert!(
            matches!(&error, Error::InvalidPasswordHash { username, .. } if username == "alice"),
            "{bad}: {error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("alice"), "{message}");
        assert!(message.contains("password_hash"), "{message}");
    }
}

#[test]
fn users_file_structural_errors() {
    let hash = hash_password("pw").unwrap();

    let error = Users::from_toml_str("[[users]]\nusername = \"x\"\n").unwrap_err();
    assert!(matches!(error, Error::Parse(_)), "{error:?}");

    let duplicate = format!("{}\n{}", user_file(&hash), user_file(&hash));
    let error = Users::from_toml_str(&duplicate).unwrap_err();
    assert!(matches!(error, Error::DuplicateUser { .. }), "{error:?}");

    for (roles, default_role) in [
        ("[]", None),
        (r#"["user,admin"]"#, None),
        (r#"["user"]"#, Some("admin")),
    ] {
        let default_role = default_role
            .map(|r| format!("default_role = \"{r}\"\n"))
            .unwrap_or_default();
        let file = format!(
            "[[users]]\nusername = \"x\"\nuser_id = \"1\"\nroles = {roles}\n{default_role}password_hash = \"{hash}\"\n"
        );
        let error = Users::from_toml_str(&file).unwrap_err();
        assert!(
            matches!(error, Error::InvalidUser { .. }),
            "{roles}: {error:?}"
        );
    }

    let error =
        Users::from_toml_str(&format!("session_ttl_secs = 0\n{}", user_file(&hash))).unwrap_err();
    assert!(matches!(error, Error::ZeroSessionTtl), "{error:?}");
}
