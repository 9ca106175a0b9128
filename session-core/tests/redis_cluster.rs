//! `RedisStore` and `CachingResolver` over a Redis Cluster (issue 16): three masters started by
//! each test on free 127.0.0.1 ports and joined with `redis-cli --cluster create`
//! (support/redis_topology/). Every store operation, with session keys shown to sit on
//! different nodes; the per-user bound, sequential and under 50 concurrent logins (measured);
//! revocations reaching two caching "replicas"; readiness; a shard failure failing closed.
//!
//! Without `redis-server` or `redis-cli` on the PATH these tests print a loud skip message,
//! except on CI (`CI=true`) where they fail. Run with `--nocapture` to see the figures.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/redis_topology/mod.rs"]
mod redis_topology;

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis_topology::ClusterSet;
use session_core::{
    CacheConfig, CachingResolver, NewSession, RedisConfig, RedisStore, ResolveToken, SessionStore,
    StoreError, Token,
};

fn store(set: &ClusterSet, max_per_user: usize) -> RedisStore {
    RedisStore::open(
        &set.url(),
        RedisConfig {
            max_per_user: NonZeroUsize::new(max_per_user).unwrap(),
            ..RedisConfig::default()
        },
    )
    .unwrap()
}

fn new_session(user: &str, ttl: Duration) -> NewSession {
    NewSession {
        user_id: user.into(),
        roles: vec!["user".into(), "admin".into()],
        default_role: Some("admin".into()),
        ttl,
        ..Default::default()
    }
}

fn session_key(t: &Token) -> String {
    format!("gateway:session:{}", t.hash().to_hex())
}

async fn until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

/// A plain connection to one node (not cluster-aware: for the keys that node serves).
fn node(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(1))
        .unwrap()
}

/// Every key matching `pattern` on every node (SCAN, node by node).
fn keys(set: &ClusterSet, pattern: &str) -> Vec<String> {
    let mut all = Vec::new();
    for p in set.ports() {
        let mut c = node(p);
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query(&mut c)
                .unwrap();
            all.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    all
}

/// The PTTL of `key`, asked of the node that holds it.
fn pttl(set: &ClusterSet, key: &str) -> i64 {
    let mut c = node(set.port_of_key(key));
    redis::cmd("PTTL").arg(key).query(&mut c).unwrap()
}

/// Sessions for `user` until their keys sit on all three nodes; returns them with their node.
async fn spread_sessions(set: &ClusterSet, s: &RedisStore, user: &str) -> Vec<(Token, u16)> {
    let mut out: Vec<(Token, u16)> = Vec::new();
    let mut nodes = BTreeSet::new();
    while nodes.len() < 3 {
        assert!(
            out.len() < 60,
            "60 session keys never covered the three nodes"
        );
        let (t, _) = s
            .create(new_session(user, Duration::from_secs(600)))
            .await
            .unwrap();
        let p = set.port_of_key(&session_key(&t));
        nodes.insert(p);
        out.push((t, p));
    }
    out
}

#[tokio::test]
async fn every_store_operation_works_on_a_cluster() {
    let Some(set) = ClusterSet::start() else {
        return;
    };
    let s = store(&set, 100);

    // Create and resolve, with carol's session keys on all three nodes.
    let carol = spread_sessions(&set, &s, "carol").await;
    let per_node: BTreeSet<u16> = carol.iter().map(|(_, p)| *p).collect();
    eprintln!(
        "carol: {} sessions on nodes {per_node:?}, her index on {}",
        carol.len(),
        set.port_of_key("gateway:user:carol")
    );
    assert_eq!(per_node.len(), 3);
    for (t, p) in &carol {
        let got = s.resolve(&t.hash()).await.unwrap().unwrap();
        assert_eq!(got.user_id, "carol");
        assert_eq!(got.roles, vec!["user", "admin"]);
        // The record is where the cluster says (same key name as with one Redis).
        let mut c = node(*p);
        let user: Option<String> = redis::cmd("HGET")
            .arg(session_key(t))
            .arg("user_id")
            .query(&mut c)
            .unwrap();
        assert_eq!(user.as_deref(), Some("carol"));
        let id = s.resolve_identity(&t.hash(), None).await.unwrap().unwrap();
        assert_eq!((&*id.user_id, &*id.role), ("carol", "admin"));
    }
    assert_eq!(s.list_user("carol").await.unwrap().len(), carol.len());

    // Touch and sliding expiry: the expiry moves on the node that holds the session.
    let (short, _) = s
        .create(new_session("dan", Duration::from_secs(5)))
        .await
        .unwrap();
    let key = session_key(&short);
    assert!(pttl(&set, &key) <= 5_000);
    assert!(s
        .touch(&short.hash(), Duration::from_secs(60))
        .await
        .unwrap());
    let after_touch = pttl(&set, &key);
    assert!((55_000..=60_000).contains(&after_touch), "{after_touch}");
    let slid = s
        .resolve_identity(&short.hash(), Some(Duration::from_secs(120)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&*slid.user_id, "dan");
    let after_slide = pttl(&set, &key);
    assert!((115_000..=120_000).contains(&after_slide), "{after_slide}");
    assert!(!s
        .touch(&Token::generate().hash(), Duration::from_secs(60))
        .await
        .unwrap());

    // Revoke one.
    let (first, _) = &carol[0];
    assert!(s.revoke(&first.hash()).await.unwrap());
    assert!(!s.revoke(&first.hash()).await.unwrap());
    assert!(s.resolve(&first.hash()).await.unwrap().is_none());
    assert_eq!(s.list_user("carol").await.unwrap().len(), carol.len() - 1);

    // Revoke all of carol's sessions, which sit on three nodes.
    assert_eq!(s.revoke_user("carol").await.unwrap(), carol.len() - 1);
    for (t, _) in &carol {
        assert!(s.resolve(&t.hash()).await.unwrap().is_none());
    }
    assert!(s.list_user("carol").await.unwrap().is_empty());
    assert_eq!(s.revoke_user("carol").await.unwrap(), 0);
    assert!(s.revoke(&short.hash()).await.unwrap());
    let left = keys(&set, "gateway:*");
    assert!(left.is_empty(), "{left:?}");

    // Validation happens before anything is written.
    let bad = NewSession {
        roles: vec!["a,b".into()],
        ..new_session("bob", Duration::from_secs(60))
    };
    assert!(matches!(s.create(bad).await, Err(StoreError::Invalid(_))));
}

/// One login after another: never more than `max_per_user` live sessions, and the newest are
/// the ones kept.
#[tokio::test]
async fn the_per_user_bound_holds_for_sequential_logins() {
    let Some(set) = ClusterSet::start() else {
        return;
    };
    const K: usize = 3;
    let s = store(&set, K);
    let mut tokens = Vec::new();
    let mut nodes = BTreeSet::new();
    for i in 0..12 {
        let (t, _) = s
            .create(new_session("erin", Duration::from_secs(600)))
            .await
            .unwrap();
        nodes.insert(set.port_of_key(&session_key(&t)));
        tokens.push(t);
        let live = keys(&set, "gateway:session:*").len();
        assert!(live <= K, "after login {i}: {live} live session keys");
        assert!(s.list_user("erin").await.unwrap().len() <= K);
    }
    eprintln!("erin's 12 sessions sat on {} nodes", nodes.len());
    for (i, t) in tokens.iter().enumerate() {
        let live = s.resolve(&t.hash()).await.unwrap().is_some();
        assert_eq!(live, i >= tokens.len() - K, "session {i}");
    }
    assert_eq!(s.list_user("erin").await.unwrap().len(), K);
}

/// 50 concurrent logins for one user through five "replicas" (stores) with max_per_user = 5:
/// measures the most live sessions seen during the storm; at the end there are at most 5.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_per_user_bound_under_50_concurrent_logins() {
    let Some(set) = ClusterSet::start() else {
        return;
    };
    const K: usize = 5;
    let set = Arc::new(set);
    let stores: Vec<RedisStore> = (0..5).map(|_| store(&set, K)).collect();
    for s in &stores {
        // Warm the connections, so the storm is concurrent.
        s.list_user("warmup").await.unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicUsize::new(0));
    let most_indexed = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(AtomicUsize::new(0));
    let observer = {
        let (set, stop, most, most_indexed, samples) = (
            set.clone(),
            stop.clone(),
            most.clone(),
            most_indexed.clone(),
            samples.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let mut index = node(set.port_of_key("gateway:user:fay"));
            while !stop.load(Ordering::SeqCst) {
                // Live session keys (a scan of three nodes, not one snapshot) and the members
                // of the user's index (one key, exact).
                let n = keys(&set, "gateway:session:*").len();
                most.fetch_max(n, Ordering::SeqCst);
                let z: usize = redis::cmd("ZCARD")
                    .arg("gateway:user:fay")
                    .query(&mut index)
                    .unwrap();
                most_indexed.fetch_max(z, Ordering::SeqCst);
                samples.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // Let the observer take its first sample.
    let s2 = samples.clone();
    until("observer running", Duration::from_secs(5), move || {
        s2.load(Ordering::SeqCst) > 0
    })
    .await;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let s = stores[i % stores.len()].clone();
        tasks.spawn(async move { s.create(new_session("fay", Duration::from_secs(600))).await });
    }
    let mut created = Vec::new();
    let mut failed = 0;
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok((t, _)) => created.push(t),
            Err(_) => failed += 1,
        }
    }
    let storm = start.elapsed();
    // One more sample after the storm, then stop.
    let s2 = samples.clone();
    let n0 = s2.load(Ordering::SeqCst);
    until(
        "observer sampled the end",
        Duration::from_secs(5),
        move || s2.load(Ordering::SeqCst) > n0 + 1,
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    observer.await.unwrap();

    let at_end = keys(&set, "gateway:session:*").len();
    let listed = stores[0].list_user("fay").await.unwrap().len();
    let mut resolvable = 0;
    for t in &created {
        if stores[0].resolve(&t.hash()).await.unwrap().is_some() {
            resolvable += 1;
        }
    }
    let index: usize = {
        let mut c = node(set.port_of_key("gateway:user:fay"));
        redis::cmd("ZCARD")
            .arg("gateway:user:fay")
            .query(&mut c)
            .unwrap()
    };
    eprintln!(
        "50 concurrent logins (max_per_user {K}) in {storm:?}: {} created, {failed} failed; \
         most live sessions seen during the storm {} (most index members {}; {} samples); at \
         the end {at_end} live session keys, {listed} listed, {resolvable} resolvable, {index} \
         in the user index",
        created.len(),
        most.load(Ordering::SeqCst),
        most_indexed.load(Ordering::SeqCst),
        samples.load(Ordering::SeqCst),
    );
    assert_eq!(failed, 0, "a login failed");
    // Exactly the bound: concurrent trims neither leave more nor evict one too many.
    assert_eq!(at_end, K, "{at_end} live sessions at the end");
    assert!(
        listed <= K && resolvable <= K,
        "{listed} listed, {resolvable} resolvable"
    );
    assert!(resolvable >= 1, "the storm left no session at all");
    assert!(index <= K, "{index} members in the user index");
}

/// A revocation made on one "replica" reaches two others, each with its own connection and
/// cache, which drop their cached entry; also for a user whose sessions sit on three nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_reach_every_caching_replica() {
    let Some(set) = ClusterSet::start() else {
        return;
    };
    let cfg = CacheConfig {
        ttl: Duration::from_secs(30),
        ..CacheConfig::default()
    };
    let replicas: Vec<CachingResolver> = (0..2)
        .map(|_| CachingResolver::new(store(&set, 100), cfg.clone()))
        .collect();
    let admin = store(&set, 100);
    // Readiness (a /readyz): the channel is subscribed and answers.
    for r in &replicas {
        let r = r.clone();
        until("subscribed", Duration::from_secs(5), move || {
            r.is_connected()
        })
        .await;
    }

    let gus = spread_sessions(&set, &admin, "gus").await;
    let (other, _) = admin
        .create(new_session("hal", Duration::from_secs(600)))
        .await
        .unwrap();
    for r in &replicas {
        for (t, _) in &gus {
            assert!(r.resolve_token(t).await.unwrap().is_some());
            assert!(r.resolve_token_now(t).is_some(), "cached");
        }
        assert!(r.resolve_token(&other).await.unwrap().is_some());
    }

    // One session: revoked on the admin store, dropped by both caches.
    let (one, node) = &gus[0];
    assert!(admin.revoke(&one.hash()).await.unwrap());
    for (i, r) in replicas.iter().enumerate() {
        let (r2, t) = (r.clone(), one.clone());
        let took = until(
            "the revocation reached the replica",
            Duration::from_secs(1),
            move || r2.resolve_token_now(&t).is_none(),
        )
        .await;
        eprintln!("replica {i} dropped a session of node {node} after {took:?}");
        assert!(r.resolve_token(one).await.unwrap().is_none());
    }

    // All of gus's sessions (three nodes): both caches drop them all, keep hal's.
    assert_eq!(admin.revoke_user("gus").await.unwrap(), gus.len() - 1);
    for (i, r) in replicas.iter().enumerate() {
        let (r2, ts) = (r.clone(), gus.clone());
        let took = until(
            "the user revocation reached the replica",
            Duration::from_secs(1),
            move || ts.iter().all(|(t, _)| r2.resolve_token_now(t).is_none()),
        )
        .await;
        eprintln!(
            "replica {i} dropped gus's {} sessions after {took:?}",
            gus.len()
        );
        for (t, _) in &gus {
            assert!(r.resolve_token(t).await.unwrap().is_none());
        }
        assert!(
            r.resolve_token_now(&other).is_some(),
            "hal's session stays cached"
        );
        assert!(r.is_connected());
    }
}

/// A shard dies: a session on it is unavailable (503), never "unknown" (401, a logout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_shard_fails_closed() {
    let Some(mut set) = ClusterSet::start() else {
        return;
    };
    let s = store(&set, 100);
    let ivy = spread_sessions(&set, &s, "ivy").await;
    let (victim, port) = ivy.last().unwrap().clone();
    set.kill_node(port);
    let start = Instant::now();
    let got = s.resolve(&victim.hash()).await;
    eprintln!(
        "a session on the dead shard: {got:?} after {:?}",
        start.elapsed()
    );
    assert!(matches!(got, Err(StoreError::Unavailable(_))), "{got:?}");
    assert!(start.elapsed() < Duration::from_secs(3));
    // A fresh resolver (no cache) fails closed as well.
    let r = CachingResolver::new(store(&set, 100), CacheConfig::default());
    let got = r.resolve_token(&victim).await;
    assert!(got.is_err(), "{got:?}");
}
