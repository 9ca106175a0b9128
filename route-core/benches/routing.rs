//! Route lookup cost against table size (target: ≤ 100 ns per lookup at 100k routes).
//!
//! Run with `cargo bench -p route-core --bench routing`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use route_core::{normalize_host, try_normalize_path, RouteTable};

fn table(n: usize) -> RouteTable<usize> {
    let mut t = RouteTable::new();
    // Half exact names, half wildcards, spread over many parent domains.
    for i in 0..n {
        if i % 2 == 0 {
            t.insert(&format!("svc{i}.tenant{}.example.com", i % 1000), i)
                .unwrap();
        } else {
            t.insert(&format!("*.tenant{i}.example.com"), i).unwrap();
        }
    }
    t.insert("example.com", usize::MAX).unwrap();
    t.insert_prefix("example.com", "/api", 1).unwrap();
    t
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup");
    for n in [10usize, 10_000, 100_000] {
        let t = table(n);
        let exact = format!("svc{}.tenant{}.example.com", n - 2, (n - 2) % 1000);
        let wild = format!("a.b.tenant{}.example.com", n - 1);
        let miss = "nothing.here.example.org".to_owned();
        g.bench_with_input(BenchmarkId::new("exact", n), &exact, |b, h| {
            b.iter(|| t.lookup(black_box(h), black_box("/")))
        });
        g.bench_with_input(BenchmarkId::new("wildcard", n), &wild, |b, h| {
            b.iter(|| t.lookup(black_box(h), black_box("/x")))
        });
        g.bench_with_input(BenchmarkId::new("miss", n), &miss, |b, h| {
            b.iter(|| t.lookup(black_box(h), black_box("/")))
        });
        g.bench_with_input(
            BenchmarkId::new("apex_prefix", n),
            &"example.com",
            |b, h| b.iter(|| t.lookup(black_box(h), black_box("/api/v1/items"))),
        );
    }
    g.finish();
}

fn normalise(c: &mut Criterion) {
    let mut g = c.benchmark_group("normalise");
    g.bench_function("host_clean", |b| {
        b.iter(|| normalize_host(black_box("data.example.com")).map(|h| h.len()))
    });
    g.bench_function("host_port_upper", |b| {
        b.iter(|| normalize_host(black_box("Data.Example.com:443")).map(|h| h.len()))
    });
    g.bench_function("path_clean", |b| {
        b.iter(|| try_normalize_path(black_box("/api/v1/items/42")).map(|p| p.len()))
    });
    g.bench_function("path_dirty", |b| {
        b.iter(|| try_normalize_path(black_box("/api//v1/./%2e%2e/items/42")).map(|p| p.len()))
    });
    g.finish();
}

criterion_group!(benches, lookup, normalise);
criterion_main!(benches);
