//! The admin listener has the public listeners' limits and serves only allowed `Host` names
//! (SECURITY-CASES case 42), against the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// Small limits, three connections at most; `listen` and `admin` are appended to those
/// sections.
async fn gateway(listen: &str, admin: &str) -> (Upstream, Gateway) {
    let up = Upstream::start().await;
    let config = format!(
        r#"
[project]
domains = ["{DOMAIN}"]

[listen]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"
{listen}

[limits]
header_read_timeout = "1s"
idle_timeout = "10s"
max_header_bytes = 8192
max_headers = 20
max_body_bytes = 1024
max_connections = 3

[admin]
{admin}

[log]
format = "json"
level = "info"

[[services]]
name = "data"
upstreams = ["{}"]
"#,
        up.url()
    );
    let g = Gateway::start(&config, 0, 0);
    (up, g)
}

/// One raw HTTP/1.1 request to the admin listener with this `Host` line (or none) and extra
/// header lines.
fn admin_get(g: &Gateway, path: &str, host: Option<&str>, extra: &str) -> String {
    let host = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
    raw(
        g.admin,
        format!("GET {path} HTTP/1.1\r\n{host}{extra}Connection: close\r\n\r\n").as_bytes(),
    )
}

fn body_of(res: &str) -> serde_json::Value {
    let (_, body) = res.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {res}"))
}

/// Case 42: oversized request heads (too many bytes, too many headers) get 431, as on the
/// public listeners.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_42_admin_header_limits() {
    let (_up, g) = gateway("", "").await;
    let ok = admin_get(&g, "/healthz", Some("127.0.0.1"), "");
    assert_eq!(status_of(&ok), 200, "{ok}");
    let big = format!("X-Big: {}\r\n", "a".repeat(20 * 1024));
    let res = admin_get(&g, "/healthz", Some("127.0.0.1"), &big);
    assert_eq!(status_of(&res), 431, "{res}");
    let many: String = (0..30).map(|i| format!("X-H{i}: v\r\n")).collect();
    let res = admin_get(&g, "/healthz", Some("127.0.0.1"), &many);
    assert_eq!(status_of(&res), 431, "{res}");
}

/// Case 42: a body over `max_body_bytes` gets 413 with a JSON error, declared or chunked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_42_admin_body_limit() {
    let (_up, g) = gateway("", "").await;
    let json = format!(
        r#"{{"user_id": "u", "roles": ["user"], "pad": "{}"}}"#,
        "x".repeat(2048)
    );
    let declared = raw(
        g.admin,
        format!(
            "POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ADMIN_SECRET}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
            json.len()
        )
        .as_bytes(),
    );
    assert_eq!(status_of(&declared), 413, "{declared}");
    assert_eq!(body_of(&declared)["code"], "payload-too-large");
    let chunked = raw(
        g.admin,
        format!(
            "POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ADMIN_SECRET}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{json}\r\n0\r\n\r\n",
            json.len()
        )
        .as_bytes(),
    );
    assert_eq!(status_of(&chunked), 413, "{chunked}");
    assert_eq!(body_of(&chunked)["code"], "payload-too-large");
    // A small body still creates a session.
    create_session(&g, "u", &["user"], None).await;
}

/// Case 42: a connection that sends its head slowly is closed at `header_read_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_42_admin_slow_header_read_is_closed() {
    let (_up, g) = gateway("", "").await;
    let mut slow = TcpStream::connect(("127.0.0.1", g.admin)).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let started = Instant::now();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 512];
    // The gateway answers 408 or just closes; either way the read ends well before 5 s.
    let _ = slow.read(&mut buf);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "the slow connection was still open after {took:?}"
    );
    assert!(took >= Duration::from_millis(800), "closed after {took:?}");
}

/// Case 42: connections over the cap (`max_connections`, counted apart from the public
/// listeners) are refused at once; below it they are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_42_admin_connection_cap() {
    let (_up, g) = gateway("", "").await;
    // The readiness probe's connection must be gone before the cap is filled.
    std::thread::sleep(Duration::from_millis(200));
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("127.0.0.1", g.admin)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let res = admin_get(&g, "/healthz", Some("127.0.0.1"), "");
    assert_eq!(
        res, "",
        "a fourth admin connection was served while three were open"
    );
    // The public listener is not affected by the admin connections.
    let res = raw(
        g.http,
        format!(
            "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            host("data")
        )
        .as_bytes(),
    );
    assert_eq!(status_of(&res), 200, "{res}");
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(2);
    while status_of(&admin_get(&g, "/healthz", Some("127.0.0.1"), "")) != 200 {
        assert!(Instant::now() < deadline, "not served again below the cap");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Case 42 (DNS rebinding): only IP literals, `localhost` and `listen.admin_hosts` names are
/// served; any other `Host` (or URI authority) gets 421 with a JSON error, before the secret is
/// even looked at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_42_admin_host_check() {
    let (_up, g) = gateway("admin_hosts = [\"gateway-admin.internal\"]", "").await;
    let port = g.admin;
    for served in [
        format!("127.0.0.1:{port}"),
        "127.0.0.1".to_owned(),
        format!("[::1]:{port}"),
        format!("localhost:{port}"),
        "LOCALHOST.".to_owned(),
        format!("gateway-admin.internal:{port}"),
        "Gateway-Admin.Internal.".to_owned(),
    ] {
        let res = admin_get(&g, "/healthz", Some(&served), "");
        assert_eq!(status_of(&res), 200, "Host: {served}: {res}");
    }
    for refused in [
        "evil.example".to_owned(),
        format!("evil.example:{port}"),
        "localhost.evil.example".to_owned(),
        "127.0.0.1.evil.example".to_owned(),
        "gateway-admin.internal.evil.example".to_owned(),
        "admin.internal".to_owned(),
    ] {
        for path in ["/metrics", "/healthz", "/v1/users/u/sessions", "/console"] {
            let auth = format!("Authorization: Bearer {ADMIN_SECRET}\r\n");
            let res = admin_get(&g, path, Some(&refused), &auth);
            assert_eq!(status_of(&res), 421, "Host: {refused} {path}: {res}");
            assert_eq!(body_of(&res)["code"], "misdirected-request", "{res}");
        }
    }
    // An absolute-form target naming another host is not served either.
    let res = raw(
        port,
        b"GET http://evil.example/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(matches!(status_of(&res), 400 | 421), "{res}");
    // HTTP/1.1 requires a Host; HTTP/1.0 health checkers send none and are served.
    assert_eq!(status_of(&admin_get(&g, "/healthz", None, "")), 400);
    let res = raw(port, b"GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(status_of(&res), 200, "{res}");
    // HTTP/2 (prior knowledge): the :authority is checked the same way.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .resolve(
            "evil.example",
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        )
        .build()
        .unwrap();
    let res = h2
        .get(format!("http://evil.example:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    assert_eq!(res.status(), 421);
    let res = h2
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// Case 42: `[admin] metrics_require_secret = true` puts `/metrics` behind the admin secret;
/// health checks stay open. By default `/metrics` needs none (guard of today's behaviour).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_42_metrics_require_secret() {
    let (_up, open) = gateway("", "").await;
    let c = client();
    let res = c.get(open.admin_url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);

    let (_up, g) = gateway("", "metrics_require_secret = true").await;
    let res = c.get(g.admin_url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "admin-unauthorized");
    let res = c
        .get(g.admin_url("/metrics"))
        .bearer_auth("wrong-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = c
        .get(g.admin_url("/metrics"))
        .bearer_auth(ADMIN_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("gateway_"));
    for path in ["/healthz", "/readyz"] {
        let res = c.get(g.admin_url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
}
