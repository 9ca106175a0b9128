//! Real servers for the socket-level tests: recording upstreams and the composed gateway
//! stack (HopByHopLayer -> identity injection -> Router -> ProxyService).
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use route_core::{
    Body, ConnectionInfo, HopByHopLayer, Proxy, ProxyService, RouteTable, Router, SharedRouteTable,
    UpstreamConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::{ServiceBuilder, ServiceExt};

/// What a recording upstream saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub version: Version,
    pub headers: HeaderMap,
    /// The first 64 KiB of the body.
    pub body: Vec<u8>,
    pub body_len: u64,
    /// Whether the body was read to its end without error.
    pub body_complete: bool,
    /// The request trailers (HTTP/1 chunked or HTTP/2), merged when there were several frames.
    pub trailers: HeaderMap,
    /// Which upstream connection carried it.
    pub conn: usize,
}

#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub name: &'static str,
    seen: Arc<Mutex<Vec<Seen>>>,
    conns: Arc<AtomicUsize>,
    closed: Arc<Mutex<HashSet<usize>>>,
}

impl Upstream {
    pub fn url(&self) -> Uri {
        format!("http://{}", self.addr).parse().unwrap()
    }
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }
    pub fn paths(&self) -> Vec<String> {
        self.seen.lock().iter().map(|s| s.uri.clone()).collect()
    }
    pub fn conns(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }
    pub fn is_closed(&self, conn: usize) -> bool {
        self.closed.lock().contains(&conn)
    }
}

async fn record(
    name: &'static str,
    seen: Arc<Mutex<Vec<Seen>>>,
    conn: usize,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, mut body) = req.into_parts();
    let mut kept = Vec::new();
    let mut len = 0u64;
    let mut complete = true;
    let mut trailers = HeaderMap::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(t) = f.trailers_ref() {
                    for (k, v) in t {
                        trailers.append(k, v.clone());
                    }
                }
                if let Some(d) = f.data_ref() {
                    len += d.len() as u64;
                    if kept.len() < 65536 {
                        kept.extend_from_slice(&d[..d.len().min(65536 - kept.len())]);
                    }
                }
            }
            Err(_) => {
                complete = false;
                break;
            }
        }
    }
    let path = parts.uri.path().to_owned();
    seen.lock().push(Seen {
        method: parts.method.to_string(),
        uri: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        version: parts.version,
        headers: parts.headers.clone(),
        body: kept,
        body_len: len,
        body_complete: complete,
        trailers,
        conn,
    });
    if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let mut res = Response::new(Full::new(Bytes::from(format!("{name} {len}"))));
    res.headers_mut()
        .insert("x-upstream", HeaderValue::from_static(name));
    if path == "/hop-response" {
        let h = res.headers_mut();
        h.insert("connection", HeaderValue::from_static("x-secret-hop"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("proxy-authenticate", HeaderValue::from_static("Basic"));
        h.insert("trailer", HeaderValue::from_static("x-t"));
        h.insert("upgrade", HeaderValue::from_static("h2c"));
        h.insert("x-end-to-end", HeaderValue::from_static("kept"));
    }
    Ok(res)
}

/// A recording upstream speaking HTTP/1.1 and HTTP/2 (prior knowledge).
pub async fn upstream(name: &'static str) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = Upstream {
        addr: listener.local_addr().unwrap(),
        name,
        seen: Arc::default(),
        conns: Arc::default(),
        closed: Arc::default(),
    };
    let u = up.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let conn = u.conns.fetch_add(1, Ordering::SeqCst);
            let seen = u.seen.clone();
            let closed = u.closed.clone();
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req| record(name, seen.clone(), conn, req));
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
                closed.lock().insert(conn);
            });
        }
    });
    up
}

/// A port with nothing listening (connection refused).
pub async fn dead_url() -> Uri {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}").parse().unwrap()
}

pub fn config(route: &str, urls: Vec<Uri>) -> UpstreamConfig {
    let mut c = UpstreamConfig::new(route, urls);
    c.connect_timeout = Duration::from_secs(2);
    c.response_timeout = Duration::from_secs(5);
    c
}

pub fn route(proxy: &Proxy, name: &str, ups: &[&Upstream]) -> ProxyService {
    proxy
        .service(config(name, ups.iter().map(|u| u.url()).collect()))
        .unwrap()
}

/// Stands in for the session layer: drops client `x-hasura-*` and injects an identity.
fn inject_identity(mut req: Request<Incoming>) -> Request<Incoming> {
    let names: Vec<_> = req
        .headers()
        .keys()
        .filter(|k| k.as_str().starts_with("x-hasura-"))
        .cloned()
        .collect();
    for n in names {
        req.headers_mut().remove(n);
    }
    req.headers_mut()
        .insert("x-hasura-role", HeaderValue::from_static("user"));
    req.headers_mut()
        .insert("x-hasura-user-id", HeaderValue::from_static("42"));
    req
}

pub struct Gateway {
    pub addr: SocketAddr,
    pub table: SharedRouteTable<ProxyService>,
}

/// The composed stack on a real listener: HopByHopLayer -> identity -> Router -> proxy.
pub async fn gateway(table: RouteTable<ProxyService>) -> Gateway {
    let table: SharedRouteTable<ProxyService> = Arc::new(arc_swap::ArcSwap::from_pointee(table));
    let stack = ServiceBuilder::new()
        .layer(HopByHopLayer::new())
        .map_request(inject_identity as fn(Request<Incoming>) -> Request<Incoming>)
        .service(Router::new(table.clone()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, remote_addr)) = listener.accept().await else {
                return;
            };
            let info = ConnectionInfo {
                remote_addr,
                local_addr: addr,
                tls: false,
                sni: None,
            };
            let stack = stack.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(info.clone());
                    stack.clone().oneshot(req)
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Gateway { addr, table }
}

/// A parsed answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn code(&self) -> String {
        assert_eq!(self.headers["content-type"], "application/json", "{self:?}");
        // Bodies are `{"error":"…","code":"…"}`; no JSON crate needed to read the code.
        let text = self.text();
        assert!(text.starts_with("{\"error\":\""), "{text}");
        let start = text.find("\"code\":\"").expect("code field") + 8;
        let end = text[start..].find('"').unwrap() + start;
        text[start..end].to_owned()
    }
}

/// Sends one request over a fresh HTTP/1.1 connection (headers exactly as given).
pub async fn send<B>(addr: SocketAddr, req: Request<B>) -> Answer
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let res = tx.send_request(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// GET `path` with `Host: host` and extra headers.
pub async fn get(addr: SocketAddr, host: &str, path: &str, extra: &[(&str, &str)]) -> Answer {
    let mut b = Request::builder().uri(path).header("host", host);
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    send(addr, b.body(Body::empty()).unwrap()).await
}

/// Writes raw bytes and reads until the server closes (or 3 s pass).
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The status codes of every response in a raw HTTP/1.1 byte stream.
pub fn statuses(raw: &str) -> Vec<u16> {
    raw.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| raw.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

/// A gateway with one route: `pattern` to `service`.
pub async fn gateway_for(pattern: &str, service: ProxyService) -> Gateway {
    let mut t = RouteTable::new();
    t.insert(pattern, service).unwrap();
    gateway(t).await
}

pub fn host_table(proxy: &Proxy, routes: &[(&str, &Upstream)]) -> RouteTable<ProxyService> {
    let mut t = RouteTable::new();
    for (pattern, up) in routes {
        t.insert(pattern, route(proxy, pattern, &[up])).unwrap();
    }
    t
}
