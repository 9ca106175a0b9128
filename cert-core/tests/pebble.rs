//! Socket-level tests against the real Pebble ACME server (security cases 27–30).
//!
//! Each test starts its own pebble + pebble-challtestsrv on free ports and its own test
//! server, so they can run in parallel. Pebble missing: the tests fail when CI=true and
//! skip loudly otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cert_core::{
    AcmeConfig, AcmeManager, CertInfo, CertResolver, CertStore, ChallengeResponder, DirStore,
    Error, MemoryStore, NameSet, ACME_TLS_ALPN,
};
use common::{
    https_get, mode, pebble_available, presented_leaf, roots_from_pem, tls_connect, wait_for,
    wait_for_every, Pebble, PebbleOpts, TestClock, TestServer,
};

const NAME: &str = "app.gateway.test";
// Generous: a loaded 2-core CI machine can stretch one ACME round trip to tens of seconds;
// passing runs never wait for it.
const ISSUE_TIMEOUT: Duration = Duration::from_secs(90);

struct Env {
    pebble: Pebble,
    server: TestServer,
    resolver: Arc<CertResolver>,
    responder: ChallengeResponder,
    store_dir: tempfile::TempDir,
    store: Arc<DirStore>,
    /// A store shared by "replicas" (stands in for Redis); the test server's responder also
    /// looks pending HTTP-01 answers up in it.
    shared: Arc<MemoryStore>,
    clock: Arc<TestClock>,
}

impl Env {
    async fn start(validity_secs: Option<u64>, env: &[(&str, &str)]) -> Option<Env> {
        if !pebble_available() {
            return None;
        }
        let resolver = Arc::new(CertResolver::new().unwrap());
        let shared = Arc::new(MemoryStore::new());
        let responder = ChallengeResponder::with_store(shared.clone());
        let server = TestServer::start(resolver.clone(), responder.clone()).await;
        let pebble = Pebble::start(&PebbleOpts {
            http_port: server.http_port,
            tls_port: server.tls_port,
            validity_secs,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        });
        let store_dir = tempfile::tempdir().unwrap();
        let store = Arc::new(DirStore::open(store_dir.path().join("certs")).unwrap());
        Some(Env {
            pebble,
            server,
            resolver,
            responder,
            store_dir,
            store,
            shared,
            clock: Arc::new(TestClock::default()),
        })
    }

    fn config(&self, http01: bool, tls_alpn01: bool) -> AcmeConfig {
        AcmeConfig {
            directory_url: self.pebble.directory_url.clone(),
            directory_roots_pem: Some(self.pebble.listener_ca_pem.clone()),
            http01,
            tls_alpn01,
            contact: vec!["mailto:ops@gateway.test".into()],
            check_interval: Duration::from_millis(100),
            retry_min: Duration::from_millis(300),
            retry_max: Duration::from_secs(5),
            order_timeout: Duration::from_secs(20),
            lease_ttl: Duration::from_secs(60),
            ..AcmeConfig::default()
        }
    }

    fn manager(&self, cfg: AcmeConfig, names: &[&str]) -> AcmeManager {
        self.manager_on(self.store.clone(), cfg, names)
    }

    /// A manager like [`Env::manager`] that keeps its certificates and account in `store`.
    fn manager_on(
        &self,
        store: Arc<dyn CertStore>,
        cfg: AcmeConfig,
        names: &[&str],
    ) -> AcmeManager {
        AcmeManager::builder(
            cfg,
            store,
            self.resolver.clone(),
            Arc::new(NameSet::new(names).unwrap()),
        )
        .clock(self.clock.clone())
        .challenge_responder(self.responder.clone())
        .build()
        .unwrap()
    }

    async fn trusted_roots(&self) -> cert_core::rustls::RootCertStore {
        roots_from_pem(&self.pebble.issuing_root_pem().await)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_issues_and_trusted_client_gets_response_files_private() {
    let Some(env) = Env::start(None, &[]).await else {
        return;
    };
    let manager = env.manager(env.config(true, false), &[NAME]);
    let started = Instant::now();
    let task = manager.spawn();
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "spawn must not block"
    );

    wait_for("issuance", ISSUE_TIMEOUT, || env.resolver.has_cert(NAME)).await;
    eprintln!("HTTP-01 issuance took {:?}", started.elapsed());
    assert_eq!(manager.orders_placed(), 1);
    assert!(env.server.http01_requests.load(Ordering::SeqCst) >= 1);
    assert_eq!(env.server.acme_tls_conns.load(Ordering::SeqCst), 0);

    // A client trusting only Pebble's issuing root completes the handshake and gets an answer.
    let roots = env.trusted_roots().await;
    let (status, body) = https_get(env.server.tls_port, NAME, Some(roots.clone()), "/")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, format!("hello from {NAME}"));
    // And h2 is negotiated when offered.
    let h2 = tls_connect(
        env.server.tls_port,
        NAME,
        Some(roots),
        &[b"h2", b"http/1.1"],
    )
    .await
    .unwrap();
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

    // `gateway cert list`
    let list = manager.list();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name, NAME);
    assert!(
        list[0].issuer.as_deref().unwrap().contains("Pebble"),
        "{list:?}"
    );
    let not_after = list[0].not_after.unwrap();
    assert!(list[0].next_renewal.unwrap() < not_after);

    // Case 30: 0700 directories, 0600 files (the key/chain bundle and the account key).
    // The certificate is served first and then written; wait for the write.
    wait_stored(&env).await;
    let root = env.store_dir.path().join("certs");
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&root.join("certs")), 0o700);
    assert_eq!(mode(&root.join("accounts")), 0o700);
    assert_eq!(mode(&env.store.cert_path(NAME)), 0o600);
    assert_eq!(
        mode(&env.store.account_path(&env.pebble.directory_url)),
        0o600
    );
    let stored = env.store.load_cert(NAME).await.unwrap().unwrap();
    assert!(stored.key_pem.contains("PRIVATE KEY"));
    manager.stop();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn01_issues_without_serving_http_on_validation_connections() {
    let Some(env) = Env::start(None, &[]).await else {
        return;
    };
    let manager = env.manager(env.config(false, true), &[NAME]);
    let started = Instant::now();
    let _task = manager.spawn();
    wait_for("issuance", ISSUE_TIMEOUT, || env.resolver.has_cert(NAME)).await;
    eprintln!("TLS-ALPN-01 issuance took {:?}", started.elapsed());
    assert_eq!(env.server.http01_requests.load(Ordering::SeqCst), 0);
    // Pebble validated over acme-tls/1, and those connections carried no HTTP.
    assert!(env.server.acme_tls_conns.load(Ordering::SeqCst) >= 1);
    assert_eq!(env.server.https_requests.load(Ordering::SeqCst), 0);
    // The challenge is withdrawn: an acme-tls/1 handshake now fails (case 27)...
    assert!(!env.resolver.has_tls_alpn_challenge(NAME));
    assert!(
        tls_connect(env.server.tls_port, NAME, None, &[ACME_TLS_ALPN])
            .await
            .is_err()
    );
    // ...and normal ALPN gets the real, trusted certificate.
    let roots = env.trusted_roots().await;
    let (status, _) = https_get(env.server.tls_port, NAME, Some(roots), "/")
        .await
        .unwrap();
    assert_eq!(status, 200);
    manager.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renews_six_day_certificate_when_a_third_remains() {
    const DAY: u64 = 86_400;
    let Some(env) = Env::start(Some(6 * DAY), &[]).await else {
        return;
    };
    let manager = env.manager(env.config(true, false), &[NAME]);
    let _task = manager.spawn();
    wait_for("issuance", ISSUE_TIMEOUT, || env.resolver.has_cert(NAME)).await;
    let first = presented_leaf(env.server.tls_port, NAME, &[b"http/1.1"])
        .await
        .unwrap();
    let info = CertInfo::from_der(&first).unwrap();
    let lifetime = info.lifetime().as_secs();
    assert!(
        (6 * DAY - 60..=6 * DAY + 60).contains(&lifetime),
        "lifetime {lifetime}s"
    );

    // An hour before the renewal point (a third of the lifetime left): not yet.
    let renew_at = info.renew_at(1.0 / 3.0);
    let two_thirds = info.not_before + Duration::from_secs(lifetime * 2 / 3);
    let skew = renew_at
        .duration_since(two_thirds)
        .unwrap_or_else(|e| e.duration());
    assert!(
        skew < Duration::from_secs(1),
        "renewal at two thirds of the lifetime"
    );
    env.clock.freeze_at(renew_at - Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(manager.orders_placed(), 1);

    // Just past it: renewed, and the new certificate is served. (The 2 s wait above puts the
    // new notBefore over a second later, so the new certificate is not due at this instant.)
    env.clock.freeze_at(renew_at + Duration::from_secs(1));
    wait_for("renewal", ISSUE_TIMEOUT, || {
        manager.status(NAME).unwrap().not_after > Some(info.not_after)
    })
    .await;
    assert_eq!(manager.orders_placed(), 2);
    let second = presented_leaf(env.server.tls_port, NAME, &[b"http/1.1"])
        .await
        .unwrap();
    assert_ne!(first, second, "renewed certificate is served");
    let status = manager.status(NAME).unwrap();
    assert!(status.not_after.unwrap() > info.not_after);
    // The stored copy is the new one too. The manager serves a new certificate before it
    // writes it to the store (a store failure must not keep it out of service), so the write
    // may land a moment after the status says renewed: wait for it, within the issue timeout.
    let want = CertInfo::from_der(&second).unwrap().serial;
    let deadline = std::time::Instant::now() + ISSUE_TIMEOUT;
    loop {
        let stored = env.store.load_cert(NAME).await.unwrap().unwrap();
        let serial = CertInfo::from_pem(&stored.chain_pem).unwrap().serial;
        if serial == want {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the store kept the old certificate: {serial} instead of {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // No third order follows.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(manager.orders_placed(), 2);
    manager.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reuses_stored_certificate_and_account() {
    let Some(env) = Env::start(None, &[]).await else {
        return;
    };
    let cfg = env.config(true, false);
    let first = env.manager(cfg.clone(), &[NAME]);
    let task = first.spawn();
    wait_for("issuance", ISSUE_TIMEOUT, || env.resolver.has_cert(NAME)).await;
    wait_stored(&env).await;
    first.stop();
    task.await.unwrap();
    let served = presented_leaf(env.server.tls_port, NAME, &[b"http/1.1"])
        .await
        .unwrap();

    // "Restart": a fresh resolver and manager over the same directory.
    let store = Arc::new(DirStore::open(env.store_dir.path().join("certs")).unwrap());
    let resolver = Arc::new(CertResolver::new().unwrap());
    assert!(!resolver.has_cert(NAME));
    let second = AcmeManager::builder(
        cfg,
        store.clone(),
        resolver.clone(),
        Arc::new(NameSet::new([NAME]).unwrap()),
    )
    .challenge_responder(env.responder.clone())
    .build()
    .unwrap();
    assert_eq!(second.load_stored().await.unwrap(), 1);
    assert!(resolver.has_cert(NAME));
    assert_eq!(resolver.lookup(Some(NAME)).cert[0], served);
    let _task = second.spawn();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(second.orders_placed(), 0, "no new order after restart");
    let accounts = std::fs::read_dir(env.store_dir.path().join("certs/accounts"))
        .unwrap()
        .count();
    assert_eq!(accounts, 1);
    second.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_validation_backs_off_and_keeps_serving_old_certificate() {
    let Some(env) = Env::start(None, &[]).await else {
        return;
    };
    let cfg = env.config(true, false);
    let first = env.manager(cfg.clone(), &[NAME]);
    let task = first.spawn();
    wait_for("issuance", ISSUE_TIMEOUT, || env.resolver.has_cert(NAME)).await;
    wait_stored(&env).await;
    first.stop();
    task.await.unwrap();
    let old = presented_leaf(env.server.tls_port, NAME, &[b"http/1.1"])
        .await
        .unwrap();

    // The renewals below come from a manager whose store holds the certificate but not the
    // account, so they are placed by a new ACME account. Pebble reuses a valid authorization
    // of the same account now and then even with PEBBLE_AUTHZREUSE=0 (its check is
    // `rand.Intn(100) > percent`, so 1 in 100), and a reused one would let a renewal succeed
    // without validation: the test then waited in vain for the third failure.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(DirStore::open(dir.path().join("certs")).unwrap());
    let stored = env.store.load_cert(NAME).await.unwrap().unwrap();
    store.store_cert(NAME, &stored).await.unwrap();
    let manager = env.manager_on(store, cfg, &[NAME]);
    assert_eq!(manager.load_stored().await.unwrap(), 1);
    let _task = manager.spawn();

    // From now on validation cannot succeed (the plain listener answers 404).
    env.server.http01_enabled.store(false, Ordering::SeqCst);
    manager.request_renewal(NAME).unwrap();
    // Polled every 5 ms, not every 50: t0 should trail the first failure by little, or the
    // time measured to the third would come out short by the lag.
    wait_for_every(
        "first failure",
        ISSUE_TIMEOUT,
        Duration::from_millis(5),
        || manager.status(NAME).unwrap().failures >= 1,
    )
    .await;
    let t0 = Instant::now();
    wait_for("third failure", ISSUE_TIMEOUT, || {
        manager.status(NAME).unwrap().failures >= 3
    })
    .await;
    let status = manager.status(NAME).unwrap();
    eprintln!("after {:?}: {status:?}", t0.elapsed());
    // Backoff: failures 2 and 3 wait >= 150 ms and >= 300 ms (jittered from 300/600 ms), 450
    // in all plus two orders; without backoff the 100 ms check interval would retry in about
    // 200. The bound leaves 50 ms for the lag of t0 on a loaded machine.
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t0.elapsed()
    );
    assert!(
        status.last_error.as_deref().unwrap().contains("404"),
        "{status:?}"
    );
    assert!(status.next_attempt.is_some());
    // The old certificate is still served and still trusted.
    let now = presented_leaf(env.server.tls_port, NAME, &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(now, old);
    let roots = env.trusted_roots().await;
    let (code, _) = https_get(env.server.tls_port, NAME, Some(roots), "/")
        .await
        .unwrap();
    assert_eq!(code, 200);

    // Validation works again: the next retry succeeds and the failure count resets.
    env.server.http01_enabled.store(true, Ordering::SeqCst);
    wait_for("recovery", ISSUE_TIMEOUT, || {
        manager.status(NAME).unwrap().failures == 0
    })
    .await;
    let renewed = presented_leaf(env.server.tls_port, NAME, &[b"http/1.1"])
        .await
        .unwrap();
    assert_ne!(renewed, old);
    manager.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_errors_never_block_startup_and_back_off() {
    // Pebble rejects every nonce: every ACME POST fails with badNonce.
    let Some(env) = Env::start(None, &[("PEBBLE_WFE_NONCEREJECT", "100")]).await else {
        return;
    };
    let manager = env.manager(env.config(true, true), &[NAME]);
    let started = Instant::now();
    let _task = manager.spawn();
    assert!(started.elapsed() < Duration::from_millis(100));
    // The listener serves at once (the placeholder) while ACME fails.
    let leaf = presented_leaf(env.server.tls_port, NAME, &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(leaf, env.resolver.placeholder().cert[0]);

    wait_for("failures", ISSUE_TIMEOUT, || {
        manager.status(NAME).unwrap().failures >= 2
    })
    .await;
    let t0 = Instant::now();
    let before = manager.status(NAME).unwrap().failures;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = manager.status(NAME).unwrap();
    eprintln!(
        "{} failures in {:?}: {after:?}",
        after.failures - before,
        t0.elapsed()
    );
    // With a 100 ms check interval and no backoff there would be ~15 more attempts.
    assert!(after.failures - before <= 4, "{after:?}");
    assert!(
        after.last_error.as_deref().unwrap().contains("badNonce")
            || after.last_error.as_deref().unwrap().contains("nonce"),
        "{after:?}"
    );
    assert_eq!(manager.orders_placed(), 0);
    assert!(!env.resolver.has_cert(NAME));
    manager.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_sni_places_no_order_and_writes_nothing() {
    let Some(env) = Env::start(None, &[]).await else {
        return;
    };
    let manager = env.manager(env.config(true, false), &[NAME]);
    let _task = manager.spawn();
    wait_for("issuance", ISSUE_TIMEOUT, || env.resolver.has_cert(NAME)).await;
    // The certificate is served first and then written; wait for the write.
    wait_stored(&env).await;
    let files_before: Vec<_> = std::fs::read_dir(env.store_dir.path().join("certs/certs"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();

    for evil in [
        "evil.gateway.test",
        "admin.evil.test",
        "APP.gateway.test.evil",
    ] {
        let leaf = presented_leaf(env.server.tls_port, evil, &[b"http/1.1"])
            .await
            .unwrap();
        assert_eq!(leaf, env.resolver.placeholder().cert[0], "{evil}");
    }
    // Nothing can be forced for it either.
    assert!(matches!(
        manager.request_renewal("evil.gateway.test"),
        Err(Error::NameNotAllowed(_))
    ));
    assert!(matches!(
        manager.renew_now("evil.gateway.test").await,
        Err(Error::NameNotAllowed(_))
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(manager.orders_placed(), 1);
    assert_eq!(env.store.list_names().await.unwrap(), vec![NAME.to_owned()]);
    let files_after: Vec<_> = std::fs::read_dir(env.store_dir.path().join("certs/certs"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files_before, files_after);
    manager.stop();
}

/// `gateway cert renew NAME`: an immediate order, honoured only for managed names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_now_orders_immediately() {
    let Some(env) = Env::start(None, &[]).await else {
        return;
    };
    let manager = env.manager(env.config(true, true), &[NAME]);
    // No background loop: the CLI path alone.
    let status = manager.renew_now(NAME).await.unwrap();
    assert_eq!(manager.orders_placed(), 1);
    assert!(status.not_after.is_some());
    assert!(env.resolver.has_cert(NAME));
    let listed = cert_core::list_stored(env.store.as_ref(), 1.0 / 3.0)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].not_after, status.not_after);
}

/// Two replicas sharing one store: the order lease lets only one of them order, the other
/// picks the certificate up from the store, and the validation is answered through the
/// shared pending-challenge table whichever replica ordered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_a_store_place_one_order() {
    let Some(env) = Env::start(None, &[]).await else {
        return;
    };
    let names = Arc::new(NameSet::new([NAME]).unwrap());
    let replica = |owner: &str| {
        let cfg = AcmeConfig {
            owner_id: owner.to_owned(),
            ..env.config(true, false)
        };
        let resolver = Arc::new(CertResolver::new().unwrap());
        // Each replica has its own responder; only the shared store connects them to the
        // listener's responder.
        let manager =
            AcmeManager::builder(cfg, env.shared.clone(), resolver.clone(), names.clone())
                .challenge_responder(ChallengeResponder::new())
                .build()
                .unwrap();
        (manager, resolver)
    };
    let (a, ra) = replica("replica-a");
    let (b, rb) = replica("replica-b");
    let _ta = a.spawn();
    let _tb = b.spawn();
    wait_for("both replicas serve", ISSUE_TIMEOUT, || {
        ra.has_cert(NAME) && rb.has_cert(NAME)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        a.orders_placed() + b.orders_placed(),
        1,
        "a: {} orders, {:?}; b: {} orders, {:?}",
        a.orders_placed(),
        a.status(NAME),
        b.orders_placed(),
        b.status(NAME)
    );
    assert_eq!(ra.lookup(Some(NAME)).cert[0], rb.lookup(Some(NAME)).cert[0]);
    a.stop();
    b.stop();
}

/// Waits until the certificate for [`NAME`] is in the store: the manager serves a new
/// certificate before it writes it (a store failure must not keep it out of service), so a
/// test that reads the store right after `has_cert` raced the write (CI failed on that once).
async fn wait_stored(env: &Env) {
    wait_for("stored", ISSUE_TIMEOUT, || {
        env.store.cert_path(NAME).exists()
    })
    .await;
}
