//! HTTP/1.1 upstream connection reuse on real sockets: sequential requests share one pooled
//! connection, an upstream that closes idle connections costs no failed request, and a
//! response abandoned before its end is never reused.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use route_core::{Proxy, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test]
async fn sequential_requests_share_one_upstream_connection() {
    let up = upstream("a").await;
    let proxy = Proxy::new(ProxyConfig::default());
    let gw = gateway(host_table(&proxy, &[("a.example.com", &up)])).await;
    for i in 0..20 {
        let a = get(gw.addr, "a.example.com", &format!("/n/{i}"), &[]).await;
        assert_eq!(a.status, 200, "{}", a.text());
    }
    assert_eq!(up.seen().len(), 20);
    assert_eq!(up.conns(), 1, "every request reused the pooled connection");
    let paths = up.paths();
    assert_eq!(paths.first().map(String::as_str), Some("/n/0"));
    assert_eq!(paths.last().map(String::as_str), Some("/n/19"));
}

/// An upstream that answers one request per connection, keep-alive in its headers, and then
/// closes the connection after `linger`: the pool holds a connection that is closing or closed
/// when the next request comes.
async fn closing_upstream(linger: Duration) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let counted = conns.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                tokio::time::sleep(linger).await;
                // Dropping the socket closes it without a word, as an idle timeout does.
            });
        }
    });
    (addr, conns)
}

#[tokio::test]
async fn upstream_closing_idle_connections_costs_no_request() {
    for linger in [Duration::ZERO, Duration::from_millis(20)] {
        let (addr, conns) = closing_upstream(linger).await;
        let proxy = Proxy::new(ProxyConfig::default());
        let url = format!("http://{addr}").parse().unwrap();
        let gw = gateway_for(
            "c.example.com",
            proxy.service(config("c", vec![url])).unwrap(),
        )
        .await;
        for i in 0..10 {
            let a = get(gw.addr, "c.example.com", "/", &[]).await;
            assert_eq!(
                a.status,
                200,
                "request {i}, linger {linger:?}: {}",
                a.text()
            );
            assert_eq!(a.text(), "ok");
            // Give the close time to arrive (or not) before the next checkout.
            tokio::time::sleep(Duration::from_millis(i % 3 * 15)).await;
        }
        assert_eq!(
            conns.load(Ordering::SeqCst),
            10,
            "one connection per request"
        );
    }
}

/// An upstream whose `/big` answer is larger than one read and never ends quickly.
async fn big_upstream() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let counted = conns.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| {
                        let big = req.uri().path() == "/big";
                        async move {
                            let body = if big {
                                bytes::Bytes::from(vec![b'x'; 4 << 20])
                            } else {
                                bytes::Bytes::from_static(b"small")
                            };
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                http_body_util::Full::new(body),
                            ))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, conns)
}

#[tokio::test]
async fn a_response_abandoned_before_its_end_is_not_reused() {
    let (addr, conns) = big_upstream().await;
    let proxy = Proxy::new(ProxyConfig::default());
    let url = format!("http://{addr}").parse().unwrap();
    let gw = gateway_for(
        "b.example.com",
        proxy.service(config("b", vec![url])).unwrap(),
    )
    .await;
    // Read only the head of a 4 MiB answer, then hang up.
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nhost: b.example.com\r\n\r\n")
        .await
        .unwrap();
    let mut head = vec![0u8; 1024];
    let n = s.read(&mut head).await.unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &head[..n]);
    drop(s);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The next requests get a clean connection: never the half-read one.
    for _ in 0..3 {
        let a = get(gw.addr, "b.example.com", "/small", &[]).await;
        assert_eq!((a.status, a.text().as_str()), (200, "small"));
    }
    assert_eq!(
        conns.load(Ordering::SeqCst),
        2,
        "one connection for the abandoned answer, one reused for the rest"
    );
}

#[tokio::test]
async fn idle_timeout_and_max_idle_bound_the_pool() {
    for cfg in [
        ProxyConfig {
            pool_idle_timeout: Duration::ZERO,
            ..ProxyConfig::default()
        },
        ProxyConfig {
            pool_max_idle_per_host: 0,
            ..ProxyConfig::default()
        },
    ] {
        let up = upstream("a").await;
        let proxy = Proxy::new(cfg.clone());
        let gw = gateway(host_table(&proxy, &[("a.example.com", &up)])).await;
        for _ in 0..4 {
            let a = get(gw.addr, "a.example.com", "/", &[]).await;
            assert_eq!(a.status, 200, "{}", a.text());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(up.conns(), 4, "no connection was kept idle with {cfg:?}");
    }
}
