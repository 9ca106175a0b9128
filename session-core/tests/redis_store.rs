//! `RedisStore` and `CachingResolver` against a real `redis-server` started by each test on a
//! free port (no persistence), killed when the test ends.
//!
//! Without `redis-server` on the PATH these tests print a loud skip message, except on CI
//! (`CI=true`) where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis_server::RedisServer;
use session_core::{
    CacheConfig, CachingResolver, MemoryStore, NewSession, RedisConfig, RedisStore, Resolver,
    Revocation, SessionStore, StoreError, StoreResolver, Token,
};

/// A plain connection for checking what the store wrote.
async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

fn store(server: &RedisServer) -> RedisStore {
    RedisStore::open(&server.url(), RedisConfig::default()).unwrap()
}

fn new_session(user: &str, ttl: Duration) -> NewSession {
    NewSession {
        user_id: user.into(),
        roles: vec!["user".into(), "admin".into()],
        default_role: Some("admin".into()),
        ttl,
    }
}

async fn until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

#[tokio::test]
async fn store_round_trip_and_key_schema() {
    let Some(server) = RedisServer::start(None, &[]) else {
        return;
    };
    let s = store(&server);
    let (token, session) = s
        .create(new_session("alice", Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(session.id, token.hash());
    assert_eq!(session.default_role, "admin");

    // The schema the README documents.
    let mut raw = raw(&server).await;
    let hex = token.hash().to_hex();
    let key = format!("gateway:session:{hex}");
    let h: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&key)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(h["user_id"], "alice");
    assert_eq!(h["roles"], "user,admin");
    assert_eq!(h["default_role"], "admin");
    let exp: u64 = h["expires_at"].parse().unwrap();
    let created: u64 = h["created_at"].parse().unwrap();
    assert_eq!(exp - created, 60_000);
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!((55_000..=60_000).contains(&pttl), "{pttl}");
    // The user index is a sorted set scored by creation time in microseconds.
    let members: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg("gateway:user:alice")
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].0, hex);
    assert_eq!(members[0].1 as u64 / 1000, created);
    let user_ttl: i64 = redis::cmd("PTTL")
        .arg("gateway:user:alice")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(user_ttl > 55_000, "{user_ttl}");
    // No token anywhere.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(keys.iter().all(|k| !k.contains(token.expose())));

    let got = s.resolve(&token.hash()).await.unwrap().unwrap();
    assert_eq!(got.user_id, "alice");
    assert_eq!(got.roles, vec!["user", "admin"]);
    let id = s
        .resolve_identity(&token.hash(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&*id.role, "admin");
    assert!(id.has_role("user"));

    let (t2, _) = s
        .create(new_session("alice", Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(s.list_user("alice").await.unwrap().len(), 2);
    assert!(s.revoke(&token.hash()).await.unwrap());
    assert!(!s.revoke(&token.hash()).await.unwrap());
    assert!(s.resolve(&token.hash()).await.unwrap().is_none());
    assert_eq!(s.list_user("alice").await.unwrap().len(), 1);
    assert_eq!(s.revoke_user("alice").await.unwrap(), 1);
    assert!(s.resolve(&t2.hash()).await.unwrap().is_none());
    assert_eq!(s.revoke_user("alice").await.unwrap(), 0);
    assert!(s.list_user("alice").await.unwrap().is_empty());
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("gateway:*")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");

    // Validation happens before anything is written.
    let bad = NewSession {
        roles: vec!["a,b".into()],
        ..new_session("bob", Duration::from_secs(60))
    };
    assert!(matches!(s.create(bad).await, Err(StoreError::Invalid(_))));
}

#[tokio::test]
async fn expiry_is_native_and_sliding_moves_it() {
    let Some(server) = RedisServer::start(None, &[]) else {
        return;
    };
    let s = store(&server);
    let (short, _) = s
        .create(new_session("carol", Duration::from_millis(300)))
        .await
        .unwrap();
    let (slid, _) = s
        .create(new_session("carol", Duration::from_millis(1500)))
        .await
        .unwrap();
    // touch never shortens, and pushes the expiry (key and field) forward.
    assert!(s
        .touch(&slid.hash(), Duration::from_secs(30))
        .await
        .unwrap());
    let mut raw = raw(&server).await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg(format!("gateway:session:{}", slid.hash().to_hex()))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(pttl > 25_000, "{pttl}");
    assert!(s.touch(&slid.hash(), Duration::from_secs(1)).await.unwrap());
    let after = s.resolve(&slid.hash()).await.unwrap().unwrap();
    let left = after
        .expires_at
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(left > Duration::from_secs(25), "{left:?}");

    // The resolver's sliding expiry: one round trip that also moves the expiry.
    let (third, _) = s
        .create(new_session("carol", Duration::from_secs(2)))
        .await
        .unwrap();
    let id = s
        .resolve_identity(&third.hash(), Some(Duration::from_secs(20)))
        .await
        .unwrap();
    assert!(id.is_some());
    let pttl: i64 = redis::cmd("PTTL")
        .arg(format!("gateway:session:{}", third.hash().to_hex()))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(pttl > 15_000, "{pttl}");

    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(s.resolve(&short.hash()).await.unwrap().is_none());
    assert!(!s
        .touch(&short.hash(), Duration::from_secs(30))
        .await
        .unwrap());
    let exists: i64 = redis::cmd("EXISTS")
        .arg(format!("gateway:session:{}", short.hash().to_hex()))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(exists, 0, "Redis removed the expired hash by itself");
    // The user index still lists it until it is cleaned lazily.
    let n: i64 = redis::cmd("ZCARD")
        .arg("gateway:user:carol")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(s.list_user("carol").await.unwrap().len(), 2);
    let n: i64 = redis::cmd("ZCARD")
        .arg("gateway:user:carol")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(n, 2, "list_user removed the expired member");
}

#[tokio::test]
async fn records_written_by_others_are_checked() {
    let Some(server) = RedisServer::start(None, &[]) else {
        return;
    };
    let s = RedisStore::open(
        &server.url(),
        RedisConfig {
            prefix: "other".into(),
            ..RedisConfig::default()
        },
    )
    .unwrap();
    let mut raw = raw(&server).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let write = |token: &Token, roles: &str, default: &str, exp: u64| {
        let key = format!("other:session:{}", token.hash().to_hex());
        let mut p = redis::pipe();
        p.cmd("HSET")
            .arg(&key)
            .arg("user_id")
            .arg("dave")
            .arg("roles")
            .arg(roles)
            .arg("default_role")
            .arg(default)
            .arg("created_at")
            .arg(now)
            .arg("expires_at")
            .arg(exp)
            .cmd("PEXPIREAT")
            .arg(&key)
            .arg(now + 60_000);
        p
    };
    let good = Token::generate();
    let () = write(&good, "user,editor", "editor", now + 60_000)
        .query_async(&mut raw)
        .await
        .unwrap();
    let id = s
        .resolve_identity(&good.hash(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&*id.user_id, "dave");
    assert_eq!(&*id.role, "editor");
    for (roles, default, exp) in [
        ("user\r\nx-evil: 1", "user", now + 60_000),
        ("user", "admin", now + 60_000),
        ("", "", now + 60_000),
        ("user", "user", now - 1),
    ] {
        let t = Token::generate();
        let () = write(&t, roles, default, exp)
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(
            s.resolve_identity(&t.hash(), None).await.unwrap().is_none(),
            "{roles:?} {default:?}"
        );
    }
}

#[tokio::test]
async fn acl_users_and_passwords_in_the_url() {
    let Some(server) = RedisServer::start(
        None,
        &[
            "--requirepass",
            "default-pw",
            "--user",
            "gw",
            "on",
            ">gw-secret",
            "~gateway:*",
            "&gateway:*",
            "+@all",
        ],
    ) else {
        return;
    };
    let url = format!("redis://gw:gw-secret@127.0.0.1:{}", server.port);
    let s = RedisStore::open(&url, RedisConfig::default()).unwrap();
    let (t, _) = s
        .create(new_session("erin", Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(s.resolve(&t.hash()).await.unwrap().is_some());
    let pw = format!("redis://:default-pw@127.0.0.1:{}", server.port);
    let s2 = RedisStore::open(&pw, RedisConfig::default()).unwrap();
    assert!(s2.resolve(&t.hash()).await.unwrap().is_some());

    let wrong = format!("redis://gw:nope@127.0.0.1:{}", server.port);
    let s3 = RedisStore::open(&wrong, RedisConfig::default()).unwrap();
    match s3.resolve(&t.hash()).await {
        Err(StoreError::Unavailable(m)) => {
            assert!(!m.contains("nope"), "the error shows the password: {m}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // A malformed URL: the error does not echo it.
    match RedisStore::open("redis://u:hunter2@[::1", RedisConfig::default()) {
        Err(e) => assert!(!e.to_string().contains("hunter2"), "{e}"),
        Ok(_) => panic!("a malformed URL was accepted"),
    }
}

#[tokio::test]
async fn down_stalled_and_back() {
    let Some(mut server) = RedisServer::start(None, &[]) else {
        return;
    };
    let s = RedisStore::open(
        &server.url(),
        RedisConfig {
            command_timeout: Duration::from_millis(300),
            ..RedisConfig::default()
        },
    )
    .unwrap();
    let (t, _) = s
        .create(new_session("frank", Duration::from_secs(60)))
        .await
        .unwrap();

    // Stalled: a timeout, not a hang.
    let mut raw = raw(&server).await;
    let stall = tokio::spawn(async move {
        let _: Result<String, _> = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg("2")
            .query_async(&mut raw)
            .await;
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    let r = s.resolve(&t.hash()).await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    assert!(
        start.elapsed() < Duration::from_millis(600),
        "{:?}",
        start.elapsed()
    );
    stall.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.resolve(&t.hash()).await.is_err() {
        assert!(Instant::now() < deadline, "no recovery after the stall");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Down: fails at once (or within the timeout), then recovers without a new store.
    server.stop();
    let start = Instant::now();
    for _ in 0..3 {
        assert!(matches!(
            s.resolve(&t.hash()).await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            s.create(new_session("frank", Duration::from_secs(60)))
                .await,
            Err(StoreError::Unavailable(_))
        ));
    }
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    server.restart();
    let restarted = Instant::now();
    let deadline = restarted + Duration::from_secs(5);
    let t2 = loop {
        match s
            .create(new_session("frank", Duration::from_secs(60)))
            .await
        {
            Ok((t, _)) => break t,
            Err(_) => {
                assert!(Instant::now() < deadline, "no recovery after a restart");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    eprintln!(
        "store recovered {:?} after the restart",
        restarted.elapsed()
    );
    assert!(s.resolve(&t2.hash()).await.unwrap().is_some());
    // Sessions were not persisted (`--save ""`): the old one is gone, never served.
    assert!(s.resolve(&t.hash()).await.unwrap().is_none());
}

#[tokio::test]
async fn a_store_started_while_redis_is_down_connects_later() {
    let Some(mut server) = RedisServer::start(None, &[]) else {
        return;
    };
    server.stop();
    let s = store(&server);
    assert!(s.ping().await.is_err());
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.ping().await.is_err() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn cache_cfg() -> CacheConfig {
    CacheConfig {
        ttl: Duration::from_secs(30),
        ..CacheConfig::default()
    }
}

async fn connected(r: &CachingResolver) {
    let r = r.clone();
    until("subscribed", Duration::from_secs(5), move || {
        r.is_connected()
    })
    .await;
}

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
        assert!(r.resolve_now(&token).is_none(), "nothing cached yet");
        assert!(r.resolve(&token).await.unwrap().is_some());
        let hit = r.resolve_now(&token).expect("cached").unwrap().unwrap();
        assert_eq!(&*hit.role, "admin");
        assert_eq!(r.cached(), 1);
    }
    // Unknown tokens are not cached.
    let unknown = Token::generate();
    assert!(a.resolve(&unknown).await.unwrap().is_none());
    assert!(a.resolve_now(&unknown).is_none());

    // Revoked on A: gone from A at once, from B and C as the message arrives.
    assert!(a.store().revoke(&token.hash()).await.unwrap());
    assert!(a.resolve_now(&token).is_none());
    for r in &replicas[1..] {
        let r2 = r.clone();
        let t = token.clone();
        let took = until(
            "revocation reached the replica",
            Duration::from_millis(100),
            move || r2.resolve_now(&t).is_none(),
        )
        .await;
        eprintln!("replica cache cleared after {took:?}");
        assert!(r.resolve(&token).await.unwrap().is_none());
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
        r.resolve(&u1).await.unwrap().unwrap();
        r.resolve(&u2).await.unwrap().unwrap();
    }
    assert_eq!(replicas[2].store().revoke_user("hank").await.unwrap(), 1);
    for r in &replicas[..2] {
        let r2 = r.clone();
        let t = u1.clone();
        until("user revocation", Duration::from_millis(100), move || {
            r2.resolve_now(&t).is_none()
        })
        .await;
        assert!(r.resolve_now(&u2).is_some());
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
    r.resolve(&token).await.unwrap().unwrap();
    assert!(r.resolve_now(&token).is_some());

    server.stop();
    let r2 = r.clone();
    let took = until("the link went down", Duration::from_secs(2), move || {
        !r2.is_connected()
    })
    .await;
    eprintln!("link down noticed after {took:?}");
    // No cached answer, and Redis fails: fail closed.
    assert!(r.resolve_now(&token).is_none());
    let start = Instant::now();
    assert!(matches!(
        r.resolve(&token).await,
        Err(session_core::ResolveError::Unavailable(_))
    ));
    assert!(start.elapsed() < Duration::from_millis(700));

    server.restart();
    connected(&r).await;
    assert!(heard.lock().contains(&Revocation::Resync));
    // A fresh server (no persistence): the session is gone, never served from a stale cache.
    assert!(r.resolve_now(&token).is_none());
    assert!(r.resolve(&token).await.unwrap().is_none());
    let (t2, _) = r
        .store()
        .create(new_session("jay", Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(r.resolve(&t2).await.unwrap().is_some());
    assert!(r.resolve_now(&t2).is_some());
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
    r.resolve(&token).await.unwrap().unwrap();
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
    assert!(r.resolve_now(&token).is_none());
    let start = Instant::now();
    assert!(r.resolve(&token).await.is_err());
    assert!(start.elapsed() < Duration::from_millis(700));
    stall.await.unwrap();
    connected(&r).await;
    assert!(r.resolve(&token).await.unwrap().is_some());
}

/// Hot-path cost: a warm local cache, a miss that goes to Redis, and the memory store.
/// Printed, not asserted (`cargo test -p session-core --features redis --test redis_store
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
    r.resolve(&token).await.unwrap().unwrap();

    const HITS: u32 = 200_000;
    let start = Instant::now();
    for _ in 0..HITS {
        std::hint::black_box(r.resolve_now(std::hint::black_box(&token)));
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
        std::hint::black_box(mr.resolve_now(std::hint::black_box(&mt)));
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
        assert!(cold.resolve_now(&token).is_none());
        cold.resolve(&token).await.unwrap().unwrap();
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
                cold.resolve(&token).await.unwrap().unwrap();
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

/// `number_of_cached_scripts` from `INFO memory`: how many Lua scripts Redis holds.
async fn cached_scripts(conn: &mut redis::aio::MultiplexedConnection) -> usize {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("number_of_cached_scripts:"))
        .expect("INFO memory lists number_of_cached_scripts")
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn scripts_are_loaded_when_the_connection_comes_up_not_by_the_first_request() {
    let Some(server) = RedisServer::start(None, &[]) else {
        return;
    };
    let mut conn = raw(&server).await;
    assert_eq!(cached_scripts(&mut conn).await, 0);

    // Directly: one call loads every script the store runs.
    let s = store(&server);
    assert_eq!(s.load_scripts().await.unwrap(), 6);
    assert_eq!(cached_scripts(&mut conn).await, 6);

    // Through the resolver: a flushed script cache (as after a Redis restart) is filled again
    // before the resolver reports connected, without any session command having run.
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    assert_eq!(cached_scripts(&mut conn).await, 0);
    let r = CachingResolver::new(store(&server), cache_cfg());
    connected(&r).await;
    assert_eq!(cached_scripts(&mut conn).await, 6);

    // And the store works by hash from the first command on.
    let (token, _) = r
        .store()
        .create(new_session("hana", Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(r.resolve(&token).await.unwrap().is_some());
}

#[tokio::test]
async fn load_scripts_fails_closed_when_redis_does_not_answer() {
    // A socket that accepts connections and never answers: unlike a stopped server's port,
    // no other test's server can take it over meanwhile.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", silent.local_addr().unwrap());
    let s = RedisStore::open(
        &url,
        RedisConfig {
            command_timeout: Duration::from_millis(200),
            ..RedisConfig::default()
        },
    )
    .unwrap();
    assert!(matches!(
        s.load_scripts().await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test]
async fn creating_a_session_drops_expired_sessions_from_the_users_set() {
    let Some(server) = RedisServer::start(None, &[]) else {
        return;
    };
    let s = store(&server);
    let mut conn = raw(&server).await;
    let members = |conn: &mut redis::aio::MultiplexedConnection| {
        let mut conn = conn.clone();
        async move {
            let mut m: Vec<String> = redis::cmd("ZRANGE")
                .arg("gateway:user:ivy")
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .unwrap();
            m.sort();
            m
        }
    };

    // One long session and two that expire at once.
    let (_, long) = s
        .create(new_session("ivy", Duration::from_secs(600)))
        .await
        .unwrap();
    for _ in 0..2 {
        s.create(new_session("ivy", Duration::from_millis(300)))
            .await
            .unwrap();
    }
    assert!(members(&mut conn).await.contains(&long.id.to_hex()));
    tokio::time::sleep(Duration::from_millis(700)).await;

    // The long session keeps the index alive; the next create drops the two dead hashes (the
    // three oldest members are checked).
    let (_, new) = s
        .create(new_session("ivy", Duration::from_secs(600)))
        .await
        .unwrap();
    let mut want = vec![long.id.to_hex(), new.id.to_hex()];
    want.sort();
    assert_eq!(members(&mut conn).await, want);
    assert_eq!(s.list_user("ivy").await.unwrap().len(), 2);
}

fn store_max(server: &RedisServer, max: usize) -> RedisStore {
    RedisStore::open(
        &server.url(),
        RedisConfig {
            max_per_user: std::num::NonZeroUsize::new(max).unwrap(),
            ..RedisConfig::default()
        },
    )
    .unwrap()
}

async fn zcard(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> usize {
    redis::cmd("ZCARD")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap()
}

/// SECURITY-CASES 40: a create beyond `max_per_user` revokes the user's oldest session, and
/// that is a revocation like any other: published on the channel (another replica's cache drops
/// it at once), told to this process's listeners.
#[tokio::test]
async fn case_40_a_create_beyond_max_per_user_revokes_the_oldest_and_publishes_it() {
    let Some(server) = RedisServer::start(None, &[]) else {
        return;
    };
    let s = store_max(&server, 2);
    let heard = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let h = heard.clone();
    s.revocations().listen(move |r| h.lock().push(r.clone()));
    // Another replica, with its own cache, which will hold the first session.
    let other = CachingResolver::new(store_max(&server, 2), cache_cfg());
    connected(&other).await;
    let mut conn = raw(&server).await;

    let mut tokens = Vec::new();
    for _ in 0..2 {
        tokens.push(
            s.create(new_session("jo", Duration::from_secs(60)))
                .await
                .unwrap()
                .0,
        );
    }
    let (theirs, _) = s
        .create(new_session("kim", Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(other.resolve(&tokens[0]).await.unwrap().is_some());
    assert!(other.resolve_now(&tokens[0]).is_some(), "cached");
    assert!(heard.lock().is_empty());

    tokens.push(
        s.create(new_session("jo", Duration::from_secs(60)))
            .await
            .unwrap()
            .0,
    );
    assert!(s.resolve(&tokens[0].hash()).await.unwrap().is_none());
    assert_eq!(
        *heard.lock(),
        vec![Revocation::Session(tokens[0].hash())],
        "the eviction is told to this process like a revocation"
    );
    let o = other.clone();
    let t = tokens[0].clone();
    until(
        "the other replica dropped its copy",
        Duration::from_millis(500),
        move || o.resolve_now(&t).is_none(),
    )
    .await;
    assert!(other.resolve(&tokens[0]).await.unwrap().is_none());
    let listed: Vec<_> = s
        .list_user("jo")
        .await
        .unwrap()
        .iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(listed, [tokens[1].hash(), tokens[2].hash()]);
    assert_eq!(zcard(&mut conn, "gateway:user:jo").await, 2);
    assert!(s.resolve(&theirs.hash()).await.unwrap().is_some());
    assert!(
        !s.revoke(&tokens[0].hash()).await.unwrap(),
        "already revoked"
    );
}

/// SECURITY-CASES 40: expired sessions do not count against the bound, and the index holds at
/// most `max_per_user` members however many sessions expired in it.
#[tokio::test]
async fn case_40_expired_sessions_make_room_and_the_index_stays_bounded() {
    let Some(server) = RedisServer::start(None, &[]) else {
        return;
    };
    let s = store_max(&server, 3);
    let mut conn = raw(&server).await;
    let (long, _) = s
        .create(new_session("lou", Duration::from_secs(600)))
        .await
        .unwrap();
    for _ in 0..2 {
        s.create(new_session("lou", Duration::from_millis(200)))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut live = vec![long];
    for _ in 0..2 {
        live.push(
            s.create(new_session("lou", Duration::from_secs(600)))
                .await
                .unwrap()
                .0,
        );
    }
    for t in &live {
        assert!(s.resolve(&t.hash()).await.unwrap().is_some());
    }
    assert_eq!(zcard(&mut conn, "gateway:user:lou").await, 3);
    for _ in 0..20 {
        s.create(new_session("lou", Duration::from_secs(600)))
            .await
            .unwrap();
        assert!(zcard(&mut conn, "gateway:user:lou").await <= 3);
    }
    assert!(s.resolve(&live[0].hash()).await.unwrap().is_none());
    assert_eq!(s.list_user("lou").await.unwrap().len(), 3);
}

/// SECURITY-CASES 40: N concurrent creates for one user leave exactly `max_per_user` live
/// sessions (the create script is atomic).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn case_40_concurrent_creates_leave_exactly_max_per_user() {
    let Some(server) = RedisServer::start(None, &[]) else {
        return;
    };
    const K: usize = 4;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        // Each task its own connection, as replicas would be.
        let s = store_max(&server, K);
        set.spawn(async move {
            let mut tokens = Vec::new();
            for _ in 0..10 {
                let (t, _) = s
                    .create(new_session("max", Duration::from_secs(60)))
                    .await
                    .unwrap();
                tokens.push(t);
            }
            tokens
        });
    }
    let mut all = Vec::new();
    while let Some(tokens) = set.join_next().await {
        all.extend(tokens.unwrap());
    }
    assert_eq!(all.len(), 80);
    let s = store_max(&server, K);
    let mut live = 0;
    for t in &all {
        if s.resolve(&t.hash()).await.unwrap().is_some() {
            live += 1;
        }
    }
    assert_eq!(live, K);
    assert_eq!(s.list_user("max").await.unwrap().len(), K);
    let mut conn = raw(&server).await;
    assert_eq!(zcard(&mut conn, "gateway:user:max").await, K);
}

/// Writes a session as the schema before the bound did (and as the README told other services
/// to): the session hash, and its hex hash in the user's *set*.
async fn write_legacy(
    conn: &mut redis::aio::MultiplexedConnection,
    user: &str,
    created: u64,
) -> Token {
    let token = Token::generate();
    let hex = token.hash().to_hex();
    let key = format!("gateway:session:{hex}");
    let user_key = format!("gateway:user:{user}");
    let exp = created + 600_000;
    let () = redis::pipe()
        .cmd("HSET")
        .arg(&key)
        .arg("user_id")
        .arg(user)
        .arg("roles")
        .arg("user,admin")
        .arg("default_role")
        .arg("user")
        .arg("created_at")
        .arg(created)
        .arg("expires_at")
        .arg(exp)
        .ignore()
        .cmd("PEXPIREAT")
        .arg(&key)
        .arg(exp)
        .ignore()
        .cmd("SADD")
        .arg(&user_key)
        .arg(&hex)
        .ignore()
        .cmd("PEXPIREAT")
        .arg(&user_key)
        .arg(exp)
        .ignore()
        .query_async(conn)
        .await
        .unwrap();
    token
}

async fn key_type(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> String {
    redis::cmd("TYPE").arg(key).query_async(conn).await.unwrap()
}

/// The upgrade path of the key schema change that SECURITY-CASES 40 needed: a user index
/// written as a set (before the bound) is converted in place by the first script that touches
/// it, and its sessions stay valid: they resolve, are listed oldest first, count towards the
/// bound, and are revoked one by one or all at once.
#[tokio::test]
async fn case_40_sessions_written_with_the_set_schema_stay_valid() {
    let Some(server) = RedisServer::start(None, &[]) else {
        return;
    };
    let s = store_max(&server, 3);
    let mut conn = raw(&server).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;

    // Resolved and listed; a dead member is dropped when the set is converted.
    let newer = write_legacy(&mut conn, "old", now - 1_000).await;
    let older = write_legacy(&mut conn, "old", now - 2_000).await;
    let () = redis::cmd("SADD")
        .arg("gateway:user:old")
        .arg(Token::generate().hash().to_hex())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(key_type(&mut conn, "gateway:user:old").await, "set");
    let id = s
        .resolve_identity(&older.hash(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&*id.user_id, "old");
    let listed: Vec<_> = s
        .list_user("old")
        .await
        .unwrap()
        .iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(listed, [older.hash(), newer.hash()]);
    assert_eq!(key_type(&mut conn, "gateway:user:old").await, "zset");
    assert_eq!(zcard(&mut conn, "gateway:user:old").await, 2);
    let pttl: i64 = redis::cmd("PTTL")
        .arg("gateway:user:old")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pttl > 500_000, "the index kept its expiry: {pttl}");

    // Revoke-all on a set that was never converted.
    let a = write_legacy(&mut conn, "old2", now - 1_000).await;
    let b = write_legacy(&mut conn, "old2", now - 500).await;
    assert_eq!(s.revoke_user("old2").await.unwrap(), 2);
    for t in [&a, &b] {
        assert!(s.resolve(&t.hash()).await.unwrap().is_none());
    }
    assert_eq!(key_type(&mut conn, "gateway:user:old2").await, "none");

    // One revocation, then creates: the legacy sessions count towards the bound, oldest out
    // first, new sessions ordered after them.
    let mut legacy = Vec::new();
    for age in [3_000, 2_000, 1_000] {
        legacy.push(write_legacy(&mut conn, "old3", now - age).await);
    }
    assert!(s.revoke(&legacy[2].hash()).await.unwrap());
    assert_eq!(key_type(&mut conn, "gateway:user:old3").await, "zset");
    assert_eq!(zcard(&mut conn, "gateway:user:old3").await, 2);
    let (n1, _) = s
        .create(new_session("old3", Duration::from_secs(60)))
        .await
        .unwrap();
    let (n2, _) = s
        .create(new_session("old3", Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(
        s.resolve(&legacy[0].hash()).await.unwrap().is_none(),
        "oldest evicted"
    );
    let listed: Vec<_> = s
        .list_user("old3")
        .await
        .unwrap()
        .iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(listed, [legacy[1].hash(), n1.hash(), n2.hash()]);

    // A create is the first touch of a legacy set, too.
    let first = write_legacy(&mut conn, "old4", now - 1_000).await;
    s.create(new_session("old4", Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(key_type(&mut conn, "gateway:user:old4").await, "zset");
    assert_eq!(s.list_user("old4").await.unwrap()[0].id, first.hash());
}
