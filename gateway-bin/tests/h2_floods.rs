//! HTTP/2 floods against the real binary, over h2c (prior knowledge) and TLS (ALPN h2), with a
//! raw-frame client (common/h2raw.rs): case 25's rapid reset, CONTINUATION, PING, SETTINGS and
//! oversized header list floods. Idle connections kept open by PINGs (case 36), a single
//! oversized header list (case 25) and malformed requests (case 43) are in h2_abuse.rs.
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

use common::h2env::*;
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
