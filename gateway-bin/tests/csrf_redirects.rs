//! CSRF, browser redirects and the session cookie against the real binary, over real sockets.
//! CORS is in cors.rs; both run against the gateway of common/cors_csrf.rs.
//!
//! - CSRF (SECURITY-CASES 13): cookie-authenticated state-changing requests from foreign origins
//!   get 403; the same-site ones, the safe methods and bearer-authenticated ones do not. Logins
//!   are checked too, without a credential (case 32), and a cookie request with no `Origin`,
//!   `Sec-Fetch-Site` or `Referer` gets 403 (case 41).
//! - One origin rule for CSRF, CORS and redirects (case 41), behind trusted proxies too.
//! - Non-issuers cannot plant the session cookie in any form a browser parses (case 33), and a
//!   login with a stale cookie keeps the new one (case 34).
//! - Redirects: browser navigations refused for lack of a session (or of a role) go to the
//!   configured page with a `redirect_to` on the project's own host; API calls keep their JSON.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::cors_csrf::*;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_13_csrf_on_every_state_changing_method() {
    let (up, g) = gateway().await;
    let token = create_session(&g, "13", &["user"], None).await;
    let cookie = format!("Cookie: gw_session={token}\r\n");
    let before = up.count();
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        for bad in [
            "Origin: https://evil.test\r\n".to_owned(),
            format!("Origin: https://{DOMAIN}.evil.test\r\n"),
            "Origin: null\r\n".to_owned(),
            // A same-site Origin does not excuse a cross-site fetch.
            format!("Origin: https://app.{DOMAIN}\r\nSec-Fetch-Site: cross-site\r\n"),
            "Sec-Fetch-Site: cross-site\r\n".to_owned(),
        ] {
            let res = send(&g, method, "data", "/x", &format!("{cookie}{bad}"));
            assert_eq!(status_of(&res), 403, "{method} {bad:?}: {res}");
            assert!(res.contains("cross-site-request"), "{res}");
        }
    }
    // A cross-site logout through the issuer is refused too, and the session survives.
    let res = send(
        &g,
        "POST",
        "auth",
        "/logout",
        &format!("{cookie}Origin: https://evil.test\r\n"),
    );
    assert_eq!(status_of(&res), 403);
    assert_eq!(up.count(), before, "nothing cross-site was proxied");
    let res = send(&g, "GET", "data", "/me", &cookie);
    assert_eq!(status_of(&res), 200);
    assert_eq!(up.last().one("x-hasura-user-id").as_deref(), Some("13"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_13_what_csrf_lets_through() {
    let (up, g) = gateway().await;
    let token = create_session(&g, "14", &["user"], None).await;
    let cookie = format!("Cookie: gw_session={token}\r\n");
    let ok = |res: &str, what: &str| assert_eq!(status_of(res), 200, "{what}: {res}");
    // Same-site origins, without a port or on the listener's, and same-origin fetches.
    // (Without Origin, Sec-Fetch-Site and Referer a cookie request is refused since case 41:
    // see `case_41_cookie_requests_without_origin_information_are_refused`.)
    for good in [
        format!("Origin: https://app.{DOMAIN}\r\nSec-Fetch-Site: same-site\r\n"),
        format!(
            "Origin: http://data.{DOMAIN}:{}\r\nSec-Fetch-Site: same-origin\r\n",
            g.http
        ),
        format!("Origin: https://{DOMAIN}\r\n"),
        // The configured trusted origin, even on a cross-site fetch.
        "Origin: https://partner.example.org\r\n".to_owned(),
        "Origin: https://partner.example.org\r\nSec-Fetch-Site: cross-site\r\n".to_owned(),
    ] {
        ok(
            &send(&g, "POST", "data", "/x", &format!("{cookie}{good}")),
            &good,
        );
    }
    // Safe methods with a foreign origin: allowed (but CORS keeps the answer from the page).
    let res = send(
        &g,
        "GET",
        "data",
        "/x",
        &format!("{cookie}Origin: https://evil.test\r\nSec-Fetch-Site: cross-site\r\n"),
    );
    ok(&res, "cross-site GET");
    assert_eq!(header(&res, "access-control-allow-origin"), None);
    // Bearer-authenticated and anonymous requests are not cookie-authenticated.
    ok(
        &send(
            &g,
            "DELETE",
            "data",
            "/x",
            &format!("Authorization: Bearer {token}\r\nOrigin: https://evil.test\r\n"),
        ),
        "bearer",
    );
    ok(
        &send(
            &g,
            "POST",
            "data",
            "/x",
            "Origin: https://evil.test\r\nSec-Fetch-Site: cross-site\r\n",
        ),
        "anonymous",
    );
    assert_eq!(up.last().one("x-hasura-role").as_deref(), Some("anonymous"));
}

/// The `redirect_to` query parameter of a Location, decoded.
fn redirect_to(location: &str) -> Option<String> {
    let query = location.split_once('?')?.1;
    let v = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("redirect_to="))?;
    let bytes = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(String::from_utf8(out).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn navigations_are_redirected_api_calls_get_401_json() {
    let (up, g) = gateway().await;
    let before = up.count();
    // A navigation without a session.
    for nav in [
        "Sec-Fetch-Mode: navigate\r\nSec-Fetch-Dest: document\r\n",
        "Accept: text/html,application/xhtml+xml,*/*;q=0.8\r\n",
    ] {
        let res = send(&g, "GET", "portal", "/reports?year=2024&q=a%20b", nav);
        assert_eq!(status_of(&res), 302, "{res}");
        let location = header(&res, "location").unwrap();
        assert!(
            location.starts_with(&format!("https://auth.{DOMAIN}/login?redirect_to=")),
            "{location}"
        );
        // Through the real socket the Host carries no port (raw sends `portal.<domain>`).
        assert_eq!(
            redirect_to(&location).as_deref(),
            Some(format!("http://portal.{DOMAIN}/reports?year=2024&q=a%20b").as_str())
        );
    }
    // A form post navigation gets 303.
    let res = send(
        &g,
        "POST",
        "portal",
        "/submit",
        "Sec-Fetch-Mode: navigate\r\nAccept: text/html\r\n",
    );
    assert_eq!(status_of(&res), 303, "{res}");
    // API calls keep their 401 JSON.
    for api in [
        "",
        "Accept: application/json\r\n",
        "Sec-Fetch-Mode: cors\r\nAccept: text/html\r\n",
    ] {
        let res = send(&g, "GET", "portal", "/reports", api);
        assert_eq!(status_of(&res), 401, "{api:?}: {res}");
        assert_eq!(header(&res, "location"), None);
        assert!(res.contains("\"code\":\"authorization-required\""), "{res}");
    }
    // A session without the role goes to no_access_redirect; one with it is served.
    let user = create_session(&g, "5", &["user"], None).await;
    let res = send(
        &g,
        "GET",
        "portal",
        "/",
        &format!("Cookie: gw_session={user}\r\nSec-Fetch-Mode: navigate\r\n"),
    );
    assert_eq!(status_of(&res), 302, "{res}");
    assert!(header(&res, "location")
        .unwrap()
        .starts_with(&format!("https://auth.{DOMAIN}/denied?redirect_to=")));
    assert_eq!(up.count(), before, "no refused request was proxied");
    let admin = create_session(&g, "6", &["admin"], None).await;
    let res = send(
        &g,
        "GET",
        "portal",
        "/",
        &format!("Cookie: gw_session={admin}\r\nSec-Fetch-Mode: navigate\r\n"),
    );
    assert_eq!(status_of(&res), 200, "{res}");
    // A service without redirects keeps its 401 for navigations too.
    let res = send(&g, "GET", "admin", "/", "Sec-Fetch-Mode: navigate\r\n");
    assert_eq!(status_of(&res), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_is_never_open() {
    let (_up, g) = gateway().await;
    let nav = "Sec-Fetch-Mode: navigate\r\n";
    // A redirect_to in the request is only ever data inside ours, encoded.
    let res = send(
        &g,
        "GET",
        "portal",
        "/?redirect_to=https://evil.test/&next=//evil.test",
        nav,
    );
    let location = header(&res, "location").unwrap();
    assert!(
        location.starts_with(&format!(
            "https://auth.{DOMAIN}/login?redirect_to=http%3A%2F%2Fportal.{DOMAIN}%2F"
        )),
        "{location}"
    );
    assert_eq!(location.matches("redirect_to=").count(), 1, "{location}");
    assert!(!location.contains("://evil"), "{location}");
    // Host spellings that route to the service (case, trailing dot) stay on the project host.
    for host_header in [
        format!("PORTAL.{}", DOMAIN.to_uppercase()),
        format!("portal.{DOMAIN}."),
        format!("portal.{DOMAIN}:{}", g.http),
    ] {
        let res = raw(
            g.http,
            format!("GET /p HTTP/1.1\r\nHost: {host_header}\r\n{nav}Connection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(status_of(&res), 302, "{host_header}: {res}");
        let back = redirect_to(&header(&res, "location").unwrap()).unwrap();
        let back_host = back
            .strip_prefix("http://")
            .unwrap()
            .split(['/', ':'])
            .next()
            .unwrap()
            .trim_end_matches('.')
            .to_owned();
        assert_eq!(back_host, format!("portal.{DOMAIN}"), "{back}");
    }
    // A host that is not the project's never reaches the service at all.
    let res = raw(
        g.http,
        format!("GET /p HTTP/1.1\r\nHost: portal.evil.test\r\n{nav}Connection: close\r\n\r\n")
            .as_bytes(),
    );
    assert_ne!(status_of(&res), 302, "{res}");
    assert_eq!(header(&res, "location"), None);
}

/// `Set-Cookie` values a non-issuer upstream plants, one per path `/plant/<index>`.
const PLANTED: &[&[u8]] = &[
    b"gw_session=T; Path=/",
    // Nameless: stored with an empty name, sent back as `Cookie: gw_session=T`.
    b"=gw_session=T; Path=/; Domain=example.test",
    b"= gw_session = T",
    b"=\tgw_session=T",
    b"  =  GW_SESSION=T",
    // No `=` at all: a nameless cookie whose value is the bare name.
    b"gw_session",
    b"=gw_session",
    // Whitespace around the name, and the case variants a parser could confuse.
    b"gw_session =T",
    b"gw_session\t=T; Secure",
    b"Gw_Session=T",
    // Prefixed names.
    b"__Secure-gw_session=T; Secure; Path=/",
    b"__Host-gw_session=T; Secure; Path=/",
    b"__host-GW_SESSION=T; Secure; Path=/",
    b"=__Host-gw_session=T",
    // Unicode whitespace, which the credential reader trims (UTF-8 on the wire).
    b"\xc2\xa0gw_session=T",
    b"=\xe2\x80\x83gw_session=T",
];

/// Cookies that are not the session's and pass untouched.
const HARMLESS: &[&str] = &[
    "theme=dark; Path=/",
    "gw_session_other=1",
    "=theme=gw_session",
    "x=gw_session",
];

/// An upstream that answers `/plant/<i>` with `Set-Cookie: PLANTED[i]` and every `HARMLESS`
/// cookie.
async fn planter() -> String {
    use axum::extract::Path;
    use axum::response::IntoResponse;
    let router = axum::Router::new().route(
        "/plant/{i}",
        axum::routing::get(|Path(i): Path<usize>| async move {
            let mut res = "planted".into_response();
            let h = res.headers_mut();
            h.append(
                "set-cookie",
                http::HeaderValue::from_bytes(PLANTED[i]).unwrap(),
            );
            for c in HARMLESS {
                h.append("set-cookie", http::HeaderValue::from_static(c));
            }
            res
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// Case 33: every `Set-Cookie` from a non-issuer that a browser would store, or send back, as
/// the session cookie is stripped, parsed as RFC 6265bis "parse a cookie" does (nameless
/// `=gw_session=T`, whitespace, `__Secure-`/`__Host-` prefixes, case variants); other cookies
/// pass. Before the fix the nameless forms passed through (`=gw_session=T; Path=/; ...`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_33_non_issuers_cannot_plant_the_session_cookie_in_any_form() {
    let up = Upstream::start().await;
    let plant = planter().await;
    let extra = format!("\n[[services]]\nname = \"planter\"\nupstreams = [\"{plant}\"]\n");
    let g = Gateway::start(&standard_config(0, 0, &up.url(), &extra), 0, 0);
    for (i, planted) in PLANTED.iter().enumerate() {
        let res = send(&g, "GET", "planter", &format!("/plant/{i}"), "");
        let planted = String::from_utf8_lossy(planted);
        assert_eq!(status_of(&res), 200, "{planted:?}: {res}");
        let cookies = header_values(&res, "set-cookie");
        assert_eq!(
            cookies, HARMLESS,
            "a non-issuer planted the session cookie with {planted:?}"
        );
    }
}

/// Case 32: a state-changing request to a session issuer is checked for CSRF even without a
/// credential. A foreign `Origin`, a cross-site fetch, a foreign `Referer` get 403, never reach
/// the login service and mint no session; no origin information at all (curl), the project's
/// own origins and a trusted origin (even cross-site: an identity provider's `form_post`) log
/// in. Before the fix the first cross-site login (`Origin: https://evil.test`) got 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_32_cross_site_login_is_refused_and_mints_no_session() {
    let (up, g) = gateway().await;
    let before = up.count();
    let login = "/login?user=32&roles=user";
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        for bad in [
            "Origin: https://evil.test\r\n".to_owned(),
            "Origin: null\r\n".to_owned(),
            format!("Origin: ftp://app.{DOMAIN}\r\n"),
            format!("Origin: https://app.{DOMAIN}\r\nSec-Fetch-Site: cross-site\r\n"),
            "Sec-Fetch-Site: cross-site\r\n".to_owned(),
            "Referer: https://evil.test/page\r\n".to_owned(),
            // A stale cookie makes the request anonymous: it is still a login.
            "Cookie: gw_session=gw_unknown-token-0123456789abcdefghijklmnop\r\nOrigin: https://evil.test\r\n".to_owned(),
        ] {
            let res = send(&g, method, "auth", login, &bad);
            assert_eq!(status_of(&res), 403, "{method} {bad:?}: {res}");
            assert!(res.contains("\"code\":\"cross-site-request\""), "{res}");
            assert_eq!(header(&res, "x-gateway-session-token"), None, "{res}");
            assert!(
                !header_values(&res, "set-cookie")
                    .iter()
                    .any(|c| c.starts_with("gw_session=gw_")),
                "{res}"
            );
        }
    }
    assert_eq!(up.count(), before, "a cross-site login reached the issuer");
    let sessions = g.admin_json("/v1/users/32/sessions").await;
    assert_eq!(sessions["sessions"].as_array().map(Vec::len), Some(0));

    let port = g.http;
    for good in [
        // curl, a mobile app.
        String::new(),
        format!("Origin: http://app.{DOMAIN}:{port}\r\nSec-Fetch-Site: same-site\r\n"),
        format!("Origin: https://{DOMAIN}\r\n"),
        "Sec-Fetch-Site: same-origin\r\n".to_owned(),
        format!("Referer: http://auth.{DOMAIN}:{port}/form\r\n"),
        "Origin: https://partner.example.org\r\nSec-Fetch-Site: cross-site\r\n".to_owned(),
    ] {
        let res = send(&g, "POST", "auth", login, &good);
        assert_eq!(status_of(&res), 200, "{good:?}: {res}");
        let token = header(&res, "x-gateway-session-token").expect("a session token");
        let me = send(
            &g,
            "GET",
            "data",
            "/me",
            &format!("Authorization: Bearer {token}\r\n"),
        );
        assert_eq!(status_of(&me), 200);
        assert_eq!(up.last().one("x-hasura-user-id").as_deref(), Some("32"));
    }
}

/// The cookie a browser keeps for `name` after applying `set_cookies` in order: a later one
/// replaces an earlier one, and `Max-Age=0` (or an empty value) deletes it.
fn kept_cookie(set_cookies: &[String], name: &str, mut jar: Option<String>) -> Option<String> {
    for v in set_cookies {
        let c = cookie::Cookie::parse(v.as_str()).unwrap();
        if c.name() != name {
            continue;
        }
        let deleted = c.value().is_empty() || c.max_age().is_some_and(|a| a.is_zero());
        jar = (!deleted).then(|| c.value().to_owned());
    }
    jar
}

/// Case 34: a client whose session cookie is stale (unknown, revoked, malformed) logs in; the
/// new session cookie is the one a browser keeps, and the next request is authenticated. Before
/// the fix the login's `Set-Cookie` was followed by the clearing one (`kept` was `None`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_34_login_with_a_stale_cookie_keeps_the_new_session() {
    let (up, g) = gateway().await;
    let revoked = create_session(&g, "34", &["user"], None).await;
    let res = client()
        .delete(g.admin_url("/v1/users/34/sessions"))
        .bearer_auth(ADMIN_SECRET)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let origin = format!("Origin: http://app.{DOMAIN}:{}\r\n", g.http);
    for stale in [
        revoked.as_str(),
        "gw_unknown-token-0123456789abcdefghijklmnop",
        "not-a-token",
    ] {
        let res = send(
            &g,
            "POST",
            "auth",
            "/login?user=34&roles=user",
            &format!("Cookie: gw_session={stale}\r\n{origin}"),
        );
        assert_eq!(status_of(&res), 200, "{res}");
        let token = header(&res, "x-gateway-session-token").unwrap();
        let set_cookies = header_values(&res, "set-cookie");
        let kept = kept_cookie(&set_cookies, "gw_session", Some(stale.to_owned()));
        assert_eq!(
            kept.as_deref(),
            Some(token.as_str()),
            "the browser does not keep the new session: {set_cookies:?}"
        );
        let me = send(
            &g,
            "GET",
            "data",
            "/me",
            &format!("Cookie: gw_session={token}\r\n"),
        );
        assert_eq!(status_of(&me), 200);
        assert_eq!(up.last().one("x-hasura-user-id").as_deref(), Some("34"));
        // Logging out with a stale cookie clears it once.
        let res = send(
            &g,
            "POST",
            "auth",
            "/logout",
            &format!("Cookie: gw_session={stale}\r\n{origin}"),
        );
        assert_eq!(status_of(&res), 200, "{res}");
        let set_cookies = header_values(&res, "set-cookie");
        assert_eq!(set_cookies.len(), 1, "{set_cookies:?}");
        assert_eq!(kept_cookie(&set_cookies, "gw_session", Some(token)), None);
    }
}

/// Case 41: CSRF, CORS and the redirects' `redirect_to` accept the same origins: https (http
/// only on a plain-HTTP request), a project host, no user info, no port or the listener's.
/// Before the fix, CSRF let a cookie POST from `ftp://app.<domain>` through (got 200).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_41_one_strict_origin_rule_for_csrf_cors_and_redirects() {
    let (_up, g) = gateway().await;
    let token = create_session(&g, "41", &["user"], None).await;
    let cookie = format!("Cookie: gw_session={token}\r\n");
    let port = g.http;
    let other = if port == 8080 { 8081 } else { 8080 };
    let good = [
        format!("https://app.{DOMAIN}"),
        format!("http://app.{DOMAIN}"),
        format!("http://app.{DOMAIN}:{port}"),
        format!("https://{DOMAIN}:443"),
    ];
    let bad = [
        format!("ftp://app.{DOMAIN}"),
        format!("http://app.{DOMAIN}:{other}"),
        format!("https://app.{DOMAIN}:{other}"),
        format!("http://user@app.{DOMAIN}:{port}"),
        format!("http://app.{DOMAIN}:{port}/path"),
        "http://127.0.0.1".to_owned(),
    ];
    for origin in good.iter().chain(&bad) {
        let allowed = good.contains(origin);
        let res = send(
            &g,
            "POST",
            "data",
            "/x",
            &format!("{cookie}Origin: {origin}\r\n"),
        );
        let want = if allowed { 200 } else { 403 };
        assert_eq!(status_of(&res), want, "CSRF, {origin}: {res}");
        let res = send(&g, "GET", "data", "/x", &format!("Origin: {origin}\r\n"));
        assert_eq!(
            header(&res, "access-control-allow-origin").is_some(),
            allowed,
            "CORS, {origin}: {res}"
        );
    }
    // A redirect hands on the URL asked for only when its origin passes the same rule.
    let nav = "Sec-Fetch-Mode: navigate\r\n";
    for (host_header, kept) in [
        (format!("portal.{DOMAIN}:{port}"), true),
        (format!("portal.{DOMAIN}"), true),
        (format!("portal.{DOMAIN}:{other}"), false),
    ] {
        let res = raw(
            g.http,
            format!("GET /p HTTP/1.1\r\nHost: {host_header}\r\n{nav}Connection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(status_of(&res), 302, "{host_header}: {res}");
        let location = header(&res, "location").unwrap();
        assert_eq!(
            redirect_to(&location).is_some(),
            kept,
            "{host_header}: {location}"
        );
    }
}

/// Case 41: a cookie-authenticated state-changing request with neither `Origin` nor
/// `Sec-Fetch-Site` is judged by its `Referer`, and without any of the three gets 403
/// (`origin-required`); bearer and anonymous requests are not affected, and
/// `[csrf] allow_missing_origin = true` restores the old behaviour. Before the fix the bare
/// cookie POST got 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_41_cookie_requests_without_origin_information_are_refused() {
    let (_up, g) = gateway().await;
    let token = create_session(&g, "41", &["user"], None).await;
    let cookie = format!("Cookie: gw_session={token}\r\n");
    let port = g.http;
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let res = send(&g, method, "data", "/x", &cookie);
        assert_eq!(status_of(&res), 403, "{method}: {res}");
        assert!(res.contains("\"code\":\"origin-required\""), "{res}");
    }
    for (referer, want) in [
        (format!("http://app.{DOMAIN}:{port}/page?q=1"), 200),
        (format!("https://{DOMAIN}/"), 200),
        ("https://partner.example.org/callback".to_owned(), 200),
        ("https://evil.test/".to_owned(), 403),
        (format!("https://{DOMAIN}.evil.test/"), 403),
        (format!("ftp://app.{DOMAIN}/"), 403),
        (format!("http://app.{DOMAIN}:{}/", port ^ 1), 403),
        ("/relative".to_owned(), 403),
    ] {
        let res = send(
            &g,
            "POST",
            "data",
            "/x",
            &format!("{cookie}Referer: {referer}\r\n"),
        );
        assert_eq!(status_of(&res), want, "{referer}: {res}");
    }
    // A Sec-Fetch-Site that is not cross-site stands for the origin.
    let res = send(
        &g,
        "POST",
        "data",
        "/x",
        &format!("{cookie}Sec-Fetch-Site: same-origin\r\n"),
    );
    assert_eq!(status_of(&res), 200, "{res}");
    // Not cookie-authenticated: not checked.
    let res = send(
        &g,
        "POST",
        "data",
        "/x",
        &format!("Authorization: Bearer {token}\r\n"),
    );
    assert_eq!(status_of(&res), 200, "{res}");
    assert_eq!(status_of(&send(&g, "POST", "data", "/x", "")), 200);
    // A WebSocket upgrade with the cookie needs an origin too.
    let ws = raw(
        g.http,
        format!(
            "GET /ws HTTP/1.1\r\nHost: {}\r\n{cookie}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            host("data")
        )
        .as_bytes(),
    );
    assert_eq!(status_of(&ws), 403, "{ws}");

    // The old behaviour, for cookie clients that are not browsers.
    let up = Upstream::start().await;
    let relaxed = standard_config(0, 0, &up.url(), "\n[csrf]\nallow_missing_origin = true\n");
    let g = Gateway::start(&relaxed, 0, 0);
    let token = create_session(&g, "41", &["user"], None).await;
    let cookie = format!("Cookie: gw_session={token}\r\n");
    assert_eq!(status_of(&send(&g, "POST", "data", "/x", &cookie)), 200);
    let res = send(
        &g,
        "POST",
        "data",
        "/x",
        &format!("{cookie}Origin: https://evil.test\r\n"),
    );
    assert_eq!(status_of(&res), 403, "a foreign origin is still refused");
}

/// Case 41: behind a front proxy in `[proxy] trusted_proxies`, its `X-Forwarded-Proto` and
/// `X-Forwarded-Port` are the request's scheme and port for CSRF, CORS and redirects; from any
/// other peer they change nothing. Before the fix an `http://` origin passed CSRF on a
/// request the proxy said came over https (got 200).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_41_a_trusted_proxy_says_how_the_request_came_in() {
    let up = Upstream::start().await;
    let extra = format!(
        "\n[[services]]\nname = \"portal\"\nupstreams = [\"{}\"]\nallowed_roles = [\"admin\"]\nno_session_redirect = \"https://auth.{DOMAIN}/login\"\n\n[proxy]\ntrusted_proxies = [\"127.0.0.0/8\"]\n",
        up.url()
    );
    let g = Gateway::start(&standard_config(0, 0, &up.url(), &extra), 0, 0);
    let token = create_session(&g, "41", &["user"], None).await;
    let cookie = format!("Cookie: gw_session={token}\r\n");
    let port = g.http;
    let tls = "X-Forwarded-Proto: https\r\n";
    let tls_8443 = "X-Forwarded-Proto: https\r\nX-Forwarded-Port: 8443\r\n";
    for (forwarded, origin, allowed) in [
        (tls, format!("http://app.{DOMAIN}"), false),
        (tls, format!("http://app.{DOMAIN}:{port}"), false),
        (tls, format!("https://app.{DOMAIN}:{port}"), false),
        (tls, format!("https://app.{DOMAIN}"), true),
        (tls_8443, format!("https://app.{DOMAIN}:8443"), true),
        (tls_8443, format!("https://app.{DOMAIN}:{port}"), false),
        (
            "X-Forwarded-Port: 9000\r\n",
            format!("http://app.{DOMAIN}:9000"),
            true,
        ),
        ("", format!("http://app.{DOMAIN}:{port}"), true),
    ] {
        let res = send(
            &g,
            "POST",
            "data",
            "/x",
            &format!("{cookie}{forwarded}Origin: {origin}\r\n"),
        );
        let want = if allowed { 200 } else { 403 };
        assert_eq!(status_of(&res), want, "CSRF, {forwarded:?} {origin}: {res}");
        let res = send(
            &g,
            "GET",
            "data",
            "/x",
            &format!("{forwarded}Origin: {origin}\r\n"),
        );
        assert_eq!(
            header(&res, "access-control-allow-origin").is_some(),
            allowed,
            "CORS, {forwarded:?} {origin}: {res}"
        );
    }
    // The redirect hands on the URL with the scheme the client used.
    let res = send(
        &g,
        "GET",
        "portal",
        "/p",
        &format!("{tls}Sec-Fetch-Mode: navigate\r\n"),
    );
    let location = header(&res, "location").unwrap();
    assert_eq!(
        redirect_to(&location).as_deref(),
        Some(format!("https://portal.{DOMAIN}/p").as_str())
    );

    // From an untrusted peer the same headers are ignored: the request is plain HTTP on the
    // listener's port.
    let (_up, g) = gateway().await;
    let token = create_session(&g, "41", &["user"], None).await;
    let cookie = format!("Cookie: gw_session={token}\r\n");
    for (origin, want) in [
        (format!("http://app.{DOMAIN}:{}", g.http), 200),
        (format!("https://app.{DOMAIN}:8443"), 403),
    ] {
        let res = send(
            &g,
            "POST",
            "data",
            "/x",
            &format!("{cookie}{tls_8443}Origin: {origin}\r\n"),
        );
        assert_eq!(status_of(&res), want, "untrusted peer, {origin}: {res}");
    }
}
