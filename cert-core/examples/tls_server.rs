//! A minimal HTTPS server on cert-core: a dev-CA certificate, the resolver and the server
//! config. Used to measure handshakes, e.g. `openssl s_time -connect 127.0.0.1:8443 -new`.
//!
//! Run with `cargo run -p cert-core --release --example tls_server -- 8443`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use cert_core::{is_acme_tls_alpn, server_config, CertResolver, DevCa, TlsConfig};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8443);
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = DevCa::load_or_create(dir.path().join("ca")).expect("dev ca");
    let resolver = Arc::new(CertResolver::new().expect("resolver"));
    let cert = ca.issue_loaded(&["localhost".to_owned()]).expect("issue");
    resolver.insert_loaded(&cert);
    resolver.set_default(Some(cert.key.clone()));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(
        server_config(resolver, &TlsConfig::default()).expect("config"),
    ));
    let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    eprintln!(
        "listening on https://127.0.0.1:{port} (pid {})",
        std::process::id()
    );
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            if is_acme_tls_alpn(tls.get_ref().1) {
                return;
            }
            let svc = service_fn(|_req| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello\n"))))
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        });
    }
}
