//! Proxy behaviour on real sockets: failures (502, 504, 413), balancing and passive health,
//! HTTP/2 both sides.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use route_core::{Body, Proxy, ProxyConfig, RouteTable};
use tokio::net::{TcpSocket, TcpStream};

#[tokio::test]
async fn refused_connect_is_502() {
    let proxy = Proxy::new(ProxyConfig::default());
    let gw = gateway_for(
        "down.example.com",
        proxy
            .service(config("down", vec![dead_url().await]))
            .unwrap(),
    )
    .await;
    let a = get(gw.addr, "down.example.com", "/", &[]).await;
    assert_eq!((a.status, a.code().as_str()), (502, "upstream-unreachable"));
}

#[tokio::test]
async fn slow_response_headers_are_504() {
    let up = upstream("slow").await;
    let proxy = Proxy::new(ProxyConfig::default());
    let mut cfg = config("slow", vec![up.url()]);
    cfg.response_timeout = Duration::from_millis(300);
    let gw = gateway_for("slow.example.com", proxy.service(cfg).unwrap()).await;
    let started = Instant::now();
    let a = get(gw.addr, "slow.example.com", "/slow", &[]).await;
    assert_eq!((a.status, a.code().as_str()), (504, "upstream-timeout"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // A fast path on the same route is unaffected.
    assert_eq!(
        get(gw.addr, "slow.example.com", "/fast", &[]).await.status,
        200
    );
}

/// An upstream whose accept queue is full never completes the handshake: connect timeout.
#[tokio::test]
async fn connect_timeout_is_504() {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let _listener = socket.listen(0).unwrap();
    // Fill the accept queue; nobody ever accepts.
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await
        {
            fillers.push(s);
        }
    }
    let proxy = Proxy::new(ProxyConfig::default());
    let mut cfg = config("blackhole", vec![format!("http://{addr}").parse().unwrap()]);
    cfg.connect_timeout = Duration::from_millis(300);
    let gw = gateway_for("bh.example.com", proxy.service(cfg).unwrap()).await;
    let started = Instant::now();
    let a = get(gw.addr, "bh.example.com", "/", &[]).await;
    assert_eq!(
        (a.status, a.code().as_str()),
        (504, "upstream-connect-timeout"),
        "{a:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn round_robin_across_upstreams() {
    let (a, b, c) = (
        upstream("a").await,
        upstream("b").await,
        upstream("c").await,
    );
    let proxy = Proxy::new(ProxyConfig::default());
    let gw = gateway_for("rr.example.com", route(&proxy, "rr", &[&a, &b, &c])).await;
    let mut order = Vec::new();
    for _ in 0..6 {
        order.push(
            get(gw.addr, "rr.example.com", "/", &[]).await.headers["x-upstream"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(order, ["a", "b", "c", "a", "b", "c"]);
}

#[tokio::test]
async fn passive_health_skips_then_retries_a_dead_upstream() {
    let live = upstream("live").await;
    let dead = dead_url().await;
    let proxy = Proxy::new(ProxyConfig::default()).with_down_time(Duration::from_millis(400));
    let gw = gateway_for(
        "ph.example.com",
        proxy
            .service(config("ph", vec![dead.clone(), live.url()]))
            .unwrap(),
    )
    .await;

    // The first request goes to the dead one (round-robin starts there): 502, marked down.
    assert_eq!(get(gw.addr, "ph.example.com", "/", &[]).await.status, 502);
    // While it is down, everything goes to the live one.
    for _ in 0..6 {
        assert_eq!(get(gw.addr, "ph.example.com", "/", &[]).await.status, 200);
    }
    assert_eq!(live.seen().len(), 6);
    // After the down time it is tried again (and fails again).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut statuses = Vec::new();
    for _ in 0..2 {
        statuses.push(get(gw.addr, "ph.example.com", "/", &[]).await.status);
    }
    assert!(statuses.contains(&502), "{statuses:?}");

    // All upstreams down: one is still tried instead of failing without trying.
    let late = upstream("late").await;
    let mut t = RouteTable::new();
    let svc = proxy.service(config("only", vec![dead.clone()])).unwrap();
    t.insert("only.example.com", svc).unwrap();
    gw.table.store(std::sync::Arc::new(t));
    assert_eq!(get(gw.addr, "only.example.com", "/", &[]).await.status, 502);
    assert_eq!(
        get(gw.addr, "only.example.com", "/", &[]).await.code(),
        "upstream-unreachable"
    );
    drop(late);
}

#[tokio::test]
async fn declared_body_over_limit_is_413_before_upstream() {
    let up = upstream("up").await;
    let proxy = Proxy::new(ProxyConfig::default());
    let mut cfg = config("limited", vec![up.url()]);
    cfg.body_limit = Some(1024);
    let gw = gateway_for("l.example.com", proxy.service(cfg).unwrap()).await;

    let req = Request::post("/")
        .header("host", "l.example.com")
        .body(Full::new(Bytes::from(vec![1u8; 2048])))
        .unwrap();
    let a = send(gw.addr, req).await;
    assert_eq!((a.status, a.code().as_str()), (413, "payload-too-large"));
    assert!(up.seen().is_empty());

    let req = Request::post("/")
        .header("host", "l.example.com")
        .body(Full::new(Bytes::from(vec![1u8; 1024])))
        .unwrap();
    assert_eq!(send(gw.addr, req).await.status, 200);
    assert_eq!(up.seen()[0].body_len, 1024);
}

/// A chunked body that passes the limit mid-way: the upstream never gets a complete body,
/// the client gets 413.
#[tokio::test]
async fn streamed_body_over_limit_is_cut_off() {
    let up = upstream("up").await;
    let proxy = Proxy::new(ProxyConfig::default());
    let mut cfg = config("limited", vec![up.url()]);
    cfg.body_limit = Some(64 * 1024);
    let gw = gateway_for("l.example.com", proxy.service(cfg).unwrap()).await;

    let chunk = Bytes::from(vec![7u8; 16 * 1024]);
    let frames = futures_util::stream::iter(
        (0..16).map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone()))),
    );
    let req = Request::post("/")
        .header("host", "l.example.com")
        .body(StreamBody::new(frames))
        .unwrap();
    let a = send(gw.addr, req).await;
    assert_eq!((a.status, a.code().as_str()), (413, "payload-too-large"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    for s in up.seen() {
        assert!(
            !s.body_complete || s.body_len <= 64 * 1024,
            "upstream got a complete oversized body: {}",
            s.body_len
        );
    }
}

/// HTTP/2 (prior knowledge) to the upstream, and HTTP/2 from the client.
#[tokio::test]
async fn http2_both_sides() {
    let up = upstream("h2").await;
    let proxy = Proxy::new(ProxyConfig::default());
    let mut cfg = config("h2", vec![up.url()]);
    cfg.http2 = true;
    let mut t = RouteTable::new();
    t.insert("h2.example.com", proxy.service(cfg).unwrap())
        .unwrap();
    let h1 = upstream("h1").await;
    t.insert("h1.example.com", route(&proxy, "h1", &[&h1]))
        .unwrap();
    let gw = gateway(t).await;

    // HTTP/1.1 client -> HTTP/2 upstream, several requests on one pooled connection.
    for i in 0..3 {
        let req = Request::post(format!("/h2/{i}?q=1"))
            .header("host", "h2.example.com")
            .header("te", "trailers")
            .body(Full::new(Bytes::from_static(b"hello")))
            .unwrap();
        let a = send(gw.addr, req).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.text(), "h2 5");
    }
    let seen = up.seen();
    assert!(
        seen.iter().all(|s| s.version == http::Version::HTTP_2),
        "{seen:?}"
    );
    assert_eq!(seen[2].uri, "/h2/2?q=1");
    assert_eq!(seen[0].headers["x-forwarded-host"], "h2.example.com");
    assert_eq!(up.conns(), 1, "HTTP/2 upstream connection is shared");
    // `TE: trailers` (gRPC) survives to HTTP/2 upstreams only.
    assert_eq!(seen[0].headers["te"], "trailers");
    assert!(seen[0].headers.get("host").is_none());

    // HTTP/2 client (prior knowledge) -> HTTP/1.1 upstream: Host comes from :authority.
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get("http://H1.example.com/from-h2")
        .body(Body::empty())
        .unwrap();
    let res = tx.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"h1 0");
    let s = &h1.seen()[0];
    assert_eq!(s.version, http::Version::HTTP_11);
    assert_eq!(s.headers["host"], "H1.example.com");
    assert_eq!(s.headers["x-forwarded-host"], "h1.example.com");
    assert_eq!(s.uri, "/from-h2");
}
