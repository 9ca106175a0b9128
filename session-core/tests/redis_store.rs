//! `RedisStore` against a real `redis-server` started by each test on a free port (no
//! persistence), killed when the test ends: the key schema, expiry, records written by others,
//! credentials, outages and the Lua scripts. The cache is in redis_cache.rs, the per-user bound
//! in redis_user_bound.rs.
//!
//! Without `redis-server` on the PATH these tests print a loud skip message, except on CI
//! (`CI=true`) where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "support/redis_session.rs"]
mod redis_session;

use std::time::{Duration, Instant};

use redis_server::RedisServer;
use redis_session::{cache_cfg, connected, new_session, raw, store};
use session_core::{
    CachingResolver, NewSession, RedisConfig, RedisStore, ResolveToken, SessionStore, StoreError,
    Token, Variables,
};

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
async fn variables_are_one_more_hash_field_and_old_hashes_have_none() {
    let Some(server) = RedisServer::start(None, &[]) else {
        return;
    };
    let s = store(&server);
    let mut raw = raw(&server).await;
    let variables: Variables = [
        ("x-hasura-org-id".to_owned(), "42".to_owned()),
        ("x-hasura-team".to_owned(), "blue".to_owned()),
    ]
    .into();
    let (token, session) = s
        .create(NewSession {
            variables: variables.clone(),
            ..new_session("erin", Duration::from_secs(60))
        })
        .await
        .unwrap();
    assert_eq!(session.variables, variables);
    let key = format!("gateway:session:{}", token.hash().to_hex());
    let field: String = redis::cmd("HGET")
        .arg(&key)
        .arg("variables")
        .query_async(&mut raw)
        .await
        .unwrap();
    let stored: Variables = serde_json::from_str(&field).unwrap();
    assert_eq!(stored, variables, "a JSON object: {field}");
    assert_eq!(
        s.resolve(&token.hash()).await.unwrap().unwrap().variables,
        variables
    );
    assert_eq!(s.list_user("erin").await.unwrap()[0].variables, variables);
    // Both read paths: plain HMGET, and the sliding script.
    for slide in [None, Some(Duration::from_secs(120))] {
        let id = s
            .resolve_identity(&token.hash(), slide)
            .await
            .unwrap()
            .unwrap();
        let got: Vec<(&str, &str)> = id
            .variables()
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(got, [("x-hasura-org-id", "42"), ("x-hasura-team", "blue")]);
    }

    // A session without variables writes no field: its hash is what it was before.
    let (plain, _) = s
        .create(new_session("erin", Duration::from_secs(60)))
        .await
        .unwrap();
    let fields: Vec<String> = redis::cmd("HKEYS")
        .arg(format!("gateway:session:{}", plain.hash().to_hex()))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(!fields.contains(&"variables".to_owned()), "{fields:?}");

    // A hash written before variables existed (the five fields, by hand) still resolves, with
    // none; so does one listed through the user index.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let write = |token: &Token, variables: Option<&str>| {
        let key = format!("gateway:session:{}", token.hash().to_hex());
        let mut p = redis::pipe();
        p.cmd("HSET")
            .arg(&key)
            .arg("user_id")
            .arg("frank")
            .arg("roles")
            .arg("user")
            .arg("default_role")
            .arg("user")
            .arg("created_at")
            .arg(now)
            .arg("expires_at")
            .arg(now + 60_000);
        if let Some(v) = variables {
            p.cmd("HSET").arg(&key).arg("variables").arg(v);
        }
        p.cmd("PEXPIREAT")
            .arg(&key)
            .arg(now + 60_000)
            .cmd("ZADD")
            .arg("gateway:user:frank")
            .arg(now * 1000)
            .arg(token.hash().to_hex());
        p
    };
    let old = Token::generate();
    let () = write(&old, None).query_async(&mut raw).await.unwrap();
    for slide in [None, Some(Duration::from_secs(120))] {
        let id = s
            .resolve_identity(&old.hash(), slide)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&*id.user_id, "frank");
        assert!(id.variables().is_empty());
    }
    let listed = s.list_user("frank").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].variables.is_empty());

    // A `variables` field that is not a JSON object of strings passing the rules: refused,
    // like any broken field.
    for bad in [
        "not json",
        "[]",
        r#"{"x-hasura-org-id": 42}"#,
        r#"{"x-hasura-org-id": "a\r\nx-evil: 1"}"#,
        r#"{"X-Hasura-Org-Id": "1"}"#,
    ] {
        let t = Token::generate();
        let () = write(&t, Some(bad)).query_async(&mut raw).await.unwrap();
        for slide in [None, Some(Duration::from_secs(120))] {
            assert!(
                s.resolve_identity(&t.hash(), slide)
                    .await
                    .unwrap()
                    .is_none(),
                "{bad}"
            );
        }
    }
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
    assert!(r.resolve_token(&token).await.unwrap().is_some());
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
