//! Several real `gateway` processes sharing one real `redis-server` (issue 7, SECURITY-CASES
//! 31): sessions and revocations across replicas, WebSockets closed on revocation, Redis
//! killed, restarted and stalled.
//!
//! Without `redis-server` on the PATH these tests print a loud skip message, except on CI
//! (`CI=true`) where they fail. Run with `--nocapture` to see the measured latencies.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
// Pebble's harness is shared with cert-core's own tests.
#[path = "../../cert-core/tests/common/mod.rs"]
mod pebble;
// So is the redis-server helper, with session-core's.
#[path = "../../session-core/tests/support/redis_server.rs"]
mod redis_server;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use redis_server::RedisServer;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const REDIS_PASSWORD: &str = "replica-test-redis-pw";

fn config(up: &str, ws: &str, timeout_ms: u64) -> String {
    format!(
        r#"
[project]
domains = ["{DOMAIN}"]

[listen]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"

[limits]
header_read_timeout = "2s"
idle_timeout = "30s"
max_connections = 256
shutdown_grace = "1s"

[sessions]
cookie_name = "gw_session"
store = "redis"
redis_url_env = "TEST_REDIS_URL"
redis_prefix = "replicas"
redis_timeout = "{timeout_ms}ms"
cache_ttl = "30s"

[log]
format = "json"
level = "info"

[[services]]
name = "data"
upstreams = ["{up}"]
allowed_roles = ["anonymous", "user"]

[[services]]
name = "private"
upstreams = ["{up}"]
allowed_roles = ["user"]

[[services]]
name = "ws"
upstreams = ["{ws}"]
allowed_roles = ["user"]
websocket = true
"#
    )
}

struct Cluster {
    redis: RedisServer,
    replicas: Vec<Gateway>,
    _up: Upstream,
}

async fn cluster(n: usize, timeout_ms: u64) -> Option<Cluster> {
    let redis = RedisServer::start(Some(REDIS_PASSWORD), &[])?;
    let up = Upstream::start().await;
    let ws = ws_echo().await;
    let cfg = config(&up.url(), &format!("http://{ws}"), timeout_ms);
    let url = redis.url();
    let replicas: Vec<Gateway> = (0..n)
        .map(|_| Gateway::start_with_env(&cfg, 0, 0, &[("TEST_REDIS_URL", &url)]))
        .collect();
    let c = Cluster {
        redis,
        replicas,
        _up: up,
    };
    for g in &c.replicas {
        wait_ready(g, 200, Duration::from_secs(10)).await;
    }
    Some(c)
}

async fn readyz(g: &Gateway) -> u16 {
    match client().get(g.admin_url("/readyz")).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

async fn wait_ready(g: &Gateway, want: u16, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if readyz(g).await == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "/readyz never answered {want}; log:\n{}",
            g.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn get(
    c: &reqwest::Client,
    g: &Gateway,
    svc: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let mut req = c.get(g.url("/")).header("host", host(svc));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

async fn status(c: &reqwest::Client, g: &Gateway, svc: &str, token: Option<&str>) -> u16 {
    get(c, g, svc, token).await.status().as_u16()
}

async fn revoke(g: &Gateway, token: &str) {
    let res = client()
        .delete(g.admin_url("/v1/sessions/current"))
        .bearer_auth(ADMIN_SECRET)
        .header("x-gateway-session-token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
}

fn summary(name: &str, mut v: Vec<Duration>) -> Duration {
    v.sort();
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    eprintln!(
        "{name}: n={} min {:?} p50 {:?} p90 {:?} p99 {:?} max {:?}",
        v.len(),
        v[0],
        p(0.5),
        p(0.9),
        p(0.99),
        v[v.len() - 1]
    );
    v[v.len() - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_and_revocations_reach_every_replica() {
    let Some(c) = cluster(3, 500).await else {
        return;
    };
    let (a, b, cc) = (&c.replicas[0], &c.replicas[1], &c.replicas[2]);
    let http = client();

    // Created through A, works on B and C (and A).
    let token = create_session(a, "alice", &["user"], None).await;
    for g in [a, b, cc] {
        let res = get(&http, g, "private", Some(&token)).await;
        assert_eq!(res.status(), 200);
    }
    assert_eq!(status(&http, b, "private", None).await, 401);
    assert_eq!(status(&http, b, "data", None).await, 200);

    // 50 revocations on A; B and C polled until they refuse. Measured from the moment A's
    // admin API answered 204.
    let mut to_b = Vec::new();
    let mut to_c = Vec::new();
    for i in 0..50 {
        let token = create_session(a, &format!("user-{i}"), &["user"], None).await;
        for g in [b, cc] {
            // Twice: the second answer comes from the replica's warm local cache.
            assert_eq!(status(&http, g, "private", Some(&token)).await, 200);
            assert_eq!(status(&http, g, "private", Some(&token)).await, 200);
        }
        revoke(a, &token).await;
        // The clock starts at the revoking answer, and nothing else runs before the polls:
        // a request to A here used to be counted in the propagation time.
        let done = Instant::now();
        let poll = |port: u16| {
            let http = http.clone();
            let token = token.clone();
            async move {
                loop {
                    let s = http
                        .get(format!("http://127.0.0.1:{port}/"))
                        .header("host", host("private"))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .unwrap()
                        .status()
                        .as_u16();
                    if s == 401 {
                        return done.elapsed();
                    }
                    assert_eq!(s, 200);
                    assert!(done.elapsed() < Duration::from_secs(2), "never refused");
                }
            }
        };
        let (tb, tc) = tokio::join!(poll(b.http), poll(cc.http));
        assert_eq!(status(&http, a, "private", Some(&token)).await, 401);
        to_b.push(tb);
        to_c.push(tc);
    }
    let worst_b = summary("revocation on A refused on B after", to_b);
    let worst_c = summary("revocation on A refused on C after", to_c);
    assert!(worst_b < Duration::from_millis(100), "{worst_b:?}");
    assert!(worst_c < Duration::from_millis(100), "{worst_c:?}");

    // Revoking a user on C ends that user's sessions on A and B.
    let t1 = create_session(a, "bob", &["user"], None).await;
    let t2 = create_session(b, "bob", &["user"], None).await;
    for g in [a, b] {
        assert_eq!(status(&http, g, "private", Some(&t1)).await, 200);
        assert_eq!(status(&http, g, "private", Some(&t2)).await, 200);
    }
    let res = client()
        .delete(cc.admin_url("/v1/users/bob/sessions"))
        .bearer_auth(ADMIN_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let start = Instant::now();
    for g in [a, b] {
        for t in [&t1, &t2] {
            while status(&http, g, "private", Some(t)).await != 401 {
                assert!(start.elapsed() < Duration::from_millis(100));
            }
        }
    }

    // A WebSocket open on B is closed when its session is revoked on A.
    let token = create_session(a, "carol", &["user"], None).await;
    let mut req = format!("ws://{}/chat", host("ws"))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", b.http))
        .await
        .unwrap();
    let (mut ws, res) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    assert_eq!(res.status(), 101);
    ws.send(Message::text("hello")).await.unwrap();
    let echo = tokio::time::timeout(Duration::from_secs(2), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echo, Message::text("hello"));
    revoke(a, &token).await;
    let done = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(2), ws.next())
        .await
        .expect("the WebSocket stayed open after its session was revoked");
    assert!(!matches!(end, Some(Ok(Message::Text(_)))), "{end:?}");
    eprintln!(
        "WebSocket on B closed {:?} after the revocation on A answered",
        done.elapsed()
    );
    // And a new one with the revoked token is refused.
    let mut req = format!("ws://{}/chat", host("ws"))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", b.http))
        .await
        .unwrap();
    assert!(tokio_tungstenite::client_async(req, stream).await.is_err());

    // The Redis URL carries a password; no replica logs it.
    for g in &c.replicas {
        assert!(
            !g.log().contains(REDIS_PASSWORD),
            "the Redis password was logged"
        );
    }
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_then_restarted() {
    let Some(mut c) = cluster(2, 500).await else {
        return;
    };
    let http = client();
    let token = create_session(&c.replicas[0], "dave", &["user"], None).await;
    for g in &c.replicas {
        assert_eq!(status(&http, g, "private", Some(&token)).await, 200);
    }

    c.redis.stop();
    let killed = Instant::now();
    // Requests with a token: 503 with Retry-After, each within about a second, never a role.
    let mut waits = Vec::new();
    let mut saw_503 = false;
    while killed.elapsed() < Duration::from_secs(2) {
        for g in &c.replicas {
            let start = Instant::now();
            let res = get(&http, g, "private", Some(&token)).await;
            let took = start.elapsed();
            waits.push(took);
            assert!(
                took < Duration::from_millis(1200),
                "a request waited {took:?}"
            );
            match res.status().as_u16() {
                503 => {
                    saw_503 = true;
                    assert!(res.headers().contains_key("retry-after"));
                }
                // Before the replica noticed the kill, its cache may answer (no revocation
                // can happen while Redis is down).
                200 => assert!(!saw_503 || killed.elapsed() < Duration::from_secs(1)),
                s => panic!("unexpected {s}"),
            }
            // Anonymous traffic keeps flowing.
            assert_eq!(status(&http, g, "data", None).await, 200);
        }
    }
    for g in &c.replicas {
        let res = get(&http, g, "private", Some(&token)).await;
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "1");
        assert_eq!(status(&http, g, "private", None).await, 401);
        assert_eq!(readyz(g).await, 503);
    }
    summary(
        "request with a token while Redis is down, answered after",
        waits,
    );

    c.redis.restart();
    let restarted = Instant::now();
    for g in &c.replicas {
        wait_ready(g, 200, Duration::from_secs(10)).await;
    }
    eprintln!(
        "replicas ready {:?} after Redis restarted",
        restarted.elapsed()
    );
    // No persistence: the old session is gone (401, not a cached 200); new ones work everywhere.
    for g in &c.replicas {
        assert_eq!(status(&http, g, "private", Some(&token)).await, 401);
    }
    let fresh = create_session(&c.replicas[1], "dave", &["user"], None).await;
    for g in &c.replicas {
        assert_eq!(status(&http, g, "private", Some(&fresh)).await, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_stalled_is_503_not_a_hang() {
    let Some(c) = cluster(2, 500).await else {
        return;
    };
    let http = client();
    let token = create_session(&c.replicas[0], "erin", &["user"], None).await;
    for g in &c.replicas {
        assert_eq!(status(&http, g, "private", Some(&token)).await, 200);
    }
    let stall = c.redis.stall(4);
    let stalled = Instant::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut first_503 = None;
    let mut waits = Vec::new();
    while stalled.elapsed() < Duration::from_millis(2500) {
        for g in &c.replicas {
            let start = Instant::now();
            let s = status(&http, g, "private", Some(&token)).await;
            let took = start.elapsed();
            waits.push(took);
            assert!(
                took < Duration::from_millis(1200),
                "a request waited {took:?}"
            );
            assert!(s == 503 || s == 200, "{s}");
            if s == 503 && first_503.is_none() {
                first_503 = Some(stalled.elapsed());
            }
            if stalled.elapsed() > Duration::from_millis(1200) {
                assert_eq!(
                    s,
                    503,
                    "a stalled Redis still served a session after 1.2 s ({:?}); log:\n{}",
                    stalled.elapsed(),
                    g.log()
                );
            }
            let anon = Instant::now();
            assert_eq!(status(&http, g, "data", None).await, 200);
            assert!(anon.elapsed() < Duration::from_millis(200));
        }
    }
    eprintln!("first 503 {first_503:?} after the stall began");
    summary(
        "request with a token during the stall, answered after",
        waits,
    );
    stall.join().unwrap();
    for g in &c.replicas {
        wait_ready(g, 200, Duration::from_secs(5)).await;
        assert_eq!(status(&http, g, "private", Some(&token)).await, 200);
    }
}

/// The `not_after` the admin API reports for the certificate `name`.
async fn not_after(g: &Gateway, name: &str) -> String {
    let v = g.admin_json("/v1/certs").await;
    v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .and_then(|c| c["not_after"].as_str().map(str::to_owned))
        .unwrap()
}

async fn has_cert(g: &Gateway, name: &str) -> bool {
    let v = g.admin_json("/v1/certs").await;
    v["certificates"].as_array().is_some_and(|a| {
        a.iter()
            .any(|c| c["name"] == name && c["not_after"].is_string())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_replicas_place_one_order_per_name_and_share_certificates() {
    let Some(redis) = RedisServer::start(Some(REDIS_PASSWORD), &[]) else {
        return;
    };
    if !pebble::pebble_available() {
        return;
    }
    let up = Upstream::start().await;
    // Pebble validates HTTP-01 on replica A's port only: an order placed by B succeeds only
    // if A answers B's challenge from Redis.
    let (a_http, a_https, b_http, b_https) = (free_port(), free_port(), free_port(), free_port());
    let p = pebble::Pebble::start(&pebble::PebbleOpts {
        http_port: a_http,
        tls_port: a_https,
        ..Default::default()
    });
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), &p.listener_ca_pem).unwrap();
    let config = |http: u16, https: u16| {
        standard_config(http, 0, &up.url(), "")
            .replace("[listen]\n", &format!("[listen]\nhttps = \"127.0.0.1:{https}\"\n"))
            .replace("[sessions]\n", "[sessions]\nstore = \"redis\"\n")
            .replace(
                "[log]\n",
                &format!(
                    "[tls]\nmode = \"acme\"\nstore = \"redis\"\nacme_directory = \"{}\"\nacme_ca_file = \"{}\"\nhttp01 = true\ntls_alpn01 = false\nacme_check_interval = \"1s\"\n\n[log]\n",
                    p.directory_url,
                    ca.path().display()
                ),
            )
    };
    let env = [("GATEWAY_REDIS_URL", redis.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Both replicas start at the same moment; B (whose port Pebble never calls) goes first.
    let mut b = Gateway::spawn(&config(b_http, b_https), b_http, 0, &[], &env);
    let mut a = Gateway::spawn(&config(a_http, a_https), a_http, 0, &[], &env);
    b.wait_ready();
    a.wait_ready();

    let names: Vec<String> = std::iter::once(DOMAIN.to_owned())
        .chain(
            ["data", "admin", "auth", "open", "rogue"]
                .iter()
                .map(|s| host(s)),
        )
        .collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    for name in &names {
        while !(has_cert(&a, name).await && has_cert(&b, name).await) {
            assert!(
                Instant::now() < deadline,
                "{name} not served by both replicas\nA:\n{}\nB:\n{}",
                a.log(),
                b.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let mut by_b = 0.0;
    for name in &names {
        let label = format!("name=\"{name}\"");
        let (on_a, on_b) = (
            metric_sum(&a.metrics().await, "cert_acme_orders_total", &[&label]),
            metric_sum(&b.metrics().await, "cert_acme_orders_total", &[&label]),
        );
        assert_eq!(on_a + on_b, 1.0, "{name}: {on_a} orders on A, {on_b} on B");
        by_b += on_b;
    }
    assert!(
        by_b >= 1.0,
        "B placed no order, so no validation landed on the other replica"
    );

    // Both replicas serve the same certificate to a client that trusts only Pebble's root.
    let root = p.issuing_root_pem().await;
    let data = host("data");
    let fetch = |port: u16| {
        let c = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes()).unwrap())
            .tls_built_in_root_certs(false)
            .resolve(&data, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .no_proxy()
            .build()
            .unwrap();
        let url = format!("https://{data}:{port}/replicated");
        async move { c.get(url).send().await.unwrap().status() }
    };
    assert_eq!(fetch(a_https).await, 200);
    assert_eq!(fetch(b_https).await, 200);

    // A renewal forced on A reaches B through Redis, within B's acme_check_interval (1 s).
    let before = not_after(&b, &data).await;
    // Pebble dates certificates to the second: make sure the renewed one differs.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = client()
        .post(a.admin_url(&format!("/v1/certs/{data}/renew")))
        .bearer_auth(ADMIN_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let renewed_deadline = Instant::now() + Duration::from_secs(60);
    let renewed_on_a = loop {
        let now_a = not_after(&a, &data).await;
        if now_a != before {
            break now_a;
        }
        assert!(
            Instant::now() < renewed_deadline,
            "A never renewed {data}\n{}",
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let seen_at = Instant::now();
    while not_after(&b, &data).await != renewed_on_a {
        assert!(
            seen_at.elapsed() < Duration::from_secs(10),
            "B still serves the old certificate for {data}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("renewal on A reached B after {:?}", seen_at.elapsed());

    // A restart of both reuses the certificates: no new order.
    a.terminate();
    b.terminate();
    let a2 = Gateway::spawn(&config(a_http, a_https), a_http, 0, &[], &env);
    let b2 = Gateway::spawn(&config(b_http, b_https), b_http, 0, &[], &env);
    let (mut a2, mut b2) = (a2, b2);
    a2.wait_ready();
    b2.wait_ready();
    for name in &names {
        while !(has_cert(&a2, name).await && has_cert(&b2, name).await) {
            assert!(
                Instant::now() < deadline + Duration::from_secs(30),
                "{name} not reloaded"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(
        metric_sum(&a2.metrics().await, "cert_acme_orders_total", &[]),
        0.0
    );
    assert_eq!(
        metric_sum(&b2.metrics().await, "cert_acme_orders_total", &[]),
        0.0
    );
    assert!(!a2.log().contains(REDIS_PASSWORD) && !b2.log().contains(REDIS_PASSWORD));
}

/// A TLS-only redis-server (`rediss://`) with a password, its CA written to `dir/ca.pem`.
fn start_tls_redis(dir: &std::path::Path) -> Option<(Child, u16)> {
    RedisServer::start(Some(REDIS_PASSWORD), &[])?; // only to check that redis-server exists (skip or fail as usual)
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "redis test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("redis.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("redis.key"), key.serialize_pem()).unwrap();
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .arg("--tls-cert-file")
        .arg(dir.join("redis.pem"))
        .arg("--tls-key-file")
        .arg(dir.join("redis.key"))
        .arg("--tls-ca-cert-file")
        .arg(dir.join("ca.pem"))
        .args(["--tls-auth-clients", "no", "--requirepass", REDIS_PASSWORD])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "TLS redis-server did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    Some((child, port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_over_rediss_with_a_verified_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let Some((mut redis, port)) = start_tls_redis(dir.path()) else {
        return;
    };
    let up = Upstream::start().await;
    let config = standard_config(0, 0, &up.url(), "")
        .replace("[sessions]\n", "[sessions]\nstore = \"redis\"\n");
    let url = format!("rediss://:{REDIS_PASSWORD}@localhost:{port}");
    let ca = dir.path().join("ca.pem");
    // The Redis client trusts the platform roots plus SSL_CERT_FILE, the usual way to add a CA.
    let g = Gateway::start_with_env(
        &config,
        0,
        0,
        &[
            ("GATEWAY_REDIS_URL", url.as_str()),
            ("SSL_CERT_FILE", ca.to_str().unwrap()),
        ],
    );
    let token = create_session(&g, "tls-user", &["user"], None).await;
    // A lookup that outlasts the 500 ms command timeout fails closed with 503; on a loaded
    // CI machine the first TLS round trips (and the first script load) can, so the request is
    // retried for a while. The point here is that rediss works at all; the untrusted gateway
    // below must answer 503 every time.
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        let res = client()
            .get(g.url("/over-tls"))
            .header("host", host("data"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        if status != 503 || Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status, 200, "gateway log:\n{}", g.log());
    assert_eq!(
        up.last().one("x-hasura-user-id").as_deref(),
        Some("tls-user")
    );
    // Readiness is the revocation channel's subscription, opened over TLS beside the command
    // connection that answered above: on a loaded machine it can come up a moment later (this
    // check once saw 503 right after the 200).
    wait_ready(&g, 200, Duration::from_secs(15)).await;

    // Without the CA the certificate is refused: requests with a token fail closed.
    let untrusted = Gateway::start_with_env(
        &config,
        0,
        0,
        &[
            ("GATEWAY_REDIS_URL", url.as_str()),
            ("SSL_CERT_FILE", "/dev/null"),
        ],
    );
    let res = client()
        .get(untrusted.url("/"))
        .header("host", host("data"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(
        client()
            .get(untrusted.url("/"))
            .header("host", host("data"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    for g in [&g, &untrusted] {
        assert!(!g.log().contains(REDIS_PASSWORD));
    }
    let _ = redis.kill();
    let _ = redis.wait();
}
