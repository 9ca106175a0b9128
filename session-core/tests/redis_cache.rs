//! `CachingResolver` over `RedisStore` against a real `redis-server` started by each test on a
//! free port (no persistence), killed when the test ends: hits, revocations reaching every
//! replica, the cache turning off while the channel is down or stalled, and the hot path's cost.
//!
//! Without `redis-server` on the PATH these tests print a loud skip message, except on CI
//! (`CI=true`) where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "support/redis_session.rs"]
mod redis_session;

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis_server::RedisServer;
use redis_session::{cache_cfg, connected, new_session, raw, store, until};
use session_core::{
    CacheConfig, CachingResolver, MemoryStore, ResolveToken, Revocation, SessionStore,
    StoreResolver, Token,
};

#[tokio::test]
async fn the_cache_serves_hits_and_revocations_clear_every_replica() {
    let Some(server) = RedisServer::start(None, &[]) else {
        return;
    };
    // Three "replicas": each its own store (connection) and cache.
    let replicas: Vec<CachingResolver> = (0..3)
        .map(|_| CachingResolver::new(store(&server), cache_cfg()))
        .collect();
    for r in &replicas {
        connected(r).await;
    }
    let a = &replicas[0];
    let (token, _) = a
        .store()
        .create(new_session("gina", Duration::from_secs(60)))
        .await
        .unwrap();
    for r in &replicas {
        assert!(r.resolve_token_now(&token).is_none(), "nothing cached yet");
        assert!(r.resolve_token(&token).await.unwrap().is_some());
        let hit = r
            .resolve_token_now(&token)
            .expect("cached")
            .unwrap()
            .unwrap();
        assert_eq!(&*hit.role, "admin");
        assert_eq!(r.cached(), 1);
    }
    // Unknown tokens are not cached.
    let unknown = Token::generate();
    assert!(a.resolve_token(&unknown).await.unwrap().is_none());
    assert!(a.resolve_token_now(&unknown).is_none());

    // Revoked on A: gone from A at once, from B and C as the message arrives.
    assert!(a.store().revoke(&token.hash()).await.unwrap());
    assert!(a.resolve_token_now(&token).is_none());
    for r in &replicas[1..] {
        let r2 = r.clone();
        let t = token.clone();
        let took = until(
            "revocation reached the replica",
            Duration::from_millis(100),
            move || r2.resolve_token_now(&t).is_none(),
        )
        .await;
        eprintln!("replica cache cleared after {took:?}");
        assert!(r.resolve_token(&token).await.unwrap().is_none());
    }

    // Revoke a user on C: A and B drop that user's entries, keep the others.
    let (u1, _) = a
        .store()
        .create(new_session("hank", Duration::from_secs(60)))
        .await
        .unwrap();
    let (u2, _) = a
        .store()
        .create(new_session("ivy", Duration::from_secs(60)))
        .await
        .unwrap();
    for r in &replicas[..2] {
        r.resolve_token(&u1).await.unwrap().unwrap();
        r.resolve_token(&u2).await.unwrap().unwrap();
    }
    assert_eq!(replicas[2].store().revoke_user("hank").await.unwrap(), 1);
    for r in &replicas[..2] {
        let r2 = r.clone();
        let t = u1.clone();
        until("user revocation", Duration::from_millis(100), move || {
            r2.resolve_token_now(&t).is_none()
        })
        .await;
        assert!(r.resolve_token_now(&u2).is_some());
    }
}

#[tokio::test]
async fn the_cache_is_off_while_the_channel_is_down() {
    let Some(mut server) = RedisServer::start(None, &[]) else {
        return;
    };
    let r = CachingResolver::new(store(&server), cache_cfg());
    connected(&r).await;
    let heard = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let h = heard.clone();
    r.store()
        .revocations()
        .listen(move |ev| h.lock().push(ev.clone()));
    let (token, _) = r
        .store()
        .create(new_session("jay", Duration::from_secs(60)))
        .await
        .unwrap();
    r.resolve_token(&token).await.unwrap().unwrap();
    assert!(r.resolve_token_now(&token).is_some());

    server.stop();
    let r2 = r.clone();
    let took = until("the link went down", Duration::from_secs(2), move || {
        !r2.is_connected()
    })
    .await;
    eprintln!("link down noticed after {took:?}");
    // No cached answer, and Redis fails: fail closed.
    assert!(r.resolve_token_now(&token).is_none());
    let start = Instant::now();
    assert!(matches!(
        r.resolve_token(&token).await,
        Err(session_core::ResolveError::Unavailable(_))
    ));
    assert!(start.elapsed() < Duration::from_millis(700));

    server.restart();
    connected(&r).await;
    assert!(heard.lock().contains(&Revocation::Resync));
    // A fresh server (no persistence): the session is gone, never served from a stale cache.
    assert!(r.resolve_token_now(&token).is_none());
    assert!(r.resolve_token(&token).await.unwrap().is_none());
    let (t2, _) = r
        .store()
        .create(new_session("jay", Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(r.resolve_token(&t2).await.unwrap().is_some());
    assert!(r.resolve_token_now(&t2).is_some());
}

#[tokio::test]
async fn a_stall_turns_the_cache_off() {
    let Some(server) = RedisServer::start(None, &[]) else {
        return;
    };
    let r = CachingResolver::new(store(&server), cache_cfg());
    connected(&r).await;
    let (token, _) = r
        .store()
        .create(new_session("kim", Duration::from_secs(60)))
        .await
        .unwrap();
    r.resolve_token(&token).await.unwrap().unwrap();
    let mut raw = raw(&server).await;
    let stall = tokio::spawn(async move {
        let _: Result<String, _> = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg("2")
            .query_async(&mut raw)
            .await;
    });
    let r2 = r.clone();
    let took = until("the stall was noticed", Duration::from_secs(1), move || {
        !r2.is_connected()
    })
    .await;
    eprintln!("stall noticed after {took:?}");
    assert!(r.resolve_token_now(&token).is_none());
    let start = Instant::now();
    assert!(r.resolve_token(&token).await.is_err());
    assert!(start.elapsed() < Duration::from_millis(700));
    stall.await.unwrap();
    connected(&r).await;
    assert!(r.resolve_token(&token).await.unwrap().is_some());
}

/// Hot-path cost: a warm local cache, a miss that goes to Redis, and the memory store.
/// Printed, not asserted (`cargo test -p session-core --features redis --test redis_cache
/// -- --nocapture hot_path_costs`).
#[tokio::test]
async fn hot_path_costs() {
    let Some(server) = RedisServer::start(None, &[]) else {
        return;
    };
    let r = CachingResolver::new(store(&server), cache_cfg());
    connected(&r).await;
    let (token, _) = r
        .store()
        .create(new_session("lee", Duration::from_secs(600)))
        .await
        .unwrap();
    r.resolve_token(&token).await.unwrap().unwrap();

    const HITS: u32 = 200_000;
    let start = Instant::now();
    for _ in 0..HITS {
        std::hint::black_box(r.resolve_token_now(std::hint::black_box(&token)));
    }
    let hit = start.elapsed() / HITS;

    let memory = MemoryStore::new();
    let (mt, _) = memory
        .create(new_session("lee", Duration::from_secs(600)))
        .await
        .unwrap();
    let mr = StoreResolver::new(Arc::new(memory));
    let start = Instant::now();
    for _ in 0..HITS {
        std::hint::black_box(mr.resolve_token_now(std::hint::black_box(&mt)));
    }
    let mem = start.elapsed() / HITS;

    // Misses: no cache (capacity 0), one Redis round trip each, sequential and 32 at once.
    let cold = CachingResolver::new(
        store(&server),
        CacheConfig {
            capacity: 0,
            ..cache_cfg()
        },
    );
    connected(&cold).await;
    const MISSES: u32 = 2_000;
    let mut lat = Vec::with_capacity(MISSES as usize);
    for _ in 0..MISSES {
        let s = Instant::now();
        assert!(cold.resolve_token_now(&token).is_none());
        cold.resolve_token(&token).await.unwrap().unwrap();
        lat.push(s.elapsed());
    }
    lat.sort();
    let pct = |p: usize| lat[(lat.len() * p / 100).min(lat.len() - 1)];
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let cold = cold.clone();
        let token = token.clone();
        set.spawn(async move {
            for _ in 0..MISSES / 32 {
                cold.resolve_token(&token).await.unwrap().unwrap();
            }
        });
    }
    while set.join_next().await.is_some() {}
    let concurrent = start.elapsed() / (MISSES / 32 * 32);
    eprintln!(
        "\nhot path (resolver only, this machine, debug={}):\n  memory store hit: {mem:?}/lookup\n  redis, warm local cache: {hit:?}/lookup\n  redis miss (round trip to a local redis-server): p50 {:?} p90 {:?} p99 {:?}; 32 concurrent: {concurrent:?}/lookup amortised\n",
        cfg!(debug_assertions),
        pct(50),
        pct(90),
        pct(99),
    );
}
