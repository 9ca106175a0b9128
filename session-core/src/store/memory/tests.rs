use super::*;

use std::num::NonZeroUsize;

fn new_session(user: &str, roles: &[&str], ttl_secs: u64) -> NewSession {
    NewSession {
        user_id: user.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        ttl: Duration::from_secs(ttl_secs),
        ..Default::default()
    }
}

#[tokio::test]
async fn create_then_resolve() {
    let store = MemoryStore::new();
    let (token, session) = store
        .create(NewSession {
            default_role: Some("admin".into()),
            ..new_session("u1", &["user", "admin"], 60)
        })
        .await
        .unwrap();
    assert_eq!(session.id, token.hash());
    assert_eq!(session.user_id, "u1");
    assert_eq!(session.roles, ["user", "admin"]);
    assert_eq!(session.default_role, "admin");
    let ttl = session
        .expires_at
        .duration_since(session.created_at)
        .unwrap();
    assert_eq!(ttl, Duration::from_secs(60));

    let got = store.resolve(&token.hash()).await.unwrap().unwrap();
    assert_eq!(got.user_id, "u1");
    assert_eq!(got.default_role, "admin");
    let identity = store
        .resolve_identity(&token.hash(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(identity, Identity::new("u1", "admin", ["user", "admin"]));
    assert!(identity.role_headers().is_some());
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn variables_round_trip() {
    let store = MemoryStore::new();
    let variables: crate::Variables = [
        ("x-hasura-team".to_owned(), "blue".to_owned()),
        ("x-hasura-org-id".to_owned(), "42".to_owned()),
    ]
    .into();
    let (token, session) = store
        .create(NewSession {
            variables: variables.clone(),
            ..new_session("u1", &["user"], 60)
        })
        .await
        .unwrap();
    assert_eq!(session.variables, variables);
    let got = store.resolve(&token.hash()).await.unwrap().unwrap();
    assert_eq!(got.variables, variables);
    assert_eq!(store.list_user("u1").await.unwrap()[0].variables, variables);
    let identity = store
        .resolve_identity_now(&token.hash(), None)
        .unwrap()
        .unwrap()
        .unwrap();
    let headers: Vec<(&str, &str)> = identity
        .variables()
        .iter()
        .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
        .collect();
    assert_eq!(
        headers,
        [("x-hasura-org-id", "42"), ("x-hasura-team", "blue")]
    );
    // Built once per session, not per resolution.
    let again = store
        .resolve_identity_now(&token.hash(), None)
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(std::ptr::eq(again.variables(), identity.variables()));

    // Without variables: none, and nothing is built.
    let (plain, session) = store
        .create(new_session("u2", &["user"], 60))
        .await
        .unwrap();
    assert!(session.variables.is_empty());
    let identity = store
        .resolve_identity(&plain.hash(), None)
        .await
        .unwrap()
        .unwrap();
    assert!(identity.variables().is_empty());

    // Broken variables are refused before a token is minted.
    let bad = NewSession {
        variables: [("x-hasura-org-id".to_owned(), "4 2".to_owned())].into(),
        ..new_session("u3", &["user"], 60)
    };
    assert!(matches!(
        store.create(bad).await,
        Err(StoreError::Invalid(
            SessionValidationError::InvalidVariableValue(1)
        ))
    ));
    assert!(store.list_user("u3").await.unwrap().is_empty());
}

#[tokio::test]
async fn unknown_token_resolves_to_none() {
    let store = MemoryStore::new();
    assert!(store
        .resolve(&Token::generate().hash())
        .await
        .unwrap()
        .is_none());
    assert!(store
        .resolve_identity_now(&Token::generate().hash(), None)
        .unwrap()
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn every_create_mints_a_new_token() {
    // SECURITY-CASES 11: a login never promotes an existing token.
    let store = MemoryStore::new();
    let (a, _) = store.create(new_session("u", &["r"], 60)).await.unwrap();
    let (b, _) = store.create(new_session("u", &["r"], 60)).await.unwrap();
    assert_ne!(a, b);
    assert_eq!(store.list_user("u").await.unwrap().len(), 2);
}

#[tokio::test]
async fn invalid_sessions_are_refused_before_minting() {
    // SECURITY-CASES 6.
    let store = MemoryStore::new();
    let err = store
        .create(new_session("u\r\nx-hasura-role: admin", &["r"], 60))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Invalid(SessionValidationError::InvalidUserId(1))
    ));
    let err = store
        .create(new_session("u", &["r\n"], 60))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Invalid(SessionValidationError::InvalidRole(1))
    ));
    assert!(store.is_empty());
}

#[tokio::test]
async fn the_store_holds_only_hashes() {
    // SECURITY-CASES 12: lookups are by SHA-256(token); the raw token is not retrievable.
    let store = MemoryStore::new();
    let (token, _) = store.create(new_session("u", &["r"], 60)).await.unwrap();
    let sessions = store.list_user("u").await.unwrap();
    let dump = format!("{sessions:?} {:?}", serde_json_string(&sessions));
    assert!(!dump.contains(token.expose()));
    assert!(dump.contains(&token.hash().to_hex()));
}

fn serde_json_string(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap()
}

#[tokio::test]
async fn expired_sessions_do_not_resolve_and_are_evicted_on_read() {
    let store = MemoryStore::new();
    let (token, _) = store.create(new_session("u", &["r"], 10)).await.unwrap();
    store.advance_clock(Duration::from_secs(9));
    assert!(store.resolve(&token.hash()).await.unwrap().is_some());
    store.advance_clock(Duration::from_secs(1));
    assert!(store.resolve(&token.hash()).await.unwrap().is_none());
    assert!(store.is_empty(), "evicted on read");
    assert!(store.list_user("u").await.unwrap().is_empty());
    assert!(store.inner.users.is_empty(), "user index cleaned");
}

#[tokio::test]
async fn expired_identity_lookup_evicts() {
    let store = MemoryStore::new();
    let (token, _) = store.create(new_session("u", &["r"], 10)).await.unwrap();
    store.advance_clock(Duration::from_secs(10));
    assert!(store
        .resolve_identity_now(&token.hash(), None)
        .unwrap()
        .unwrap()
        .is_none());
    assert!(store.is_empty());
}

#[tokio::test]
async fn touch_slides_expiry_but_never_shortens() {
    let store = MemoryStore::new();
    let (token, s) = store.create(new_session("u", &["r"], 10)).await.unwrap();
    store.advance_clock(Duration::from_secs(5));
    assert!(store
        .touch(&token.hash(), Duration::from_secs(30))
        .await
        .unwrap());
    store.advance_clock(Duration::from_secs(20));
    let now = store.resolve(&token.hash()).await.unwrap().unwrap();
    assert!(now.expires_at > s.expires_at);
    assert!(store
        .touch(&token.hash(), Duration::from_secs(1))
        .await
        .unwrap());
    assert_eq!(
        store
            .resolve(&token.hash())
            .await
            .unwrap()
            .unwrap()
            .expires_at,
        now.expires_at
    );
    store.advance_clock(Duration::from_secs(20));
    assert!(!store
        .touch(&token.hash(), Duration::from_secs(30))
        .await
        .unwrap());
    assert!(!store
        .touch(&Token::generate().hash(), Duration::from_secs(30))
        .await
        .unwrap());
}

#[tokio::test]
async fn sliding_identity_lookup_extends() {
    let store = MemoryStore::new();
    let (token, _) = store.create(new_session("u", &["r"], 10)).await.unwrap();
    store.advance_clock(Duration::from_secs(9));
    assert!(store
        .resolve_identity_now(&token.hash(), Some(Duration::from_secs(10)))
        .unwrap()
        .unwrap()
        .is_some());
    store.advance_clock(Duration::from_secs(9));
    assert!(store.resolve(&token.hash()).await.unwrap().is_some());
}

#[tokio::test]
async fn revocation_is_immediate() {
    let store = MemoryStore::new();
    let (token, _) = store.create(new_session("u", &["r"], 60)).await.unwrap();
    let (other, _) = store.create(new_session("u", &["r"], 60)).await.unwrap();
    assert!(store.revoke(&token.hash()).await.unwrap());
    assert!(store.resolve(&token.hash()).await.unwrap().is_none());
    assert!(store
        .resolve_identity_now(&token.hash(), None)
        .unwrap()
        .unwrap()
        .is_none());
    assert!(!store.revoke(&token.hash()).await.unwrap());
    assert!(store.resolve(&other.hash()).await.unwrap().is_some());
    assert_eq!(store.list_user("u").await.unwrap().len(), 1);
}

#[tokio::test]
async fn revoke_user_ends_every_session_of_that_user_only() {
    let store = MemoryStore::new();
    let mut mine = Vec::new();
    for _ in 0..5 {
        mine.push(store.create(new_session("me", &["r"], 60)).await.unwrap().0);
    }
    let (theirs, _) = store.create(new_session("them", &["r"], 60)).await.unwrap();
    assert_eq!(store.revoke_user("me").await.unwrap(), 5);
    for t in &mine {
        assert!(store.resolve(&t.hash()).await.unwrap().is_none());
    }
    assert!(store.resolve(&theirs.hash()).await.unwrap().is_some());
    assert_eq!(store.revoke_user("me").await.unwrap(), 0);
    assert!(store.list_user("me").await.unwrap().is_empty());
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn revocations_are_told_to_listeners() {
    let store = MemoryStore::new();
    let heard = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let h = heard.clone();
    store
        .revocations()
        .listen(move |r| h.lock().push(r.clone()));
    let (token, _) = store.create(new_session("me", &["r"], 60)).await.unwrap();
    store.create(new_session("me", &["r"], 60)).await.unwrap();
    assert!(store.revoke(&token.hash()).await.unwrap());
    assert_eq!(store.revoke_user("me").await.unwrap(), 1);
    assert_eq!(
        *heard.lock(),
        [
            Revocation::Session(token.hash()),
            Revocation::User(Arc::from("me"))
        ]
    );
}

#[tokio::test]
async fn revoke_user_does_not_count_expired_sessions() {
    let store = MemoryStore::new();
    store.create(new_session("me", &["r"], 5)).await.unwrap();
    store.create(new_session("me", &["r"], 50)).await.unwrap();
    store.advance_clock(Duration::from_secs(10));
    assert_eq!(store.revoke_user("me").await.unwrap(), 1);
    assert!(store.is_empty());
}

#[tokio::test]
async fn list_user_returns_live_sessions_only() {
    let store = MemoryStore::new();
    let (a, _) = store.create(new_session("u", &["r"], 5)).await.unwrap();
    let (b, _) = store
        .create(new_session("u", &["r", "s"], 50))
        .await
        .unwrap();
    let ids: Vec<_> = store
        .list_user("u")
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&a.hash()) && ids.contains(&b.hash()));
    store.advance_clock(Duration::from_secs(10));
    let live = store.list_user("u").await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].id, b.hash());
    assert_eq!(live[0].roles, ["r", "s"]);
    assert!(store.list_user("nobody").await.unwrap().is_empty());
}

#[tokio::test]
async fn sweep_evicts_expired_entries_incrementally() {
    let store = MemoryStore::new();
    let mut live = Vec::new();
    for i in 0..500 {
        let ttl = if i % 2 == 0 { 5 } else { 500 };
        let (t, _) = store
            .create(new_session(&format!("u{i}"), &["r"], ttl))
            .await
            .unwrap();
        if ttl == 500 {
            live.push(t);
        }
    }
    store.advance_clock(Duration::from_secs(10));
    // One part at a time: a single step never walks the whole store.
    let first = store.sweep_expired(1);
    assert!(first < 250, "one step swept {first}");
    let rest: usize = (0..PARTS).map(|_| store.sweep_expired(1)).sum();
    assert_eq!(first + rest, 250);
    assert_eq!(store.len(), 250);
    assert_eq!(store.inner.users.len(), 250);
    for t in &live {
        assert!(store.resolve(&t.hash()).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn role_sets_are_interned_and_collected() {
    let store = MemoryStore::new();
    let (a, _) = store
        .create(new_session("a", &["x", "y"], 5))
        .await
        .unwrap();
    let (b, _) = store
        .create(new_session("b", &["x", "y"], 5))
        .await
        .unwrap();
    let ia = store
        .resolve_identity_now(&a.hash(), None)
        .unwrap()
        .unwrap()
        .unwrap();
    let ib = store
        .resolve_identity_now(&b.hash(), None)
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(Arc::ptr_eq(&ia.allowed_roles, &ib.allowed_roles));
    drop((ia, ib));
    assert_eq!(store.inner.role_sets.len(), 1);
    store.advance_clock(Duration::from_secs(10));
    store.sweep_expired(PARTS);
    assert_eq!(store.inner.role_sets.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn sweeper_task_runs_and_stops_with_the_store() {
    let store = MemoryStore::new();
    store.create(new_session("u", &["r"], 5)).await.unwrap();
    store.advance_clock(Duration::from_secs(10));
    let handle = store.spawn_sweeper(Duration::from_millis(10));
    for _ in 0..(PARTS * 2) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(store.is_empty());
    drop(store);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(handle.is_finished());
}

#[test]
fn concurrent_create_and_revoke_user_leave_no_orphans() {
    let store = MemoryStore::new();
    std::thread::scope(|s| {
        for t in 0..4 {
            let store = store.clone();
            s.spawn(move || {
                for i in 0..500 {
                    let user = format!("u{}", i % 7);
                    store.create_now(new_session(&user, &["r"], 60)).unwrap();
                    if (i + t) % 5 == 0 {
                        store.revoke_user_now(&user);
                    }
                }
            });
        }
    });
    // Every stored session is indexed under its user, and every index entry is stored.
    let indexed: usize = store.inner.users.iter().map(|e| e.value().len()).sum();
    assert_eq!(indexed, store.len());
    for e in store.inner.users.iter() {
        for id in e.value() {
            assert!(store.part(id).contains_key(id));
        }
    }
}

#[test]
fn hasher_uses_the_hash_bytes() {
    let b = BuildTokenHasher { seed: 7 };
    let h1 = b.hash_one(TokenHash([1; 32]));
    let h2 = b.hash_one(TokenHash([2; 32]));
    assert_ne!(h1, h2);
}

fn bounded(max: usize) -> MemoryStore {
    MemoryStore::with_max_per_user(NonZeroUsize::new(max).unwrap())
}

#[tokio::test]
async fn case_40_a_create_beyond_max_per_user_revokes_the_oldest() {
    // SECURITY-CASES 40: one account cannot grow the store by logging in again and again.
    let store = bounded(2);
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(store.create(new_session("u", &["r"], 60)).await.unwrap().0);
    }
    let (theirs, _) = store.create(new_session("v", &["r"], 60)).await.unwrap();
    assert!(store.resolve(&tokens[0].hash()).await.unwrap().is_none());
    assert!(store
        .resolve_identity_now(&tokens[0].hash(), None)
        .unwrap()
        .unwrap()
        .is_none());
    assert!(
        !store.revoke(&tokens[0].hash()).await.unwrap(),
        "already revoked"
    );
    let listed: Vec<_> = store
        .list_user("u")
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, [tokens[1].hash(), tokens[2].hash()]);
    assert!(store.resolve(&theirs.hash()).await.unwrap().is_some());
    assert_eq!(store.len(), 3);
}

#[tokio::test]
async fn case_40_the_default_bound_is_100() {
    let store = MemoryStore::new();
    let (first, _) = store.create(new_session("u", &["r"], 60)).await.unwrap();
    for _ in 0..99 {
        store.create(new_session("u", &["r"], 60)).await.unwrap();
    }
    assert!(store.resolve(&first.hash()).await.unwrap().is_some());
    store.create(new_session("u", &["r"], 60)).await.unwrap();
    assert!(store.resolve(&first.hash()).await.unwrap().is_none());
    assert_eq!(store.list_user("u").await.unwrap().len(), 100);
}

#[tokio::test]
async fn case_40_expired_sessions_do_not_count_against_the_bound() {
    let store = bounded(2);
    store.create(new_session("u", &["r"], 5)).await.unwrap();
    let (long, _) = store.create(new_session("u", &["r"], 60)).await.unwrap();
    store.advance_clock(Duration::from_secs(10));
    let (new, _) = store.create(new_session("u", &["r"], 60)).await.unwrap();
    // The expired one made room: the live older session stays.
    assert!(store.resolve(&long.hash()).await.unwrap().is_some());
    assert!(store.resolve(&new.hash()).await.unwrap().is_some());
    assert_eq!(store.len(), 2, "the expired session was evicted, not kept");
    assert_eq!(store.inner.users.get("u").unwrap().len(), 2);
}

#[test]
fn case_40_concurrent_creates_for_one_user_leave_exactly_the_bound() {
    const K: usize = 5;
    let store = bounded(K);
    let all = parking_lot::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..8 {
            let store = store.clone();
            let all = &all;
            s.spawn(move || {
                for _ in 0..200 {
                    let (token, _) = store.create_now(new_session("u", &["r"], 60)).unwrap();
                    all.lock().push(token.hash());
                }
            });
        }
    });
    let live = all
        .lock()
        .iter()
        .filter(|id| store.identity_now(id, None).is_some())
        .count();
    assert_eq!(live, K);
    assert_eq!(store.list_user_now("u").len(), K);
    assert_eq!(store.len(), K);
    assert_eq!(store.inner.users.get("u").unwrap().len(), K);
}
