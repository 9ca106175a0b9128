//! TLS-ALPN-01 with two replicas against the real Pebble ACME server, sharing one Redis (a
//! `redis-server` started by the test): replica A places the order, but Pebble's validation
//! connection reaches replica B, which never ordered and answers from the shared store.
//!
//! Pebble or redis-server missing: the test fails when CI=true and skips loudly otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../session-core/tests/support/redis_server.rs"]
mod redis_server;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cert_core::{
    Acceptor, AcmeConfig, AcmeManager, CertResolver, CertStore, ChallengeResponder, NameSet,
    RedisCertStore, ACME_TLS_ALPN,
};
use common::{
    https_get, pebble_available, roots_from_pem, test_server_config, tls_connect, wait_for, Pebble,
    PebbleOpts, TestServer,
};
use redis_server::RedisServer;

const NAME: &str = "app.gateway.test";
// As in pebble.rs: generous for a loaded 2-core machine; passing runs never wait for it.
const ISSUE_TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn01_validation_is_answered_by_the_replica_that_did_not_order() {
    if !pebble_available() {
        return;
    }
    let Some(redis) = RedisServer::start(Some("cert-pw"), &[]) else {
        return;
    };
    let timeout = Duration::from_secs(2);
    // A connects the default way; B brings its own connection, as the gateway does with a
    // Sentinel or Cluster connection.
    let store_a: Arc<dyn CertStore> =
        Arc::new(RedisCertStore::open(&redis.url(), "gw", timeout).unwrap());
    let client = redis::Client::open(redis.url()).unwrap();
    let conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    let store_b: Arc<dyn CertStore> =
        Arc::new(RedisCertStore::with_connection(conn, "gw", timeout));
    let names = Arc::new(NameSet::new([NAME]).unwrap());

    // Replica A's listeners exist, but Pebble is pointed at neither of them.
    let resolver_a = Arc::new(CertResolver::new().unwrap());
    let server_a = TestServer::start(resolver_a.clone(), ChallengeResponder::new()).await;
    // Replica B's TLS listener is where Pebble validates TLS-ALPN-01. Its acceptor is what
    // `AcmeManager::acceptor` builds; made by hand because B's manager needs Pebble's URL,
    // and Pebble needs this listener's port.
    let resolver_b = Arc::new(CertResolver::new().unwrap());
    let acceptor_b = Acceptor::new(test_server_config(resolver_b.clone())).with_shared_challenges(
        store_b.clone(),
        names.clone(),
        resolver_b.clone(),
    );
    let server_b = TestServer::start_with(acceptor_b.clone(), ChallengeResponder::new()).await;
    let pebble = Pebble::start(&PebbleOpts {
        // HTTP-01 is off: nothing listens for it that could answer.
        http_port: server_a.http_port,
        tls_port: server_b.tls_port,
        ..PebbleOpts::default()
    });
    let cfg = |owner: &str| AcmeConfig {
        owner_id: owner.to_owned(),
        directory_url: pebble.directory_url.clone(),
        directory_roots_pem: Some(pebble.listener_ca_pem.clone()),
        http01: false,
        tls_alpn01: true,
        check_interval: Duration::from_millis(100),
        retry_min: Duration::from_millis(300),
        retry_max: Duration::from_secs(5),
        order_timeout: Duration::from_secs(20),
        lease_ttl: Duration::from_secs(60),
        ..AcmeConfig::default()
    };

    // A orders first; B starts once A's order is placed (A holds the lease), so B never orders.
    let a = AcmeManager::builder(cfg("replica-a"), store_a, resolver_a.clone(), names.clone())
        .build()
        .unwrap();
    let _task_a = a.spawn();
    wait_for("A's order", ISSUE_TIMEOUT, || a.orders_placed() == 1).await;
    let b = AcmeManager::builder(cfg("replica-b"), store_b.clone(), resolver_b.clone(), names)
        .build()
        .unwrap();
    let _task_b = b.spawn();

    wait_for("both replicas serve", ISSUE_TIMEOUT, || {
        resolver_a.has_cert(NAME) && resolver_b.has_cert(NAME)
    })
    .await;
    assert_eq!(a.orders_placed(), 1);
    assert_eq!(b.orders_placed(), 0, "{:?}", b.status(NAME));
    // B answered the validation, from the store (it never had a local challenge), and no
    // validation reached A.
    assert!(server_b.acme_tls_conns.load(Ordering::SeqCst) >= 1);
    assert!(acceptor_b.answered_from_store() >= 1);
    assert_eq!(server_a.acme_tls_conns.load(Ordering::SeqCst), 0);
    assert_eq!(server_b.https_requests.load(Ordering::SeqCst), 0);
    assert_eq!(
        resolver_a.lookup(Some(NAME)).cert[0],
        resolver_b.lookup(Some(NAME)).cert[0]
    );

    // The order is over: the challenge is gone from the store, and B refuses validations
    // again (case 27) ...
    assert_eq!(store_b.load_tls_alpn_challenge(NAME).await.unwrap(), None);
    tokio::time::sleep(cert_core::DEFAULT_LOOKUP_INTERVAL).await;
    assert!(tls_connect(server_b.tls_port, NAME, None, &[ACME_TLS_ALPN])
        .await
        .is_err());
    // ... while normal clients get the issued certificate from B.
    let roots = roots_from_pem(&pebble.issuing_root_pem().await);
    let (status, _) = https_get(server_b.tls_port, NAME, Some(roots), "/")
        .await
        .unwrap();
    assert_eq!(status, 200);
    a.stop();
    b.stop();
}
