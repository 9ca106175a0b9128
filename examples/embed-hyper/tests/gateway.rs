//! The example gateway over real sockets: a client → the gateway on 127.0.0.1:0 → a tiny upstream
//! on 127.0.0.1:0 that echoes the identity and forwarded headers it received.

// Test helpers abort the test on failure, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use session_core::{MemoryStore, NewSession, SessionStore, StoreResolver, Token};
use tokio::net::TcpListener;

/// The upstream: answers `user=<x-hasura-user-id> role=<x-hasura-role> xff=<x-forwarded-for>
/// port=<x-forwarded-port>` (`-` for a missing header) and counts the requests it got.
async fn upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let counter = counter.clone();
            let echo = hyper::service::service_fn(move |req: Request<Incoming>| {
                counter.fetch_add(1, Ordering::SeqCst);
                let h = |name: &str| {
                    let v = req.headers().get(name);
                    v.map_or("-", |v| v.to_str().unwrap()).to_owned()
                };
                let body = format!(
                    "user={} role={} xff={} port={}",
                    h("x-hasura-user-id"),
                    h("x-hasura-role"),
                    h("x-forwarded-for"),
                    h("x-forwarded-port"),
                );
                async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), echo),
            );
        }
    });
    (addr, hits)
}

/// The example gateway in front of `upstream`: `data.localhost` for the `user` role only,
/// `public.localhost` for anyone (anonymous included).
async fn gateway(store: &MemoryStore, upstream: SocketAddr) -> SocketAddr {
    let url = format!("http://{upstream}");
    let routes: [(&str, &str, &[&str]); 2] = [
        ("data.localhost", &url, &["user"]),
        ("public.localhost", &url, &[]),
    ];
    let resolver = Arc::new(StoreResolver::new(Arc::new(store.clone())));
    let gateway = example_embed_hyper::gateway(resolver, &routes).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(example_embed_hyper::serve(listener, gateway));
    addr
}

async fn session(store: &MemoryStore, user: &str, roles: &[&str]) -> Token {
    let new = NewSession {
        user_id: user.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        ttl: Duration::from_secs(60),
        ..Default::default()
    };
    store.create(new).await.unwrap().0
}

fn bearer(token: &Token) -> (&'static str, String) {
    ("authorization", format!("Bearer {}", token.expose()))
}

/// `GET /` through the gateway at `addr`, with this `Host` and these headers.
async fn get(addr: SocketAddr, host: &str, headers: &[(&str, String)]) -> (StatusCode, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut req = Request::get(format!("http://{addr}/")).header("host", host);
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let res = client
        .request(req.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn a_valid_token_reaches_the_upstream_as_its_user_and_role() {
    let store = MemoryStore::new();
    let (up, hits) = upstream().await;
    let gw = gateway(&store, up).await;
    let alice = session(&store, "alice", &["user"]).await;

    let (status, body) = get(gw, "data.localhost", &[bearer(&alice)]).await;
    assert_eq!(status, StatusCode::OK);
    // The forwarded headers come from the `ConnectionInfo` that `serve` inserts.
    let port = gw.port();
    assert_eq!(
        body,
        format!("user=alice role=user xff=127.0.0.1 port={port}")
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // A `Connection` header naming the identity headers cannot remove the ones the session
    // layer injects: the hop-by-hop strip runs before it.
    let conn = ("connection", "x-hasura-user-id, x-hasura-role".to_owned());
    let (status, body) = get(gw, "data.localhost", &[bearer(&alice), conn]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("user=alice role=user "), "{body}");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn client_identity_headers_without_a_token_are_stripped() {
    let store = MemoryStore::new();
    let (up, hits) = upstream().await;
    let gw = gateway(&store, up).await;
    let forged = [
        ("x-hasura-user-id", "1".to_owned()),
        ("x-hasura-role", "user".to_owned()),
    ];

    // On a route open to anyone, the forged headers are replaced by the anonymous identity:
    // the session layer strips every client `x-hasura-*` header, and without a credential
    // it ignores the role request.
    let (status, body) = get(gw, "public.localhost", &forged).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("user=0 role=anonymous "), "{body}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // On the `user`-only route, the same request is anonymous too, so the role check refuses
    // it before the proxy: the forged `x-hasura-role: user` does not count.
    let (status, body) = get(gw, "data.localhost", &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body.contains("\"code\":\"authorization-required\""),
        "{body}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_role_the_route_does_not_allow_gets_401_and_never_reaches_the_upstream() {
    let store = MemoryStore::new();
    let (up, hits) = upstream().await;
    let gw = gateway(&store, up).await;
    let guest = session(&store, "bob", &["guest"]).await;

    let (status, body) = get(gw, "data.localhost", &[bearer(&guest)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body.contains("\"code\":\"authorization-required\""),
        "{body}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    // The same session is welcome where the route allows any role.
    let (status, body) = get(gw, "public.localhost", &[bearer(&guest)]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("user=bob role=guest "), "{body}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unknown_host_gets_a_json_404() {
    let store = MemoryStore::new();
    let (up, hits) = upstream().await;
    let gw = gateway(&store, up).await;
    let alice = session(&store, "alice", &["user"]).await;

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let req = Request::get(format!("http://{gw}/"))
        .header("host", "other.localhost")
        .header("authorization", format!("Bearer {}", alice.expose()))
        .body(Empty::new())
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        body,
        r#"{"error":"no route for this host","code":"unknown-host"}"#
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}
