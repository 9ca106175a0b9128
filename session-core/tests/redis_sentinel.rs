//! `RedisStore` and `CachingResolver` over Redis Sentinel (issue 16): a master, one replica and
//! three `redis-sentinel` processes started by each test on free 127.0.0.1 ports
//! (support/redis_topology.rs). The master is killed mid-traffic; the tests measure how long
//! credentialed lookups fail (503) and check that no lookup ever returns an identity the session
//! did not have, that a session created before the kill survives it, and that a revocation
//! acknowledged before the kill is not lost.
//!
//! Without `redis-server` or `redis-sentinel` on the PATH these tests print a loud skip message,
//! except on CI (`CI=true`) where they fail. Run with `--nocapture` to see the figures.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/redis_topology.rs"]
mod redis_topology;

use std::time::Duration;

use redis_topology::{SentinelOpts, SentinelSet};

/// The raw failover time of the test topology, without any client: from SIGKILL of the master
/// until every sentinel names the replica and it answers `ROLE` as master. Everything the
/// store does during a failover is bounded below by this.
#[test]
fn raw_sentinel_failover_time() {
    let Some(mut set) = SentinelSet::start(SentinelOpts {
        master_password: Some("master-pw-1".into()),
        sentinel_password: Some("sentinel-pw-2".into()),
        ..SentinelOpts::default()
    }) else {
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
