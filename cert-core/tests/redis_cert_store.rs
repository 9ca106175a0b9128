//! `RedisCertStore` against a real `redis-server` on a free port (no persistence), killed when
//! the test ends. Without `redis-server` the test prints a loud skip message, except on CI
//! (`CI=true`) where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../../session-core/tests/support/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use cert_core::{CertStore, RedisCertStore, StoredCert};
use redis_server::RedisServer;

fn open(s: &RedisServer) -> RedisCertStore {
    RedisCertStore::open(&s.url(), "gw", Duration::from_secs(1)).unwrap()
}

#[tokio::test]
async fn two_replicas_share_certs_accounts_challenges_and_leases() {
    let Some(server) = RedisServer::start(Some("cert-pw"), &[]) else {
        return;
    };
    let (a, b) = (open(&server), open(&server));

    // Certificates: written by A, read by B; replaced as a pair.
    assert_eq!(b.load_cert("a.example.test").await.unwrap(), None);
    let first = StoredCert {
        chain_pem: "CHAIN-1".into(),
        key_pem: "KEY-1".into(),
    };
    a.store_cert("a.example.test", &first).await.unwrap();
    a.store_cert("b.example.test", &first).await.unwrap();
    assert_eq!(
        b.load_cert("a.example.test").await.unwrap(),
        Some(first.clone())
    );
    let second = StoredCert {
        chain_pem: "CHAIN-2".into(),
        key_pem: "KEY-2".into(),
    };
    b.store_cert("a.example.test", &second).await.unwrap();
    assert_eq!(a.load_cert("a.example.test").await.unwrap(), Some(second));
    assert_eq!(
        a.list_names().await.unwrap(),
        vec!["a.example.test", "b.example.test"]
    );

    // The ACME account, by directory URL.
    let dir = "https://acme.example/dir";
    assert_eq!(b.load_account(dir).await.unwrap(), None);
    a.store_account(dir, b"{\"key\":\"secret\"}").await.unwrap();
    assert_eq!(
        b.load_account(dir).await.unwrap().as_deref(),
        Some(&b"{\"key\":\"secret\"}"[..])
    );
    assert_eq!(b.load_account("https://other/dir").await.unwrap(), None);

    // A challenge published by A is answered by B, and expires.
    a.store_challenge("tok-1", "tok-1.thumb", Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(
        b.load_challenge("tok-1").await.unwrap().as_deref(),
        Some("tok-1.thumb")
    );
    a.store_challenge("tok-2", "tok-2.thumb", Duration::from_secs(30))
        .await
        .unwrap();
    b.remove_challenge("tok-2").await.unwrap();
    assert_eq!(a.load_challenge("tok-2").await.unwrap(), None);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(b.load_challenge("tok-1").await.unwrap(), None);

    // The order lease: one holder; the holder renews; a stranger cannot release it; it expires
    // when the holder dies.
    let ttl = Duration::from_millis(400);
    assert!(a
        .try_lease("a.example.test", "replica-a", ttl)
        .await
        .unwrap());
    assert!(!b
        .try_lease("a.example.test", "replica-b", ttl)
        .await
        .unwrap());
    b.release("a.example.test", "replica-b").await.unwrap();
    assert!(!b
        .try_lease("a.example.test", "replica-b", ttl)
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(a
        .try_lease("a.example.test", "replica-a", ttl)
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(250)).await;
    // Renewed at 250 ms, so still held at 500 ms.
    assert!(!b
        .try_lease("a.example.test", "replica-b", ttl)
        .await
        .unwrap());
    a.release("a.example.test", "replica-a").await.unwrap();
    assert!(b
        .try_lease("a.example.test", "replica-b", ttl)
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(a
        .try_lease("a.example.test", "replica-a", ttl)
        .await
        .unwrap());

    // Racing replicas: exactly one wins each name.
    let stores: Vec<RedisCertStore> = (0..8).map(|_| open(&server)).collect();
    let mut set = tokio::task::JoinSet::new();
    for (i, s) in stores.into_iter().enumerate() {
        set.spawn(async move {
            s.try_lease(
                "race.example.test",
                &format!("r{i}"),
                Duration::from_secs(30),
            )
            .await
            .unwrap()
        });
    }
    let mut winners = 0;
    while let Some(won) = set.join_next().await {
        winners += usize::from(won.unwrap());
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn redis_down_is_a_store_error_without_the_url() {
    let Some(server) = RedisServer::start(Some("cert-pw"), &[]) else {
        return;
    };
    let s = open(&server);
    drop(server);
    let start = Instant::now();
    match s.load_cert("a.example.test").await {
        Err(cert_core::Error::Store(m)) => assert!(!m.contains("cert-pw"), "{m}"),
        other => panic!("expected a store error, got {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(2));
}

/// The TLS-ALPN-01 challenge certificate under `<prefix>:alpn:<name>`, with its expiry, read
/// by another replica; and the store over a connection of the caller's choosing.
#[tokio::test]
async fn tls_alpn_challenges_expire_and_any_connection_works() {
    let Some(server) = RedisServer::start(Some("cert-pw"), &[]) else {
        return;
    };
    let a = open(&server);
    // Replica B brings its own connection (a multiplexed one here; RedisConn in the gateway).
    let client = redis::Client::open(server.url()).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    let b = RedisCertStore::with_connection(conn.clone(), "gw", Duration::from_secs(1));

    let name = "a.example.test";
    let first = StoredCert {
        chain_pem: "CHALLENGE-CHAIN-1".into(),
        key_pem: "CHALLENGE-KEY-1".into(),
    };
    assert_eq!(b.load_tls_alpn_challenge(name).await.unwrap(), None);
    a.store_tls_alpn_challenge(name, &first, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        b.load_tls_alpn_challenge(name).await.unwrap(),
        Some(first.clone())
    );
    // The documented key, with an expiry; not a certificate of the store.
    let mut raw = conn.clone();
    let pttl: i64 = redis::cmd("PTTL")
        .arg("gw:alpn:a.example.test")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= 30_000, "{pttl}");
    assert_eq!(b.load_cert(name).await.unwrap(), None);
    assert!(b.list_names().await.unwrap().is_empty());

    // Replaced as a pair, then removed.
    let second = StoredCert {
        chain_pem: "CHALLENGE-CHAIN-2".into(),
        key_pem: "CHALLENGE-KEY-2".into(),
    };
    b.store_tls_alpn_challenge(name, &second, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(a.load_tls_alpn_challenge(name).await.unwrap(), Some(second));
    a.remove_tls_alpn_challenge(name).await.unwrap();
    assert_eq!(b.load_tls_alpn_challenge(name).await.unwrap(), None);

    // It expires by itself (an order that died never removed it).
    a.store_tls_alpn_challenge(name, &first, Duration::from_millis(200))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(b.load_tls_alpn_challenge(name).await.unwrap(), None);

    // The generic store does everything the default one does: certificates (hash, then the
    // set) and leases (the scripts, loaded into this fresh connection on first use).
    let cert = StoredCert {
        chain_pem: "CHAIN".into(),
        key_pem: "KEY".into(),
    };
    b.store_cert(name, &cert).await.unwrap();
    assert_eq!(a.load_cert(name).await.unwrap(), Some(cert));
    assert_eq!(a.list_names().await.unwrap(), vec![name]);
    let ttl = Duration::from_secs(30);
    assert!(b.try_lease(name, "replica-b", ttl).await.unwrap());
    assert!(!a.try_lease(name, "replica-a", ttl).await.unwrap());
    b.release(name, "replica-b").await.unwrap();
    assert!(a.try_lease(name, "replica-a", ttl).await.unwrap());
}
