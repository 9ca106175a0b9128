//! HTTP/2 abuse against the real binary, over h2c (prior knowledge) and TLS (ALPN h2), with a
//! raw-frame client (common/h2raw.rs): idle connections kept open by PINGs (case 36), floods
//! (case 25: rapid reset, CONTINUATION, PING, SETTINGS, oversized header lists) and malformed
//! requests that must not be downgraded to HTTP/1 (case 43).
//!
//! The flood tests measure, with 10 attacking connections at once (each reconnecting when the
//! gateway closes it): an honest client's p99 latency with and without the attack, the
//! gateway's peak RSS and CPU (from /proc), and how long each attacking connection lives. They
//! assert what holds on a loaded machine (every connection closed or its abuse refused within
//! the bound, RSS growth <= 50 MiB, every honest request answered, nothing malformed upstream)
//! and print the figures; `H2_FLOODS_P99_RATIO=<x>` also asserts the p99 ratio.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::h2raw::*;
use common::*;

/// Flood tests share the machine's cores: one at a time, or the figures mean nothing.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Each attacking connection is closed, or its abuse refused, within this long of connecting.
const BOUND: Duration = Duration::from_secs(3);
/// Attacking connections at once.
const ATTACKERS: usize = 10;
/// Honest requests per measurement.
const HONEST: usize = 100;

/// The standard config with an HTTPS listener (dev CA) beside h2c, and `limits` (`key = value`
/// lines) replacing the standard `[limits]` keys of the same name.
fn config(up: &str, limits: &str) -> String {
    let base = standard_config(0, 0, up, "")
        .replace("[listen]\n", "[listen]\nhttps = \"127.0.0.1:0\"\n")
        .replace("[sessions]\n", "[tls]\nmode = \"dev-ca\"\n\n[sessions]\n");
    let keys: Vec<&str> = limits
        .lines()
        .filter_map(|l| l.split('=').next())
        .map(str::trim)
        .collect();
    let kept: Vec<&str> = base
        .lines()
        .filter(|l| !keys.contains(&l.split('=').next().unwrap_or("").trim()))
        .collect();
    kept.join("\n")
        .replace("[limits]\n", &format!("[limits]\n{limits}"))
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Target {
    H2c,
    Tls,
}

/// A gateway with both listeners, and what it takes to reach them.
struct Env {
    up: Upstream,
    g: Gateway,
    https: u16,
    tls: TlsClient,
}

impl Env {
    async fn start(limits: &str) -> Env {
        let up = Upstream::start().await;
        let g = Gateway::start(&config(&up.url(), limits), 0, 0);
        let https = https_port(&g);
        let ca = std::fs::read(g.dir.path().join("gateway-data/dev-ca/dev-ca.pem")).unwrap();
        Env {
            up,
            g,
            https,
            tls: TlsClient::new(&ca),
        }
    }

    fn pid(&self) -> u32 {
        self.g.child.as_ref().unwrap().id()
    }

    async fn conn(&self, t: Target) -> std::io::Result<Conn> {
        match t {
            Target::H2c => Conn::h2c(self.g.http).await,
            Target::Tls => Conn::tls(self.https, &self.tls, &host("data")).await,
        }
    }

    /// Where an honest client connects: the target, a port, and the dev CA.
    fn honest_target(&self, t: Target) -> (Target, u16, Vec<u8>) {
        let ca = std::fs::read(self.g.dir.path().join("gateway-data/dev-ca/dev-ca.pem")).unwrap();
        match t {
            Target::H2c => (t, self.g.http, ca),
            Target::Tls => (t, self.https, ca),
        }
    }
}

/// A well-behaved HTTP/2 client (reqwest, hyper's h2 underneath) on one connection.
fn honest_client((t, port, ca): &(Target, u16, Vec<u8>)) -> (reqwest::Client, String) {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], *port));
    let b = reqwest::Client::builder()
        .no_proxy()
        .resolve(&host("data"), addr);
    match t {
        Target::H2c => (
            b.http2_prior_knowledge().build().unwrap(),
            format!("http://{}:{port}/honest", host("data")),
        ),
        Target::Tls => (
            b.add_root_certificate(reqwest::Certificate::from_pem(ca).unwrap())
                .tls_built_in_root_certs(false)
                .build()
                .unwrap(),
            format!("https://{}:{port}/honest", host("data")),
        ),
    }
}

/// The honest client runs on its own thread and runtime, so that the attacking tasks of this
/// process cannot delay it: its latency is the gateway's. It measures a baseline, sends it,
/// waits for `go`, and measures again.
fn honest_thread(
    target: (Target, u16, Vec<u8>),
    base_tx: tokio::sync::oneshot::Sender<Vec<Duration>>,
    go: std::sync::mpsc::Receiver<()>,
) -> std::thread::JoinHandle<Vec<Duration>> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (client, url) = honest_client(&target);
            honest_run(&client, &url).await;
            let _ = base_tx.send(honest_run(&client, &url).await);
            go.recv().unwrap();
            honest_run(&client, &url).await
        })
    })
}

/// `HONEST` sequential requests; returns their sorted latencies. Every one must succeed.
async fn honest_run(client: &reqwest::Client, url: &str) -> Vec<Duration> {
    let mut lat = Vec::with_capacity(HONEST);
    for i in 0..HONEST {
        let started = Instant::now();
        let res = client
            .get(url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap_or_else(|e| panic!("honest request {i} failed: {e:?}"));
        assert_eq!(res.status(), 200, "honest request {i}");
        assert_eq!(res.version(), reqwest::Version::HTTP_2);
        res.bytes().await.unwrap();
        lat.push(started.elapsed());
    }
    lat.sort();
    lat
}

fn p99(sorted: &[Duration]) -> Duration {
    sorted[(sorted.len() * 99).div_ceil(100) - 1]
}

fn proc_status_kib(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name is in parentheses and may contain spaces: count fields after it.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // Fields 14 and 15 of stat, 12 and 13 after the state field at index 0 here.
    t(11) + t(12)
}

/// Samples the gateway's RSS and CPU every 250 ms until stopped: (peak RSS KiB, peak CPU %).
fn sampler(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u64, f64)> {
    std::thread::spawn(move || {
        // Linux reports these in USER_HZ, which is 100 on every architecture we run.
        let hz = 100.0;
        let mut peak_rss = proc_status_kib(pid, "VmRSS:");
        let mut peak_cpu: f64 = 0.0;
        let mut last = (Instant::now(), cpu_ticks(pid));
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(250));
            let now = (Instant::now(), cpu_ticks(pid));
            let secs = now.0.duration_since(last.0).as_secs_f64();
            let cpu = (now.1.saturating_sub(last.1)) as f64 / hz / secs * 100.0;
            peak_cpu = peak_cpu.max(cpu);
            peak_rss = peak_rss.max(proc_status_kib(pid, "VmRSS:"));
            last = now;
        }
        (peak_rss, peak_cpu)
    })
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Flood {
    /// HEADERS then RST_STREAM, 100k pairs in all (CVE-2023-44487).
    RapidReset,
    /// HEADERS without END_HEADERS, then CONTINUATION frames without END_HEADERS.
    Continuation,
    /// PING frames, reading the ACKs.
    Ping,
    /// SETTINGS frames, reading the ACKs.
    Settings,
    /// Header blocks of ~4 KiB on the wire that decode to ~120 KiB (HPACK indexing).
    BigHeaders,
}

/// Pairs of HEADERS + RST_STREAM the rapid-reset flood sends in all.
const RAPID_RESET_PAIRS: u64 = 100_000;

/// An oversized header list: one ~4 KiB literal added to the dynamic table, then `refs`
/// one-byte references to it. With the default `max_header_bytes` (16 KiB), 8 references
/// (~36 KiB decoded) are over the limit, 30 (~124 KiB) over h2's abuse limit (4x).
fn big_block(refs: usize) -> Vec<u8> {
    let mut b = request_block("GET", &host("data"), "/big-headers", &[]);
    literal_indexed(&mut b, b"x-big", &[b'a'; 4000]);
    for _ in 0..refs {
        indexed(&mut b, 62);
    }
    b
}

/// One batch of flood frames, for streams from `next_stream` on; returns the bytes and how
/// many units (streams, frames) it holds.
fn batch(kind: Flood, next_stream: &mut u32, first: bool) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    let mut n = 0;
    match kind {
        Flood::RapidReset => {
            let block = request_block("GET", &host("data"), "/rapid-reset", &[]);
            for _ in 0..500 {
                out.extend(frame(
                    HEADERS,
                    END_HEADERS | END_STREAM,
                    *next_stream,
                    &block,
                ));
                out.extend(frame(RST_STREAM, 0, *next_stream, &CANCEL.to_be_bytes()));
                *next_stream += 2;
                n += 1;
            }
        }
        Flood::Continuation => {
            if first {
                let block = request_block("GET", &host("data"), "/continuation", &[]);
                out.extend(frame(HEADERS, END_STREAM, 1, &block));
            }
            let mut fragment = Vec::new();
            while fragment.len() < 4000 {
                literal(&mut fragment, b"x-filler", &[b'b'; 100]);
            }
            for _ in 0..16 {
                out.extend(frame(CONTINUATION, 0, 1, &fragment));
                n += 1;
            }
        }
        Flood::Ping => {
            for i in 0..1000u64 {
                out.extend(frame(PING, 0, 0, &i.to_be_bytes()));
                n += 1;
            }
        }
        Flood::Settings => {
            // SETTINGS_INITIAL_WINDOW_SIZE = 65535, the default: a no-op to apply, not to ACK.
            for _ in 0..1000 {
                out.extend(frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0xff, 0xff]));
                n += 1;
            }
        }
        Flood::BigHeaders => {
            // Each block adds a new dynamic-table entry (evicting the last), so each is
            // decodable on its own.
            let block = big_block(8);
            for _ in 0..20 {
                out.extend(frame(
                    HEADERS,
                    END_HEADERS | END_STREAM,
                    *next_stream,
                    &block,
                ));
                *next_stream += 2;
                n += 1;
            }
        }
    }
    (out, n)
}

/// What happened to one attacking connection.
#[derive(Debug)]
struct Outcome {
    /// From connecting to the gateway closing the connection; `None`: still open at the end.
    closed_after: Option<Duration>,
    /// The GOAWAY error code, when one came.
    goaway: Option<u32>,
    /// Streams answered with a 2xx (must be none).
    ok_streams: usize,
    /// Streams refused (431, 400, RST_STREAM).
    refused_streams: usize,
}

/// One attacking connection: floods until the gateway closes it or `stop` is set.
async fn attack_once(
    env: &Env,
    t: Target,
    kind: Flood,
    stop: &AtomicBool,
    total: &AtomicU64,
) -> Option<Outcome> {
    let started = Instant::now();
    let Conn { mut rd, mut wr } = env.conn(t).await.ok()?;
    let reader_done = Arc::new(AtomicBool::new(false));
    // ok streams, refused streams, GOAWAY code (u64::MAX: none).
    let counts = Arc::new([
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(u64::MAX),
    ]);
    let (done, seen) = (reader_done.clone(), counts.clone());
    let mut read = tokio::spawn(async move {
        while let Some(f) = rd.next(BOUND * 4).await {
            match f.kind {
                GOAWAY => seen[2].store(u64::from(f.error_code().unwrap_or(0)), Ordering::Relaxed),
                RST_STREAM => {
                    seen[1].fetch_add(1, Ordering::Relaxed);
                }
                HEADERS if f.stream != 0 => {
                    let i = match f.status() {
                        Some(s) if s < 300 => 0,
                        _ => 1,
                    };
                    seen[i].fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
        done.store(true, Ordering::Relaxed);
        started.elapsed()
    });
    let mut next_stream = 1;
    let mut first = true;
    // Each connection floods until the gateway closes it or the bound passes, whatever the
    // rest of the test is doing: `stop` only keeps a new connection from starting.
    let _ = stop;
    while !reader_done.load(Ordering::Relaxed) && started.elapsed() < BOUND {
        let (bytes, n) = batch(kind, &mut next_stream, first);
        first = false;
        let left = BOUND.saturating_sub(started.elapsed());
        if wr.write_all_timeout(&bytes, left).await.is_err() {
            break;
        }
        total.fetch_add(n, Ordering::Relaxed);
    }
    // A connection still open at the bound (one whose abuse is refused stream by stream) is
    // left open here.
    let left = BOUND.saturating_sub(started.elapsed()) + Duration::from_millis(100);
    let closed_after = match tokio::time::timeout(left, &mut read).await {
        Ok(r) => Some(r.unwrap()),
        Err(_) => {
            read.abort();
            None
        }
    };
    drop(wr);
    let goaway = counts[2].load(Ordering::Relaxed);
    Some(Outcome {
        closed_after,
        goaway: u32::try_from(goaway).ok(),
        ok_streams: counts[0].load(Ordering::Relaxed) as usize,
        refused_streams: counts[1].load(Ordering::Relaxed) as usize,
    })
}

trait WriteTimeout {
    async fn write_all_timeout(&mut self, b: &[u8], wait: Duration) -> std::io::Result<()>;
}

impl<W: tokio::io::AsyncWrite + Unpin> WriteTimeout for W {
    async fn write_all_timeout(&mut self, b: &[u8], wait: Duration) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        match tokio::time::timeout(wait, self.write_all(b)).await {
            Ok(r) => r,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }
}

/// Figures of one flood run.
#[derive(Debug)]
struct Figures {
    base_p99: Duration,
    attack_p99: Duration,
    base_rss_kib: u64,
    peak_rss_kib: u64,
    peak_cpu: f64,
    outcomes: Vec<Outcome>,
    sent: u64,
}

async fn run_flood(env: &Arc<Env>, t: Target, kind: Flood) -> Figures {
    let (base_tx, base_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel();
    let honest = honest_thread(env.honest_target(t), base_tx, go_rx);
    let base = base_rx.await.unwrap();
    let pid = env.pid();
    let base_rss_kib = proc_status_kib(pid, "VmRSS:");

    let stop = Arc::new(AtomicBool::new(false));
    let stop_sampler = Arc::new(AtomicBool::new(false));
    let sampling = sampler(pid, stop_sampler.clone());
    let total = Arc::new(AtomicU64::new(0));
    let mut attackers = Vec::new();
    for _ in 0..ATTACKERS {
        let (stop, total, env) = (stop.clone(), total.clone(), env.clone());
        attackers.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if kind == Flood::RapidReset && total.load(Ordering::Relaxed) >= RAPID_RESET_PAIRS {
                    break;
                }
                if let Some(o) = attack_once(&env, t, kind, &stop, &total).await {
                    outcomes.push(o);
                }
            }
            outcomes
        }));
    }
    // Let the attack get going, then measure the honest client under it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    go_tx.send(()).unwrap();
    let attacked = tokio::task::spawn_blocking(move || honest.join().unwrap())
        .await
        .unwrap();
    if kind == Flood::RapidReset {
        let deadline = Instant::now() + Duration::from_secs(60);
        while total.load(Ordering::Relaxed) < RAPID_RESET_PAIRS && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for a in attackers {
        outcomes.extend(a.await.unwrap());
    }
    stop_sampler.store(true, Ordering::Relaxed);
    let (peak_rss_kib, peak_cpu) = sampling.join().unwrap();
    Figures {
        base_p99: p99(&base),
        attack_p99: p99(&attacked),
        base_rss_kib,
        peak_rss_kib,
        peak_cpu,
        sent: total.load(Ordering::Relaxed),
        outcomes,
    }
}

/// Runs one flood against both listeners and checks the bar; prints the figures.
async fn flood_case(kind: Flood) {
    let _serial = SERIAL.lock().await;
    let env = Arc::new(Env::start("").await);
    for t in [Target::H2c, Target::Tls] {
        let before = env.up.count();
        let f = run_flood(&env, t, kind).await;
        let conns = f.outcomes.len();
        let still_open = f
            .outcomes
            .iter()
            .filter(|o| o.closed_after.is_none())
            .count();
        let slowest = f
            .outcomes
            .iter()
            .filter_map(|o| o.closed_after)
            .max()
            .unwrap_or_default();
        let goaways: Vec<_> = f.outcomes.iter().filter_map(|o| o.goaway).collect();
        let ok_streams: usize = f.outcomes.iter().map(|o| o.ok_streams).sum();
        let refused: usize = f.outcomes.iter().map(|o| o.refused_streams).sum();
        let ratio = f.attack_p99.as_secs_f64() / f.base_p99.as_secs_f64();
        let growth_mib = f.peak_rss_kib.saturating_sub(f.base_rss_kib) as f64 / 1024.0;
        println!(
            "FIGURES {kind:?} {t:?}: honest p99 {:.1} ms without, {:.1} ms during ({ratio:.2}x); \
             RSS {:.1} MiB before, peak {:.1} MiB (+{growth_mib:.1}); peak CPU {:.0}%; \
             {conns} attacking connections, {still_open} left open, slowest closed after \
             {:.0} ms; {} units sent; GOAWAY codes {:?}; streams refused {refused}, answered 2xx {ok_streams}",
            f.base_p99.as_secs_f64() * 1e3,
            f.attack_p99.as_secs_f64() * 1e3,
            f.base_rss_kib as f64 / 1024.0,
            f.peak_rss_kib as f64 / 1024.0,
            f.peak_cpu,
            slowest.as_secs_f64() * 1e3,
            f.sent,
            {
                let mut g = goaways.clone();
                g.sort();
                g.dedup();
                g
            },
        );
        assert!(
            growth_mib <= 50.0,
            "{kind:?} {t:?}: RSS grew by {growth_mib:.1} MiB"
        );
        assert!(conns >= ATTACKERS, "{kind:?} {t:?}: {conns} connections");
        if kind == Flood::BigHeaders {
            // Refused stream by stream (431): never forwarded, never answered 2xx.
            assert_eq!(ok_streams, 0, "{kind:?} {t:?}");
            assert!(refused > 0, "{kind:?} {t:?}: no stream was refused");
        }
        assert_eq!(
            still_open, 0,
            "{kind:?} {t:?}: attacking connections left open: {:?}",
            f.outcomes
        );
        assert!(
            slowest <= BOUND,
            "{kind:?} {t:?}: a connection lived {slowest:?}"
        );
        if kind == Flood::RapidReset {
            assert!(
                f.sent >= RAPID_RESET_PAIRS,
                "{kind:?} {t:?}: {} pairs",
                f.sent
            );
        }
        // The upstream saw only the honest requests and, for rapid reset, requests the
        // client cancelled: never an oversized header list or a CONTINUATION flood's.
        let seen = env.up.seen.lock()[before..].to_vec();
        for r in &seen {
            assert!(
                r.uri == "/honest" || r.uri == "/rapid-reset",
                "{kind:?} {t:?}: upstream saw {}",
                r.uri
            );
            assert!(r.headers.get("x-big").is_none() && r.headers.get("x-filler").is_none());
        }
        if let Some(max) = std::env::var("H2_FLOODS_P99_RATIO")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
        {
            assert!(ratio <= max, "{kind:?} {t:?}: p99 ratio {ratio:.2} > {max}");
        }
    }
}

// One worker: the attackers of this process take at most one core from the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn case_25_rapid_reset_flood() {
    flood_case(Flood::RapidReset).await;
}

// One worker: the attackers of this process take at most one core from the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn case_25_continuation_flood() {
    flood_case(Flood::Continuation).await;
}

// One worker: the attackers of this process take at most one core from the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn case_25_ping_flood() {
    flood_case(Flood::Ping).await;
}

// One worker: the attackers of this process take at most one core from the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn case_25_settings_flood() {
    flood_case(Flood::Settings).await;
}

// One worker: the attackers of this process take at most one core from the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn case_25_oversized_header_list_flood() {
    flood_case(Flood::BigHeaders).await;
}

/// Case 25: a header block, small on the wire and larger than `max_header_bytes` once
/// decoded, gets 431 and never reaches the upstream; one more than 4x larger costs the client
/// its connection (GOAWAY). Guard: the h2 crate already enforces SETTINGS_MAX_HEADER_LIST_SIZE
/// on the decoded list, which the gateway sets to `max_header_bytes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_25_decoded_header_list_over_max_header_bytes_is_refused() {
    let env = Env::start("").await;
    for t in [Target::H2c, Target::Tls] {
        for (refs, allowed) in [
            (8, &[Answer::Status(431)][..]),
            (
                30,
                &[
                    Answer::GoAway(ENHANCE_YOUR_CALM),
                    Answer::GoAway(PROTOCOL_ERROR),
                    Answer::Closed,
                ][..],
            ),
        ] {
            let mut c = env.conn(t).await.unwrap();
            c.handshake().await;
            let block = big_block(refs);
            assert!(block.len() < 4200, "{} bytes on the wire", block.len());
            c.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &block))
                .await
                .unwrap();
            let answer = stream_answer(&mut c, 1).await;
            assert!(
                allowed.contains(&answer),
                "{t:?} {refs} references: {answer:?}"
            );
        }
        assert!(
            !env.up.seen.lock().iter().any(|r| r.uri == "/big-headers"),
            "{t:?}: the upstream saw the oversized request"
        );
    }
}

#[derive(Debug, PartialEq)]
enum Answer {
    Status(u16),
    Reset(u32),
    /// A connection error: GOAWAY with this code.
    GoAway(u32),
    Closed,
}

/// The first answer on `stream`: its response status, or its reset code.
async fn stream_answer(c: &mut Conn, stream: u32) -> Answer {
    loop {
        let Some(f) = c.rd.next(Duration::from_secs(10)).await else {
            return Answer::Closed;
        };
        if f.kind == PING && f.flags & ACK == 0 {
            let _ = c.send(&frame(PING, ACK, 0, &f.payload)).await;
        }
        // A graceful GOAWAY (NO_ERROR) lets streams already open finish.
        if f.kind == GOAWAY && f.error_code() != Some(0) {
            return Answer::GoAway(f.error_code().unwrap());
        }
        if f.stream != stream {
            continue;
        }
        match f.kind {
            HEADERS => return Answer::Status(f.status().unwrap_or(0)),
            RST_STREAM => return Answer::Reset(f.error_code().unwrap()),
            _ => {}
        }
    }
}

/// Case 43 (case 22's HTTP/2 half): requests that RFC 9113 §8.2 calls malformed are stream
/// errors (RST_STREAM PROTOCOL_ERROR) or 400, and the HTTP/1 upstream never receives them
/// whole: connection-specific fields, CR/LF/NUL in a value, uppercase names, and a
/// `content-length` that disagrees with the DATA frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_43_malformed_h2_requests_are_not_downgraded() {
    let env = Env::start("").await;
    type Fields = Vec<(&'static [u8], &'static [u8])>;
    let cases: Vec<(&str, Fields)> = vec![
        ("te-chunked", vec![(b"transfer-encoding", b"chunked")]),
        ("connection", vec![(b"connection", b"keep-alive")]),
        ("keep-alive", vec![(b"keep-alive", b"timeout=5")]),
        (
            "proxy-connection",
            vec![(b"proxy-connection", b"keep-alive")],
        ),
        ("upgrade", vec![(b"upgrade", b"websocket")]),
        ("te-gzip", vec![(b"te", b"gzip")]),
        ("cr", vec![(b"x-note", b"a\rb")]),
        ("lf", vec![(b"x-note", b"a\nx-injected: 1")]),
        ("nul", vec![(b"x-note", b"a\0b")]),
        ("crlf-name", vec![(b"x-a\r\nx-injected", b"1")]),
        ("uppercase", vec![(b"X-Upper", b"1")]),
    ];
    // A stream error, a 400, or (stricter) a connection error: h2 rejects an invalid field
    // value while decoding HPACK, whose state is the connection's.
    let refused = |a: &Answer| {
        matches!(
            a,
            Answer::Reset(PROTOCOL_ERROR)
                | Answer::Status(400)
                | Answer::GoAway(PROTOCOL_ERROR | COMPRESSION_ERROR)
        )
    };
    for t in [Target::H2c, Target::Tls] {
        for (name, fields) in &cases {
            let mut c = env.conn(t).await.unwrap();
            c.handshake().await;
            let path = format!("/case43-{name}");
            let block = request_block("GET", &host("data"), &path, fields);
            c.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &block))
                .await
                .unwrap();
            let answer = stream_answer(&mut c, 1).await;
            assert!(refused(&answer), "{t:?} {name}: {answer:?}");
        }
        // content-length disagreeing with the body, both ways.
        for (name, declared, sent) in [("cl-short", 10usize, 5usize), ("cl-long", 5, 10)] {
            let mut c = env.conn(t).await.unwrap();
            c.handshake().await;
            let path = format!("/case43-{name}");
            let cl = declared.to_string();
            let block = request_block(
                "POST",
                &host("data"),
                &path,
                &[(b"content-length", cl.as_bytes())],
            );
            let mut bytes = frame(HEADERS, END_HEADERS, 1, &block);
            bytes.extend(frame(DATA, END_STREAM, 1, &vec![b'x'; sent]));
            c.send(&bytes).await.unwrap();
            let answer = stream_answer(&mut c, 1).await;
            assert!(refused(&answer), "{t:?} {name}: {answer:?}");
        }
        // A good request is served.
        let mut c = env.conn(t).await.unwrap();
        c.handshake().await;
        let block = request_block("GET", &host("data"), "/case43-good", &[]);
        c.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &block))
            .await
            .unwrap();
        assert_eq!(stream_answer(&mut c, 1).await, Answer::Status(200), "{t:?}");
    }
    // Give an aborted upstream request time to be recorded, then check what arrived.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for r in env.up.seen.lock().iter() {
        if r.uri == "/case43-good" {
            continue;
        }
        // A request whose body the gateway aborted never reached the upstream whole.
        assert!(
            !r.uri.starts_with("/case43-") || !r.body_complete,
            "the upstream received a malformed request whole: {r:?}"
        );
        for name in [
            "transfer-encoding",
            "connection",
            "keep-alive",
            "proxy-connection",
            "upgrade",
            "x-injected",
            "x-upper",
        ] {
            assert!(
                r.headers.get(name).is_none(),
                "{name} reached the upstream: {r:?}"
            );
        }
        if let Some(cl) = r.headers.get("content-length") {
            if r.body_complete {
                assert_eq!(cl.to_str().unwrap(), r.body_len.to_string(), "{r:?}");
            }
        }
    }
}

/// An h2 client that keeps a connection open with PINGs, as keep-alive clients do.
async fn pinger(
    mut c: Conn,
    ack: bool,
    every: Duration,
    wait: Duration,
) -> (Option<Duration>, Option<Duration>) {
    let started = Instant::now();
    let mut goaway = None;
    let mut tick = tokio::time::interval(every);
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = &mut deadline => return (goaway, None),
            _ = tick.tick() => {
                n += 1;
                if c.send(&frame(PING, 0, 0, &n.to_be_bytes())).await.is_err() {
                    return (goaway, Some(started.elapsed()));
                }
            }
            f = c.rd.next(wait) => match f {
                None => return (goaway, Some(started.elapsed())),
                Some(f) if f.kind == GOAWAY => goaway = goaway.or(Some(started.elapsed())),
                Some(f) if f.kind == PING && f.flags & ACK == 0 && ack => {
                    let _ = c.send(&frame(PING, ACK, 0, &f.payload)).await;
                }
                Some(_) => {}
            }
        }
    }
}

/// Case 36: an HTTP/2 connection with no open stream for `idle_timeout` gets GOAWAY and is
/// closed, although keep-alive PINGs (and their ACKs) keep bytes moving; a client that never
/// acknowledges the GOAWAY's PING is closed as well. A stream that is open longer than the
/// idle timeout is not cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_36_idle_h2_connection_kept_alive_by_pings_is_closed() {
    let env = Env::start("idle_timeout = \"2s\"\n").await;
    let idle = Duration::from_secs(2);
    for t in [Target::H2c, Target::Tls] {
        // One request first, so that the idle time counts from its end.
        let mut a = env.conn(t).await.unwrap();
        a.handshake().await;
        let block = request_block("GET", &host("data"), "/idle-a", &[]);
        a.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &block))
            .await
            .unwrap();
        assert_eq!(stream_answer(&mut a, 1).await, Answer::Status(200), "{t:?}");
        let mut b = env.conn(t).await.unwrap();
        b.handshake().await;
        // A stream open for longer than the idle timeout, with PINGs beside it.
        let mut s = env.conn(t).await.unwrap();
        s.handshake().await;
        let block = request_block("GET", &host("data"), "/slow?ms=3000", &[]);
        s.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &block))
            .await
            .unwrap();
        let slow = tokio::spawn(async move {
            let started = Instant::now();
            let answer = stream_answer(&mut s, 1).await;
            (answer, started.elapsed())
        });
        let every = Duration::from_millis(300);
        let wait = Duration::from_secs(10);
        let (ra, rb) = tokio::join!(pinger(a, true, every, wait), pinger(b, false, every, wait));
        let (slow_answer, slow_took) = slow.await.unwrap();
        assert_eq!(
            slow_answer,
            Answer::Status(200),
            "{t:?}: the open stream was cut"
        );
        assert!(slow_took >= Duration::from_millis(2900), "{slow_took:?}");
        for (who, (goaway, closed)) in [("acking", ra), ("silent", rb)] {
            let closed = closed.unwrap_or_else(|| {
                panic!("{t:?}: the {who} pinger's connection is still open after {wait:?}")
            });
            assert!(goaway.is_some(), "{t:?}: the {who} pinger got no GOAWAY");
            // The idle timeout, then at most the GOAWAY's grace (the idle timeout again).
            assert!(
                closed <= idle * 2 + Duration::from_millis(1500),
                "{t:?}: the {who} pinger was closed after {closed:?}"
            );
        }
    }
}
