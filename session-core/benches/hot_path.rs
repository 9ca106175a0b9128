//! The request hot path: extract → MemoryStore hit → select role → inject → authorize, with 1
//! and with 1,000,000 live sessions, plus `create` throughput and the parts of the path.
//!
//! Run with `cargo bench -p session-core --bench hot_path` (add `-- --quick` for a fast pass).

// A benchmark aborts on any failure; criterion's macros generate undocumented items.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use session_core::{
    extract_credential, MemoryStore, NewSession, RequireRoleLayer, SessionConfig, SessionLayer,
    SessionStore, StoreResolver, Token,
};
use tower::{service_fn, Layer, Service};

type Body = Full<Bytes>;

/// Requests built per timed batch. A real request reaches the layer right after hyper parsed
/// it, so its headers are in cache. `BatchSize::SmallInput` builds a tenth of all iterations
/// up front (hundreds of MB): every measured call then starts with cache misses and page
/// faults that a server never pays. 256 requests stay in L2 and still amortise the timer.
const BATCH: BatchSize = BatchSize::NumIterations(256);

/// SessionLayer → RequireRoleLayer(["user", "admin", "anonymous"]) → an inner service answering at once.
fn stack(
    store: &MemoryStore,
) -> impl Service<Request<()>, Response = Response<Body>, Error = Infallible, Future: Unpin> + Clone
{
    let resolver = Arc::new(StoreResolver::new(Arc::new(store.clone())));
    let inner = service_fn(|_req: Request<()>| {
        std::future::ready(Ok::<_, Infallible>(Response::new(Body::new(Bytes::new()))))
    });
    let authorized = RequireRoleLayer::new(["user", "admin", "anonymous"]).layer(inner);
    SessionLayer::new(resolver, SessionConfig::default()).layer(authorized)
}

/// Polls a future that is ready at once (the memory store path allocates no future).
fn now<F: Future + Unpin>(mut fut: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match std::pin::Pin::new(&mut fut).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the hot path should not wait"),
    }
}

fn new_session(i: usize) -> NewSession {
    NewSession {
        user_id: format!("user-{i}"),
        roles: vec!["user".into(), "admin".into()],
        ttl: Duration::from_secs(3600),
        ..Default::default()
    }
}

fn create(store: &MemoryStore, i: usize) -> Token {
    let mut cx = Context::from_waker(Waker::noop());
    match store.create(new_session(i)).as_mut().poll(&mut cx) {
        Poll::Ready(Ok((token, _))) => token,
        _ => panic!("memory store create failed"),
    }
}

/// A typical request: a handful of ordinary headers plus the bearer.
fn request(bearer: &HeaderValue) -> Request<()> {
    let mut req = Request::builder()
        .uri("/graphql")
        .header("host", "api.example.com")
        .header("user-agent", "bench/1.0")
        .header("accept", "application/json")
        .header("accept-encoding", "gzip, br")
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    req.headers_mut().insert("authorization", bearer.clone());
    req
}

fn bearer(token: &Token) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {}", token.expose())).unwrap()
}

const N: usize = 1_000_000;

/// The store with 1M sessions and bearer values of 65,536 of them, spread over the store.
fn million() -> &'static (MemoryStore, Vec<HeaderValue>) {
    static MILLION: OnceLock<(MemoryStore, Vec<HeaderValue>)> = OnceLock::new();
    MILLION.get_or_init(|| {
        const SAMPLE: usize = 1 << 16;
        let store = MemoryStore::new();
        let started = Instant::now();
        let mut sample = Vec::with_capacity(SAMPLE);
        for i in 0..N {
            let token = create(&store, i);
            if i % 15 == 0 && sample.len() < SAMPLE {
                sample.push(bearer(&token));
            }
        }
        eprintln!(
            "created {N} sessions in {:.2?} ({} stored)",
            started.elapsed(),
            store.len()
        );
        (store, sample)
    })
}

fn bench_hot_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("hot_path");
    g.throughput(Throughput::Elements(1));

    // One live session.
    let store = MemoryStore::new();
    let one = bearer(&create(&store, 0));
    let svc = stack(&store);
    let mut s = svc.clone();
    assert_eq!(now(s.call(request(&one))).unwrap().status(), StatusCode::OK);
    g.bench_function("1_session", |b| {
        b.iter_batched(|| request(&one), |req| now(s.call(req)), BATCH)
    });
    // The same request in a header map with room for the three identity headers. This is what
    // the layer gets from hyper on a keep-alive connection: hyper parses each request into the
    // (cleared) map of the previous response, so after the first request the map no longer
    // grows. `1_session` above pays one growth per request, as a connection's first does.
    let mut recycled = svc.clone();
    g.bench_function("1_session_recycled_map", |b| {
        b.iter_batched(
            || {
                let mut r = request(&one);
                r.headers_mut().reserve(8);
                r
            },
            |req| now(recycled.call(req)),
            BATCH,
        )
    });
    // The harness alone (request moved in and dropped, response built): subtract it.
    let mut bare = service_fn(|_req: Request<()>| {
        std::future::ready(Ok::<_, Infallible>(Response::new(Body::new(Bytes::new()))))
    });
    g.bench_function("baseline_inner_service_only", |b| {
        b.iter_batched(|| request(&one), |req| now(bare.call(req)), BATCH)
    });
    let mut anon = svc.clone();
    g.bench_function("anonymous", |b| {
        b.iter_batched(
            || {
                let mut r = request(&one);
                r.headers_mut().remove("authorization");
                r
            },
            |req| now(anon.call(req)),
            BATCH,
        )
    });

    // One million live sessions, built only when a benchmark that needs them runs.
    g.bench_function("1M_sessions_same_token", |b| {
        let (store, sample) = million();
        let mut s = stack(store);
        let hot = &sample[0];
        assert_eq!(now(s.call(request(hot))).unwrap().status(), StatusCode::OK);
        b.iter_batched(|| request(hot), |req| now(s.call(req)), BATCH)
    });
    let mut i = 0usize;
    g.bench_function("1M_sessions_random_token", |b| {
        let (store, sample) = million();
        let mut s = stack(store);
        b.iter_batched(
            || {
                i = (i + 7919) % sample.len();
                request(&sample[i])
            },
            |req| now(s.call(req)),
            BATCH,
        )
    });
    g.finish();

    // Throughput of create against the 1M store.
    let mut g = c.benchmark_group("create");
    g.throughput(Throughput::Elements(1));
    let mut n = N;
    g.bench_function("memory_store_1M_live", |b| {
        let (store, _) = million();
        b.iter(|| {
            n += 1;
            create(store, n)
        })
    });
    g.bench_function("memory_store_empty", |b| {
        let store = MemoryStore::new();
        let mut n = 0;
        b.iter(|| {
            n += 1;
            create(&store, n)
        })
    });
    g.finish();

    // Parts of the path, to see where the time goes.
    let mut g = c.benchmark_group("parts");
    let headers: HeaderMap = request(&one).headers().clone();
    g.bench_function("extract_credential", |b| {
        b.iter(|| extract_credential(std::hint::black_box(&headers), "gateway_session"))
    });
    // The three identity headers alone, into the bench request minus its Authorization (what
    // the layer sees after removing the bearer): the map is full, so the second insert grows
    // it. Then the same inserts into a map that has room, to separate the growth from the
    // hashing of the three custom names. Minus `harness_move` (the request moved in and out),
    // this is the floor the `http::HeaderMap` API sets for injection.
    let names = SessionConfig::default();
    let values = [
        HeaderValue::from_static("user-1"),
        HeaderValue::from_static("user"),
        HeaderValue::from_static("user,admin"),
    ];
    let stripped = || {
        let mut r = request(&one);
        r.headers_mut().remove("authorization");
        r
    };
    let inject = |mut req: Request<()>| {
        let h = req.headers_mut();
        h.insert(&names.user_id_header, values[0].clone());
        h.insert(&names.role_header, values[1].clone());
        h.insert(&names.allowed_roles_header, values[2].clone());
        req
    };
    g.bench_function("harness_move", |b| {
        b.iter_batched(stripped, |req| req, BATCH)
    });
    g.bench_function("insert_identity_headers_full_map", |b| {
        b.iter_batched(stripped, inject, BATCH)
    });
    g.bench_function("insert_identity_headers_with_room", |b| {
        b.iter_batched(
            || {
                let mut r = stripped();
                r.headers_mut().reserve(3);
                r
            },
            inject,
            BATCH,
        )
    });
    let token = Token::generate();
    g.bench_function("token_hash_sha256", |b| {
        b.iter(|| std::hint::black_box(&token).hash())
    });
    g.bench_function("token_generate", |b| b.iter(Token::generate));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = bench_hot_path
}
criterion_main!(benches);
