//! Helpers for session-core's Redis store tests (redis_store.rs, redis_cache.rs,
//! redis_user_bound.rs): a store and a raw connection on the test's server, a session to create,
//! and waiting for the cache's subscription. Kept out of redis_server.rs, which cert-core and
//! gateway-bin also include and which must not depend on session-core.

use std::time::{Duration, Instant};

use session_core::{CacheConfig, CachingResolver, NewSession, RedisConfig, RedisStore};

use crate::redis_server::RedisServer;

/// A plain connection for checking what the store wrote.
pub(crate) async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

pub(crate) fn store(server: &RedisServer) -> RedisStore {
    RedisStore::open(&server.url(), RedisConfig::default()).unwrap()
}

pub(crate) fn new_session(user: &str, ttl: Duration) -> NewSession {
    NewSession {
        user_id: user.into(),
        roles: vec!["user".into(), "admin".into()],
        default_role: Some("admin".into()),
        ttl,
        ..Default::default()
    }
}

pub(crate) async fn until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

pub(crate) fn cache_cfg() -> CacheConfig {
    CacheConfig {
        ttl: Duration::from_secs(30),
        ..CacheConfig::default()
    }
}

pub(crate) async fn connected(r: &CachingResolver) {
    let r = r.clone();
    until("subscribed", Duration::from_secs(5), move || {
        r.is_connected()
    })
    .await;
}
