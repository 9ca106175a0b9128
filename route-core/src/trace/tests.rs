//! The propagation rules, through the layer.

use std::convert::Infallible;

use http::{HeaderMap, HeaderValue, Request, Response};
use tower::{service_fn, ServiceExt};
use tower_layer::Layer;

use super::*;
use crate::{ConnectionInfo, ForwardedHeaders};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// What the upstream received, and the context the response carried.
struct Seen {
    headers: HeaderMap,
    request_ctx: TraceContext,
    response_ctx: TraceContext,
    response_headers: HeaderMap,
}

async fn through(peer: Option<&str>, headers: &[(&str, &str)]) -> Seen {
    let layer = TracePropagationLayer::new(TraceConfig {
        trusted: ForwardedHeaders::new(vec!["10.0.0.0/8".parse().unwrap()]),
        sample: true,
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let svc = layer.layer(service_fn(move |req: Request<()>| {
        let tx = tx.clone();
        async move {
            let ctx = *req.extensions().get::<TraceContext>().unwrap();
            tx.send((req.headers().clone(), ctx)).unwrap();
            Ok::<_, Infallible>(Response::new(()))
        }
    }));
    let mut req = Request::new(());
    for (k, v) in headers {
        req.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    if let Some(peer) = peer {
        req.extensions_mut().insert(ConnectionInfo {
            remote_addr: peer.parse().unwrap(),
            local_addr: "10.9.9.9:443".parse().unwrap(),
            tls: true,
            sni: None,
        });
    }
    let res = svc.oneshot(req).await.unwrap();
    let (headers, request_ctx) = rx.recv().unwrap();
    Seen {
        headers,
        request_ctx,
        response_ctx: *res.extensions().get::<TraceContext>().unwrap(),
        response_headers: res.headers().clone(),
    }
}

fn sent(seen: &Seen) -> TraceParent {
    let all: Vec<_> = seen.headers.get_all("traceparent").iter().collect();
    assert_eq!(all.len(), 1, "{all:?}");
    let p = parse_traceparent(all[0].as_bytes()).unwrap();
    assert_eq!(p.version, 0);
    p
}

#[tokio::test]
async fn a_trusted_callers_trace_is_kept_and_the_gateway_is_the_parent() {
    let seen = through(
        Some("10.1.2.3:5000"),
        &[
            ("traceparent", PARENT),
            ("tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
        ],
    )
    .await;
    let ctx = seen.request_ctx;
    assert_eq!(ctx.trace_id.to_string(), TRACE);
    assert_eq!(ctx.parent_span_id.unwrap().to_string(), "00f067aa0ba902b7");
    assert_ne!(ctx.span_id, ctx.parent_span_id.unwrap());
    assert!(ctx.sampled());
    let p = sent(&seen);
    assert_eq!(p.trace_id, ctx.trace_id);
    assert_eq!(
        p.parent_id, ctx.span_id,
        "the upstream's parent is the gateway's span"
    );
    assert_eq!(p.flags, 1);
    assert_eq!(
        seen.headers["tracestate"],
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    );
    assert_eq!(seen.response_ctx, ctx);
    assert!(
        seen.response_headers.is_empty(),
        "the response's headers are untouched"
    );
}

#[tokio::test]
async fn a_trusted_callers_flags_are_kept_reserved_bits_cleared() {
    let unsampled = PARENT.replace("-01", "-00");
    let seen = through(Some("10.1.2.3:5000"), &[("traceparent", &unsampled)]).await;
    assert_eq!(seen.request_ctx.trace_id.to_string(), TRACE);
    assert!(!seen.request_ctx.sampled());
    assert_eq!(sent(&seen).flags, 0);
    let odd = PARENT.replace("-01", "-ff");
    let seen = through(Some("10.1.2.3:5000"), &[("traceparent", &odd)]).await;
    assert_eq!(sent(&seen).flags, 0x03);
}

#[tokio::test]
async fn an_untrusted_callers_trace_is_replaced() {
    for peer in [Some("203.0.113.9:5000"), Some("[2001:db8::1]:5000"), None] {
        let seen = through(peer, &[("traceparent", PARENT), ("tracestate", "rojo=1")]).await;
        let ctx = seen.request_ctx;
        assert_ne!(ctx.trace_id.to_string(), TRACE, "{peer:?}");
        assert_eq!(ctx.parent_span_id, None);
        assert!(ctx.sampled(), "a new trace is sampled as configured");
        let p = sent(&seen);
        assert_eq!((p.trace_id, p.parent_id), (ctx.trace_id, ctx.span_id));
        assert!(seen.headers.get("tracestate").is_none(), "{peer:?}");
    }
}

#[tokio::test]
async fn an_ipv4_mapped_trusted_peer_is_trusted() {
    let seen = through(Some("[::ffff:10.0.0.1]:5000"), &[("traceparent", PARENT)]).await;
    assert_eq!(seen.request_ctx.trace_id.to_string(), TRACE);
}

#[tokio::test]
async fn an_invalid_or_repeated_traceparent_starts_a_new_trace() {
    let upper = PARENT.to_uppercase();
    let zero = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
    for headers in [
        vec![("traceparent", upper.as_str()), ("tracestate", "rojo=1")],
        vec![("traceparent", zero), ("tracestate", "rojo=1")],
        vec![
            ("traceparent", PARENT),
            ("traceparent", PARENT),
            ("tracestate", "rojo=1"),
        ],
        vec![("tracestate", "rojo=1")],
    ] {
        let seen = through(Some("10.1.2.3:5000"), &headers).await;
        assert_ne!(seen.request_ctx.trace_id.to_string(), TRACE, "{headers:?}");
        assert_eq!(seen.request_ctx.parent_span_id, None);
        sent(&seen);
        assert!(
            seen.headers.get("tracestate").is_none(),
            "tracestate without a valid traceparent is dropped: {headers:?}"
        );
    }
}

#[tokio::test]
async fn a_future_version_is_continued_as_version_00() {
    let future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
    let seen = through(Some("10.1.2.3:5000"), &[("traceparent", future)]).await;
    assert_eq!(seen.request_ctx.trace_id.to_string(), TRACE);
    assert_eq!(sent(&seen).version, 0);
}

#[tokio::test]
async fn a_trusted_tracestate_is_checked_and_combined() {
    let seen = through(
        Some("10.1.2.3:5000"),
        &[
            ("traceparent", PARENT),
            ("tracestate", "rojo=1"),
            ("tracestate", "congo=2"),
        ],
    )
    .await;
    assert_eq!(
        seen.headers
            .get_all("tracestate")
            .iter()
            .collect::<Vec<_>>(),
        ["rojo=1,congo=2"]
    );
    let seen = through(
        Some("10.1.2.3:5000"),
        &[("traceparent", PARENT), ("tracestate", "Bad Key=1")],
    )
    .await;
    assert_eq!(
        seen.request_ctx.trace_id.to_string(),
        TRACE,
        "the parent stays"
    );
    assert!(seen.headers.get("tracestate").is_none());
}

#[tokio::test]
async fn every_request_gets_its_own_ids() {
    let mut ids = std::collections::HashSet::new();
    for _ in 0..200 {
        let ctx = through(None, &[]).await.request_ctx;
        assert!(ids.insert(ctx.trace_id.0.to_vec()));
        assert!(ids.insert(ctx.span_id.0.to_vec()));
    }
}

#[test]
fn the_traceparent_written_is_what_the_context_says() {
    let ctx = TraceContext {
        trace_id: TraceId([0xab; 16]),
        span_id: SpanId([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]),
        parent_span_id: None,
        flags: 1,
    };
    assert_eq!(
        ctx.traceparent(),
        "00-abababababababababababababababab-0123456789abcdef-01"
    );
    assert_eq!(ctx.traceparent_value().unwrap(), ctx.traceparent().as_str());
    assert_eq!(format!("{:?}", ctx.span_id), "0123456789abcdef");
}

#[tokio::test]
async fn with_a_decision_record_the_context_goes_into_the_record_not_the_response() {
    let svc = TracePropagationLayer::default().layer(service_fn(|req: Request<()>| async move {
        // The request still carries it for the layers below.
        assert!(req.extensions().get::<TraceContext>().is_some());
        Ok::<_, Infallible>(Response::new(()))
    }));
    let record = crate::decision::DecisionRecord::new();
    let mut req = Request::new(());
    req.extensions_mut().insert(record.clone());
    let res = svc.oneshot(req).await.unwrap();
    assert!(res.extensions().get::<TraceContext>().is_none());
    let ctx = record.snapshot().trace.expect("the record has the trace");
    assert_ne!(ctx.trace_id.0, [0u8; 16]);
}
