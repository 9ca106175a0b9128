//! WebSocket tunnels stay under the listener's limits (SECURITY-CASES case 35), against the real
//! binary: a tunnel holds its connection permit until it closes, an idle tunnel is closed after
//! `tunnel_idle_timeout`, SIGTERM closes tunnels when `shutdown_grace` ends, and a revoked
//! session's tunnels are closed with the memory store too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;

/// Three connections at most, and `limits` appended to `[limits]`.
fn config(ws: std::net::SocketAddr, limits: &str) -> String {
    format!(
        r#"
[project]
domains = ["{DOMAIN}"]

[listen]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"

[limits]
header_read_timeout = "2s"
idle_timeout = "5s"
max_connections = 3
{limits}

[sessions]
cookie_name = "gw_session"

[log]
format = "json"
level = "info"

[[services]]
name = "ws"
upstreams = ["http://{ws}"]
allowed_roles = ["anonymous", "user"]
websocket = true
"#
    )
}

/// Opens a tunnel through the gateway, with a bearer token when given; `None` when the
/// gateway refused the connection or the upgrade.
async fn try_open(g: &Gateway, token: Option<&str>) -> Option<Ws> {
    let mut req = format!("ws://{}/chat", host("ws"))
        .into_client_request()
        .unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let stream = TcpStream::connect(("127.0.0.1", g.http)).await.unwrap();
    let open = tokio::time::timeout(
        Duration::from_secs(3),
        tokio_tungstenite::client_async(req, stream),
    );
    match open.await {
        Ok(Ok((ws, res))) if res.status() == 101 => Some(ws),
        _ => None,
    }
}

/// Opens a tunnel, retrying while the gateway still counts a connection that just ended (its
/// readiness probe's) for up to 2 s.
async fn open(g: &Gateway, token: Option<&str>) -> Ws {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if let Some(ws) = try_open(g, token).await {
            return ws;
        }
        assert!(Instant::now() < deadline, "the tunnel could not be opened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends a text message and waits up to 2 s for its echo.
async fn echo(ws: &mut Ws, text: &str) -> bool {
    if ws.send(Message::text(text)).await.is_err() {
        return false;
    }
    matches!(
        tokio::time::timeout(Duration::from_secs(2), ws.next()).await,
        Ok(Some(Ok(Message::Text(t)))) if t.as_str() == text
    )
}

/// Waits up to `within` for the tunnel to end; returns how long that took, or `None` if it is
/// still open.
async fn closed_within(ws: &mut Ws, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    loop {
        match tokio::time::timeout_at((start + within).into(), ws.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Text(t)))) => panic!("unexpected message {t}"),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => return Some(start.elapsed()),
        }
    }
}

/// Whether a plain HTTP request gets an answer (`false`: the connection was refused, closed
/// without a response).
fn served(g: &Gateway) -> bool {
    let res = raw(
        g.http,
        b"GET / HTTP/1.1\r\nHost: nowhere.example.test\r\nConnection: close\r\n\r\n",
    );
    status_of(&res) == 404
}

/// Case 35: with `max_connections = 3`, three open tunnels leave no room for a fourth
/// connection of any kind; closing one frees its slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_35_tunnels_hold_their_connection_permit() {
    let ws = ws_echo().await;
    let g = Gateway::start(&config(ws, ""), 0, 0);
    let mut tunnels = Vec::new();
    for i in 0..3 {
        let mut t = open(&g, None).await;
        assert!(echo(&mut t, &format!("hello {i}")).await);
        tunnels.push(t);
    }
    assert!(
        !served(&g),
        "a fourth connection was served while three tunnels were open"
    );
    assert!(
        try_open(&g, None).await.is_none(),
        "a fourth tunnel was opened"
    );
    // The open tunnels still work.
    for (i, t) in tunnels.iter_mut().enumerate() {
        assert!(echo(t, &format!("still {i}")).await);
    }
    // Closing one tunnel gives its slot back.
    let mut first = tunnels.remove(0);
    first.close(None).await.unwrap();
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(2);
    while !served(&g) {
        assert!(
            Instant::now() < deadline,
            "the closed tunnel's slot was not given back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Case 35: a tunnel with no bytes either way for `tunnel_idle_timeout` is closed; one that
/// keeps talking is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_35_idle_tunnels_are_closed() {
    let ws = ws_echo().await;
    let g = Gateway::start(&config(ws, "tunnel_idle_timeout = \"400ms\""), 0, 0);
    let mut t = open(&g, None).await;
    // Busy for three times the idle timeout: it stays open.
    let busy = Instant::now();
    let mut i = 0;
    loop {
        assert!(
            echo(&mut t, &format!("tick {i}")).await,
            "a busy tunnel was closed after {:?}",
            busy.elapsed()
        );
        if busy.elapsed() >= Duration::from_millis(1200) {
            break;
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Then quiet: closed about one idle timeout after the last echo.
    let last = Instant::now();
    closed_within(&mut t, Duration::from_secs(3))
        .await
        .expect("an idle tunnel was still open 3 s after its last byte");
    let took = last.elapsed();
    assert!(
        took >= Duration::from_millis(350),
        "closed too early: {took:?} after the last byte"
    );
    // Its slot is free again: three fresh tunnels fit.
    let mut fresh = Vec::new();
    for _ in 0..3 {
        fresh.push(open(&g, None).await);
    }
}

/// Case 35: SIGTERM lets open tunnels run during `shutdown_grace` and closes them when it
/// ends; the gateway then exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_35_sigterm_closes_tunnels_when_the_grace_period_ends() {
    let ws = ws_echo().await;
    let mut g = Gateway::start(&config(ws, "shutdown_grace = \"1500ms\""), 0, 0);
    let mut t = open(&g, None).await;
    assert!(echo(&mut t, "before").await);
    let pid = g.child.as_ref().unwrap().id();
    let term = Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        echo(&mut t, "during the grace period").await,
        "the tunnel was closed at once by SIGTERM, before shutdown_grace ended"
    );
    let took = closed_within(&mut t, Duration::from_secs(4))
        .await
        .map(|_| term.elapsed())
        .expect("the tunnel outlived shutdown_grace by more than 2.5 s");
    assert!(
        took >= Duration::from_millis(1400),
        "closed before the grace period ended: {took:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = g.child.as_mut().unwrap().try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the gateway did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
}

/// Case 35: with the memory store, revoking a session (or every session of its user) closes
/// its tunnels at once; other sessions' tunnels stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_35_revocation_closes_tunnels_with_the_memory_store() {
    let ws = ws_echo().await;
    let g = Gateway::start(&config(ws, ""), 0, 0);
    let one = create_session(&g, "alice", &["user"], None).await;
    let two = create_session(&g, "alice", &["user"], None).await;
    let other = create_session(&g, "bob", &["user"], None).await;
    let mut t_one = open(&g, Some(&one)).await;
    let mut t_two = open(&g, Some(&two)).await;
    let mut t_other = open(&g, Some(&other)).await;
    for t in [&mut t_one, &mut t_two, &mut t_other] {
        assert!(echo(t, "hello").await);
    }

    // One session.
    let res = client()
        .delete(g.admin_url("/v1/sessions/current"))
        .bearer_auth(ADMIN_SECRET)
        .header("x-gateway-session-token", &one)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    closed_within(&mut t_one, Duration::from_secs(2))
        .await
        .expect("the revoked session's tunnel stayed open");
    assert!(echo(&mut t_two, "still").await);

    // Every session of a user.
    let res = client()
        .delete(g.admin_url("/v1/users/alice/sessions"))
        .bearer_auth(ADMIN_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    closed_within(&mut t_two, Duration::from_secs(2))
        .await
        .expect("the revoked user's tunnel stayed open");
    assert!(echo(&mut t_other, "still").await);

    // The revoked token opens no new tunnel.
    assert!(try_open(&g, Some(&one)).await.is_none());
}

/// Case 35 over TLS: `wss://` tunnels hold their permit too, and share the cap with the plain
/// listener (two TLS tunnels and one plain one fill `max_connections = 3`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_35_tls_tunnels_hold_their_connection_permit() {
    let ws = ws_echo().await;
    let config = config(ws, "")
        .replace("[listen]\n", "[listen]\nhttps = \"127.0.0.1:0\"\n")
        .replace("[sessions]\n", "[tls]\nmode = \"dev-ca\"\n\n[sessions]\n");
    let g = Gateway::start(&config, 0, 0);
    let port = https_port(&g);
    let connector = dev_ca_connector(&g);
    // A wss tunnel, or `None` when the gateway refused the connection.
    let open_tls = || async {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let sni = rustls::pki_types::ServerName::try_from(host("ws")).unwrap();
        let stream = tokio::time::timeout(Duration::from_secs(3), connector.connect(sni, tcp))
            .await
            .ok()?
            .ok()?;
        let req = format!("wss://{}/chat", host("ws"))
            .into_client_request()
            .unwrap();
        let (ws, res) = tokio::time::timeout(
            Duration::from_secs(3),
            tokio_tungstenite::client_async(req, stream),
        )
        .await
        .ok()?
        .ok()?;
        (res.status() == 101).then_some(ws)
    };
    let mut secure = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while secure.len() < 2 {
        match open_tls().await {
            Some(mut t) => {
                assert!(t.send(Message::text("hi")).await.is_ok());
                assert!(matches!(
                    tokio::time::timeout(Duration::from_secs(2), t.next()).await,
                    Ok(Some(Ok(Message::Text(_))))
                ));
                secure.push(t);
            }
            None => assert!(Instant::now() < deadline, "no TLS tunnel"),
        }
    }
    let mut plain = open(&g, None).await;
    assert!(echo(&mut plain, "plain").await);
    assert!(
        open_tls().await.is_none(),
        "a fourth (TLS) tunnel was opened while three tunnels were open"
    );
    assert!(
        !served(&g),
        "a plain connection was served while three tunnels were open"
    );
    // Closing a TLS tunnel gives its slot back.
    let mut first = secure.remove(0);
    first.close(None).await.unwrap();
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(2);
    while !served(&g) {
        assert!(
            Instant::now() < deadline,
            "the closed tunnel's slot was not given back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
