//! Drives the example's `Router` with `tower::ServiceExt::oneshot`, each request carrying the
//! `ConnectionInfo` of a TLS listener on 443, as `serve` inserts it.

// Test helpers abort the test on failure, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use example_embed_axum::{app, AppConfig};
use http_body_util::BodyExt;
use route_core::ConnectionInfo;
use session_core::{MemoryStore, NewSession, SessionStore, Token};
use tower::ServiceExt;

const DOMAIN: &str = "app.example.test";
const ORIGIN: &str = "https://app.example.test";

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> &str {
        self.headers[name].to_str().unwrap()
    }
}

fn router(store: &MemoryStore) -> axum::Router {
    app(Arc::new(store.clone()), &AppConfig::new(DOMAIN)).unwrap()
}

async fn session(store: &MemoryStore, user: &str, roles: &[&str]) -> Token {
    store
        .create(NewSession {
            user_id: user.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            ttl: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .unwrap()
        .0
}

async fn send(
    router: &axum::Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", DOMAIN);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(Body::from(body.to_owned())).unwrap();
    req.extensions_mut().insert(ConnectionInfo {
        remote_addr: "192.0.2.1:50000".parse().unwrap(),
        local_addr: "127.0.0.1:443".parse().unwrap(),
        tls: true,
        sni: Some(Arc::from(DOMAIN)),
    });
    let res = router.clone().oneshot(req).await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

async fn get(router: &axum::Router, path: &str, headers: &[(&str, &str)]) -> Answer {
    send(router, "GET", path, headers, "").await
}

const JSON: (&str, &str) = ("content-type", "application/json");
const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
const ALICE: &str = r#"{"username":"alice","password":"alice-password"}"#;

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn anonymous_reaches_the_open_routes_only() {
    let store = MemoryStore::new();
    let router = router(&store);
    let res = get(&router, "/me", &[]).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["user_id"], "0");
    assert_eq!(res.json()["role"], "anonymous");
    assert_eq!(res.json()["authenticated"], false);
    // A client-sent identity header changes nothing.
    let res = get(&router, "/me", &[("x-hasura-role", "admin")]).await;
    assert_eq!(res.json()["role"], "anonymous");
    let res = get(&router, "/", &[]).await;
    assert!(res
        .body
        .contains("user 0 with role anonymous (authenticated: false)"));
    assert_eq!(res.header("cache-control"), "no-store");
    assert!(res
        .header("content-security-policy")
        .contains("frame-ancestors 'none'"));
    let res = get(&router, "/login-page", &[]).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.body.contains("action=\"/login\""));
}

#[tokio::test]
async fn admin_refuses_anonymous_api_calls_and_redirects_navigations() {
    let store = MemoryStore::new();
    let router = router(&store);
    let res = get(&router, "/admin", &[("accept", "application/json")]).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.json()["code"], "authorization-required");
    assert_eq!(res.header("www-authenticate"), "Bearer");

    let res = get(&router, "/admin", &[("sec-fetch-mode", "navigate")]).await;
    assert_eq!(res.status, StatusCode::FOUND);
    assert_eq!(
        res.header("location"),
        "/login-page?redirect_to=https%3A%2F%2Fapp.example.test%2Fadmin"
    );
    // A fetch() that accepts HTML is still an API call.
    let res = get(
        &router,
        "/admin",
        &[("sec-fetch-mode", "cors"), ("accept", "text/html")],
    )
    .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sessions_and_roles() {
    let store = MemoryStore::new();
    let alice = session(&store, "alice", &["user"]).await;
    let root = session(&store, "root", &["user", "admin"]).await;
    let router = router(&store);
    let alice = bearer(alice.expose());

    let res = get(&router, "/me", &[("authorization", &alice)]).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["user_id"], "alice");
    assert_eq!(res.json()["role"], "user");

    // alice lacks admin: asking for it is refused by the session layer, and without asking
    // the role check refuses her session with 403.
    let res = get(
        &router,
        "/admin",
        &[("authorization", &alice), ("x-hasura-role", "admin")],
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(res.json()["code"], "role-not-allowed");
    let res = get(&router, "/admin", &[("authorization", &alice)]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(res.json()["code"], "insufficient-role");

    // root holds admin but must select it.
    let root_bearer = bearer(root.expose());
    let res = get(&router, "/admin", &[("authorization", &root_bearer)]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let res = get(
        &router,
        "/admin",
        &[("authorization", &root_bearer), ("x-hasura-role", "admin")],
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.body.contains("welcome, admin root"));

    // The cookie works too.
    let cookie = format!("__Host-session={}", root.expose());
    let res = get(&router, "/me", &[("cookie", &cookie)]).await;
    assert_eq!(res.json()["user_id"], "root");

    // Revoked: the bearer now gets 401, the cookie is cleared.
    store.revoke(&root.hash()).await.unwrap();
    let res = get(&router, "/me", &[("authorization", &root_bearer)]).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.json()["code"], "invalid-token");
    let res = get(&router, "/me", &[("cookie", &cookie)]).await;
    assert_eq!(res.json()["role"], "anonymous");
    assert!(res.header("set-cookie").starts_with("__Host-session=;"));
}

#[tokio::test]
async fn login_mints_a_cookie_and_a_bearer_token() {
    let store = MemoryStore::new();
    let router = router(&store);
    let res = send(&router, "POST", "/login", &[JSON], ALICE).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.header("cache-control"), "no-store");
    let cookie = res.header("set-cookie");
    let attributes: Vec<&str> = cookie.split("; ").collect();
    for want in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(attributes.contains(&want), "{want} missing: {cookie}");
    }
    // The session's 8 hours, less the time since it was stored (Max-Age is whole seconds).
    let max_age: u64 = attributes
        .iter()
        .find_map(|a| a.strip_prefix("Max-Age="))
        .unwrap()
        .parse()
        .unwrap();
    assert!((28_790..=28_800).contains(&max_age), "{cookie}");
    assert!(!cookie.contains("Domain="), "{cookie}");
    let body = res.json();
    let token = body["token"].as_str().unwrap();
    assert_eq!(attributes[0], format!("__Host-session={token}"));
    assert_eq!(body["user_id"], "alice");
    assert_eq!(body["roles"], serde_json::json!(["admin", "user"]));

    // The token works as a bearer, and alice's default role opens /admin.
    let me = get(&router, "/me", &[("authorization", &bearer(token))]).await;
    assert_eq!(me.json()["user_id"], "alice");
    assert_eq!(me.json()["role"], "admin");
    let res = get(&router, "/admin", &[("authorization", &bearer(token))]).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.body.contains("welcome, admin alice"));

    // Logout ends it.
    let res = send(
        &router,
        "POST",
        "/logout",
        &[("authorization", &bearer(token))],
        "",
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.header("set-cookie").contains("Max-Age=0"));
    let res = get(&router, "/me", &[("authorization", &bearer(token))]).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(store.is_empty());
}

#[tokio::test]
async fn form_login_redirects_within_the_project_only() {
    let store = MemoryStore::new();
    let router = router(&store);
    let login = |redirect_to: &str| {
        format!(
            "username=bob&password=bob-password&redirect_to={}",
            redirect_to.replace(':', "%3A").replace('/', "%2F")
        )
    };
    let origin = [FORM, ("origin", ORIGIN)];
    let res = send(
        &router,
        "POST",
        "/login",
        &origin,
        &login("https://app.example.test/admin"),
    )
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.header("location"), "https://app.example.test/admin");
    // A browser gets the token in the cookie only.
    assert!(res.header("set-cookie").starts_with("__Host-session="));
    assert!(res.body.is_empty());
    // No open redirect.
    for foreign in [
        "https://evil.test/",
        "https://app.example.test@evil.test/",
        "javascript://app.example.test/%0aalert(1)",
        "//evil.test/",
    ] {
        let res = send(&router, "POST", "/login", &origin, &login(foreign)).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert_eq!(res.header("location"), "/", "{foreign}");
    }
    let res = get(
        &router,
        "/login-page?redirect_to=https%3A%2F%2Fevil.test%2F",
        &[],
    )
    .await;
    assert!(res.body.contains("name=\"redirect_to\" value=\"/\""));

    let res = send(
        &router,
        "POST",
        "/login",
        &origin,
        "username=bob&password=wrong",
    )
    .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.json()["code"], "invalid-credentials");
}

#[tokio::test]
async fn cross_site_requests_with_the_cookie_are_refused() {
    let store = MemoryStore::new();
    let token = session(&store, "alice", &["admin"]).await;
    let router = router(&store);
    let cookie = format!("__Host-session={}", token.expose());

    let res = send(
        &router,
        "POST",
        "/logout",
        &[("cookie", &cookie), ("origin", "https://evil.test")],
        "",
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(res.json()["code"], "cross-site-request");
    // The session survived.
    let res = get(&router, "/me", &[("cookie", &cookie)]).await;
    assert_eq!(res.json()["user_id"], "alice");
    // Without any origin information a cookie POST is refused too.
    let res = send(&router, "POST", "/logout", &[("cookie", &cookie)], "").await;
    assert_eq!(res.json()["code"], "origin-required");
    // From the project's own origin it goes through.
    let res = send(
        &router,
        "POST",
        "/logout",
        &[("cookie", &cookie), ("origin", ORIGIN)],
        "",
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert!(store.is_empty());
}

#[tokio::test]
async fn cross_site_login_is_refused_and_mints_nothing() {
    let store = MemoryStore::new();
    let router = router(&store);
    for headers in [
        &[FORM, ("origin", "https://evil.test")][..],
        &[FORM, ("origin", "null")][..],
        &[FORM, ("sec-fetch-site", "cross-site")][..],
        &[FORM, ("referer", "https://evil.test/page")][..],
    ] {
        let res = send(
            &router,
            "POST",
            "/login",
            headers,
            "username=alice&password=alice-password",
        )
        .await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{headers:?}");
        assert_eq!(res.json()["code"], "cross-site-request");
        assert!(!res.headers.contains_key("set-cookie"));
    }
    assert!(store.is_empty(), "a refused login minted a session");
    // A login from the project's page, or from a non-browser client, mints one.
    let res = send(
        &router,
        "POST",
        "/login",
        &[JSON, ("origin", ORIGIN)],
        ALICE,
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    let res = send(&router, "POST", "/login", &[JSON], ALICE).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(store.len(), 2);
}

#[tokio::test]
async fn cors_preflight_and_refusals_carry_cors_headers() {
    let store = MemoryStore::new();
    let router = router(&store);
    let sub = "https://static.app.example.test";
    let res = send(
        &router,
        "OPTIONS",
        "/me",
        &[
            ("origin", sub),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization,content-type",
            ),
        ],
        "",
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("access-control-allow-origin"), sub);
    assert_eq!(res.header("access-control-allow-credentials"), "true");
    assert!(res.header("access-control-allow-methods").contains("POST"));
    assert!(res
        .header("access-control-allow-headers")
        .contains("authorization"));

    // A foreign origin gets no CORS grant.
    let res = send(
        &router,
        "OPTIONS",
        "/me",
        &[
            ("origin", "https://evil.test"),
            ("access-control-request-method", "POST"),
        ],
        "",
    )
    .await;
    assert!(!res.headers.contains_key("access-control-allow-origin"));

    // The role check's 401 can be read by a project page.
    let res = get(&router, "/admin", &[("origin", ORIGIN)]).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.header("access-control-allow-origin"), ORIGIN);
    assert!(res
        .header("access-control-expose-headers")
        .contains("www-authenticate"));
}
