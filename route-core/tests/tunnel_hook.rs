//! A `TunnelHook` closes an open WebSocket tunnel from outside (the gateway's revocations).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use route_core::proxy::TunnelHook;
use route_core::{
    ConnectionInfo, HopByHopLayer, Proxy, ProxyConfig, RouteTable, Router, UpstreamConfig,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tower::{ServiceBuilder, ServiceExt};

/// What the test's "session layer" puts into each request, for the hook to read.
#[derive(Clone, Debug, PartialEq)]
struct Who(u32);

/// The close triggers the hook handed out, with who asked.
type Triggers = Arc<Mutex<Vec<(Who, oneshot::Sender<()>)>>>;

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
                    if msg.is_text() && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_hook_closes_the_tunnel_and_sees_the_request_extensions() {
    let echo = ws_echo_upstream().await;
    let proxy = Proxy::new(ProxyConfig::default());
    let mut cfg = UpstreamConfig::new("ws", vec![format!("http://{echo}").parse().unwrap()]);
    cfg.websocket = true;
    let mut t = RouteTable::new();
    t.insert("ws.example.com", proxy.service(cfg).unwrap())
        .unwrap();
    let table = Arc::new(arc_swap::ArcSwap::from_pointee(t));

    // The hook hands out one close future per upgrade; the test keeps the triggers.
    let triggers: Triggers = Arc::default();
    let dropped = Arc::new(Mutex::new(0usize));
    let hook = {
        let triggers = triggers.clone();
        let dropped = dropped.clone();
        TunnelHook::new(move |ext| {
            let who = ext.get::<Who>()?.clone();
            let (tx, rx) = oneshot::channel();
            triggers.lock().push((who, tx));
            let dropped = dropped.clone();
            struct Count(Arc<Mutex<usize>>);
            impl Drop for Count {
                fn drop(&mut self) {
                    *self.0.lock() += 1;
                }
            }
            let guard = Count(dropped);
            Some(Box::pin(async move {
                let _guard = guard;
                let _ = rx.await;
            }))
        })
    };
    let stack = ServiceBuilder::new()
        .layer(HopByHopLayer::new())
        .service(Router::new(table));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((stream, remote_addr)) = listener.accept().await {
            n += 1;
            let info = ConnectionInfo {
                remote_addr,
                local_addr: addr,
                tls: false,
                sni: None,
            };
            let (stack, hook) = (stack.clone(), hook.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(info.clone());
                    req.extensions_mut().insert(Who(n));
                    req.extensions_mut().insert(hook.clone());
                    stack.clone().oneshot(req)
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });

    let open = || async {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (ws, res) = tokio_tungstenite::client_async("ws://ws.example.com/chat", stream)
            .await
            .unwrap();
        assert_eq!(res.status(), 101);
        ws
    };
    let mut first = open().await;
    let mut second = open().await;
    for ws in [&mut first, &mut second] {
        ws.send(Message::text("ping")).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(2), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(got, Message::text("ping"));
    }
    let fired = {
        let mut t = triggers.lock();
        assert_eq!(
            t.iter().map(|(w, _)| w.clone()).collect::<Vec<_>>(),
            vec![Who(1), Who(2)]
        );
        t.remove(0)
    };
    fired.1.send(()).unwrap();
    // The first tunnel ends at once: the client sees the connection end.
    let end = tokio::time::timeout(Duration::from_secs(2), first.next())
        .await
        .expect("the tunnel was not closed");
    assert!(!matches!(end, Some(Ok(Message::Text(_)))), "{end:?}");
    // The second one still works.
    second.send(Message::text("still")).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(2), second.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got, Message::text("still"));
    // When the client closes the second, its close future is dropped too.
    second.close(None).await.unwrap();
    drop(second);
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while *dropped.lock() < 2 {
        assert!(std::time::Instant::now() < deadline, "close futures leaked");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
