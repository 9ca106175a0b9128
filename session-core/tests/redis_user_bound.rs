//! The per-user index of `RedisStore` against a real `redis-server` started by each test on a
//! free port (no persistence), killed when the test ends: expired members dropped, the
//! `max_per_user` bound (SECURITY-CASES 40) and the upgrade from the set schema before it.
//!
//! Without `redis-server` on the PATH these tests print a loud skip message, except on CI
//! (`CI=true`) where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "support/redis_session.rs"]
mod redis_session;

use std::sync::Arc;
use std::time::Duration;

use redis_server::RedisServer;
use redis_session::{cache_cfg, connected, new_session, raw, store, until};
use session_core::{
    CachingResolver, RedisConfig, RedisStore, ResolveToken, Revocation, SessionStore, Token,
};

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
    assert!(other.resolve_token(&tokens[0]).await.unwrap().is_some());
    assert!(other.resolve_token_now(&tokens[0]).is_some(), "cached");
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
        move || o.resolve_token_now(&t).is_none(),
    )
    .await;
    assert!(other.resolve_token(&tokens[0]).await.unwrap().is_none());
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
