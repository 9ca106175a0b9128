//! Case 27 at the socket level, without an ACME server: `acme-tls/1` handshakes get the
//! challenge certificate only while one is pending (in this process, or in the shared store
//! for a managed name), and never any HTTP; validation handshakes reach the store only within
//! the acceptor's bound.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cert_core::{
    Acceptor, BoxFuture, CertResolver, CertStore, ChallengeResponder, Error, MemoryStore, NameSet,
    StoredCert, ACME_TLS_ALPN,
};
use common::{presented_leaf, test_server_config, tls_connect, TestServer};
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

/// A store that counts how often a TLS-ALPN-01 challenge is looked up in it: the bound is
/// measured where Redis would feel it, not in the acceptor's own counter.
#[derive(Default)]
struct CountingStore {
    inner: MemoryStore,
    alpn_loads: AtomicUsize,
}

impl CertStore for CountingStore {
    fn load_cert<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<StoredCert>, Error>> {
        self.inner.load_cert(name)
    }
    fn store_cert<'a>(
        &'a self,
        name: &'a str,
        cert: &'a StoredCert,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.store_cert(name, cert)
    }
    fn list_names(&self) -> BoxFuture<'_, Result<Vec<String>, Error>> {
        self.inner.list_names()
    }
    fn load_account<'a>(
        &'a self,
        directory_url: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, Error>> {
        self.inner.load_account(directory_url)
    }
    fn store_account<'a>(
        &'a self,
        directory_url: &'a str,
        credentials: &'a [u8],
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.store_account(directory_url, credentials)
    }
    fn try_lease<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        self.inner.try_lease(name, owner, ttl)
    }
    fn release<'a>(&'a self, name: &'a str, owner: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.release(name, owner)
    }
    fn store_tls_alpn_challenge<'a>(
        &'a self,
        name: &'a str,
        cert: &'a StoredCert,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.store_tls_alpn_challenge(name, cert, ttl)
    }
    fn load_tls_alpn_challenge<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredCert>, Error>> {
        self.alpn_loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load_tls_alpn_challenge(name)
    }
    fn remove_tls_alpn_challenge<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.remove_tls_alpn_challenge(name)
    }
}

/// A TLS-ALPN-01 challenge certificate as the ordering replica stores it (RFC 8737 §3).
fn stored_challenge(name: &str, digest: &[u8; 32]) -> StoredCert {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key).unwrap();
    StoredCert {
        chain_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

const INTERVAL: Duration = Duration::from_millis(100);

/// Replica B: a resolver with the real certificate and no local challenge, and a listener
/// whose acceptor looks challenges up in `store` for [`NAME`].
async fn replica_b(store: Arc<CountingStore>) -> (TestServer, Acceptor) {
    let resolver = Arc::new(CertResolver::new().unwrap());
    resolver.insert(NAME, cert_core::self_signed(&[NAME.to_owned()]).unwrap());
    let acceptor = Acceptor::new(test_server_config(resolver.clone()))
        .with_shared_challenges(store, Arc::new(NameSet::new([NAME]).unwrap()), resolver)
        .with_lookup_limits(INTERVAL, Duration::from_secs(1));
    let server = TestServer::start_with(acceptor.clone(), ChallengeResponder::new()).await;
    (server, acceptor)
}

#[tokio::test]
async fn another_replicas_challenge_is_answered_from_the_store_while_pending() {
    let store = Arc::new(CountingStore::default());
    let (server, acceptor) = replica_b(store.clone()).await;
    let real = server_leaf(&server, &[b"h2"]).await;

    // Nothing pending: refused, after one lookup.
    assert!(tls_connect(server.tls_port, NAME, None, &[ACME_TLS_ALPN])
        .await
        .is_err());
    assert_eq!(store.alpn_loads.load(Ordering::SeqCst), 1);

    // Replica A publishes its challenge: B serves it, and no HTTP on that connection.
    let digest = [0x3cu8; 32];
    store
        .store_tls_alpn_challenge(
            NAME,
            &stored_challenge(NAME, &digest),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
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
    assert_eq!(&ext.value[2..], &digest);
    let _ = stream
        .write_all(b"GET / HTTP/1.1\r\nhost: app.gateway.test\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf).await;
    assert!(buf.is_empty(), "no HTTP on an acme-tls/1 connection");
    assert_eq!(server.https_requests.load(Ordering::SeqCst), 0);
    assert_eq!(server.acme_tls_conns.load(Ordering::SeqCst), 1);
    assert_eq!(acceptor.answered_from_store(), 1);

    // Meanwhile every other handshake gets the real certificate, without a lookup.
    let loads = store.alpn_loads.load(Ordering::SeqCst);
    for alpn in [&[&b"h2"[..]][..], &[b"http/1.1", ACME_TLS_ALPN], &[]] {
        assert_eq!(server_leaf(&server, alpn).await, real);
    }
    assert_eq!(store.alpn_loads.load(Ordering::SeqCst), loads);

    // The order ends (A removes it): refused again.
    store.remove_tls_alpn_challenge(NAME).await.unwrap();
    assert!(tls_connect(server.tls_port, NAME, None, &[ACME_TLS_ALPN])
        .await
        .is_err());

    // Something in the slot that is not this name's challenge is never served.
    for bad in [
        stored_challenge("other.gateway.test", &digest),
        StoredCert {
            chain_pem: "garbage".into(),
            key_pem: "garbage".into(),
        },
    ] {
        store
            .store_tls_alpn_challenge(NAME, &bad, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(tls_connect(server.tls_port, NAME, None, &[ACME_TLS_ALPN])
            .await
            .is_err());
    }
    assert_eq!(acceptor.answered_from_store(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_handshakes_without_a_pending_challenge_are_refused_and_bounded() {
    let store = Arc::new(CountingStore::default());
    let (server, acceptor) = replica_b(store.clone()).await;

    // An unmanaged name never reaches the store, even with a challenge stored under it.
    let evil = "evil.gateway.test";
    store
        .store_tls_alpn_challenge(
            evil,
            &stored_challenge(evil, &[1; 32]),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    for sni in [evil, "APP.gateway.test.evil", "localhost"] {
        for _ in 0..20 {
            assert!(tls_connect(server.tls_port, sni, None, &[ACME_TLS_ALPN])
                .await
                .is_err());
        }
    }
    assert_eq!(store.alpn_loads.load(Ordering::SeqCst), 0);

    // A flood for a managed name with nothing pending: 400 handshakes, 40 at a time, all
    // refused; the store sees at most one lookup per interval (plus the first).
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let port = server.tls_port;
    for worker in 0..40 {
        set.spawn(async move {
            for _ in 0..10 {
                let r = tls_connect(port, NAME, None, &[ACME_TLS_ALPN]).await;
                assert!(r.is_err(), "worker {worker}: validation handshake accepted");
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    let elapsed = started.elapsed();
    let loads = store.alpn_loads.load(Ordering::SeqCst);
    let bound = elapsed.as_millis() / INTERVAL.as_millis() + 2;
    eprintln!("400 validation handshakes in {elapsed:?}: {loads} store lookups (bound {bound})");
    assert!(loads >= 1, "the managed name was looked up");
    assert!(loads as u128 <= bound, "{loads} lookups in {elapsed:?}");
    assert_eq!(acceptor.store_lookups(), loads as u64);
    assert_eq!(acceptor.answered_from_store(), 0);
    assert_eq!(server.acme_tls_conns.load(Ordering::SeqCst), 0);
}

/// The leaf `server` presents for [`NAME`] with `alpn` (unverified).
async fn server_leaf(
    server: &TestServer,
    alpn: &[&[u8]],
) -> cert_core::rustls::pki_types::CertificateDer<'static> {
    presented_leaf(server.tls_port, NAME, alpn).await.unwrap()
}
