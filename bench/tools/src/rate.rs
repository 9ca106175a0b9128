//! An open-loop, fixed-rate HTTP/1.1 client with coordinated-omission correction.
//!
//! A pacer thread releases request `i` at `start + i / rate` (std sleep: ~60 µs precision,
//! where tokio's timer rounds to 1 ms and would add up to a millisecond to every sample).
//! `connections` keep-alive connections take released requests in order; a request that
//! waits for a free connection is late, and its latency counts from its intended start, so a
//! stall shows up in the percentiles instead of silently lowering the offered load.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Mutex};

use crate::{http1, Res};

struct Sample {
    intended: Instant,
    done: Instant,
    micros: u32,
    ok: bool,
}

async fn connect(addr: SocketAddr) -> Res<TcpStream> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

fn pct(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

/// Runs the load and returns a JSON report (latencies in µs).
pub(crate) async fn run(
    addr: SocketAddr,
    reqs: Vec<Vec<u8>>,
    rate: f64,
    duration: Duration,
    warmup: Duration,
    connections: usize,
) -> Res<serde_json::Value> {
    if rate <= 0.0 {
        return Err("rate must be positive".into());
    }
    let reqs = Arc::new(reqs);
    // Connect first, so connection set-up is not counted as latency.
    let mut streams = Vec::with_capacity(connections);
    for _ in 0..connections.max(1) {
        streams.push(connect(addr).await?);
    }
    let (tx, rx) = mpsc::unbounded_channel::<(Instant, usize)>();
    let rx = Arc::new(Mutex::new(rx));
    let start = Instant::now() + Duration::from_millis(20);
    let end = start + duration;
    let period = Duration::from_secs_f64(1.0 / rate);
    let pacer = std::thread::spawn(move || {
        let mut i: u32 = 0;
        loop {
            let t = start + period * i;
            if t >= end {
                break;
            }
            let now = Instant::now();
            if t > now {
                std::thread::sleep(t - now);
            }
            if tx.send((t, i as usize)).is_err() {
                break;
            }
            i += 1;
        }
    });
    let mut tasks = tokio::task::JoinSet::new();
    for mut stream in streams {
        let (rx, reqs) = (rx.clone(), reqs.clone());
        tasks.spawn(async move {
            let mut samples = Vec::new();
            let mut errors = 0u64;
            let mut buf = Vec::with_capacity(4096);
            loop {
                let job = rx.lock().await.recv().await;
                let Some((intended, i)) = job else { break };
                let req = &reqs[i % reqs.len()];
                let res = async {
                    stream.write_all(req).await?;
                    http1::read_response(&mut stream, &mut buf).await
                }
                .await;
                let done = Instant::now();
                match res {
                    Ok(status) => {
                        let micros = done
                            .saturating_duration_since(intended)
                            .as_micros()
                            .min(u32::MAX as u128) as u32;
                        samples.push(Sample {
                            intended,
                            done,
                            micros,
                            ok: (200..300).contains(&status),
                        });
                    }
                    Err(_) => {
                        errors += 1;
                        buf.clear();
                        match connect(addr).await {
                            Ok(s) => stream = s,
                            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                        }
                    }
                }
            }
            (samples, errors)
        });
    }
    let mut lat = Vec::new();
    let (mut errors, mut non2xx, mut total, mut in_window) = (0u64, 0u64, 0u64, 0u64);
    let counted_from = start + warmup;
    while let Some(r) = tasks.join_next().await {
        let (samples, e) = r?;
        errors += e;
        for s in samples {
            total += 1;
            if s.done >= start + warmup && s.done <= end {
                in_window += 1;
            }
            if s.intended >= counted_from {
                lat.push(s.micros);
                if !s.ok {
                    non2xx += 1;
                }
            }
        }
    }
    let _ = pacer.join();
    let finished = Instant::now();
    lat.sort_unstable();
    let window = duration.saturating_sub(warmup).as_secs_f64();
    Ok(serde_json::json!({
        "target_rps": rate,
        "requests": total,
        "measured": lat.len(),
        // Responses completed inside the measured window: below the target rate when the
        // server cannot keep up (the backlog then drains after the end, see drain_ms).
        "achieved_rps": in_window as f64 / window.max(1e-9),
        "drain_ms": finished.saturating_duration_since(end).as_millis() as u64,
        "errors": errors,
        "non2xx": non2xx,
        "p50_us": pct(&lat, 50.0),
        "p75_us": pct(&lat, 75.0),
        "p90_us": pct(&lat, 90.0),
        "p99_us": pct(&lat, 99.0),
        "p999_us": pct(&lat, 99.9),
        "max_us": lat.last().copied().unwrap_or(0),
    }))
}
