//! A test HTTPS server: a fresh private CA whose leaf names `127.0.0.1` and `localhost`, and a
//! loop serving an axum router over it (HTTP/1.1 and h2). Shared by session-core's JWKS and
//! webhook tests and by gateway-bin's identity-provider tests (`#[path]` include in
//! tests/common/identity.rs).

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A private CA's PEM and an acceptor presenting a leaf it signed.
pub(crate) struct TestCa {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) ca_pem: String,
}

/// A fresh CA named `name`, and a leaf for `127.0.0.1` and `localhost`.
pub(crate) fn private_ca(name: &str) -> TestCa {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".into()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
        )
        .unwrap();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TestCa {
        acceptor: TlsAcceptor::from(Arc::new(tls)),
        ca_pem: ca_cert.pem(),
    }
}

/// Serves `app` over TLS on `listener` until the runtime ends. A client that does not trust
/// the CA ends its handshake: nothing is served to it.
#[allow(dead_code)] // gateway-bin's include serves with its own hyper service
pub(crate) fn serve(listener: TcpListener, acceptor: TlsAcceptor, app: axum::Router) {
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let svc = hyper_util::service::TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
            });
        }
    });
}
