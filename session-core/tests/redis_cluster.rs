//! `RedisStore` and `CachingResolver` over a Redis Cluster (issue 16): three masters started by
//! each test on free 127.0.0.1 ports and joined with `redis-cli --cluster create`
//! (support/redis_topology.rs).
//!
//! Without `redis-server` or `redis-cli` on the PATH these tests print a loud skip message,
//! except on CI (`CI=true`) where they fail. Run with `--nocapture` to see the figures.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/redis_topology.rs"]
mod redis_topology;

use redis_topology::ClusterSet;

#[test]
fn the_cluster_spreads_keys_over_three_nodes() {
    let Some(set) = ClusterSet::start() else {
        return;
    };
    let ports = set.ports();
    let mut seen = std::collections::HashSet::new();
    for i in 0..30 {
        let key = format!("k{i}");
        let p = set.port_of_key(&key);
        assert!(ports.contains(&p));
        // The node that should serve it does.
        let mut c = set.node(p);
        let _: () = redis::cmd("SET").arg(&key).arg(i).query(&mut c).unwrap();
        seen.insert(p);
    }
    assert_eq!(seen.len(), 3, "30 keys all on {seen:?}");
}
