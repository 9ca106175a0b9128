//! Case 27 at the socket level, without an ACME server: `acme-tls/1` handshakes get the
//! challenge certificate only while one is pending, and never any HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use cert_core::{CertResolver, ChallengeResponder, ACME_TLS_ALPN};
use common::{presented_leaf, tls_connect, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NAME: &str = "app.gateway.test";
/// id-pe-acmeIdentifier (RFC 8737).
const ACME_IDENTIFIER_OID: &str = "1.3.6.1.5.5.7.1.31";

#[tokio::test]
async fn acme_tls_alpn_gets_challenge_cert_only_while_pending_and_no_http() {
    let resolver = Arc::new(CertResolver::new().unwrap());
    let real = cert_core::self_signed(&[NAME.to_owned()]).unwrap();
    resolver.insert(NAME, real.clone());
    let server = TestServer::start(resolver.clone(), ChallengeResponder::new()).await;

    // No challenge pending: an acme-tls/1 handshake is refused.
    assert!(tls_connect(server.tls_port, NAME, None, &[ACME_TLS_ALPN])
        .await
        .is_err());

    let digest = [0x5au8; 32];
    resolver.set_tls_alpn_challenge(NAME, &digest).unwrap();
    let mut stream = tls_connect(server.tls_port, NAME, None, &[ACME_TLS_ALPN])
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(ACME_TLS_ALPN));
    let leaf = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    let ext = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == ACME_IDENTIFIER_OID)
        .expect("acmeIdentifier extension");
    assert!(ext.critical);
    // DER OCTET STRING (0x04, 32) wrapping the digest.
    assert_eq!(&ext.value[2..], &digest);

    // The server closes the connection without serving HTTP on it.
    let _ = stream
        .write_all(b"GET / HTTP/1.1\r\nhost: app.gateway.test\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf).await;
    assert!(buf.is_empty(), "no HTTP on an acme-tls/1 connection");
    assert_eq!(server.https_requests.load(Ordering::SeqCst), 0);
    assert!(server.acme_tls_conns.load(Ordering::SeqCst) >= 1);

    // Meanwhile normal ALPN (and acme-tls/1 offered alongside others) gets the real cert.
    for alpn in [&[&b"h2"[..]][..], &[b"http/1.1", ACME_TLS_ALPN]] {
        let leaf = presented_leaf(server.tls_port, NAME, alpn).await.unwrap();
        assert_eq!(leaf, real.cert[0]);
    }

    // Withdrawn: refused again.
    resolver.clear_tls_alpn_challenge(NAME);
    assert!(tls_connect(server.tls_port, NAME, None, &[ACME_TLS_ALPN])
        .await
        .is_err());
}
