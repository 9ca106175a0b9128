//! `RedisCertStore` on a Redis Cluster (three masters started by the test): every command
//! touches one key, so certificates, the name set, accounts, challenges and leases work although
//! they live on different nodes. Without redis-server the test prints a loud skip message,
//! except on CI (`CI=true`) where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../../session-core/tests/support/redis_topology/mod.rs"]
mod redis_topology;

use std::time::Duration;

use cert_core::{CertStore, RedisCertStore, StoredCert};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis_topology::ClusterSet;

async fn open(set: &ClusterSet) -> RedisCertStore<ClusterConnection> {
    let nodes: Vec<String> = set
        .ports()
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}"))
        .collect();
    let conn = ClusterClient::new(nodes)
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    RedisCertStore::with_connection(conn, "gw", Duration::from_secs(2))
}

#[tokio::test]
async fn certificates_accounts_challenges_and_leases_on_a_cluster() {
    let Some(set) = ClusterSet::start() else {
        return;
    };
    let (a, b) = (open(&set).await, open(&set).await);

    // Names whose certificate keys land on other nodes than the name set: a MULTI over both
    // would be refused (CROSSSLOT).
    let names: Vec<String> = (0..12).map(|i| format!("n{i}.example.test")).collect();
    let set_node = set.port_of_key("gw:certs");
    let elsewhere = names
        .iter()
        .filter(|n| set.port_of_key(&format!("gw:cert:{n}")) != set_node)
        .count();
    assert!(
        elsewhere > 0,
        "every certificate key landed beside the name set"
    );
    for (i, name) in names.iter().enumerate() {
        let cert = StoredCert {
            chain_pem: format!("CHAIN-{i}"),
            key_pem: format!("KEY-{i}"),
        };
        a.store_cert(name, &cert).await.unwrap();
        assert_eq!(b.load_cert(name).await.unwrap(), Some(cert));
    }
    let mut want = names.clone();
    want.sort();
    assert_eq!(b.list_names().await.unwrap(), want);

    // The ACME account.
    let dir = "https://acme.example/dir";
    a.store_account(dir, b"{\"key\":\"secret\"}").await.unwrap();
    assert_eq!(
        b.load_account(dir).await.unwrap().as_deref(),
        Some(&b"{\"key\":\"secret\"}"[..])
    );

    // HTTP-01 and TLS-ALPN-01 answers, from either replica.
    a.store_challenge("tok-1", "tok-1.thumb", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        b.load_challenge("tok-1").await.unwrap().as_deref(),
        Some("tok-1.thumb")
    );
    b.remove_challenge("tok-1").await.unwrap();
    assert_eq!(a.load_challenge("tok-1").await.unwrap(), None);
    let alpn = StoredCert {
        chain_pem: "ALPN-CHAIN".into(),
        key_pem: "ALPN-KEY".into(),
    };
    a.store_tls_alpn_challenge("n1.example.test", &alpn, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        b.load_tls_alpn_challenge("n1.example.test").await.unwrap(),
        Some(alpn)
    );
    a.remove_tls_alpn_challenge("n1.example.test")
        .await
        .unwrap();
    assert_eq!(
        b.load_tls_alpn_challenge("n1.example.test").await.unwrap(),
        None
    );

    // Leases, per name, on whichever node holds each: one holder, renewable, released only by
    // its holder.
    let ttl = Duration::from_secs(5);
    for name in &names[..4] {
        assert!(a.try_lease(name, "replica-a", ttl).await.unwrap());
        assert!(!b.try_lease(name, "replica-b", ttl).await.unwrap());
        assert!(a.try_lease(name, "replica-a", ttl).await.unwrap());
        b.release(name, "replica-b").await.unwrap();
        assert!(!b.try_lease(name, "replica-b", ttl).await.unwrap());
        a.release(name, "replica-a").await.unwrap();
        assert!(b.try_lease(name, "replica-b", ttl).await.unwrap());
    }
}
