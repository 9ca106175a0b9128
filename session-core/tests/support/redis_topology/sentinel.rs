//! The Sentinel topology: a master, one replica and three `redis-sentinel` processes (quorum
//! 2), with the failovers, kills and restarts the failover tests drive. Kept apart from the
//! Cluster and from the shared process and RESP helpers (mod.rs) because it is most of this
//! support code and is read and changed on its own.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{command, free_port, have, info, poll, tail, Proc, Resp, TempDir};

/// Sentinel timings: small, so that a failover completes in a few seconds. A master is
/// subjectively down after `DOWN_AFTER_MS` without an answer; `FAILOVER_TIMEOUT_MS` bounds a
/// failover attempt, and a failed election is retried after twice that.
///
/// Not below about a second: after a `+switch-master` a sentinel drops its link to the new
/// master and reconnects only after its fixed 1 s ping period, but counts the wait as an
/// unanswered ping. With 500 ms every new master was "down" 510 ms after its promotion and the
/// set failed over back and forth forever (seen here, Redis 7.0.15).
pub(crate) const DOWN_AFTER_MS: u64 = 1_500;
pub(crate) const FAILOVER_TIMEOUT_MS: u64 = 2_000;

/// What a [`SentinelSet`] is started with.
#[derive(Clone, Debug)]
pub(crate) struct SentinelOpts {
    /// `requirepass` of the master and the replica (and `masterauth`, `sentinel auth-pass`).
    pub(crate) master_password: Option<String>,
    /// `requirepass` of the sentinels (separate from the master's).
    pub(crate) sentinel_password: Option<String>,
    /// The name the sentinels monitor the master under.
    pub(crate) master_name: String,
}

impl Default for SentinelOpts {
    fn default() -> Self {
        SentinelOpts {
            master_password: None,
            sentinel_password: None,
            master_name: "gwmaster".into(),
        }
    }
}

/// A master, one replica and three sentinels (quorum 2). Node 0 starts as the master.
pub(crate) struct SentinelSet {
    opts: SentinelOpts,
    /// The two data nodes (master and replica at start; roles change with failovers).
    nodes: Vec<Proc>,
    sentinels: Vec<Proc>,
    /// The port of the last node killed by [`SentinelSet::kill_master`] or
    /// [`SentinelSet::kill_replica`], and when.
    killed: Option<(u16, Instant)>,
    dir: TempDir,
}

impl SentinelSet {
    /// Starts the set and waits until every sentinel sees the master, the replica and the two
    /// other sentinels, and the replica is in sync: from then on a failover can happen. `None`
    /// when a tool is missing and this is not CI.
    pub(crate) fn start(opts: SentinelOpts) -> Option<SentinelSet> {
        if !have("redis-server") || !have("redis-sentinel") {
            return None;
        }
        let dir = TempDir::new("sentinel");
        let master_port = free_port();
        let mut nodes = Vec::new();
        for i in 0..2 {
            let port = if i == 0 { master_port } else { free_port() };
            nodes.push(Self::data_node(
                &dir,
                &opts,
                port,
                (i == 1).then_some(master_port),
            ));
        }
        let pw = opts.master_password.as_deref();
        poll(
            "the replica synced",
            Duration::from_secs(10),
            || {
                info(nodes[1].port, pw, "replication")
                    .is_ok_and(|i| i.get("master_link_status").is_some_and(|s| s == "up"))
            },
            || tail(&nodes[1].log),
        );

        let mut sentinels = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let conf = dir.0.join(format!("sentinel-{port}.conf"));
            let log = dir.0.join(format!("sentinel-{port}.log"));
            let name = &opts.master_name;
            let mut text = format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {log}\n\
                 sentinel monitor {name} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {name} {DOWN_AFTER_MS}\n\
                 sentinel failover-timeout {name} {FAILOVER_TIMEOUT_MS}\n\
                 sentinel parallel-syncs {name} 1\n",
                dir = dir.0.display(),
                log = log.display(),
            );
            if let Some(pw) = &opts.master_password {
                text.push_str(&format!("sentinel auth-pass {name} {pw}\n"));
            }
            // A sentinel's requirepass is also what it authenticates to the other sentinels
            // with, so all three share it.
            if let Some(pw) = &opts.sentinel_password {
                text.push_str(&format!("requirepass {pw}\n"));
            }
            // Sentinel rewrites its config file (discovered peers, the new master): each has
            // its own, writable.
            std::fs::write(&conf, text).unwrap();
            sentinels.push(Proc::spawn(
                port,
                vec!["redis-sentinel".into(), conf.display().to_string()],
                log,
            ));
        }
        let set = SentinelSet {
            opts,
            nodes,
            sentinels,
            killed: None,
            dir,
        };
        set.wait_settled(Duration::from_secs(15));
        Some(set)
    }

    fn data_node(dir: &TempDir, opts: &SentinelOpts, port: u16, replica_of: Option<u16>) -> Proc {
        let conf = dir.0.join(format!("redis-{port}.conf"));
        let log = dir.0.join(format!("redis-{port}.log"));
        // A config file, so that the sentinels' CONFIG REWRITE after a promotion succeeds.
        let mut text = format!(
            "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {log}\nsave \"\"\nappendonly no\n\
             repl-diskless-sync yes\nrepl-diskless-sync-delay 0\n",
            dir = dir.0.display(),
            log = log.display(),
        );
        if let Some(pw) = &opts.master_password {
            // The replica becomes the master after a failover, and the master a replica if it
            // comes back: both need both.
            text.push_str(&format!("requirepass {pw}\nmasterauth {pw}\n"));
        }
        if let Some(m) = replica_of {
            text.push_str(&format!("replicaof 127.0.0.1 {m}\n"));
        }
        std::fs::write(&conf, text).unwrap();
        Proc::spawn(
            port,
            vec!["redis-server".into(), conf.display().to_string()],
            log,
        )
    }

    /// Waits until every sentinel agrees on the master, knows the two other sentinels and at
    /// least one replica that is not down, and the master has a replica in sync.
    fn wait_settled(&self, limit: Duration) {
        let master = self.master_port();
        poll(
            "the sentinels settled",
            limit,
            || {
                self.sentinels.iter().all(|s| {
                    let ask = |what: &str| {
                        command(
                            s.port,
                            self.opts.sentinel_password.as_deref(),
                            &["SENTINEL", what, &self.opts.master_name],
                        )
                    };
                    let Ok(m) = ask("MASTER").map(|m| m.pairs()) else {
                        return false;
                    };
                    let good_replica = ask("REPLICAS").is_ok_and(|rs| {
                        rs.items().iter().map(Resp::pairs).any(|r| {
                            r.get("flags").is_some_and(|f| f == "slave")
                                && r.get("master-link-status").is_some_and(|s| s == "ok")
                        })
                    });
                    m.get("port").is_some_and(|p| *p == master.to_string())
                        && m.get("flags").is_some_and(|f| f == "master")
                        && m.get("num-other-sentinels").is_some_and(|n| n == "2")
                        && good_replica
                }) && self.connected_replicas(master) >= 1
            },
            || self.logs(),
        );
    }

    /// `connected_slaves` of the node on `port` (0 when it does not answer).
    fn connected_replicas(&self, port: u16) -> usize {
        info(port, self.opts.master_password.as_deref(), "replication")
            .ok()
            .and_then(|i| i.get("connected_slaves").and_then(|n| n.parse().ok()))
            .unwrap_or(0)
    }

    /// `redis+sentinel://[:masterpw@]127.0.0.1:p1,…/<master_name>[?sentinel_password=…]`.
    pub(crate) fn url(&self) -> String {
        self.url_with(
            self.opts.master_password.as_deref(),
            self.opts.sentinel_password.as_deref(),
        )
    }

    /// The URL with other credentials (to show that wrong ones fail closed).
    pub(crate) fn url_with(&self, master_pw: Option<&str>, sentinel_pw: Option<&str>) -> String {
        let auth = master_pw.map(|pw| format!(":{pw}@")).unwrap_or_default();
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        let query = sentinel_pw
            .map(|pw| format!("?sentinel_password={pw}"))
            .unwrap_or_default();
        format!(
            "redis+sentinel://{auth}{}/{}{query}",
            hosts.join(","),
            self.opts.master_name
        )
    }

    pub(crate) fn master_name(&self) -> &str {
        &self.opts.master_name
    }

    pub(crate) fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|s| s.port).collect()
    }

    /// The data nodes' ports (master and replica, in start order).
    pub(crate) fn node_ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// `redis://[:pw@]127.0.0.1:port` for one data node, to look at it directly.
    pub(crate) fn node_url(&self, port: u16) -> String {
        match &self.opts.master_password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{port}"),
            None => format!("redis://127.0.0.1:{port}"),
        }
    }

    /// The master's port as the first sentinel that answers reports it
    /// (`SENTINEL get-master-addr-by-name`).
    pub(crate) fn master_port(&self) -> u16 {
        self.sentinel_master()
            .unwrap_or_else(|| panic!("no sentinel answered\n{}", self.logs()))
    }

    fn sentinel_master(&self) -> Option<u16> {
        self.sentinels
            .iter()
            .find_map(|s| self.master_seen_by(s.port))
    }

    /// `SENTINEL get-master-addr-by-name` on the sentinel on `port`.
    fn master_seen_by(&self, port: u16) -> Option<u16> {
        let addr = command(
            port,
            self.opts.sentinel_password.as_deref(),
            &[
                "SENTINEL",
                "get-master-addr-by-name",
                &self.opts.master_name,
            ],
        )
        .ok()?;
        addr.items().get(1)?.text()?.parse().ok()
    }

    /// The node on `port` answers `ROLE` with `master`.
    fn is_master(&self, port: u16) -> bool {
        command(port, self.opts.master_password.as_deref(), &["ROLE"])
            .is_ok_and(|r| r.items().first().and_then(Resp::text) == Some("master"))
    }

    /// SIGKILLs the current master; returns its port. [`SentinelSet::wait_failover`] measures
    /// from this moment.
    pub(crate) fn kill_master(&mut self) -> u16 {
        let port = self.master_port();
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("the master is one of ours");
        assert!(node.running(), "the master on {port} is already dead");
        // Timestamped before the signal: whatever a client sees after this instant may be
        // the kill's doing.
        self.killed = Some((port, Instant::now()));
        node.kill();
        port
    }

    /// Freezes the master (`SIGSTOP`): its connections stay open and nothing answers, as with
    /// a hung server or a partition. [`SentinelSet::thaw`] resumes it.
    pub(crate) fn freeze_master(&mut self) -> u16 {
        let port = self.master_port();
        let node = self
            .nodes
            .iter()
            .find(|n| n.port == port)
            .expect("the master is one of ours");
        self.killed = Some((port, Instant::now()));
        node.signal("STOP");
        port
    }

    /// Resumes a node frozen by [`SentinelSet::freeze_master`].
    pub(crate) fn thaw(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter().find(|n| n.port == port) {
            node.signal("CONT");
        }
    }

    /// When the last kill ([`SentinelSet::kill_master`], [`SentinelSet::kill_replica`]) was
    /// signalled.
    pub(crate) fn killed_at(&self) -> Option<Instant> {
        self.killed.map(|(_, at)| at)
    }

    /// SIGKILLs the replica (the master stays): nothing can confirm a write (`WAIT`).
    /// [`SentinelSet::restart_killed_as_replica`] brings it back.
    pub(crate) fn kill_replica(&mut self) -> u16 {
        let master = self.master_port();
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port != master)
            .expect("the replica is one of ours");
        assert!(
            node.running(),
            "the replica on {} is already dead",
            node.port
        );
        self.killed = Some((node.port, Instant::now()));
        node.kill();
        node.port
    }

    /// Waits until every sentinel reports a master other than the one killed and that node
    /// answers `ROLE` as master; returns the time since [`SentinelSet::kill_master`].
    pub(crate) fn wait_failover(&self, limit: Duration) -> Duration {
        let (old, at) = self.killed.expect("kill_master first");
        poll(
            "the failover",
            limit.saturating_sub(at.elapsed()),
            || {
                let agreed = self
                    .sentinels
                    .iter()
                    .all(|s| self.master_seen_by(s.port).is_some_and(|p| p != old));
                agreed && self.sentinel_master().is_some_and(|p| self.is_master(p))
            },
            || self.logs(),
        );
        at.elapsed()
    }

    /// Starts the killed node (old master or replica) again as a replica of the current master
    /// and waits until it is in sync (so that `WAIT 1` succeeds again) and the sentinels see it.
    pub(crate) fn restart_killed_as_replica(&mut self) {
        let (old, _) = self.killed.take().expect("kill_master first");
        let master = self.master_port();
        let node = self.nodes.iter_mut().find(|n| n.port == old).unwrap();
        // Rewrite its config: it came back as the replica of the new master (the sentinels
        // would reconfigure it too, but only after some seconds).
        let conf = PathBuf::from(&node.cmd[1]);
        let text = std::fs::read_to_string(&conf).unwrap();
        let mut text: String = text
            .lines()
            .filter(|l| !l.starts_with("replicaof") && !l.starts_with("slaveof"))
            .map(|l| format!("{l}\n"))
            .collect();
        text.push_str(&format!("replicaof 127.0.0.1 {master}\n"));
        std::fs::write(&conf, text).unwrap();
        node.start();
        let pw = self.opts.master_password.as_deref();
        let log = node.log.clone();
        poll(
            "the old master resynced as a replica",
            Duration::from_secs(15),
            || {
                info(old, pw, "replication").is_ok_and(|i| {
                    i.get("master_link_status").is_some_and(|s| s == "up")
                        && i.get("master_port")
                            .is_some_and(|p| *p == master.to_string())
                })
            },
            || tail(&log),
        );
        self.wait_settled(Duration::from_secs(20));
    }

    /// Every process's log tail (for failure messages).
    pub(crate) fn logs(&self) -> String {
        self.nodes
            .iter()
            .chain(&self.sentinels)
            .map(|p| format!("--- {} ---\n{}\n", p.log.display(), tail(&p.log)))
            .collect()
    }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        // Sentinels first, so that they do not start a failover while the nodes go.
        for p in self.sentinels.iter_mut().chain(self.nodes.iter_mut()) {
            p.kill();
        }
    }
}
