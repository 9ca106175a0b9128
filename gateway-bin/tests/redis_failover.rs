//! The `gateway` binary on Redis Sentinel and on a Redis Cluster (issue 16), end to end: the
//! topologies are real processes on free 127.0.0.1 ports (session-core's
//! tests/support/redis_topology/), the gateways real replicas started with `[sessions]
//! store = "redis"` and the `redis+sentinel://` or `redis+cluster://` URL in their environment.
//!
//! - Sentinel: the master is killed while clients send requests continuously. Requests with a
//!   token get 503 during the switch and 200 after it, within a bound this test measures
//!   (`--nocapture` prints it); `/readyz` follows; anonymous requests get 200 throughout; no
//!   request reaches the upstream with an identity its session does not have; sessions created
//!   before the kill survive it and revocations acknowledged before it are not lost.
//! - Cluster: two replicas: log in on one, use the token on the other, revoke on one, refused
//!   on the other (one session, and every session of a user whose sessions sit on three nodes).
//!
//! Without `redis-server`, `redis-sentinel` or `redis-cli` on the PATH these tests print a loud
//! skip message, except on CI (`CI=true`) where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
#[path = "../../session-core/tests/support/redis_topology/mod.rs"]
mod redis_topology;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use redis_topology::{ClusterSet, SentinelOpts, SentinelSet};

const MASTER_PW: &str = "failover-test-master-pw";
const SENTINEL_PW: &str = "failover-test-sentinel-pw";

fn config(up: &str) -> String {
    format!(
        r#"
[project]
domains = ["{DOMAIN}"]

[listen]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"

[limits]
header_read_timeout = "2s"
idle_timeout = "30s"
max_connections = 256
shutdown_grace = "1s"

[sessions]
cookie_name = "gw_session"
store = "redis"
redis_url_env = "TEST_REDIS_URL"
redis_timeout = "500ms"
cache_ttl = "30s"

[log]
format = "json"
level = "info"

[[services]]
name = "data"
upstreams = ["{up}"]
allowed_roles = ["anonymous", "user", "admin"]

[[services]]
name = "private"
upstreams = ["{up}"]
allowed_roles = ["user", "admin"]
"#
    )
}

async fn gateways(url: &str, up: &Upstream, n: usize) -> Vec<Gateway> {
    let cfg = config(&up.url());
    let gs: Vec<Gateway> = (0..n)
        .map(|_| {
            let mut g = Gateway::spawn(&cfg, 0, 0, &[], &[("TEST_REDIS_URL", url)]);
            g.wait_ready();
            g
        })
        .collect();
    for g in &gs {
        wait_readyz(g, 200, Duration::from_secs(15)).await;
    }
    gs
}

async fn readyz(c: &reqwest::Client, g: &Gateway) -> u16 {
    match c.get(g.admin_url("/readyz")).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

async fn wait_readyz(g: &Gateway, want: u16, limit: Duration) -> Duration {
    let c = client();
    let start = Instant::now();
    loop {
        if readyz(&c, g).await == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "/readyz never answered {want}; log:\n{}",
            g.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The identity headers the upstream saw for one request (its JSON echo).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    user: String,
    role: String,
    allowed: String,
}

fn seen(user: &str, role: &str, allowed: &str) -> Seen {
    Seen {
        user: user.into(),
        role: role.into(),
        allowed: allowed.into(),
    }
}

/// One request to `svc` on `g`: its status and, for a 200, what the upstream saw.
async fn request(
    c: &reqwest::Client,
    g: &Gateway,
    svc: &str,
    token: Option<&str>,
) -> (u16, Option<Seen>) {
    let mut req = c
        .get(g.url("/"))
        .header("host", host(svc))
        .timeout(Duration::from_secs(10));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = match req.send().await {
        Ok(r) => r,
        // Counted apart: the gateway never answered.
        Err(_) => return (0, None),
    };
    let status = res.status().as_u16();
    if status != 200 {
        return (status, None);
    }
    let v: serde_json::Value = res.json().await.unwrap();
    let h = |n: &str| v["headers"][n].as_str().unwrap_or("<none>").to_owned();
    (
        200,
        Some(Seen {
            user: h("x-hasura-user-id"),
            role: h("x-hasura-role"),
            allowed: h("x-hasura-allowed-roles"),
        }),
    )
}

async fn revoke(g: &Gateway, token: &str) -> u16 {
    client()
        .delete(g.admin_url("/v1/sessions/current"))
        .bearer_auth(ADMIN_SECRET)
        .header("x-gateway-session-token", token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A client sending requests one after the other (every 5 ms) until `stop`, each answer
/// timestamped; a 200 whose upstream saw another identity than `want` fails the test at once.
fn client_loop(
    name: &'static str,
    g: &Gateway,
    svc: &'static str,
    tokens: Vec<String>,
    want: Option<Seen>,
    stop: Arc<AtomicBool>,
    t0: Instant,
) -> tokio::task::JoinHandle<Vec<(Duration, u16)>> {
    let (http, admin) = (g.http, g.admin);
    tokio::spawn(async move {
        // A Gateway is not Clone: the loop addresses it by its ports.
        let g = GatewayAddr { http, admin };
        let c = client();
        let mut log = Vec::new();
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            let token = (!tokens.is_empty()).then(|| tokens[i % tokens.len()].as_str());
            i += 1;
            let (status, got) = g.request(&c, svc, token).await;
            if let Some(got) = got {
                assert_eq!(
                    Some(&got),
                    want.as_ref(),
                    "{name}: the upstream saw an identity this request does not have"
                );
            }
            log.push((t0.elapsed(), status));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        log
    })
}

/// A gateway's ports, for tasks.
#[derive(Clone, Copy)]
struct GatewayAddr {
    http: u16,
    admin: u16,
}

impl GatewayAddr {
    async fn request(
        &self,
        c: &reqwest::Client,
        svc: &str,
        token: Option<&str>,
    ) -> (u16, Option<Seen>) {
        let mut req = c
            .get(format!("http://127.0.0.1:{}/", self.http))
            .header("host", host(svc))
            .timeout(Duration::from_secs(10));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let Ok(res) = req.send().await else {
            return (0, None);
        };
        let status = res.status().as_u16();
        if status != 200 {
            return (status, None);
        }
        let v: serde_json::Value = res.json().await.unwrap();
        let h = |n: &str| v["headers"][n].as_str().unwrap_or("<none>").to_owned();
        (
            200,
            Some(Seen {
                user: h("x-hasura-user-id"),
                role: h("x-hasura-role"),
                allowed: h("x-hasura-allowed-roles"),
            }),
        )
    }

    async fn readyz(&self, c: &reqwest::Client) -> u16 {
        match c
            .get(format!("http://127.0.0.1:{}/readyz", self.admin))
            .send()
            .await
        {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }
}

fn statuses(log: &[(Duration, u16)]) -> BTreeMap<u16, usize> {
    let mut m = BTreeMap::new();
    for (_, s) in log {
        *m.entry(*s).or_insert(0) += 1;
    }
    m
}

/// After `kill`: the first 503, the last, and the first 200 after the last.
fn window(
    log: &[(Duration, u16)],
    kill: Duration,
) -> (Option<Duration>, Option<Duration>, Option<Duration>) {
    let after: Vec<_> = log.iter().filter(|(t, _)| *t >= kill).collect();
    let first = after
        .iter()
        .find(|(_, s)| *s == 503)
        .map(|(t, _)| *t - kill);
    let last = after
        .iter()
        .rev()
        .find(|(_, s)| *s == 503)
        .map(|(t, _)| *t - kill);
    let back = last.and_then(|l| {
        after
            .iter()
            .find(|(t, s)| *t - kill > l && *s == 200)
            .map(|(t, _)| *t - kill)
    });
    (first, last, back)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sentinel_failover_through_the_gateway() {
    let Some(mut set) = SentinelSet::start(SentinelOpts {
        master_password: Some(MASTER_PW.into()),
        sentinel_password: Some(SENTINEL_PW.into()),
        ..SentinelOpts::default()
    }) else {
        return;
    };
    let up = Upstream::start().await;
    let gs = gateways(&set.url(), &up, 2).await;
    let (a, b) = (&gs[0], &gs[1]);
    let c = client();

    let alice = create_session(a, "alice", &["user"], None).await;
    let root = create_session(a, "root", &["user", "admin"], Some("admin")).await;
    let mut doomed = Vec::new();
    for i in 0..10 {
        let t = create_session(a, &format!("doomed-{i}"), &["user"], None).await;
        // Cached on both replicas.
        for g in [a, b] {
            assert_eq!(request(&c, g, "private", Some(&t)).await.0, 200);
        }
        doomed.push(t);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let alice_loop = client_loop(
        "alice",
        a,
        "private",
        vec![alice.clone()],
        Some(seen("alice", "user", "user")),
        stop.clone(),
        t0,
    );
    let root_loop = client_loop(
        "root",
        a,
        "private",
        vec![root.clone()],
        Some(seen("root", "admin", "user,admin")),
        stop.clone(),
        t0,
    );
    let anon_loop = client_loop(
        "anonymous",
        a,
        "data",
        vec![],
        Some(seen("0", "anonymous", "anonymous")),
        stop.clone(),
        t0,
    );
    let ready_loop = {
        let (g, stop) = (
            GatewayAddr {
                http: a.http,
                admin: a.admin,
            },
            stop.clone(),
        );
        tokio::spawn(async move {
            let c = client();
            let mut log = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                log.push((t0.elapsed(), g.readyz(&c).await));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            log
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Right before the kill: revocations and logins, all acknowledged.
    let revoked = futures_util::future::join_all(doomed.iter().map(|t| revoke(a, t))).await;
    assert!(revoked.iter().all(|s| *s == 204), "{revoked:?}");
    let survivors = futures_util::future::join_all((0..10).map(|i| async move {
        create_session(a, &format!("survivor-{i}"), &["user"], None).await
    }))
    .await;
    // From the acknowledgement on, never served again (want = None: a 200 fails).
    let doomed_loop = client_loop(
        "revoked",
        a,
        "private",
        doomed.clone(),
        None,
        stop.clone(),
        t0,
    );

    let old = set.kill_master();
    let kill = set.killed_at().unwrap() - t0;
    let raw = tokio::task::block_in_place(|| set.wait_failover(Duration::from_secs(30)));
    // Service comes back by itself.
    let start = Instant::now();
    loop {
        if request(&c, a, "private", Some(&alice)).await.0 == 200 && readyz(&c, a).await == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the gateway never served tokens again; log:\n{}\n{}",
            a.log(),
            set.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let alice_log = alice_loop.await.unwrap();
    let root_log = root_loop.await.unwrap();
    let anon_log = anon_loop.await.unwrap();
    let doomed_log = doomed_loop.await.unwrap();
    let ready_log = ready_loop.await.unwrap();

    eprintln!(
        "e2e failover (master {old} -> {}): sentinels agreed {raw:?} after the kill",
        set.master_port()
    );
    for (name, log) in [("alice", &alice_log), ("root", &root_log)] {
        let (first, last, back) = window(log, kill);
        eprintln!(
            "e2e {name}: {:?}; after the kill: first 503 at +{first:?}, last at +{last:?}, 200 \
             again at +{back:?} (503 window {:?})",
            statuses(log),
            back.zip(first).map(|(b, f)| b - f)
        );
        assert!(
            log.iter().all(|(_, s)| *s == 200 || *s == 503),
            "{name}: {:?}",
            statuses(log)
        );
        assert!(first.is_some(), "{name}: no 503 during the switch");
        let back = back.expect("200 again");
        assert!(back < Duration::from_secs(30), "{name}: 503 for {back:?}");
        assert!(log.iter().rev().take(20).all(|(_, s)| *s == 200));
    }
    eprintln!("e2e anonymous: {:?}", statuses(&anon_log));
    assert!(
        anon_log.iter().all(|(_, s)| *s == 200),
        "{:?}",
        statuses(&anon_log)
    );
    eprintln!("e2e revoked: {:?}", statuses(&doomed_log));
    assert!(doomed_log.iter().all(|(_, s)| *s == 401 || *s == 503));
    let (first, _, back) = window(&ready_log, kill);
    eprintln!("e2e /readyz: 503 from +{first:?} to 200 at +{back:?}");
    assert!(ready_log
        .iter()
        .filter(|(t, _)| *t < kill)
        .all(|(_, s)| *s == 200));
    assert!(first.is_some(), "/readyz never reported the switch");
    assert_eq!(ready_log.last().unwrap().1, 200);

    // Both replicas after the switch: survivors served with their identity, revoked refused.
    wait_readyz(b, 200, Duration::from_secs(30)).await;
    for g in [a, b] {
        for (i, t) in survivors.iter().enumerate() {
            let (s, got) = request(&c, g, "private", Some(t)).await;
            assert_eq!(s, 200, "a session created before the kill was lost");
            assert_eq!(got.unwrap(), seen(&format!("survivor-{i}"), "user", "user"));
        }
        for t in &doomed {
            assert_eq!(
                request(&c, g, "private", Some(t)).await.0,
                401,
                "a revocation acknowledged before the kill was lost"
            );
        }
    }
}

/// Two replicas on a Redis Cluster: a login on one works on the other; a revocation on one is
/// refused on the other, for one session and for every session of a user (three nodes).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_on_a_redis_cluster() {
    let Some(set) = ClusterSet::start() else {
        return;
    };
    let up = Upstream::start().await;
    let gs = gateways(&set.url(), &up, 2).await;
    let (a, b) = (&gs[0], &gs[1]);
    let c = client();

    // Sessions of one user until their keys sit on all three nodes (the key names are the
    // single-Redis ones: gateway:session:<sha256 of the token>).
    let mut jo = Vec::new();
    let mut nodes = std::collections::BTreeSet::new();
    while nodes.len() < 3 {
        assert!(jo.len() < 60, "sessions never covered the three nodes");
        let t = create_session(a, "jo", &["user"], None).await;
        let hex = session_core::Token::parse(&t).unwrap().hash().to_hex();
        nodes.insert(set.port_of_key(&format!("gateway:session:{hex}")));
        jo.push(t);
    }
    eprintln!("jo: {} sessions on nodes {nodes:?}", jo.len());
    // Logged in on A, used on B (and A).
    for t in &jo {
        for g in [b, a] {
            let (s, got) = request(&c, g, "private", Some(t)).await;
            assert_eq!(s, 200);
            assert_eq!(got.unwrap(), seen("jo", "user", "user"));
        }
    }
    assert_eq!(request(&c, b, "data", None).await.0, 200);

    // Revoked on A: refused on B (which had it cached).
    let t = jo.pop().unwrap();
    assert_eq!(revoke(a, &t).await, 204);
    let start = Instant::now();
    while request(&c, b, "private", Some(&t)).await.0 != 401 {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "B still serves a revoked session"
        );
    }
    eprintln!(
        "cluster: B refused a session revoked on A after {:?}",
        start.elapsed()
    );
    assert_eq!(request(&c, a, "private", Some(&t)).await.0, 401);

    // A session created on B, revoked on B, refused on A.
    let k = create_session(b, "kay", &["user"], None).await;
    assert_eq!(request(&c, a, "private", Some(&k)).await.0, 200);
    assert_eq!(revoke(b, &k).await, 204);
    let start = Instant::now();
    while request(&c, a, "private", Some(&k)).await.0 != 401 {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "A still serves a revoked session"
        );
    }

    // Every session of jo (three nodes) revoked on B: refused on A.
    let res = client()
        .delete(b.admin_url("/v1/users/jo/sessions"))
        .bearer_auth(ADMIN_SECRET)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let start = Instant::now();
    for t in &jo {
        while request(&c, a, "private", Some(t)).await.0 != 401 {
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "A still serves a revoked user"
            );
        }
    }
    for g in [a, b] {
        assert_eq!(readyz(&c, g).await, 200);
    }
}
