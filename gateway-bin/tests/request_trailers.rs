//! SECURITY-CASES 39 against the running binary: request trailers under the configured identity
//! names, and hop-by-hop trailers, never reach an HTTP/2 upstream. The socket-level regression
//! test is route-core's `tests/hardening.rs` (default `x-hasura-` prefix); this one checks that
//! the gateway hands the proxy its *configured* prefix and names.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;

/// An upstream (HTTP/1.1 or h2c) that records each request's trailers.
async fn trailer_upstream() -> (String, Arc<Mutex<Vec<HeaderMap>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let s = s.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let s = s.clone();
                    async move {
                        let collected = req.into_body().collect().await.unwrap();
                        s.lock()
                            .push(collected.trailers().cloned().unwrap_or_default());
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), seen)
}

fn config(up: &str) -> String {
    format!(
        r#"
[project]
domains = ["{DOMAIN}"]

[listen]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"

[sessions]
identity_prefix = "x-auth-"
user_id_header = "x-auth-user"
role_header = "x-auth-role"
allowed_roles_header = "x-auth-roles"

[log]
format = "json"
level = "info"

[[services]]
name = "data"
upstreams = ["{up}"]
http2 = true
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_39_configured_identity_names_never_reach_the_upstream_in_trailers() {
    let (up, seen) = trailer_upstream().await;
    let g = Gateway::start(&config(&up), 0, 0);
    let req = format!(
        "POST /upload HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\
         Trailer: x-auth-user, x-checksum\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\
         x-auth-user: 1\r\nX_Auth_Roles: admin\r\nx-auth-role: admin\r\nX_AUTH_ROLE: admin\r\n\
         x-auth-anything: 1\r\nconnection: x-checksum\r\nte: gzip\r\n\
         proxy-authorization: Basic eA==\r\nx-checksum: abc\r\n\r\n",
        host("data")
    );
    let res = raw(g.http, req.as_bytes());
    assert_eq!(status_of(&res), 200, "{res}");
    let seen = seen.lock().clone();
    assert_eq!(seen.len(), 1);
    let names: Vec<&str> = seen[0].keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["x-checksum"], "{:?}", seen[0]);
}
