//! The client side of `bench/revocations` (issue 16): warms sessions into every replica's
//! cache, revokes them at a fixed rate through the admin API, and optionally times the
//! revocation from outside (the other replica's 401, and a Redis subscriber of our own).
//! Also a tiny upstream for the replicas, and a reader of Prometheus histograms.
//!
//! The figure the issue asks for comes from inside the replicas
//! (`gateway_revocation_propagation_seconds`); the outside timings here are for finding where
//! the time goes, and for builds that do not record the histogram.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{http1, Res};

/// Which replica's admin API revokes each session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Via {
    /// Revocation `i` goes through replica `i % 2`: each replica hears half its revocations
    /// from the other one, and publishes the other half itself.
    Alternate,
    /// Every revocation goes through the first replica.
    First,
}

/// What `run` needs.
pub(crate) struct Opts {
    /// The replicas' request listeners, in order.
    pub http: Vec<SocketAddr>,
    /// Their admin listeners, in the same order.
    pub admin: Vec<SocketAddr>,
    /// The admin secret.
    pub secret: String,
    /// `TOKEN<TAB>USER_ID` lines (from `mint`).
    pub tokens: PathBuf,
    /// Host of a service that refuses anonymous requests (a revoked token gets 401 there).
    pub host: String,
    /// How many revocations.
    pub count: usize,
    /// Revocations per second.
    pub rate: f64,
    /// Which replica revokes.
    pub via: Via,
    /// Poll the other replica after each revocation until it answers 401.
    pub outside: bool,
    /// A Redis to subscribe to (our own subscriber, timestamping each message on arrival).
    pub redis: Option<SocketAddr>,
    /// The revocation channel (`<prefix>:revocations`).
    pub channel: String,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn pcts(mut v: Vec<i64>) -> serde_json::Value {
    if v.is_empty() {
        return serde_json::json!({ "n": 0 });
    }
    v.sort_unstable();
    let p = |q: f64| {
        let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        v[i]
    };
    serde_json::json!({
        "n": v.len(), "min": v[0], "p50": p(0.5), "p90": p(0.9), "p99": p(0.99),
        "max": v[v.len() - 1],
    })
}

async fn connect(addr: SocketAddr) -> Res<TcpStream> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// One request on a keep-alive connection; the status.
async fn request(io: &mut TcpStream, buf: &mut Vec<u8>, req: &[u8]) -> Res<u16> {
    io.write_all(req).await?;
    http1::read_response(io, buf).await
}

fn revoke_request(admin: SocketAddr, secret: &str, token: &str) -> Vec<u8> {
    format!(
        "DELETE /v1/sessions/current HTTP/1.1\r\nHost: {admin}\r\nAuthorization: Bearer {secret}\r\n\
         X-Gateway-Session-Token: {token}\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// A message heard by our subscriber: when, and its payload.
struct Heard {
    at: Instant,
    wall_us: i64,
    payload: String,
}

/// Reads one RESP value made of arrays, bulk strings and simple values; returns the bulk
/// strings of an array (a pub/sub message is `*3 message <channel> <payload>`).
fn read_resp(r: &mut impl BufRead) -> Res<Vec<String>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err("the subscriber connection closed".into());
    }
    let line = line.trim_end();
    let (kind, rest) = line.split_at(1.min(line.len()));
    match kind {
        "*" => {
            let n: i64 = rest.parse()?;
            let mut out = Vec::new();
            for _ in 0..n.max(0) {
                out.extend(read_resp(r)?);
            }
            Ok(out)
        }
        "$" => {
            let n: i64 = rest.parse()?;
            if n < 0 {
                return Ok(vec![String::new()]);
            }
            let mut b = vec![0; n as usize + 2];
            r.read_exact(&mut b)?;
            b.truncate(n as usize);
            Ok(vec![String::from_utf8_lossy(&b).into_owned()])
        }
        "-" => Err(format!("Redis: {rest}").into()),
        _ => Ok(vec![rest.to_owned()]),
    }
}

/// Subscribes on a thread of its own (so that the revoking and polling loop never delays a
/// timestamp) and sends every message it hears.
fn subscriber(redis: SocketAddr, channel: &str) -> Res<mpsc::Receiver<Heard>> {
    let mut conn = std::net::TcpStream::connect(redis)?;
    conn.set_nodelay(true)?;
    write!(
        conn,
        "*2\r\n$9\r\nSUBSCRIBE\r\n${}\r\n{channel}\r\n",
        channel.len()
    )?;
    let mut r = BufReader::new(conn);
    let ack = read_resp(&mut r)?;
    if ack.first().map(String::as_str) != Some("subscribe") {
        return Err(format!("unexpected SUBSCRIBE answer {ack:?}").into());
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        while let Ok(msg) = read_resp(&mut r) {
            let (at, wall_us) = (Instant::now(), now_us());
            if msg.len() == 3 && msg[0] == "message" {
                let heard = Heard {
                    at,
                    wall_us,
                    payload: msg[2].clone(),
                };
                if tx.send(heard).is_err() {
                    return;
                }
            }
        }
    });
    Ok(rx)
}

/// Splits `@<unix micros> <payload>` (issue 16's format) from a bare payload (the old one).
fn stamped(msg: &str) -> (Option<i64>, &str) {
    if let Some(rest) = msg.strip_prefix('@') {
        if let Some((t, p)) = rest.split_once(' ') {
            if let Ok(t) = t.parse() {
                return (Some(t), p);
            }
        }
    }
    (None, msg)
}

fn hex(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    let mut s = String::with_capacity(64);
    for b in d {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn read_tokens(path: &Path, count: usize) -> Res<Vec<String>> {
    let text = std::fs::read_to_string(path)?;
    let tokens: Vec<String> = text
        .lines()
        .filter_map(|l| l.split('\t').next())
        .filter(|t| !t.is_empty())
        .take(count)
        .map(str::to_owned)
        .collect();
    if tokens.len() < count {
        return Err(format!(
            "{} holds {} tokens, not {count}",
            path.display(),
            tokens.len()
        )
        .into());
    }
    Ok(tokens)
}

/// Warms, revokes, measures; returns the JSON report (µs).
pub(crate) async fn run(o: Opts) -> Res<serde_json::Value> {
    if o.http.len() != o.admin.len() || o.http.is_empty() {
        return Err("give as many --http as --admin addresses, at least one".into());
    }
    if o.rate <= 0.0 {
        return Err("rate must be positive".into());
    }
    let tokens = read_tokens(&o.tokens, o.count)?;
    let n = o.http.len();

    // Warm: one request with each token on each replica puts the session in its cache (a miss
    // resolves in Redis and caches the answer). Anything but 200 means the setup is wrong.
    let mut conns = Vec::with_capacity(n);
    for &a in &o.http {
        conns.push((connect(a).await?, Vec::new()));
    }
    let t_warm = Instant::now();
    for t in &tokens {
        let req = http1::get(&o.host, Some(t));
        for (i, (io, buf)) in conns.iter_mut().enumerate() {
            let s = request(io, buf, &req).await?;
            if s != 200 {
                return Err(format!("warming: replica {i} answered {s} to a fresh token").into());
            }
        }
    }
    let warm_ms = t_warm.elapsed().as_millis();

    let heard = match o.redis {
        Some(r) => Some(subscriber(r, &o.channel)?),
        None => None,
    };
    let mut admins = Vec::with_capacity(n);
    for &a in &o.admin {
        admins.push((connect(a).await?, Vec::new()));
    }

    // Revoke at a fixed rate. The pacing sleeps the thread (std: ~60 µs precision, where
    // tokio's timer rounds to 1 ms); nothing else runs on this runtime meanwhile.
    let mut answered = Vec::with_capacity(tokens.len());
    let mut rtt = Vec::with_capacity(tokens.len());
    let mut refused = Vec::new();
    let mut polls = 0u64;
    let mut never = 0usize;
    let start = Instant::now() + Duration::from_millis(20);
    for (i, t) in tokens.iter().enumerate() {
        let due = start + Duration::from_secs_f64(i as f64 / o.rate);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let via = match o.via {
            Via::Alternate => i % n,
            Via::First => 0,
        };
        let (io, buf) = &mut admins[via];
        let sent = Instant::now();
        let s = request(io, buf, &revoke_request(o.admin[via], &o.secret, t)).await?;
        let done = Instant::now();
        if s != 204 {
            return Err(format!("revocation {i} through replica {via}: {s}, want 204").into());
        }
        answered.push(done);
        rtt.push((done - sent).as_micros() as i64);
        if o.outside && n > 1 {
            // The other replica, polled back to back on one keep-alive connection.
            let other = (via + 1) % n;
            let (io, buf) = &mut conns[other];
            let req = http1::get(&o.host, Some(t));
            loop {
                polls += 1;
                let s = request(io, buf, &req).await?;
                if s == 401 {
                    refused.push(done.elapsed().as_micros() as i64);
                    break;
                }
                if s != 200 {
                    return Err(format!("polling replica {other}: {s}").into());
                }
                if done.elapsed() > Duration::from_secs(2) {
                    never += 1;
                    break;
                }
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();

    let mut report = serde_json::json!({
        "revocations": tokens.len(),
        "replicas": n,
        "via": format!("{:?}", o.via).to_lowercase(),
        "rate": o.rate,
        "achieved_rate": tokens.len() as f64 / elapsed.max(1e-9),
        "warm_ms": warm_ms,
        "revoke_rtt_us": pcts(rtt),
    });
    if o.outside {
        report["outside_refused_after_answer_us"] = pcts(refused);
        report["outside_polls_per_revocation"] =
            serde_json::json!(polls as f64 / tokens.len() as f64);
        report["outside_never_refused"] = serde_json::json!(never);
    }
    if let Some(rx) = heard {
        std::thread::sleep(Duration::from_millis(200));
        let index: HashMap<String, usize> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (hex(t), i))
            .collect();
        let (mut after_answer, mut since_publish, mut unmatched, mut matched) =
            (Vec::new(), Vec::new(), 0usize, 0usize);
        while let Ok(h) = rx.try_recv() {
            let (published, payload) = stamped(&h.payload);
            let Some(&i) = index.get(payload) else {
                unmatched += 1;
                continue;
            };
            matched += 1;
            // Negative: our subscriber heard it before the revoking answer reached us.
            let a = answered[i];
            after_answer.push(if h.at >= a {
                (h.at - a).as_micros() as i64
            } else {
                -((a - h.at).as_micros() as i64)
            });
            if let Some(p) = published {
                since_publish.push(h.wall_us - p);
            }
        }
        report["subscriber"] = serde_json::json!({
            "matched": matched,
            "unmatched": unmatched,
            "heard_after_answer_us": pcts(after_answer),
            "heard_after_publish_stamp_us": pcts(since_publish),
        });
    }
    Ok(report)
}

/// A minimal upstream: answers every request `200 ok`, keep-alive (the replicas' service
/// needs one to answer 200; what it costs does not matter here).
pub(crate) async fn upstream(addr: SocketAddr) -> Res<()> {
    let listener = TcpListener::bind(addr).await?;
    loop {
        let (mut s, _) = listener.accept().await?;
        let _ = s.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(4096);
            loop {
                // Requests here have no body: a head ends each one.
                while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    buf.drain(..end + 4);
                    if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                match s.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        });
    }
}

/// One histogram read from Prometheus text: cumulative bucket counts by upper bound, summed
/// over every label set.
#[derive(Default, Clone)]
pub(crate) struct Histogram {
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
}

impl Histogram {
    /// Reads `name` from a `/metrics` text. `None` when the text has no such histogram.
    pub(crate) fn parse(text: &str, name: &str) -> Option<Histogram> {
        let (bucket, sum, count) = (
            format!("{name}_bucket"),
            format!("{name}_sum"),
            format!("{name}_count"),
        );
        let mut h = Histogram::default();
        let mut by_le: Vec<(f64, f64)> = Vec::new();
        let mut seen = false;
        for line in text.lines() {
            let Some((key, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let metric = key.split('{').next().unwrap_or(key);
            if metric == bucket {
                let Some(le) = key.split("le=\"").nth(1).and_then(|r| r.split('"').next()) else {
                    continue;
                };
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    match le.parse::<f64>() {
                        Ok(v) => v,
                        Err(_) => continue,
                    }
                };
                seen = true;
                match by_le.iter_mut().find(|(b, _)| *b == le) {
                    Some(e) => e.1 += value,
                    None => by_le.push((le, value)),
                }
            } else if metric == sum {
                h.sum += value;
            } else if metric == count {
                h.count += value;
            }
        }
        if !seen {
            return None;
        }
        by_le.sort_by(|a, b| a.0.total_cmp(&b.0));
        h.buckets = by_le;
        Some(h)
    }

    fn add(&mut self, o: &Histogram) {
        for &(le, c) in &o.buckets {
            match self.buckets.iter_mut().find(|(b, _)| *b == le) {
                Some(e) => e.1 += c,
                None => self.buckets.push((le, c)),
            }
        }
        self.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        self.sum += o.sum;
        self.count += o.count;
    }

    /// The upper bound of the bucket holding quantile `q` (bucket resolution).
    fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = (q * total).ceil().max(1.0);
        self.buckets
            .iter()
            .find(|(_, c)| *c >= rank)
            .map(|(le, _)| *le)
    }
}

fn ms(v: Option<f64>) -> String {
    match v {
        None => "–".to_owned(),
        Some(v) if v.is_infinite() => "> last bucket".to_owned(),
        Some(v) => format!("≤ {}", trim(v * 1000.0)),
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Prints a markdown table of `name` for each `LABEL=FILE` and for all of them combined.
pub(crate) fn histogram_table(name: &str, inputs: &[String]) -> Res<()> {
    let mut all = Histogram::default();
    let mut rows = String::new();
    let mut any = false;
    for input in inputs {
        let (label, file) = input
            .split_once('=')
            .ok_or_else(|| format!("{input}: want LABEL=FILE"))?;
        let text = std::fs::read_to_string(file)?;
        match Histogram::parse(&text, name) {
            Some(h) => {
                any = true;
                row(&mut rows, label, &h);
                all.add(&h);
            }
            None => {
                let _ = writeln!(rows, "| {label} | not on /metrics | | | | |");
            }
        }
    }
    if any && inputs.len() > 1 {
        row(&mut rows, "combined", &all);
    }
    println!("| replica | samples | p50 (ms) | p99 (ms) | max (ms) | mean (ms) |");
    println!("|---|---|---|---|---|---|");
    print!("{rows}");
    Ok(())
}

fn row(out: &mut String, label: &str, h: &Histogram) {
    let mean = if h.count > 0.0 {
        trim(h.sum / h.count * 1000.0)
    } else {
        "–".to_owned()
    };
    let _ = writeln!(
        out,
        "| {label} | {} | {} | {} | {} | {mean} |",
        h.count,
        ms(h.quantile(0.5)),
        ms(h.quantile(0.99)),
        ms(h.quantile(1.0)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE x histogram\n\
        x_bucket{kind=\"a\",le=\"0.001\"} 50\n\
        x_bucket{kind=\"a\",le=\"0.005\"} 99\n\
        x_bucket{kind=\"a\",le=\"+Inf\"} 100\n\
        x_sum{kind=\"a\"} 0.2\n\
        x_count{kind=\"a\"} 100\n\
        x_bucket{kind=\"b\",le=\"0.001\"} 0\n\
        x_bucket{kind=\"b\",le=\"0.005\"} 0\n\
        x_bucket{kind=\"b\",le=\"+Inf\"} 0\n\
        xy_bucket{le=\"0.001\"} 7\n";

    #[test]
    fn quantiles_are_bucket_upper_bounds() {
        let h = Histogram::parse(TEXT, "x").unwrap();
        assert_eq!(h.count, 100.0);
        assert_eq!(h.quantile(0.5), Some(0.001));
        assert_eq!(h.quantile(0.99), Some(0.005));
        assert_eq!(h.quantile(1.0), Some(f64::INFINITY));
        assert!(Histogram::parse(TEXT, "z").is_none());
        let mut two = h.clone();
        two.add(&h);
        assert_eq!(two.count, 200.0);
        assert_eq!(two.quantile(0.51), Some(0.005));
    }

    #[test]
    fn reads_stamped_and_bare_messages() {
        assert_eq!(
            stamped("@1700000000000000 abc"),
            (Some(1_700_000_000_000_000), "abc")
        );
        assert_eq!(stamped("user:x"), (None, "user:x"));
        assert_eq!(stamped("@junk abc"), (None, "@junk abc"));
    }

    #[test]
    fn reads_pubsub_messages() {
        let wire = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\nabc\r\n";
        let mut r = &wire[..];
        assert_eq!(read_resp(&mut r).unwrap(), ["message", "ch", "abc"]);
    }
}
