//! The optional OTLP span export (`[telemetry] otlp_endpoint`): one span per request, sent
//! over OTLP/HTTP in batches by a background task.
//!
//! - **The request path never waits.** [`record`], called where the access line is written,
//!   returns after one relaxed atomic load when the export is off. When it is on, a sampled
//!   request's span (a small fixed record) is offered to a bounded queue with `try_send`: no
//!   lock, no waiting. A full queue drops the span and counts it
//!   (`gateway_otlp_spans_dropped_total{reason="queue_full"}`).
//! - **Bounded.** At most [`QUEUE`] spans wait; the task sends at most [`BATCH`] per request,
//!   at least every [`INTERVAL`]; one export request is bounded by `otlp_timeout`. A failed
//!   export drops its batch and counts it (`reason="export_failed"`): spans are telemetry, and
//!   retrying would hold memory for a collector that is down.
//! - **On shutdown** what is queued is sent once more, within the timeout.
//! - **Nothing secret.** A span carries the method, scheme, host, status, service and role:
//!   never a header value, a token, a cookie, a path or a query.
//!
//! # Encoding
//!
//! OTLP/HTTP with the protocol's JSON mapping (`Content-Type: application/json`: ids as hex,
//! 64-bit integers as decimal strings, enums as numbers), written with serde structs of our
//! own. The `opentelemetry-proto` crate was measured: with only its message types
//! (`gen-tonic-messages`, `trace`, `with-serde`) it still brings `tonic`, `prost`,
//! `opentelemetry_sdk` and new `futures-util` features, which rebuild hyper-util, redis, axum
//! and the workspace's crates: an incremental `cargo build -p gateway-bin` went from 32 s to
//! 2 min 47 s (15.6 s to 88.8 s of CPU). Six small structs cost nothing.
//!
//! The spans go through session-core's [`HttpClient`]: `https`, or plain `http` to a loopback
//! address only (a local agent or collector).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::{HeaderValue, Method, Response};
use route_core::decision::Decision;
use route_core::{Body, TraceContext};
use serde::Serialize;
use session_core::http_client::{HttpClient, HttpClientConfig, HttpClientError};
use tokio::sync::{mpsc, oneshot};

use crate::config::OtlpSettings;

/// The most spans waiting to be sent; more are dropped and counted.
pub const QUEUE: usize = 4096;
/// The most spans in one export request.
pub const BATCH: usize = 512;
/// How long a span waits at most before its batch is sent.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// The metric counting spans that were not exported, by `reason`.
pub const DROPPED_METRIC: &str = "gateway_otlp_spans_dropped_total";
/// The metric counting spans the collector accepted.
pub const EXPORTED_METRIC: &str = "gateway_otlp_spans_exported_total";

/// Whether an exporter is installed: the one load a request pays when the export is off.
static ON: AtomicBool = AtomicBool::new(false);
/// The installed exporter's queue.
static SINK: ArcSwapOption<mpsc::Sender<SpanRecord>> = ArcSwapOption::const_empty();

/// What a span needs from one request, copied out of it (nothing that keeps a connection's
/// read buffer alive while it waits).
#[derive(Debug)]
pub struct SpanRecord {
    /// The request's trace and the gateway's span.
    pub ctx: TraceContext,
    /// When the request started.
    pub start: SystemTime,
    /// How long it took.
    pub elapsed: Duration,
    /// The method.
    pub method: Method,
    /// Whether the client came over TLS.
    pub https: bool,
    /// The host, without the port.
    pub host: Option<Box<str>>,
    /// The service that answered, if any route matched.
    pub service: Option<Arc<str>>,
    /// The caller's role, when the session layer ran.
    pub role: Option<Arc<str>>,
    /// The response status.
    pub status: u16,
}

/// The access log's hook: offers the request's span to the exporter. A no-op (one atomic
/// load) when the export is off, and for traces that are not sampled.
pub fn record(
    res: &Response<Body>,
    decision: &Decision,
    method: &Method,
    host: Option<&HeaderValue>,
    https: bool,
    elapsed: Duration,
) {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    let Some(ctx) = decision
        .trace
        .as_ref()
        .or_else(|| res.extensions().get::<TraceContext>())
    else {
        return;
    };
    if !ctx.sampled() {
        return;
    }
    let span = SpanRecord {
        ctx: *ctx,
        start: SystemTime::now().checked_sub(elapsed).unwrap_or(UNIX_EPOCH),
        elapsed,
        method: method.clone(),
        https,
        host: host
            .and_then(|h| h.to_str().ok())
            .map(|h| Box::from(strip_port(h))),
        service: decision.service.clone(),
        role: decision.role.clone(),
        status: res.status().as_u16(),
    };
    offer(span);
}

fn offer(span: SpanRecord) {
    let sink = SINK.load();
    let Some(tx) = sink.as_deref() else {
        return;
    };
    if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(span) {
        metrics::counter!(DROPPED_METRIC, "reason" => "queue_full").increment(1);
    }
}

/// `host[:port]` → `host`; `[v6]:port` → `[v6]`.
fn strip_port(host: &str) -> &str {
    match host.strip_prefix('[') {
        Some(rest) => rest.find(']').map_or(host, |end| &host[..end + 2]),
        None => host.split_once(':').map_or(host, |(h, _)| h),
    }
}

/// A running exporter; [`shutdown`](Exporter::shutdown) sends what is queued and stops it.
#[derive(Debug)]
pub struct Exporter {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    timeout: Duration,
}

/// Starts the exporter for `settings` on the current runtime and makes [`record`] feed it.
/// One per process: a second replaces the first's queue.
pub fn start(settings: &OtlpSettings) -> Result<Exporter, HttpClientError> {
    let client = HttpClient::new(HttpClientConfig {
        timeout: settings.timeout,
        // The answer is an `ExportTraceServiceResponse`: tiny.
        max_body: 64 * 1024,
        extra_roots_pem: None,
    })?;
    let (tx, rx) = mpsc::channel(QUEUE);
    let (stop, stopped) = oneshot::channel();
    let sender = Sender {
        client,
        endpoint: settings.endpoint.clone(),
        service_name: settings.service_name.clone(),
        failing: false,
    };
    let task = tokio::spawn(run(rx, stopped, sender));
    SINK.store(Some(Arc::new(tx)));
    ON.store(true, Ordering::Relaxed);
    tracing::info!(endpoint = %settings.endpoint, "exporting spans over OTLP/HTTP");
    Ok(Exporter {
        stop,
        task,
        timeout: settings.timeout,
    })
}

impl Exporter {
    /// Stops taking spans, sends the queued ones (within the export timeout), and ends.
    pub async fn shutdown(self) {
        ON.store(false, Ordering::Relaxed);
        SINK.store(None);
        let _ = self.stop.send(());
        // The last export has its own timeout; this bounds the whole flush the same way.
        let _ = tokio::time::timeout(self.timeout + Duration::from_secs(1), self.task).await;
    }
}

/// Collects batches and sends them until told to stop, then sends the rest.
async fn run(
    mut rx: mpsc::Receiver<SpanRecord>,
    mut stopped: oneshot::Receiver<()>,
    mut sender: Sender,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Below BATCH: a full batch is sent at once, so the limit is never zero (which
        // would read as a closed channel).
        let room = BATCH - batch.len();
        tokio::select! {
            _ = &mut stopped => break,
            n = rx.recv_many(&mut batch, room) => {
                if n == 0 {
                    break;
                }
                if batch.len() >= BATCH {
                    sender.send(&mut batch).await;
                }
            }
            _ = tick.tick() => {
                if !batch.is_empty() {
                    sender.send(&mut batch).await;
                }
            }
        }
    }
    rx.close();
    while let Ok(span) = rx.try_recv() {
        batch.push(span);
        if batch.len() >= BATCH {
            sender.send(&mut batch).await;
        }
    }
    if !batch.is_empty() {
        sender.send(&mut batch).await;
    }
}

struct Sender {
    client: HttpClient,
    endpoint: http::Uri,
    service_name: String,
    /// Whether the last export failed: a collector that stays down is logged once, not on
    /// every batch.
    failing: bool,
}

impl Sender {
    /// Sends `batch` and empties it; a failure drops the spans and counts them.
    async fn send(&mut self, batch: &mut Vec<SpanRecord>) {
        let n = batch.len() as u64;
        let result = match encode(&self.service_name, batch) {
            Ok(body) => self.post(body).await,
            Err(e) => Err(format!("encoding: {e}")),
        };
        batch.clear();
        match result {
            Ok(()) => {
                metrics::counter!(EXPORTED_METRIC).increment(n);
                if self.failing {
                    tracing::info!(endpoint = %self.endpoint, "span export works again");
                }
                self.failing = false;
            }
            Err(error) => {
                metrics::counter!(DROPPED_METRIC, "reason" => "export_failed").increment(n);
                if !self.failing {
                    tracing::warn!(endpoint = %self.endpoint, %error, spans = n, "span export failed; spans are dropped until it works again");
                }
                self.failing = true;
            }
        }
    }

    async fn post(&self, body: Vec<u8>) -> Result<(), String> {
        let req = http::Request::post(self.endpoint.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Bytes::from(body))
            .map_err(|e| e.to_string())?;
        let res = self.client.send(req).await.map_err(|e| e.to_string())?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(format!("the collector answered {}", res.status()))
        }
    }
}

// The OTLP JSON mapping (opentelemetry-proto's `ExportTraceServiceRequest`), only the fields
// the gateway sets.

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExportRequest<'a> {
    resource_spans: [ResourceSpans<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    resource: Resource<'a>,
    scope_spans: [ScopeSpans<'a>; 1],
}

#[derive(Serialize)]
struct Resource<'a> {
    attributes: [KeyValue<'a>; 1],
}

#[derive(Serialize)]
struct ScopeSpans<'a> {
    scope: Scope,
    spans: Vec<Span<'a>>,
}

#[derive(Serialize)]
struct Scope {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Span<'a> {
    trace_id: String,
    span_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_span_id: Option<String>,
    name: String,
    /// `SPAN_KIND_SERVER`.
    kind: u8,
    start_time_unix_nano: String,
    end_time_unix_nano: String,
    attributes: Vec<KeyValue<'a>>,
    status: Status,
}

#[derive(Serialize)]
struct KeyValue<'a> {
    key: &'static str,
    value: AnyValue<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum AnyValue<'a> {
    StringValue(&'a str),
    /// int64: a decimal string in the JSON mapping.
    IntValue(String),
}

#[derive(Serialize)]
struct Status {
    /// `STATUS_CODE_UNSET` (0) or `STATUS_CODE_ERROR` (2): a server span is an error only
    /// for a 5xx (OpenTelemetry's HTTP conventions).
    code: u8,
}

const SPAN_KIND_SERVER: u8 = 2;

fn nanos(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .to_string()
}

/// The JSON body of one export request.
pub fn encode(service_name: &str, spans: &[SpanRecord]) -> serde_json::Result<Vec<u8>> {
    let spans = spans.iter().map(span).collect();
    serde_json::to_vec(&ExportRequest {
        resource_spans: [ResourceSpans {
            resource: Resource {
                attributes: [KeyValue {
                    key: "service.name",
                    value: AnyValue::StringValue(service_name),
                }],
            },
            scope_spans: [ScopeSpans {
                scope: Scope {
                    name: "gateway",
                    version: env!("CARGO_PKG_VERSION"),
                },
                spans,
            }],
        }],
    })
}

fn span(s: &SpanRecord) -> Span<'_> {
    let name = match &s.service {
        Some(service) => format!("{} {service}", s.method),
        None => s.method.to_string(),
    };
    let mut attributes = vec![
        KeyValue {
            key: "http.request.method",
            value: AnyValue::StringValue(s.method.as_str()),
        },
        KeyValue {
            key: "url.scheme",
            value: AnyValue::StringValue(if s.https { "https" } else { "http" }),
        },
        KeyValue {
            key: "http.response.status_code",
            value: AnyValue::IntValue(s.status.to_string()),
        },
    ];
    if let Some(host) = &s.host {
        attributes.push(KeyValue {
            key: "server.address",
            value: AnyValue::StringValue(host),
        });
    }
    if let Some(service) = &s.service {
        attributes.push(KeyValue {
            key: "gateway.service",
            value: AnyValue::StringValue(service),
        });
    }
    if let Some(role) = &s.role {
        attributes.push(KeyValue {
            key: "gateway.role",
            value: AnyValue::StringValue(role),
        });
    }
    Span {
        trace_id: s.ctx.trace_id.to_string(),
        span_id: s.ctx.span_id.to_string(),
        parent_span_id: s.ctx.parent_span_id.map(|p| p.to_string()),
        name,
        kind: SPAN_KIND_SERVER,
        start_time_unix_nano: nanos(s.start),
        end_time_unix_nano: nanos(s.start + s.elapsed),
        attributes,
        status: Status {
            code: if s.status >= 500 { 2 } else { 0 },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use route_core::trace::{SpanId, TraceId};

    fn record(status: u16, parent: bool) -> SpanRecord {
        SpanRecord {
            ctx: TraceContext {
                trace_id: TraceId([0x4b; 16]),
                span_id: SpanId([0x01; 8]),
                parent_span_id: parent.then_some(SpanId([0x02; 8])),
                flags: 1,
            },
            start: UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789),
            elapsed: Duration::from_millis(3),
            method: Method::POST,
            https: true,
            host: Some("data.example.com".into()),
            service: Some(Arc::from("data")),
            role: Some(Arc::from("user")),
            status,
        }
    }

    #[test]
    fn spans_follow_the_otlp_json_mapping() {
        let body = encode("edge", &[record(201, true), record(503, false)]).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let rs = &v["resourceSpans"][0];
        assert_eq!(
            rs["resource"]["attributes"][0],
            serde_json::json!({"key": "service.name", "value": {"stringValue": "edge"}})
        );
        let spans = rs["scopeSpans"][0]["spans"].as_array().unwrap();
        assert_eq!(spans.len(), 2);
        let s = &spans[0];
        assert_eq!(s["traceId"], "4b".repeat(16));
        assert_eq!(s["spanId"], "01".repeat(8));
        assert_eq!(s["parentSpanId"], "02".repeat(8));
        assert_eq!(s["name"], "POST data");
        assert_eq!(s["kind"], 2);
        assert_eq!(s["startTimeUnixNano"], "1700000000123456789");
        assert_eq!(s["endTimeUnixNano"], "1700000000126456789");
        assert_eq!(s["status"]["code"], 0);
        let attr = |s: &serde_json::Value, k: &str| {
            s["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["key"] == k)
                .map(|a| a["value"].clone())
        };
        assert_eq!(
            attr(s, "http.request.method").unwrap()["stringValue"],
            "POST"
        );
        assert_eq!(attr(s, "url.scheme").unwrap()["stringValue"], "https");
        assert_eq!(
            attr(s, "server.address").unwrap()["stringValue"],
            "data.example.com"
        );
        assert_eq!(
            attr(s, "http.response.status_code").unwrap()["intValue"],
            "201"
        );
        assert_eq!(attr(s, "gateway.service").unwrap()["stringValue"], "data");
        assert_eq!(attr(s, "gateway.role").unwrap()["stringValue"], "user");
        assert!(spans[1].get("parentSpanId").is_none());
        assert_eq!(spans[1]["status"]["code"], 2);
    }

    #[test]
    fn ports_are_not_part_of_the_address() {
        assert_eq!(strip_port("a.example.com:8443"), "a.example.com");
        assert_eq!(strip_port("a.example.com"), "a.example.com");
        assert_eq!(strip_port("[::1]:8443"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }
}
