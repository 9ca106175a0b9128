//! WebSocket and Upgrade on real sockets: an echo through the proxy, SECURITY-CASES 20 and 21.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use route_core::{Proxy, ProxyConfig, RouteTable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

async fn ws_echo_upstream() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let echo = ws_echo_upstream().await;
    let proxy = Proxy::new(ProxyConfig::default());
    let mut cfg = config("ws", vec![format!("http://{echo}").parse().unwrap()]);
    cfg.websocket = true;
    let mut t = RouteTable::new();
    t.insert("ws.example.com", proxy.service(cfg).unwrap())
        .unwrap();
    let gw = gateway(t).await;

    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let (mut ws, res) = tokio_tungstenite::client_async("ws://ws.example.com/chat", stream)
        .await
        .unwrap();
    assert_eq!(res.status(), 101);
    for i in 0..5 {
        ws.send(Message::text(format!("hello {i}"))).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(2), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(got, Message::text(format!("hello {i}")));
    }
    let big = vec![9u8; 256 * 1024];
    ws.send(Message::binary(big.clone())).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(2), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.into_data().len(), big.len());
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn websocket_refused_on_routes_without_it() {
    let echo = ws_echo_upstream().await;
    let proxy = Proxy::new(ProxyConfig::default());
    let mut t = RouteTable::new();
    t.insert(
        "nows.example.com",
        proxy
            .service(config(
                "nows",
                vec![format!("http://{echo}").parse().unwrap()],
            ))
            .unwrap(),
    )
    .unwrap();
    let gw = gateway(t).await;
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let err = tokio_tungstenite::client_async("ws://nows.example.com/chat", stream).await;
    assert!(
        err.is_err(),
        "an upgrade went through a route without websocket"
    );
}

/// SECURITY-CASES 20: `Upgrade: h2c` is stripped and never answered with 101.
#[tokio::test]
async fn case20_h2c_upgrade_is_stripped() {
    let up = upstream("up").await;
    let proxy = Proxy::new(ProxyConfig::default());
    let mut cfg = config("a", vec![up.url()]);
    cfg.websocket = true;
    let mut t = RouteTable::new();
    t.insert("a.example.com", proxy.service(cfg).unwrap())
        .unwrap();

    // An upstream that answers 101 to anything: the proxy must not relay a switch.
    let evil = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let evil_addr = evil.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = evil.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
                    .await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            });
        }
    });
    let mut cfg = config("evil", vec![format!("http://{evil_addr}").parse().unwrap()]);
    cfg.websocket = true;
    t.insert("evil.example.com", proxy.service(cfg).unwrap())
        .unwrap();
    let gw = gateway(t).await;

    let r = raw(
        gw.addr,
        b"GET / HTTP/1.1\r\nHost: a.example.com\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\
          HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    )
    .await;
    assert!(!statuses(&r).contains(&101), "{r}");
    assert_eq!(statuses(&r).first(), Some(&200), "{r}");
    let seen = up.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].headers.get("upgrade").is_none());
    assert!(seen[0].headers.get("http2-settings").is_none());
    assert!(seen[0].headers.get("connection").is_none());

    let r = raw(
        gw.addr,
        b"GET / HTTP/1.1\r\nHost: evil.example.com\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    .await;
    assert!(!statuses(&r).contains(&101), "{r}");
    assert_eq!(statuses(&r).first(), Some(&502), "{r}");
}

/// SECURITY-CASES 21: an `Upgrade: websocket` request with a body, answered 200 by the
/// upstream: no tunnel (the body's bytes are never read as a request), and that upstream
/// connection is closed, not reused.
#[tokio::test]
async fn case21_failed_upgrade_gets_no_tunnel_and_no_reuse() {
    let up = upstream("up").await;
    let proxy = Proxy::new(ProxyConfig::default());
    let mut cfg = config("a", vec![up.url()]);
    cfg.websocket = true;
    let mut t = RouteTable::new();
    t.insert("a.example.com", proxy.service(cfg).unwrap())
        .unwrap();
    let gw = gateway(t).await;

    // Warm the pool so that a wrongly pooled upgrade connection would be picked up.
    assert_eq!(
        get(gw.addr, "a.example.com", "/warm", &[]).await.status,
        200
    );

    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: a.example.com\r\n\r\n";
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: a.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: {}\r\n\r\n{smuggled}",
        smuggled.len()
    );
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    // Then raw bytes that a tunnel would carry to the upstream as a new request.
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.write_all(b"GET /after HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
    let out = String::from_utf8_lossy(&out);
    assert_eq!(statuses(&out), [200, 200], "{out}");

    // More requests on the pool.
    for _ in 0..3 {
        assert_eq!(
            get(gw.addr, "a.example.com", "/later", &[]).await.status,
            200
        );
    }
    let seen = up.seen();
    let paths: Vec<_> = seen.iter().map(|s| s.uri.as_str()).collect();
    assert!(!paths.contains(&"/smuggled"), "{paths:?}");
    let ws = seen.iter().find(|s| s.uri == "/ws").unwrap();
    assert_eq!(ws.body, smuggled.as_bytes(), "the body stays a body");
    assert_eq!(ws.headers["upgrade"], "websocket");
    let reused: Vec<_> = seen
        .iter()
        .filter(|s| s.conn == ws.conn && s.uri != "/ws")
        .map(|s| s.uri.clone())
        .collect();
    assert!(
        reused.is_empty(),
        "upgrade connection was reused for {reused:?}"
    );
    // And it was closed.
    for _ in 0..50 {
        if up.is_closed(ws.conn) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the upstream connection of the failed upgrade stayed open");
}
