//! Redis topologies for tests (issue 16): a Sentinel set (a master, one replica, three
//! `redis-sentinel` processes) and a Redis Cluster (three masters), all on free 127.0.0.1 ports,
//! without persistence, their config files in a temporary directory, every process killed on
//! drop. Included with `#[path]` by session-core's redis_sentinel.rs and redis_cluster.rs and by
//! gateway-bin's redis_failover.rs. It talks to the nodes with a tiny RESP client of its own
//! ([`command`]): gateway-bin has no `redis` dependency, and this file must not depend on
//! session-core either.
//!
//! Without `redis-server`, `redis-sentinel` or `redis-cli` on the PATH, `start` prints a loud skip
//! message and returns `None`, except on CI (`CI=true`) where it panics: under CI none of these
//! tests skip.

// Each test binary uses a different part of this helper.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

/// Returns false (after a loud message) when `tool` is missing and this is not CI; panics on CI.
fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{tool} is not installed (run scripts/install-test-deps)");
        }
        eprintln!("\n\n*** SKIPPED: {tool} is not installed (scripts/install-test-deps) ***\n");
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A directory under the system temp dir, removed on drop (session-core has no tempfile
/// dependency, and this file is shared by crates that may not have it either).
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = std::env::temp_dir().join(format!(
            "gw-{what}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // A failed test leaves its configs and logs behind, to be read.
        if std::thread::panicking() {
            eprintln!("kept {} (the test failed)", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// One child process listening on `port`.
struct Proc {
    port: u16,
    child: Option<Child>,
    /// The program and its arguments, to start it again.
    cmd: Vec<String>,
    log: PathBuf,
}

impl Proc {
    fn spawn(port: u16, cmd: Vec<String>, log: PathBuf) -> Proc {
        let mut p = Proc {
            port,
            child: None,
            cmd,
            log,
        };
        p.start();
        p
    }

    fn start(&mut self) {
        assert!(
            self.child.is_none(),
            "port {} is already running",
            self.port
        );
        let child = Command::new(&self.cmd[0])
            .args(&self.cmd[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "{} on port {} exited with {st}; log:\n{}",
                    self.cmd[0],
                    self.port,
                    tail(&self.log)
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not start on port {}; log:\n{}",
                self.cmd[0],
                self.port,
                tail(&self.log)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL: a crash, as the clients and the other nodes see it.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Sends `SIGSTOP` or `SIGCONT`: a process that hangs (or comes back) with its sockets
    /// open, which clients only notice by their timeouts.
    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let status = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(c.id().to_string())
                .status()
                .expect("kill(1) runs");
            assert!(status.success(), "kill -{sig} failed");
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last lines of a log file, for assertion messages.
fn tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A RESP reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    /// A bulk string; `None` is the null reply.
    Bulk(Option<String>),
    /// An array; `None` is the null array.
    Array(Option<Vec<Resp>>),
}

impl Resp {
    /// The text of a simple or bulk string.
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Resp::Simple(s) | Resp::Bulk(Some(s)) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn items(&self) -> &[Resp] {
        match self {
            Resp::Array(Some(v)) => v,
            _ => &[],
        }
    }

    /// A flat `[k1, v1, k2, v2, …]` array (`SENTINEL MASTER`) as a map.
    fn pairs(&self) -> std::collections::HashMap<String, String> {
        self.items()
            .chunks(2)
            .filter_map(|kv| {
                Some((
                    kv.first()?.text()?.to_owned(),
                    kv.get(1)?.text()?.to_owned(),
                ))
            })
            .collect()
    }
}

fn read_reply(r: &mut impl std::io::BufRead) -> std::io::Result<Resp> {
    use std::io::{Error, ErrorKind};
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(Error::new(ErrorKind::UnexpectedEof, "connection closed"));
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let bad = || Error::new(ErrorKind::InvalidData, format!("bad reply line {line:?}"));
    let (kind, rest) = line.split_at_checked(1).ok_or_else(bad)?;
    let n = || rest.parse::<i64>().map_err(|_| bad());
    Ok(match kind {
        "+" => Resp::Simple(rest.to_owned()),
        "-" => Resp::Error(rest.to_owned()),
        ":" => Resp::Int(n()?),
        "$" if n()? < 0 => Resp::Bulk(None),
        "$" => {
            let mut buf = vec![0u8; usize::try_from(n()?).map_err(|_| bad())? + 2];
            r.read_exact(&mut buf)?;
            buf.truncate(buf.len() - 2);
            Resp::Bulk(Some(String::from_utf8_lossy(&buf).into_owned()))
        }
        "*" if n()? < 0 => Resp::Array(None),
        "*" => Resp::Array(Some(
            (0..n()?).map(|_| read_reply(r)).collect::<Result<_, _>>()?,
        )),
        _ => return Err(bad()),
    })
}

/// Sends one command to 127.0.0.1:`port` on a fresh connection (after `AUTH password` when
/// given), with short timeouts. A Redis error reply is an `Err` too.
pub(crate) fn command(port: u16, password: Option<&str>, args: &[&str]) -> Result<Resp, String> {
    use std::io::Write;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let stream =
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_millis(1_000)))
        .map_err(|e| e.to_string())?;
    let mut w = stream.try_clone().map_err(|e| e.to_string())?;
    let mut r = std::io::BufReader::new(stream);
    let encode = |args: &[&str]| {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        out
    };
    let mut send = |args: &[&str]| -> Result<Resp, String> {
        w.write_all(encode(args).as_bytes())
            .map_err(|e| e.to_string())?;
        match read_reply(&mut r).map_err(|e| e.to_string())? {
            Resp::Error(e) => Err(e),
            ok => Ok(ok),
        }
    };
    if let Some(pw) = password {
        send(&["AUTH", pw])?;
    }
    send(args)
}

/// `INFO <section>` as `field -> value`.
fn info(
    port: u16,
    password: Option<&str>,
    section: &str,
) -> Result<std::collections::HashMap<String, String>, String> {
    let text = command(port, password, &["INFO", section])?;
    Ok(text
        .text()
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect())
}

/// Polls `ok` every 20 ms until it returns true; panics with `what` (and `why()`) after `limit`.
fn poll(what: &str, limit: Duration, mut ok: impl FnMut() -> bool, why: impl Fn() -> String) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?}\n{}",
            why()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ------------------------------------------------------------------------------------------
// Sentinel
// ------------------------------------------------------------------------------------------

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

// ------------------------------------------------------------------------------------------
// Cluster
// ------------------------------------------------------------------------------------------

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
