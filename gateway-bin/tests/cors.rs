//! CORS against the real binary, over real sockets: preflights are answered by the gateway
//! without a session, even for a role-restricted service, and never reach the upstream; the
//! project's own origins are echoed with credentials, foreign ones get no
//! `Access-Control-Allow-Origin`; `cors = false` turns it off. CSRF, redirects and the session
//! cookie are in csrf_redirects.rs; both run against the gateway of common/cors_csrf.rs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::cors_csrf::*;
use common::*;

fn preflight(origin: &str, method: &str, headers: &str) -> String {
    format!(
        "Origin: {origin}\r\nAccess-Control-Request-Method: {method}\r\nAccess-Control-Request-Headers: {headers}\r\n"
    )
}

fn list(v: Option<String>) -> Vec<String> {
    v.unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_is_answered_without_a_session_and_never_proxied() {
    let (up, g) = gateway().await;
    let origin = format!("https://app.{DOMAIN}");
    let before = up.count();
    // `admin` allows only the admin role: an anonymous GET gets 401, its preflight does not.
    for extra in [
        String::new(),
        // A stale or unknown session cookie (a browser never sends one on a preflight, but a
        // proxy might): the session layer admits it as anonymous.
        "Cookie: gw_session=gw_unknown-token-0123456789abcdefghijklmnop\r\n".to_owned(),
    ] {
        let res = send(
            &g,
            "OPTIONS",
            "admin",
            "/graphql",
            &format!(
                "{}{extra}",
                preflight(&origin, "POST", "content-type, x-hasura-role")
            ),
        );
        assert_eq!(status_of(&res), 200, "{res}");
        assert_eq!(
            header(&res, "access-control-allow-origin").as_deref(),
            Some(origin.as_str())
        );
        assert_eq!(
            header(&res, "access-control-allow-credentials").as_deref(),
            Some("true")
        );
        let methods = list(header(&res, "access-control-allow-methods"));
        for m in ["get", "post", "put", "patch", "delete", "options"] {
            assert!(methods.contains(&m.to_owned()), "{m} in {methods:?}");
        }
        let headers = list(header(&res, "access-control-allow-headers"));
        for h in ["content-type", "authorization", "x-hasura-role"] {
            assert!(headers.contains(&h.to_owned()), "{h} in {headers:?}");
        }
        let vary = header_values(&res, "vary").join(",").to_ascii_lowercase();
        assert!(vary.contains("origin"), "vary: {vary}");
        assert!(header(&res, "access-control-max-age").is_some());
    }
    assert_eq!(up.count(), before, "a preflight reached the upstream");

    // The actual request is still refused without a session, with CORS headers so that the
    // page can read the 401.
    let res = send(
        &g,
        "GET",
        "admin",
        "/graphql",
        &format!("Origin: {origin}\r\n"),
    );
    assert_eq!(status_of(&res), 401, "{res}");
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(origin.as_str())
    );
    assert_eq!(up.count(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_origins_are_echoed_with_credentials() {
    let (up, g) = gateway().await;
    let token = create_session(&g, "42", &["user"], None).await;
    for origin in [
        format!("https://app.{DOMAIN}"),
        // Over plain HTTP, an http origin on the listener's port (case 41: no other port).
        format!("http://app.{DOMAIN}:{}", g.http),
        format!("https://{DOMAIN}"),
        format!("https://deep.sub.{DOMAIN}"),
    ] {
        let res = send(
            &g,
            "GET",
            "data",
            "/me",
            &format!("Origin: {origin}\r\nCookie: gw_session={token}\r\n"),
        );
        assert_eq!(status_of(&res), 200, "{res}");
        assert_eq!(
            header(&res, "access-control-allow-origin").as_deref(),
            Some(origin.as_str()),
            "exact origin echoed, never *"
        );
        assert_eq!(
            header(&res, "access-control-allow-credentials").as_deref(),
            Some("true")
        );
        let vary = header_values(&res, "vary").join(",").to_ascii_lowercase();
        assert!(vary.contains("origin"), "vary: {vary}");
        assert_eq!(up.last().one("x-hasura-user-id").as_deref(), Some("42"));
    }
    // A cookie-authenticated POST from a sibling subdomain passes both CORS and CSRF.
    let origin = format!("https://app.{DOMAIN}");
    let res = send(
        &g,
        "POST",
        "data",
        "/write",
        &format!("Origin: {origin}\r\nSec-Fetch-Site: same-site\r\nCookie: gw_session={token}\r\n"),
    );
    assert_eq!(status_of(&res), 200, "{res}");
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(origin.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_origins_get_no_allow_origin() {
    let (up, g) = gateway().await;
    let before = up.count();
    for origin in [
        "https://evil.test".to_owned(),
        format!("https://{DOMAIN}.evil.test"),
        format!("https://evil{DOMAIN}"),
        "null".to_owned(),
        format!("ftp://app.{DOMAIN}"),
        // Extra origins are per service: `data` has none.
        "https://partner.example.org".to_owned(),
    ] {
        let res = send(
            &g,
            "OPTIONS",
            "data",
            "/",
            &preflight(&origin, "POST", "content-type"),
        );
        assert_eq!(header(&res, "access-control-allow-origin"), None, "{res}");
        let res = send(&g, "GET", "data", "/", &format!("Origin: {origin}\r\n"));
        assert_eq!(status_of(&res), 200);
        assert_eq!(header(&res, "access-control-allow-origin"), None, "{res}");
    }
    assert_eq!(
        up.count(),
        before + 6,
        "only the GETs were proxied, no preflight"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_origins_methods_and_headers() {
    let (up, g) = gateway().await;
    let before = up.count();
    let res = send(
        &g,
        "OPTIONS",
        "partner",
        "/",
        &preflight("https://partner.example.org", "PUT", "x-custom"),
    );
    assert_eq!(status_of(&res), 200);
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some("https://partner.example.org")
    );
    assert_eq!(
        list(header(&res, "access-control-allow-methods")),
        ["get", "put"]
    );
    assert_eq!(
        list(header(&res, "access-control-allow-headers")),
        ["x-custom"]
    );
    // The project's own origins stay allowed beside the configured ones.
    let res = send(
        &g,
        "OPTIONS",
        "partner",
        "/",
        &preflight(&format!("https://app.{DOMAIN}"), "GET", "x-custom"),
    );
    assert_eq!(
        header(&res, "access-control-allow-origin"),
        Some(format!("https://app.{DOMAIN}"))
    );
    assert_eq!(up.count(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_false_adds_nothing_and_authorizes_options() {
    let (up, g) = gateway().await;
    let origin = format!("https://app.{DOMAIN}");
    let before = up.count();
    // No CORS layer: the OPTIONS goes through the role check like any other method.
    let res = send(
        &g,
        "OPTIONS",
        "nocors",
        "/",
        &preflight(&origin, "POST", "content-type"),
    );
    assert_eq!(status_of(&res), 401, "{res}");
    assert_eq!(header(&res, "access-control-allow-origin"), None);
    assert_eq!(up.count(), before);
    // With the role, it is proxied to the upstream, which answers it.
    let token = create_session(&g, "1", &["admin"], None).await;
    let res = send(
        &g,
        "OPTIONS",
        "nocors",
        "/",
        &format!(
            "{}Authorization: Bearer {token}\r\n",
            preflight(&origin, "POST", "content-type")
        ),
    );
    assert_eq!(status_of(&res), 200, "{res}");
    assert_eq!(header(&res, "access-control-allow-origin"), None);
    assert_eq!(up.count(), before + 1);
    assert_eq!(up.last().method, "OPTIONS");
    let res = send(
        &g,
        "GET",
        "nocors",
        "/",
        &format!("Origin: {origin}\r\nAuthorization: Bearer {token}\r\n"),
    );
    assert_eq!(status_of(&res), 200);
    assert_eq!(header(&res, "access-control-allow-origin"), None);
    assert_eq!(header(&res, "access-control-allow-credentials"), None);
}

/// A request without `Origin` is not a CORS request: no CORS headers, but the same `Vary` as a
/// CORS answer, so that a cache never serves one for the other; `cors = false` adds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_origin_get_vary_and_no_cors_headers() {
    let (_up, g) = gateway().await;
    let token = create_session(&g, "5", &["admin"], None).await;
    let res = send(&g, "GET", "data", "/", "");
    assert_eq!(status_of(&res), 200, "{res}");
    assert_eq!(header(&res, "access-control-allow-origin"), None);
    assert_eq!(header(&res, "access-control-allow-credentials"), None);
    let vary = list(Some(header_values(&res, "vary").join(",")));
    for name in [
        "origin",
        "access-control-request-method",
        "access-control-request-headers",
    ] {
        assert!(
            vary.contains(&name.to_owned()),
            "vary {vary:?} lacks {name}"
        );
    }
    // The same Vary as an answer that went through the CORS layer.
    let origin = format!("https://app.{DOMAIN}");
    let cors = send(&g, "GET", "data", "/", &format!("Origin: {origin}\r\n"));
    let cors_vary = list(Some(header_values(&cors, "vary").join(",")));
    assert_eq!(vary, cors_vary);
    let res = send(
        &g,
        "GET",
        "nocors",
        "/",
        &format!("Authorization: Bearer {token}\r\n"),
    );
    assert_eq!(status_of(&res), 200, "{res}");
    assert!(header_values(&res, "vary").is_empty(), "{res}");
}

/// Answers made before the router (the session layer's) carry the CORS headers of the service
/// the request was for, so a browser app can read their status and JSON body; never for a
/// refused origin, a `cors = false` service or a host no service serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_before_the_router_carry_the_services_cors_headers() {
    let (up, g) = gateway().await;
    let before = up.count();
    let origin = format!("https://app.{DOMAIN}");
    let unknown = "Authorization: Bearer gw_unknown-token-0123456789abcdefghijklmnop\r\n";
    let user = create_session(&g, "7", &["user"], None).await;
    let cases = [
        // An unknown bearer token: 401 from the session layer.
        (unknown.to_owned(), 401, "invalid-token"),
        // Two bearer credentials: 400.
        (
            format!("Authorization: Bearer {user}\r\nAuthorization: Bearer {user}\r\n"),
            400,
            "duplicate-authorization",
        ),
        // A role the session does not have: 403.
        (
            format!("Authorization: Bearer {user}\r\nX-Hasura-Role: admin\r\n"),
            403,
            "role-not-allowed",
        ),
    ];
    for (credential, status, code) in &cases {
        let res = send(
            &g,
            "GET",
            "data",
            "/me",
            &format!("Origin: {origin}\r\n{credential}"),
        );
        assert_eq!(status_of(&res), *status, "{res}");
        assert!(res.contains(code), "{code}: {res}");
        assert_eq!(
            header(&res, "access-control-allow-origin").as_deref(),
            Some(origin.as_str()),
            "{res}"
        );
        assert_eq!(
            header(&res, "access-control-allow-credentials").as_deref(),
            Some("true")
        );
        let exposed = list(header(&res, "access-control-expose-headers"));
        assert!(exposed.contains(&"www-authenticate".to_owned()), "{res}");
        let vary = header_values(&res, "vary").join(",").to_ascii_lowercase();
        assert!(vary.contains("origin"), "vary: {vary}");
    }
    // The service's own refusal (the role check, behind its CORS layer) gets one set, not two.
    let res = send(&g, "GET", "admin", "/", &format!("Origin: {origin}\r\n"));
    assert_eq!(status_of(&res), 401, "{res}");
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(origin.as_str())
    );
    // Never for an origin the service refuses (partner's origin is not data's), a service with
    // `cors = false`, or a host without a service.
    for (sub, origin) in [
        ("data", "https://evil.test".to_owned()),
        ("data", "https://partner.example.org".to_owned()),
        ("nocors", origin.clone()),
        ("nosuchservice", origin.clone()),
    ] {
        let res = send(
            &g,
            "GET",
            sub,
            "/",
            &format!("Origin: {origin}\r\n{unknown}"),
        );
        assert!(matches!(status_of(&res), 401 | 404), "{sub}: {res}");
        assert_eq!(header(&res, "access-control-allow-origin"), None, "{res}");
        assert_eq!(header(&res, "access-control-allow-credentials"), None);
    }
    // The same origin on the partner service is allowed there.
    let res = send(
        &g,
        "GET",
        "partner",
        "/",
        &format!("Origin: https://partner.example.org\r\n{unknown}"),
    );
    assert_eq!(status_of(&res), 401, "{res}");
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some("https://partner.example.org")
    );
    assert_eq!(up.count(), before, "nothing was proxied");
}
