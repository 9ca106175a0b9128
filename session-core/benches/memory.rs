//! Memory of one million live sessions in the `MemoryStore`: resident set size before and after
//! creating them (the tokens themselves are dropped, as they would be once sent to clients).
//!
//! Run with `cargo bench -p session-core --bench memory`.

// A benchmark aborts on any failure; criterion's macros generate undocumented items.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use session_core::{MemoryStore, NewSession, SessionStore};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful either way.
    let n: usize = std::env::var("SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let roles = [vec!["user"], vec!["user", "editor"], vec!["user", "admin"]];
    let store = MemoryStore::new();
    let before = rss_bytes();
    let started = Instant::now();
    let mut cx = Context::from_waker(Waker::noop());
    for i in 0..n {
        let new = NewSession {
            // Realistic ids: 11–20 bytes, one session per user.
            user_id: format!("user-{:08}", i),
            roles: roles[i % roles.len()]
                .iter()
                .map(|r| (*r).to_owned())
                .collect(),
            ttl: Duration::from_secs(3600),
            ..Default::default()
        };
        let mut fut = store.create(new);
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(_token)) => {}
            other => panic!("create failed: {:?}", other.map(|r| r.map(|_| ()))),
        }
    }
    let elapsed = started.elapsed();
    let after = rss_bytes();
    let delta = after.saturating_sub(before);
    println!(
        "sessions: {n}\ncreate: {elapsed:.2?} ({:.0} creates/s)\nRSS before: {:.1} MiB, after: {:.1} MiB\ndelta: {:.1} MiB ({:.0} bytes/session)",
        n as f64 / elapsed.as_secs_f64(),
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        delta as f64 / 1048576.0,
        delta as f64 / n as f64,
    );
    assert_eq!(store.len(), n);
}
