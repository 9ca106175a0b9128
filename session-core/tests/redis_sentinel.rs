//! `RedisStore` and `CachingResolver` over Redis Sentinel (issue 16): a master, one replica and
//! three `redis-sentinel` processes started by each test on free 127.0.0.1 ports
//! (support/redis_topology/). The master is killed mid-traffic, with requests going through
//! a real `SessionLayer`: the tests measure how long credentialed requests get 503 and check
//! that no request ever reaches the upstream with an identity its session did not have, that
//! sessions created before the kill survive it, that revocations acknowledged before the kill
//! are not lost, that anonymous requests keep flowing, and that master and sentinel credentials
//! are separate.
//!
//! Without `redis-server` or `redis-sentinel` on the PATH these tests print a loud skip message,
//! except on CI (`CI=true`) where they fail. Run with `--nocapture` to see the figures.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/redis_topology/mod.rs"]
mod redis_topology;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use redis_topology::{SentinelOpts, SentinelSet};
use session_core::{
    CacheConfig, CachingResolver, NewSession, RedisConfig, RedisStore, ResolveToken, SessionConfig,
    SessionLayer, SessionStore, StoreError, Token,
};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

const MASTER_PW: &str = "sentinel-test-master-pw";
const SENTINEL_PW: &str = "sentinel-test-sentinel-pw";

fn opts() -> SentinelOpts {
    SentinelOpts {
        master_password: Some(MASTER_PW.into()),
        sentinel_password: Some(SENTINEL_PW.into()),
        ..SentinelOpts::default()
    }
}

fn open(url: &str) -> Result<RedisStore, StoreError> {
    RedisStore::open(url, RedisConfig::default())
}

fn resolver(set: &SentinelSet) -> CachingResolver {
    CachingResolver::new(
        open(&set.url()).unwrap(),
        CacheConfig {
            ttl: Duration::from_secs(30),
            ..CacheConfig::default()
        },
    )
}

fn session(user: &str, roles: &[&str], default: &str) -> NewSession {
    NewSession {
        user_id: user.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        default_role: Some(default.into()),
        ttl: Duration::from_secs(300),
        ..Default::default()
    }
}

async fn until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

/// What the upstream saw: the identity headers the session layer injected.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    user: String,
    role: String,
    allowed: String,
}

/// A session layer over `r` in front of an upstream that echoes the identity headers it got
/// (in the response, so each request's answer says what reached the upstream).
fn gateway(
    r: &CachingResolver,
) -> impl Service<
    Request<()>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send {
    ServiceBuilder::new()
        .layer(SessionLayer::new(
            Arc::new(r.clone()),
            SessionConfig::default(),
        ))
        .service(service_fn(|req: Request<()>| async move {
            let mut res = Response::new(Full::<Bytes>::from("ok"));
            for h in [
                "x-hasura-user-id",
                "x-hasura-role",
                "x-hasura-allowed-roles",
            ] {
                // Exactly one of each, or the echo says so.
                let v: Vec<_> = req.headers().get_all(h).iter().cloned().collect();
                if v.len() == 1 {
                    res.headers_mut().insert(h, v[0].clone());
                } else {
                    res.headers_mut().insert(
                        h,
                        http::HeaderValue::from_str(&format!("{} values", v.len())).unwrap(),
                    );
                }
            }
            Ok::<_, Infallible>(res)
        }))
}

/// One request; its status and, for a 200, what the upstream saw.
async fn send<S>(svc: &mut S, token: Option<&Token>) -> (u16, Option<Seen>)
where
    S: Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible>,
{
    let mut req = Request::builder().uri("/");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {}", t.expose()));
    }
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(req.body(()).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let h = |n: &str| {
        res.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let seen = (status == 200).then(|| Seen {
        user: h("x-hasura-user-id"),
        role: h("x-hasura-role"),
        allowed: h("x-hasura-allowed-roles"),
    });
    (status, seen)
}

/// A client loop: requests with `token` (or none) one after the other until `stop`; every
/// answer timestamped. A 200 whose identity is not `want` fails the test at once.
fn client_loop<S>(
    name: &'static str,
    mut svc: S,
    tokens: Vec<Token>,
    want: Option<Seen>,
    stop: Arc<AtomicBool>,
    t0: Instant,
) -> tokio::task::JoinHandle<Vec<(Duration, u16)>>
where
    S: Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible> + Send + 'static,
    S::Future: Send,
{
    tokio::spawn(async move {
        let mut log = Vec::new();
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            let token = (!tokens.is_empty()).then(|| &tokens[i % tokens.len()]);
            i += 1;
            let (status, seen) = send(&mut svc, token).await;
            if let Some(seen) = seen {
                assert_eq!(
                    Some(&seen),
                    want.as_ref(),
                    "{name}: the upstream saw an identity this request does not have"
                );
            }
            log.push((t0.elapsed(), status));
            // A steady client, not a busy loop: a request every 2 ms.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        log
    })
}

/// How a client loop's answers went around the kill at `kill` (since t0).
struct Window {
    first_503: Option<Duration>,
    last_503: Option<Duration>,
    back: Option<Duration>,
    n_503: usize,
    n: usize,
}

fn window(log: &[(Duration, u16)], kill: Duration) -> Window {
    let after: Vec<_> = log.iter().filter(|(t, _)| *t >= kill).collect();
    let first_503 = after.iter().find(|(_, s)| *s == 503).map(|(t, _)| *t);
    let last_503 = after.iter().rev().find(|(_, s)| *s == 503).map(|(t, _)| *t);
    let back = last_503.and_then(|l| {
        after
            .iter()
            .find(|(t, s)| *t > l && *s == 200)
            .map(|(t, _)| *t)
    });
    Window {
        first_503,
        last_503,
        back,
        n_503: after.iter().filter(|(_, s)| *s == 503).count(),
        n: after.len(),
    }
}

fn statuses(log: &[(Duration, u16)]) -> std::collections::BTreeMap<u16, usize> {
    let mut m = std::collections::BTreeMap::new();
    for (_, s) in log {
        *m.entry(*s).or_insert(0) += 1;
    }
    m
}

/// The raw failover time of the test topology, without any client: from SIGKILL of the master
/// until every sentinel names the replica and it answers `ROLE` as master. Everything the
/// store does during a failover is bounded below by this.
#[test]
fn raw_sentinel_failover_time() {
    let Some(mut set) = SentinelSet::start(opts()) else {
        return;
    };
    let old = set.kill_master();
    let took = set.wait_failover(Duration::from_secs(30));
    let new = set.master_port();
    eprintln!("raw sentinel failover: {took:?} (master {old} -> {new})");
    assert_ne!(old, new);
    assert!(set.node_ports().contains(&new));
    // The old master comes back as a replica of the new one.
    set.restart_killed_as_replica();
    assert_eq!(set.master_port(), new);
}

/// The master dies mid-traffic. Two "replicas" (each its own store and cache); replica A
/// serves the traffic through a `SessionLayer`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failover_mid_traffic_is_503_then_200_and_loses_nothing() {
    let Some(mut set) = SentinelSet::start(opts()) else {
        return;
    };
    let a = resolver(&set);
    let b = resolver(&set);
    for r in [&a, &b] {
        let r = r.clone();
        until("subscribed", Duration::from_secs(10), move || {
            r.is_connected()
        })
        .await;
    }
    let (alice, _) = a
        .store()
        .create(session("alice", &["user"], "user"))
        .await
        .unwrap();
    let (root, _) = a
        .store()
        .create(session("root", &["user", "admin"], "admin"))
        .await
        .unwrap();
    // Sessions to revoke just before the kill, cached on both replicas first.
    let mut doomed = Vec::new();
    for i in 0..20 {
        let (t, _) = a
            .store()
            .create(session(&format!("doomed-{i}"), &["user"], "user"))
            .await
            .unwrap();
        for r in [&a, &b] {
            assert!(r.resolve_token(&t).await.unwrap().is_some());
        }
        doomed.push(t);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let svc = gateway(&a);
    let alice_loop = client_loop(
        "alice",
        svc.clone(),
        vec![alice.clone()],
        Some(Seen {
            user: "alice".into(),
            role: "user".into(),
            allowed: "user".into(),
        }),
        stop.clone(),
        t0,
    );
    let root_loop = client_loop(
        "root",
        svc.clone(),
        vec![root.clone()],
        Some(Seen {
            user: "root".into(),
            role: "admin".into(),
            allowed: "user,admin".into(),
        }),
        stop.clone(),
        t0,
    );
    let anon_loop = client_loop(
        "anonymous",
        svc.clone(),
        vec![],
        Some(Seen {
            user: "0".into(),
            role: "anonymous".into(),
            allowed: "anonymous".into(),
        }),
        stop.clone(),
        t0,
    );
    // Readiness as a /readyz would report it, sampled every 5 ms.
    let ready_loop = {
        let (a, stop) = (a.clone(), stop.clone());
        tokio::spawn(async move {
            let mut log = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                log.push((t0.elapsed(), if a.is_connected() { 200 } else { 503 }));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            log
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Right before the kill: 20 revocations and 20 logins, all acknowledged (each waited for
    // the replica).
    let revokes = doomed.iter().map(|t| {
        let s = a.store().clone();
        let id = t.hash();
        async move { s.revoke(&id).await }
    });
    let creates = (0..20).map(|i| {
        let s = a.store().clone();
        async move {
            s.create(session(&format!("survivor-{i}"), &["user"], "user"))
                .await
        }
    });
    let (revoked, created) = tokio::join!(
        futures_util::future::join_all(revokes),
        futures_util::future::join_all(creates)
    );
    for r in revoked {
        assert!(r.unwrap(), "a revocation of a live session");
    }
    let survivors: Vec<Token> = created.into_iter().map(|c| c.unwrap().0).collect();
    // From the acknowledgement on, the revoked tokens must never reach the upstream again
    // (want = None: any 200 fails).
    let doomed_loop = client_loop(
        "revoked",
        svc.clone(),
        doomed.clone(),
        None,
        stop.clone(),
        t0,
    );

    let old = set.kill_master();
    let kill = set.killed_at().unwrap() - t0;
    let raw = tokio::task::block_in_place(|| set.wait_failover(Duration::from_secs(30)));
    let new = set.master_port();

    // Service resumes by itself: wait for requests with a token to get through again.
    let recovered = {
        let (a, alice) = (a.clone(), alice.clone());
        let start = Instant::now();
        loop {
            if matches!(a.resolve_token(&alice).await, Ok(Some(_))) && a.is_connected() {
                break start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "requests with a token never got through again after the failover\n{}",
                set.logs()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    // Some steady traffic after the switch.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let alice_log = alice_loop.await.unwrap();
    let root_log = root_loop.await.unwrap();
    let anon_log = anon_loop.await.unwrap();
    let doomed_log = doomed_loop.await.unwrap();
    let ready_log = ready_loop.await.unwrap();

    eprintln!(
        "failover (master {old} -> {new}): sentinels agreed {raw:?} after the kill; replica A \
         resolved and was subscribed again {recovered:?} later"
    );
    for (name, log) in [("alice", &alice_log), ("root", &root_log)] {
        let w = window(log, kill);
        let rel = |d: Option<Duration>| d.map(|d| d.saturating_sub(kill));
        eprintln!(
            "{name}: {:?}; after the kill {} requests, {} got 503: first 503 at +{:?}, last at \
             +{:?}, 200 again at +{:?} (503 window {:?})",
            statuses(log),
            w.n,
            w.n_503,
            rel(w.first_503),
            rel(w.last_503),
            rel(w.back),
            w.back.zip(w.first_503).map(|(b, f)| b - f),
        );
        // Only 200 (the session, never another identity: checked per request) or 503: a
        // 401 would mean the session was lost.
        assert!(
            log.iter().all(|(_, s)| *s == 200 || *s == 503),
            "{name}: {:?}",
            statuses(log)
        );
        let back = w.back.expect("200 again after the 503s");
        assert!(
            back - kill < Duration::from_secs(30),
            "{name}: 503 for {:?}",
            back - kill
        );
        // Requests after the switch are served.
        assert!(log.iter().rev().take(20).all(|(_, s)| *s == 200));
    }
    // The kill must have been seen by credentialed requests at all (otherwise this test
    // measured nothing).
    assert!(
        window(&alice_log, kill).n_503 > 0,
        "no 503 seen: the cache hid the outage"
    );

    // Anonymous requests never touch the store: 200 all along.
    eprintln!("anonymous: {:?}", statuses(&anon_log));
    assert!(
        anon_log.iter().all(|(_, s)| *s == 200),
        "{:?}",
        statuses(&anon_log)
    );
    assert!(anon_log.iter().filter(|(t, _)| *t > kill).count() > 100);

    // The revoked sessions: refused (401) or unavailable (503), never served.
    eprintln!("revoked: {:?}", statuses(&doomed_log));
    assert!(doomed_log.iter().all(|(_, s)| *s == 401 || *s == 503));

    // Readiness: ready before, not ready during the switch, ready after.
    let w = window(&ready_log, kill);
    eprintln!(
        "readiness: not ready from +{:?} to +{:?}",
        w.first_503.map(|d| d - kill),
        w.back.map(|d| d - kill)
    );
    let early: Vec<_> = ready_log
        .iter()
        .filter(|(t, s)| *t < kill && *s != 200)
        .map(|(t, _)| *t)
        .collect();
    assert!(
        early.is_empty(),
        "not ready before the kill (at +{kill:?}), at {early:?}"
    );
    assert!(w.n_503 > 0, "readiness never reported the switch");
    assert_eq!(ready_log.last().unwrap().1, 200);

    // After the failover, on both replicas (B never served a request during it): the sessions
    // created before the kill are valid, the revoked ones refused.
    for r in [&a, &b] {
        let r2 = r.clone();
        until("replica reconnected", Duration::from_secs(30), move || {
            r2.is_connected()
        })
        .await;
        for t in &survivors {
            let id = r.resolve_token(t).await.unwrap();
            assert!(
                id.is_some(),
                "a session created (and acknowledged) before the kill was lost"
            );
        }
        for t in &doomed {
            assert!(
                r.resolve_token(t).await.unwrap().is_none(),
                "a revocation acknowledged before the kill was lost"
            );
        }
        let id = r.resolve_token(&root).await.unwrap().unwrap();
        assert_eq!((&*id.user_id, &*id.role), ("root", "admin"));
    }

    // The old master comes back as a replica: revocations are acknowledged again, and reach
    // the other replica.
    tokio::task::block_in_place(|| set.restart_killed_as_replica());
    assert!(a.resolve_token(&alice).await.unwrap().is_some());
    assert!(b.resolve_token(&alice).await.unwrap().is_some());
    a.store().revoke(&alice.hash()).await.unwrap();
    assert!(a.resolve_token(&alice).await.unwrap().is_none());
    let b2 = b.clone();
    let al = alice.clone();
    until(
        "the revocation reached B",
        Duration::from_secs(2),
        move || b2.resolve_token_now(&al).is_none(),
    )
    .await;
    assert!(b.resolve_token(&alice).await.unwrap().is_none());
}

/// With no replica in sync (here: the replica is killed; after a failover, until the old
/// master comes back), a revocation cannot be confirmed: it is refused (503) rather than
/// acknowledged and maybe lost. A login still works (it only waits, in case a failover
/// follows), and no command drops the master connection as if the master were dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_replica_logins_work_and_revocations_are_refused() {
    let Some(mut set) = SentinelSet::start(opts()) else {
        return;
    };
    let s = open(&set.url()).unwrap();
    let (kept, _) = s.create(session("kim", &["user"], "user")).await.unwrap();
    set.kill_replica();

    let start = Instant::now();
    let created = s.create(session("lee", &["user"], "user")).await;
    eprintln!(
        "a login with no replica: {:?} after {:?}",
        created.as_ref().map(|_| "created"),
        start.elapsed()
    );
    let (lee, _) = created.expect("a login with no replica to confirm it must still work");
    assert!(s.resolve(&lee.hash()).await.unwrap().is_some());

    let start = Instant::now();
    let revoked = s.revoke(&kept.hash()).await;
    eprintln!(
        "a revocation with no replica: {revoked:?} after {:?}",
        start.elapsed()
    );
    match &revoked {
        Err(StoreError::Unavailable(m)) => assert!(
            m.contains("WAIT"),
            "refused for another reason than the missing confirmation: {m}"
        ),
        other => panic!("a revocation no replica confirmed was acknowledged: {other:?}"),
    }

    // The replica is back: revocations are acknowledged again.
    tokio::task::block_in_place(|| set.restart_killed_as_replica());
    let (t, _) = s.create(session("max", &["user"], "user")).await.unwrap();
    assert!(s.revoke(&t.hash()).await.unwrap());
    assert!(s.resolve(&t.hash()).await.unwrap().is_none());
}

/// A master that hangs with its connections open (SIGSTOP: a frozen process, a partition) is
/// noticed by the command timeout and dropped, so the store asks the Sentinels again and follows
/// the failover; it never answers "no such session" for a live one meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_master_is_left_for_the_new_one() {
    let Some(mut set) = SentinelSet::start(opts()) else {
        return;
    };
    let s = open(&set.url()).unwrap();
    let (token, _) = s.create(session("nia", &["user"], "user")).await.unwrap();
    assert!(s.resolve(&token.hash()).await.unwrap().is_some());
    let frozen = set.freeze_master();
    let start = Instant::now();
    let mut failures = 0;
    let back = loop {
        match s.resolve(&token.hash()).await {
            Ok(Some(_)) if failures > 0 => break start.elapsed(),
            Ok(Some(_)) => {}
            Ok(None) => panic!("a live session read as unknown during the failover"),
            Err(StoreError::Unavailable(_)) => failures += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still no answer {:?} after freezing the master",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("a frozen master: answers again {back:?} after the freeze ({failures} failed reads)");
    assert!(failures > 0, "the frozen master kept answering");
    assert_ne!(set.master_port(), frozen, "the Sentinels never failed over");
    // The session survived the failover (it was replicated before the freeze).
    assert!(s.resolve(&token.hash()).await.unwrap().is_some());
    set.thaw(frozen);
}

/// The sentinels' password and the master's are separate settings: both right works; a wrong,
/// missing or swapped one fails closed (no session is created or resolved).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_auth_and_sentinel_auth_are_separate() {
    let Some(set) = SentinelSet::start(opts()) else {
        return;
    };
    let good = open(&set.url()).unwrap();
    let (token, _) = good
        .create(session("sam", &["user"], "user"))
        .await
        .unwrap();
    assert_eq!(
        &*good.resolve(&token.hash()).await.unwrap().unwrap().user_id,
        "sam"
    );

    let wrong = [
        (
            "wrong sentinel password",
            set.url_with(Some(MASTER_PW), Some("nope")),
        ),
        ("no sentinel password", set.url_with(Some(MASTER_PW), None)),
        (
            "wrong master password",
            set.url_with(Some("nope"), Some(SENTINEL_PW)),
        ),
        ("no master password", set.url_with(None, Some(SENTINEL_PW))),
        (
            "passwords swapped",
            set.url_with(Some(SENTINEL_PW), Some(MASTER_PW)),
        ),
    ];
    for (what, url) in wrong {
        // Opening may fail at once, or the first command does: either way nothing is served.
        let s = match open(&url) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{what}: refused at open: {e}");
                continue;
            }
        };
        let start = Instant::now();
        let got = s.resolve(&token.hash()).await;
        assert!(
            matches!(got, Err(StoreError::Unavailable(_))),
            "{what}: resolve answered {got:?}"
        );
        let created = s.create(session("eve", &["user"], "user")).await;
        assert!(created.is_err(), "{what}: a session was created");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{what}: failing took {:?}",
            start.elapsed()
        );
        eprintln!("{what}: {got:?} after {:?}", start.elapsed());
        // The error never shows a password.
        let text = format!("{got:?}");
        for pw in [MASTER_PW, SENTINEL_PW, "nope"] {
            assert!(!text.contains(pw), "{what}: {text}");
        }
    }
    assert!(good.resolve(&token.hash()).await.unwrap().is_some());
}
