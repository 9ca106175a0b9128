//! W3C Trace Context and the OTLP span export, against the real binary over real sockets.
//!
//! - A trusted front proxy's trace goes on: the upstream receives its trace id with the
//!   gateway's span as the parent. Anyone else's `traceparent` and `tracestate` are replaced by
//!   a new trace.
//! - With `[telemetry] otlp_endpoint`, one span per request reaches an OTLP/HTTP receiver that
//!   the test runs; its JSON is decoded and checked against what the upstream saw, and no
//!   credential appears in it. A collector that is down costs requests nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;

use common::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn parent() -> String {
    format!("00-{TRACE}-{CALLER_SPAN}-01")
}

/// `(trace id, parent id, flags)` of the upstream's one `traceparent`.
fn traceparent_of(rec: &Recorded) -> (String, String, String) {
    let v = rec
        .one("traceparent")
        .expect("the upstream got no traceparent");
    let parts: Vec<&str> = v.split('-').collect();
    assert_eq!(parts.len(), 4, "{v}");
    assert_eq!(parts[0], "00", "{v}");
    assert_eq!(parts[1].len(), 32, "{v}");
    assert_eq!(parts[2].len(), 16, "{v}");
    assert!(
        v.bytes()
            .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{v}"
    );
    assert_ne!(parts[1], "0".repeat(32));
    assert_ne!(parts[2], "0".repeat(16));
    (parts[1].into(), parts[2].into(), parts[3].into())
}

async fn get(g: &Gateway, sub: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().get(g.url("/things?q=1")).header("host", host(sub));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

const TRUST_LOOPBACK: &str = "\n[proxy]\ntrusted_proxies = [\"127.0.0.0/8\"]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxys_trace_goes_on_and_anyone_elses_is_replaced() {
    let up = Upstream::start().await;
    let trusted = Gateway::start(&standard_config(0, 0, &up.url(), TRUST_LOOPBACK), 0, 0);
    let p = parent();
    let sent = [
        ("traceparent", p.as_str()),
        ("tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
    ];

    let res = get(&trusted, "data", &sent).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers().get("traceparent").is_none(),
        "responses are untouched"
    );
    let rec = up.last();
    let (trace, parent_id, flags) = traceparent_of(&rec);
    assert_eq!(trace, TRACE, "the trusted caller's trace goes on");
    assert_ne!(
        parent_id, CALLER_SPAN,
        "the gateway is a hop: its span is the parent"
    );
    assert_eq!(flags, "01");
    assert_eq!(
        rec.one("tracestate").as_deref(),
        Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
    );

    // Each request is its own span of the same trace.
    get(&trusted, "data", &sent).await;
    let (trace2, parent2, _) = traceparent_of(&up.last());
    assert_eq!(trace2, TRACE);
    assert_ne!(parent2, parent_id);

    // An invalid traceparent from the trusted proxy: a new trace, its tracestate dropped.
    let upper = p.to_uppercase();
    get(
        &trusted,
        "data",
        &[("traceparent", &upper), ("tracestate", "rojo=1")],
    )
    .await;
    let rec = up.last();
    let (trace, _, _) = traceparent_of(&rec);
    assert_ne!(trace, TRACE.to_uppercase().to_lowercase());
    assert!(rec.one("tracestate").is_none());

    // `Connection: traceparent` cannot remove what the gateway writes: hop-by-hop headers are
    // stripped before the trace layer runs.
    get(
        &trusted,
        "data",
        &[("connection", "traceparent, tracestate")],
    )
    .await;
    traceparent_of(&up.last());

    // The same requests from a peer outside the trusted networks: a new trace every time.
    let untrusted = Gateway::start(&standard_config(0, 0, &up.url(), ""), 0, 0);
    let mut traces = std::collections::HashSet::new();
    for _ in 0..3 {
        let res = get(&untrusted, "data", &sent).await;
        assert_eq!(res.status(), 200);
        let rec = up.last();
        let (trace, parent_id, flags) = traceparent_of(&rec);
        assert_ne!(trace, TRACE, "an untrusted client cannot choose the trace");
        assert_ne!(parent_id, CALLER_SPAN);
        assert_eq!(flags, "01", "a new trace is sampled");
        assert!(
            rec.one("tracestate").is_none(),
            "its tracestate goes with it"
        );
        assert!(traces.insert(trace));
    }
    // Without any traceparent, the upstream still gets one.
    get(&untrusted, "data", &[]).await;
    traceparent_of(&up.last());
}

/// What the OTLP receiver got: each request's headers and body.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

impl Receiver {
    async fn start() -> (Receiver, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let recv = Receiver::default();
        let got = recv.got.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let got = got.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let got = got.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes());
                            let ok = parts.uri.path() == "/v1/traces" && parts.method == "POST";
                            got.lock().push((parts.headers, body.unwrap_or_default()));
                            let mut res = Response::new(Full::new(Bytes::from_static(b"{}")));
                            if !ok {
                                *res.status_mut() = http::StatusCode::NOT_FOUND;
                            }
                            res.headers_mut()
                                .insert("content-type", "application/json".parse().unwrap());
                            Ok::<_, Infallible>(res)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (recv, addr)
    }

    /// Every span received so far, with the resource's `service.name`.
    fn spans(&self) -> Vec<(String, serde_json::Value)> {
        let mut out = Vec::new();
        for (_, body) in self.got.lock().iter() {
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            for rs in v["resourceSpans"].as_array().unwrap() {
                let service = rs["resource"]["attributes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|a| a["key"] == "service.name")
                    .map(|a| a["value"]["stringValue"].as_str().unwrap().to_owned())
                    .unwrap();
                for ss in rs["scopeSpans"].as_array().unwrap() {
                    for s in ss["spans"].as_array().unwrap() {
                        out.push((service.clone(), s.clone()));
                    }
                }
            }
        }
        out
    }

    async fn wait_for(&self, n: usize) -> Vec<(String, serde_json::Value)> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let spans = self.spans();
            if spans.len() >= n || Instant::now() > deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn attr(span: &serde_json::Value, key: &str) -> Option<serde_json::Value> {
    span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| a["value"].clone())
}

fn string_attr(span: &serde_json::Value, key: &str) -> Option<String> {
    attr(span, key).map(|v| v["stringValue"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_span_per_request_reaches_the_otlp_receiver() {
    let up = Upstream::start().await;
    let (receiver, addr) = Receiver::start().await;
    let extra = format!(
        "{TRUST_LOOPBACK}\n[telemetry]\notlp_endpoint = \"http://{addr}/v1/traces\"\nservice_name = \"edge-test\"\n"
    );
    let mut g = Gateway::start(&standard_config(0, 0, &up.url(), &extra), 0, 0);
    let token = create_session(&g, "u-17", &["user"], None).await;
    let bearer = format!("Bearer {token}");
    let cookie = format!("gw_session={token}");

    // A trusted caller's request with a session: proxied.
    let p = parent();
    let res = get(
        &g,
        "data",
        &[("traceparent", &p), ("authorization", &bearer)],
    )
    .await;
    assert_eq!(res.status(), 200);
    let (_, upstream_parent, _) = traceparent_of(&up.last());
    // A refused one (the admin service wants the admin role), with the cookie.
    let res = get(&g, "admin", &[("cookie", &cookie)]).await;
    assert!(
        matches!(res.status().as_u16(), 401 | 403),
        "{}",
        res.status()
    );
    // A host nobody routes.
    let res = client()
        .get(g.url("/"))
        .header("host", "nobody.other.test")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    let spans = receiver.wait_for(3).await;
    assert_eq!(spans.len(), 3, "{spans:?}");
    for (headers, body) in receiver.got.lock().iter() {
        assert_eq!(headers["content-type"], "application/json");
        let text = String::from_utf8_lossy(body);
        assert!(!text.contains(&token), "a token in the payload: {text}");
        assert!(!text.contains("things"), "a path in the payload: {text}");
    }
    for (service, span) in &spans {
        assert_eq!(service, "edge-test");
        assert_eq!(span["kind"], 2);
        let start: u128 = span["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
        let end: u128 = span["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
        assert!(start > 1_600_000_000_000_000_000 && end >= start, "{span}");
        assert_eq!(
            string_attr(span, "http.request.method").as_deref(),
            Some("GET")
        );
        assert_eq!(string_attr(span, "url.scheme").as_deref(), Some("http"));
    }

    let proxied = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s["traceId"] == TRACE)
        .expect("no span of the trusted caller's trace");
    assert_eq!(proxied["parentSpanId"], CALLER_SPAN);
    assert_eq!(
        proxied["spanId"], upstream_parent,
        "the span exported is the parent the upstream saw"
    );
    assert_eq!(proxied["name"], "GET data");
    assert_eq!(
        attr(proxied, "http.response.status_code").unwrap()["intValue"],
        "200"
    );
    assert_eq!(string_attr(proxied, "server.address"), Some(host("data")));
    assert_eq!(
        string_attr(proxied, "gateway.service").as_deref(),
        Some("data")
    );
    assert_eq!(
        string_attr(proxied, "gateway.role").as_deref(),
        Some("user")
    );
    assert_eq!(proxied["status"]["code"], 0);

    let refused = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| string_attr(s, "gateway.service").as_deref() == Some("admin"))
        .expect("no span of the refused request");
    assert!(
        refused.get("parentSpanId").is_none(),
        "a new trace: {refused}"
    );
    assert_ne!(refused["traceId"], TRACE);
    let code = attr(refused, "http.response.status_code").unwrap()["intValue"].clone();
    assert!(code == "401" || code == "403", "{refused}");

    let unrouted = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s["name"] == "GET")
        .expect("no span of the unrouted request");
    assert_eq!(
        attr(unrouted, "http.response.status_code").unwrap()["intValue"],
        "404"
    );
    assert_eq!(
        string_attr(unrouted, "server.address").as_deref(),
        Some("nobody.other.test")
    );
    assert!(attr(unrouted, "gateway.service").is_none());

    let metrics = g.metrics().await;
    assert_eq!(
        metric_sum(&metrics, "gateway_otlp_spans_exported_total", &[]),
        3.0,
        "{metrics}"
    );

    // A span still queued at shutdown is sent before the process ends.
    get(&g, "data", &[]).await;
    let status = g.terminate();
    assert!(status.success(), "{status}");
    assert_eq!(
        receiver.spans().len(),
        4,
        "the last span was flushed at shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_costs_requests_nothing() {
    let up = Upstream::start().await;
    // A port nobody listens on: bound, then closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let extra = format!(
        "\n[telemetry]\notlp_endpoint = \"http://{closed}/v1/traces\"\notlp_timeout = \"1s\"\n"
    );
    let g = Gateway::start(&standard_config(0, 0, &up.url(), &extra), 0, 0);
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(get(&g, "data", &[]).await.status(), 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = g.metrics().await;
        let dropped = metric_sum(
            &metrics,
            "gateway_otlp_spans_dropped_total",
            &["reason=\"export_failed\""],
        );
        if dropped == 20.0 {
            break;
        }
        assert!(Instant::now() < deadline, "dropped {dropped}: {metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        g.log().matches("span export failed").count(),
        1,
        "a collector that stays down is logged once"
    );
}
