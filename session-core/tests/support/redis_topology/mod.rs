//! Redis topologies for tests (issue 16): a Sentinel set (a master, one replica, three
//! `redis-sentinel` processes) and a Redis Cluster (three masters), all on free 127.0.0.1 ports,
//! without persistence, their config files in a temporary directory, every process killed on
//! drop. Included with `#[path]` by session-core's redis_sentinel.rs and redis_cluster.rs, by
//! gateway-bin's redis_failover.rs and by cert-core's redis_cluster_cert_store.rs. It talks to
//! the nodes with a tiny RESP client of its own ([`command`]): gateway-bin has no `redis`
//! dependency, and this module must not depend on session-core either.
//!
//! Without `redis-server`, `redis-sentinel` or `redis-cli` on the PATH, `start` prints a loud skip
//! message and returns `None`, except on CI (`CI=true`) where it panics: under CI none of these
//! tests skip.
//!
//! This file holds what both topologies use (the processes, their temporary directory, the RESP
//! client, polling); the Sentinel set is in sentinel.rs and the Cluster in cluster.rs, each
//! large enough to be read on its own.

// Each test binary uses a different part of this helper.
#![allow(dead_code)]

mod cluster;
mod sentinel;

// Each test binary uses one topology or both, so one of these is unused in some.
#[allow(unused_imports)]
pub(crate) use cluster::ClusterSet;
#[allow(unused_imports)]
pub(crate) use sentinel::{SentinelOpts, SentinelSet};

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
