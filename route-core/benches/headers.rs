//! Header rewriting cost per request: hop-by-hop stripping and the forwarded headers.
//!
//! Run with `cargo bench -p route-core --bench headers`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::{HeaderMap, HeaderName, HeaderValue};
use route_core::{strip_hop_by_hop, strip_hop_by_hop_fixed, ConnectionInfo, ForwardedHeaders};

/// Header maps built per timed batch: a real request's headers are in cache when the proxy
/// rewrites them, and `BatchSize::SmallInput` would build a tenth of all iterations up front,
/// far out of cache. 256 maps stay in L2 and still amortise the timer.
const BATCH: BatchSize = BatchSize::NumIterations(256);

fn browser_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "data.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/130.0",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-US,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br"),
        (
            "cookie",
            "session=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        ),
        ("sec-fetch-dest", "document"),
        ("sec-fetch-mode", "navigate"),
    ] {
        h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    h
}

fn hostile_headers() -> HeaderMap {
    let mut h = browser_headers();
    h.insert(
        "connection",
        HeaderValue::from_static("keep-alive, x-foo, x-hasura-role"),
    );
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert("x-foo", HeaderValue::from_static("1"));
    h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
    h.insert("forwarded", HeaderValue::from_static("for=6.6.6.6"));
    h
}

fn rewrite(c: &mut Criterion) {
    let info = ConnectionInfo {
        remote_addr: "203.0.113.7:51234".parse().unwrap(),
        local_addr: "10.0.0.1:443".parse().unwrap(),
        tls: true,
        sni: None,
    };
    let rules = ForwardedHeaders::default();
    let host = HeaderValue::from_static("data.example.com");
    let mut g = c.benchmark_group("headers");
    g.bench_function("strip_clean", |b| {
        b.iter_batched_ref(browser_headers, |h| strip_hop_by_hop(black_box(h)), BATCH)
    });
    g.bench_function("strip_connection_listed", |b| {
        b.iter_batched_ref(hostile_headers, |h| strip_hop_by_hop(black_box(h)), BATCH)
    });
    g.bench_function("strip_fixed_clean", |b| {
        b.iter_batched_ref(
            browser_headers,
            |h| strip_hop_by_hop_fixed(black_box(h)),
            BATCH,
        )
    });
    g.bench_function("forwarded", |b| {
        b.iter_batched_ref(
            browser_headers,
            |h| rules.apply(black_box(h), Some(&info), Some(host.clone())),
            BATCH,
        )
    });
    g.bench_function("strip_and_forwarded", |b| {
        b.iter_batched_ref(
            hostile_headers,
            |h| {
                strip_hop_by_hop(h);
                strip_hop_by_hop_fixed(h);
                rules.apply(black_box(h), Some(&info), Some(host.clone()))
            },
            BATCH,
        )
    });
    g.finish();
}

criterion_group!(benches, rewrite);
criterion_main!(benches);
