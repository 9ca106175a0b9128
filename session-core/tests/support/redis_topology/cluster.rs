//! The Cluster topology: three Redis Cluster masters (no replicas) covering the 16,384 slots,
//! joined with `redis-cli --cluster create`. Kept apart from the Sentinel set, which it shares
//! nothing with but the process and RESP helpers of mod.rs.

use std::process::{Command, Stdio};
use std::time::Duration;

use super::{command, free_port, have, poll, tail, Proc, Resp, TempDir};

/// Three Redis Cluster masters (no replicas) covering the 16,384 slots.
pub(crate) struct ClusterSet {
    nodes: Vec<Proc>,
    dir: TempDir,
}

impl ClusterSet {
    /// Starts three nodes, joins them with `redis-cli --cluster create` and waits until every
    /// node reports `cluster_state:ok` and sees all three. `None` when a tool is missing and
    /// this is not CI.
    pub(crate) fn start() -> Option<ClusterSet> {
        if !have("redis-server") || !have("redis-cli") {
            return None;
        }
        let dir = TempDir::new("cluster");
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            // The bus port is chosen too (cluster-port), rather than port + 10000, which may be
            // taken or above 65535.
            let bus = free_port();
            let log = dir.0.join(format!("redis-{port}.log"));
            let cmd = [
                "redis-server",
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &dir.0
                    .join(format!("nodes-{port}.conf"))
                    .display()
                    .to_string(),
                "--cluster-port",
                &bus.to_string(),
                "--cluster-node-timeout",
                "2000",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &dir.0.display().to_string(),
                "--logfile",
                &log.display().to_string(),
            ]
            .map(str::to_owned)
            .to_vec();
            nodes.push(Proc::spawn(port, cmd, log));
        }
        let set = ClusterSet { nodes, dir };
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(set.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        poll(
            "cluster_state:ok on every node",
            Duration::from_secs(20),
            || {
                set.nodes.iter().all(|n| {
                    command(n.port, None, &["CLUSTER", "INFO"]).is_ok_and(|i| {
                        let i = i.text().unwrap_or_default();
                        i.contains("cluster_state:ok") && i.contains("cluster_known_nodes:3")
                    })
                })
            },
            || set.logs(),
        );
        Some(set)
    }

    /// `redis+cluster://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3`.
    pub(crate) fn url(&self) -> String {
        let hosts: Vec<String> = self
            .ports()
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    pub(crate) fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The port of the node that serves `key` (`CLUSTER KEYSLOT`, then `CLUSTER SLOTS`).
    pub(crate) fn port_of_key(&self, key: &str) -> u16 {
        let port = self.nodes.iter().find(|n| n.running()).unwrap().port;
        let Resp::Int(slot) = command(port, None, &["CLUSTER", "KEYSLOT", key]).unwrap() else {
            panic!("CLUSTER KEYSLOT answered no integer");
        };
        let slots = command(port, None, &["CLUSTER", "SLOTS"]).unwrap();
        for range in slots.items() {
            let r = range.items();
            let (Some(Resp::Int(lo)), Some(Resp::Int(hi)), Some(Resp::Int(p))) =
                (r.first(), r.get(1), r.get(2).and_then(|m| m.items().get(1)))
            else {
                continue;
            };
            if (*lo..=*hi).contains(&slot) {
                return u16::try_from(*p).unwrap();
            }
        }
        panic!("no node serves slot {slot} of {key}");
    }

    /// SIGKILLs the node on `port` (a shard failure).
    pub(crate) fn kill_node(&mut self, port: u16) {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap()
            .kill();
    }

    pub(crate) fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|p| format!("--- {} ---\n{}\n", p.log.display(), tail(&p.log)))
            .collect()
    }
}
