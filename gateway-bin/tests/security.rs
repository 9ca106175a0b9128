//! SECURITY-CASES.md 1-13, 23, 24 and 26 against the running binary, with a recording upstream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use sha2::{Digest, Sha256};

async fn gateway() -> (Upstream, Gateway) {
    let up = Upstream::start().await;
    let (http, admin) = (0, 0);
    let g = Gateway::start(&standard_config(http, admin, &up.url(), ""), http, admin);
    (up, g)
}

fn get(port: u16, host: &str, extra: &str) -> String {
    raw(
        port,
        format!("GET /x HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n").as_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_01_02_03_client_identity_headers_are_never_trusted() {
    let (up, g) = gateway().await;
    // 1: spoofed identity in mixed case, anonymous request.
    let res = get(
        g.http,
        &host("data"),
        "x-HASURA-role: admin\r\nX-Hasura-User-Id: 1\r\nX-HASURA-USER-ID: 2\r\n",
    );
    assert_eq!(status_of(&res), 200, "{res}");
    let seen = up.last();
    assert_eq!(seen.all("x-hasura-role"), vec!["anonymous"]);
    assert_eq!(seen.all("x-hasura-user-id"), vec!["0"]);
    // 2: any header under the prefix is removed, with a valid token too.
    let token = create_session(&g, "55", &["user"], None).await;
    let res = get(
        g.http,
        &host("data"),
        &format!("Authorization: Bearer {token}\r\nX-Hasura-User-Id: 1\r\nX-Hasura-Org-Id: 9\r\n"),
    );
    assert_eq!(status_of(&res), 200, "{res}");
    let seen = up.last();
    assert_eq!(seen.all("x-hasura-user-id"), vec!["55"]);
    assert!(seen.all("x-hasura-org-id").is_empty());
    // 3: underscore forms are dropped (or refused): never reach the upstream.
    let before = up.count();
    let res = get(
        g.http,
        &host("data"),
        "X_Hasura_Role: admin\r\nx_hasura_user_id: 1\r\n",
    );
    let status = status_of(&res);
    assert!(status == 200 || status == 400, "{res}");
    if status == 200 {
        let seen = up.last();
        assert!(
            seen.headers.keys().all(|k| !k.as_str().contains("hasura_")),
            "{:?}",
            seen.headers
        );
        assert_eq!(seen.all("x-hasura-role"), vec!["anonymous"]);
    } else {
        assert_eq!(up.count(), before);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_04_connection_cannot_remove_injected_headers() {
    let (up, g) = gateway().await;
    let res = raw(
        g.http,
        format!("GET /x HTTP/1.1\r\nHost: {}\r\nConnection: close, X-Hasura-Role, X-Hasura-User-Id\r\n\r\n", host("data")).as_bytes(),
    );
    assert_eq!(status_of(&res), 200, "{res}");
    let seen = up.last();
    assert_eq!(seen.all("x-hasura-role"), vec!["anonymous"]);
    assert_eq!(seen.all("x-hasura-user-id"), vec!["0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_05_forwarded_headers_are_rebuilt_from_the_socket() {
    let (up, g) = gateway().await;
    let res = get(
        g.http,
        &host("data"),
        "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\nX-Forwarded-Host: evil.test\r\nX-Forwarded-Proto: https\r\nForwarded: for=6.6.6.6;host=evil.test\r\n",
    );
    assert_eq!(status_of(&res), 200, "{res}");
    let seen = up.last();
    assert_eq!(seen.all("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(seen.all("x-forwarded-host"), vec![host("data")]);
    assert_eq!(seen.all("x-forwarded-proto"), vec!["http"]);
    let fwd = seen.all("forwarded");
    assert_eq!(fwd.len(), 1);
    assert!(
        !fwd[0].contains("6.6.6.6") && !fwd[0].contains("evil"),
        "{fwd:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_06_control_characters_in_identities_are_refused_at_creation() {
    let (_up, g) = gateway().await;
    let c = client();
    for (user, role) in [
        ("1\r\nX-Hasura-Role: admin", "user"),
        ("1", "us\ter"),
        ("1", "adm\u{7f}in"),
        ("\u{0}", "user"),
    ] {
        let res = c
            .post(g.admin_url("/v1/sessions"))
            .bearer_auth(ADMIN_SECRET)
            .json(&serde_json::json!({ "user_id": user, "roles": [role] }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422, "user {user:?} role {role:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_07_duplicate_credentials_get_400_and_the_first_never_wins() {
    let (up, g) = gateway().await;
    let token = create_session(&g, "1", &["user"], None).await;
    let before = up.count();
    for extra in [
        format!("Authorization: Bearer {token}\r\nAuthorization: Bearer {token}\r\n"),
        format!("Authorization: Bearer {token}, Bearer other\r\n"),
        format!("Cookie: gw_session={token}; gw_session=other\r\n"),
        format!("Cookie: gw_session={token}\r\nCookie: gw_session=other\r\n"),
    ] {
        let res = get(g.http, &host("data"), &extra);
        assert_eq!(status_of(&res), 400, "{extra}: {res}");
        assert!(res.contains("application/json"), "{res}");
    }
    assert_eq!(up.count(), before, "nothing was proxied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_08_invalid_expired_or_revoked_bearers_get_401() {
    let (up, g) = gateway().await;
    let c = client();
    let before = up.count();
    let res = c
        .get(g.url("/"))
        .header("host", host("data"))
        .bearer_auth("AAAAnot-a-real-token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    let res = c
        .get(g.url("/"))
        .header("host", host("data"))
        .header("authorization", "Bearer bad token!")
        .send()
        .await
        .unwrap();
    assert!(
        res.status() == 401 || res.status() == 400,
        "{}",
        res.status()
    );

    let res = c
        .post(g.admin_url("/v1/sessions"))
        .bearer_auth(ADMIN_SECRET)
        .json(&serde_json::json!({ "user_id": "1", "roles": ["user"], "ttl_seconds": 1 }))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = res.json().await.unwrap();
    let short = v["token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let res = c
        .get(g.url("/"))
        .header("host", host("data"))
        .bearer_auth(&short)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "expired");

    let revoked = create_session(&g, "2", &["user"], None).await;
    c.delete(g.admin_url("/v1/sessions/current"))
        .bearer_auth(ADMIN_SECRET)
        .header("x-gateway-session-token", &revoked)
        .send()
        .await
        .unwrap();
    let res = c
        .get(g.url("/"))
        .header("host", host("data"))
        .bearer_auth(&revoked)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "revoked");
    assert_eq!(up.count(), before, "none of these was proxied");

    // An invalid cookie is cleared and the request goes on as anonymous.
    let res = c
        .get(g.url("/"))
        .header("host", host("data"))
        .header("cookie", "gw_session=stale")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(up.last().one("x-hasura-role").as_deref(), Some("anonymous"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_09_credentials_are_removed_unless_a_service_asks_for_them() {
    let (up, g) = gateway().await;
    let token = create_session(&g, "3", &["user"], None).await;
    let c = client();
    c.get(g.url("/"))
        .header("host", host("data"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let seen = up.last();
    assert!(seen.one("authorization").is_none());
    c.get(g.url("/"))
        .header("host", host("data"))
        .header("cookie", format!("gw_session={token}"))
        .send()
        .await
        .unwrap();
    assert!(up.last().all("cookie").iter().all(|c| !c.contains(&token)));
    // forward_credentials = true keeps them.
    c.get(g.url("/"))
        .header("host", host("open"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        up.last().one("authorization"),
        Some(format!("Bearer {token}"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_10_non_issuers_cannot_set_the_session_cookie_or_issue_sessions() {
    let (up, g) = gateway().await;
    let c = client();
    let res = c
        .get(g.url("/set-session-cookie"))
        .header("host", host("rogue"))
        .send()
        .await
        .unwrap();
    let cookies: Vec<_> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(cookies, vec!["theme=dark; Path=/"]);
    let res = c
        .get(g.url("/login?user=1&roles=admin"))
        .header("host", host("rogue"))
        .send()
        .await
        .unwrap();
    assert!(
        res.headers()
            .keys()
            .all(|k| !k.as_str().starts_with("x-gateway-session")),
        "{:?}",
        res.headers()
    );
    assert!(res.headers().get("set-cookie").is_none());
    let _ = up;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_12_sessions_are_keyed_by_the_sha256_of_the_token() {
    let (_up, g) = gateway().await;
    let token = create_session(&g, "hash-user", &["user"], None).await;
    let v = g.admin_json("/v1/users/hash-user/sessions").await;
    let id = v["sessions"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(id, hex::encode(Sha256::digest(token.as_bytes())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_13_cross_site_cookie_requests_are_refused() {
    let (up, g) = gateway().await;
    let token = create_session(&g, "4", &["user"], None).await;
    let cookie = format!("Cookie: gw_session={token}\r\n");
    let before = up.count();
    let post = |extra: &str| {
        raw(
            g.http,
            format!("POST /x HTTP/1.1\r\nHost: {}\r\n{cookie}{extra}Content-Length: 0\r\nConnection: close\r\n\r\n", host("data")).as_bytes(),
        )
    };
    assert_eq!(status_of(&post("Origin: https://evil.test\r\n")), 403);
    assert_eq!(status_of(&post("Sec-Fetch-Site: cross-site\r\n")), 403);
    let ws = raw(
        g.http,
        format!(
            "GET /ws HTTP/1.1\r\nHost: {}\r\n{cookie}Origin: https://evil.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            host("data")
        )
        .as_bytes(),
    );
    assert_eq!(status_of(&ws), 403, "{ws}");
    assert_eq!(up.count(), before, "nothing cross-site was proxied");
    // Same-site origins and bearer-authenticated requests are fine.
    assert_eq!(
        status_of(&post(&format!("Origin: https://app.{DOMAIN}\r\n"))),
        200
    );
    let res = raw(
        g.http,
        format!("POST /x HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nOrigin: https://evil.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", host("data")).as_bytes(),
    );
    assert_eq!(status_of(&res), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_23_slowloris_is_cut_at_the_header_read_timeout() {
    let (_up, g) = gateway().await;
    let mut slow = TcpStream::connect(("127.0.0.1", g.http)).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let started = Instant::now();
    let mut closed = false;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(500));
        // A legitimate client is served meanwhile.
        let ok = get(g.http, &host("data"), "");
        assert_eq!(status_of(&ok), 200);
        if slow.write_all(b"X-A: b\r\n").is_err() {
            closed = true;
            break;
        }
        slow.set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        let mut b = [0u8; 512];
        if slow.read(&mut b).is_ok() {
            closed = true;
            break;
        }
    }
    assert!(closed, "the slow connection was never closed");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "closed after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_24_header_and_body_limits() {
    let (up, g) = gateway().await;
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    assert_eq!(status_of(&get(g.http, &host("data"), &many)), 431);
    let big = format!("X-Big: {}\r\n", "a".repeat(20 * 1024));
    assert_eq!(status_of(&get(g.http, &host("data"), &big)), 431);
    let before = up.count();
    let res = raw(
        g.http,
        format!(
            "POST /x HTTP/1.1\r\nHost: {}\r\nContent-Length: 5000000\r\nConnection: close\r\n\r\n",
            host("data")
        )
        .as_bytes(),
    );
    assert_eq!(status_of(&res), 413, "{res}");
    assert_eq!(
        up.count(),
        before,
        "a declared oversize body is refused before proxying"
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_26_connections_over_the_cap_are_refused_quickly() {
    let up = Upstream::start().await;
    let (http, admin) = (0, 0);
    // Held connections must outlive the whole test, even on a loaded machine.
    let config = standard_config(http, admin, &up.url(), "")
        .replace(
            "header_read_timeout = \"2s\"",
            "header_read_timeout = \"30s\"",
        )
        .replace("idle_timeout = \"5s\"", "idle_timeout = \"30s\"");
    let g = Gateway::start(&config, http, admin);
    let pid = g.child.as_ref().unwrap().id();
    // The readiness probes' own connections must be gone before the cap is filled, or the
    // 64th held connection would be the one refused.
    let c = client();
    for _ in 0..200 {
        let m = c
            .get(g.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if m.lines().any(|l| l == "gateway_active_connections 0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // max_connections = 64 in the standard config.
    let held: Vec<TcpStream> = (0..64)
        .map(|_| TcpStream::connect(("127.0.0.1", g.http)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let mut extra = TcpStream::connect(("127.0.0.1", g.http)).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let _ = extra.write_all(format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", host("data")).as_bytes());
    let mut buf = [0u8; 64];
    let n = extra.read(&mut buf).unwrap_or(0);
    if n != 0 {
        let closed = held
            .iter()
            .filter(|h| {
                let mut h: &TcpStream = h;
                h.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
                matches!(h.read(&mut [0u8; 1]), Ok(0))
            })
            .count();
        panic!(
            "the extra connection was served ({closed} held connections were closed by the gateway after {:?}): {}",
            started.elapsed(),
            String::from_utf8_lossy(&buf[..n])
        );
    }
    assert_eq!(
        n,
        0,
        "the extra connection was served: {}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refusal took {:?}",
        started.elapsed()
    );
    assert!(rss_kib(pid) < 64 * 1024, "RSS {} KiB", rss_kib(pid));
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        status_of(&get(g.http, &host("data"), "")),
        200,
        "served again below the cap"
    );
}
