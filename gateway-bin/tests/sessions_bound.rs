//! SECURITY-CASES 40: sessions per user are bounded (`[sessions] max_per_user`). Logging in once
//! more than the bound revokes the user's oldest session, through the admin API and through a
//! login service alike, with the memory store and with Redis, where the eviction reaches every
//! replica's cache and closes the evicted session's WebSockets.
//!
//! Without `redis-server` on the PATH the Redis test prints a loud skip message, except on CI
//! (`CI=true`) where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
#[path = "../../session-core/tests/support/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use redis_server::RedisServer;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// The standard config with `max_per_user = 2`.
fn bounded_config(up: &str) -> String {
    let cfg = standard_config(0, 0, up, "");
    let with = cfg.replacen(
        "cookie_name = \"gw_session\"\n",
        "cookie_name = \"gw_session\"\nmax_per_user = 2\n",
        1,
    );
    assert_ne!(
        with, cfg,
        "the standard config has a [sessions] cookie_name line"
    );
    with
}

async fn status(g: &Gateway, svc: &str, token: &str) -> u16 {
    client()
        .get(g.url("/"))
        .header("host", host(svc))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A login through the `auth` service (a session issuer); returns the minted token.
async fn login(g: &Gateway, user: &str) -> String {
    let res = client()
        .get(g.url(&format!("/login?user={user}&roles=user")))
        .header("host", host("auth"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.headers()["x-gateway-session-token"]
        .to_str()
        .unwrap()
        .to_owned()
}

async fn listed(g: &Gateway, user: &str) -> usize {
    g.admin_json(&format!("/v1/users/{user}/sessions")).await["sessions"]
        .as_array()
        .unwrap()
        .len()
}

/// Case 40, memory store: with `max_per_user = 2`, a third login through the admin API revokes
/// the first (401 from then on), the other two work; logins through a session issuer are
/// bounded the same way, and other users are untouched.
#[tokio::test]
async fn case_40_a_third_login_revokes_the_oldest_session() {
    let up = Upstream::start().await;
    let g = Gateway::start(&bounded_config(&up.url()), 0, 0);

    let other = create_session(&g, "bob", &["user"], None).await;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(create_session(&g, "alice", &["user"], None).await);
    }
    assert_eq!(
        status(&g, "data", &tokens[0]).await,
        401,
        "the oldest session outlived the bound"
    );
    for t in &tokens[1..] {
        assert_eq!(status(&g, "data", t).await, 200);
    }
    assert_eq!(listed(&g, "alice").await, 2);
    assert_eq!(status(&g, "data", &other).await, 200);

    // Logins through the issuer create sessions through the same store.
    let mine = login(&g, "alice").await;
    assert_eq!(status(&g, "data", &tokens[1]).await, 401);
    assert_eq!(status(&g, "data", &tokens[2]).await, 200);
    assert_eq!(status(&g, "data", &mine).await, 200);
    let newest = login(&g, "alice").await;
    assert_eq!(status(&g, "data", &tokens[2]).await, 401);
    for t in [&mine, &newest, &other] {
        assert_eq!(status(&g, "data", t).await, 200);
    }
    assert_eq!(listed(&g, "alice").await, 2);
}

fn redis_config(up: &str, ws: &str) -> String {
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
shutdown_grace = "1s"

[sessions]
store = "redis"
redis_url_env = "TEST_REDIS_URL"
redis_prefix = "bound"
cache_ttl = "30s"
max_per_user = 2

[log]
format = "json"
level = "info"

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

async fn ready(g: &Gateway) {
    let start = Instant::now();
    loop {
        let ok = client()
            .get(g.admin_url("/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ok {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{}", g.log());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn open_ws(
    g: &Gateway,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let mut req = format!("ws://{}/chat", host("ws"))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", g.http))
        .await
        .unwrap();
    let (ws, res) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    assert_eq!(res.status(), 101);
    ws
}

/// Case 40, Redis, two replicas: the eviction of the oldest session is a revocation like any
/// other. A replica that cached the session refuses it at once (it was published on the
/// revocation channel), and its WebSockets close, on the replica that evicted it and on the
/// other one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn case_40_evicting_the_oldest_reaches_every_replica_and_closes_its_websockets() {
    let Some(redis) = RedisServer::start(None, &[]) else {
        return;
    };
    let up = Upstream::start().await;
    let ws = ws_echo().await;
    let cfg = redis_config(&up.url(), &format!("http://{ws}"));
    let url = redis.url();
    let a = Gateway::start_with_env(&cfg, 0, 0, &[("TEST_REDIS_URL", &url)]);
    let b = Gateway::start_with_env(&cfg, 0, 0, &[("TEST_REDIS_URL", &url)]);
    ready(&a).await;
    ready(&b).await;

    let first = create_session(&a, "carol", &["user"], None).await;
    // Twice on B: the second answer comes from B's warm cache.
    for _ in 0..2 {
        assert_eq!(status(&b, "private", &first).await, 200);
    }
    let mut on_a = open_ws(&a, &first).await;
    let mut on_b = open_ws(&b, &first).await;
    for ws in [&mut on_a, &mut on_b] {
        ws.send(Message::text("hello")).await.unwrap();
        let echo = tokio::time::timeout(Duration::from_secs(2), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echo, Message::text("hello"));
    }

    let second = create_session(&a, "carol", &["user"], None).await;
    assert_eq!(status(&b, "private", &first).await, 200, "within the bound");
    let third = create_session(&a, "carol", &["user"], None).await;
    let done = Instant::now();
    assert_eq!(status(&a, "private", &first).await, 401);
    while status(&b, "private", &first).await != 401 {
        assert!(
            done.elapsed() < Duration::from_secs(1),
            "replica B kept serving the evicted session from its cache"
        );
    }
    for (name, ws) in [("A", &mut on_a), ("B", &mut on_b)] {
        let end = tokio::time::timeout(Duration::from_secs(2), ws.next())
            .await
            .unwrap_or_else(|_| {
                panic!("the WebSocket on {name} stayed open after its session was evicted")
            });
        assert!(!matches!(end, Some(Ok(Message::Text(_)))), "{end:?}");
    }
    for g in [&a, &b] {
        assert_eq!(status(g, "private", &second).await, 200);
        assert_eq!(status(g, "private", &third).await, 200);
    }
    assert_eq!(listed(&b, "carol").await, 2);
}
