//! Telemetry of the request path: [`Front`], the outermost layer, puts a
//! [`DecisionRecord`] into every request, and once the answer is known writes it as the
//! access line and counts the request; [`Served`], around each route's pipeline, writes the
//! service's name into it. The other layers (router, session layer, role check, proxy) write
//! what they decided (`route_core::decision`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use http::{HeaderValue, Request, Response};
use metrics::{Counter, Histogram, SharedString};
use pin_project_lite::pin_project;
use route_core::decision::{self, DecisionRecord, Refused};
use route_core::TraceContext;
use route_core::{Body, ConnectionInfo};

use crate::telemetry::access;
use tower::{Layer, Service};

/// Layer for [`Served`]: one per service.
#[derive(Clone, Debug)]
pub struct ServedLayer {
    service: Arc<str>,
}

impl ServedLayer {
    /// Tags the requests of the service `name`.
    pub fn new(name: &str) -> Self {
        ServedLayer {
            service: Arc::from(name),
        }
    }
}

impl<S> Layer<S> for ServedLayer {
    type Service = Served<S>;
    fn layer(&self, inner: S) -> Served<S> {
        Served {
            inner,
            service: self.service.clone(),
        }
    }
}

/// Writes the service's name into the request's [`DecisionRecord`]. It wraps a route's whole
/// pipeline, so a request the session layer or the role check refuses is still logged with
/// the service it was routed to.
#[derive(Clone, Debug)]
pub struct Served<S> {
    inner: S,
    service: Arc<str>,
}

impl<S, B> Service<Request<B>> for Served<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if let Some(record) = req.extensions().get::<DecisionRecord>() {
            record.update(|d| d.service = Some(self.service.clone()));
        }
        self.inner.call(req)
    }
}

/// Layer for [`Front`].
#[derive(Clone, Debug, Default)]
pub struct FrontLayer {
    _priv: (),
}

impl FrontLayer {
    /// A new layer.
    pub fn new() -> Self {
        FrontLayer { _priv: () }
    }
}

impl<S> Layer<S> for FrontLayer {
    type Service = Front<S>;
    fn layer(&self, inner: S) -> Front<S> {
        Front { inner }
    }
}

/// Logs and counts every request.
#[derive(Clone, Debug)]
pub struct Front<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for Front<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = std::convert::Infallible>,
{
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = FrontFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let (client, https) = req
            .extensions()
            .get::<ConnectionInfo>()
            .map_or((None, false), |i| (Some(i.remote_addr), i.tls));
        let record = DecisionRecord::new();
        req.extensions_mut().insert(record.clone());
        let log = Log {
            record,
            start: Instant::now(),
            method: req.method().clone(),
            host: host_of(&req),
            client,
            // For the OTLP span's `url.scheme` (telemetry::otlp).
            https,
        };
        FrontFuture {
            fut: self.inner.call(req),
            log: Some(log),
        }
    }
}

/// The request's host as the client sent it (URI authority first, then `Host`), for the access
/// log. Kept as the header's bytes (a reference count, no copy): most requests are never
/// logged.
fn host_of<B>(req: &Request<B>) -> Option<HeaderValue> {
    match req.uri().authority() {
        Some(a) => HeaderValue::from_str(a.host()).ok(),
        None => req.headers().get(http::header::HOST).cloned(),
    }
}

/// What the access log needs from the request. It lives in every request's future, which
/// hyper and each layer move around, so it keeps only what the log line prints; the layers
/// write the rest into the decision record.
struct Log {
    record: DecisionRecord,
    start: Instant,
    method: http::Method,
    host: Option<HeaderValue>,
    client: Option<std::net::SocketAddr>,
    /// Whether the connection is TLS (the OTLP span's `url.scheme`).
    https: bool,
}

impl Log {
    /// Writes the decision record as the access line and counts the request.
    fn record(self, res: &Response<Body>) {
        let refused = res.extensions().get::<Refused>();
        let status = res.status().as_u16();
        let elapsed = self.start.elapsed();
        let response_trace = res.extensions().get::<TraceContext>().copied();
        self.record.read(|d| {
            // The OTLP span: a no-op unless `[telemetry] otlp_endpoint` is set.
            crate::telemetry::otlp::record(
                res,
                d,
                &self.method,
                self.host.as_ref(),
                self.https,
                elapsed,
            );
            if access::enabled() {
                access::write(&access::Line {
                    method: &self.method,
                    host: self.host.as_ref().and_then(|h| h.to_str().ok()),
                    service: d.service.as_deref(),
                    status,
                    role: d.role.as_deref(),
                    user_id: d.user_id.as_deref(),
                    latency: elapsed,
                    client: self.client,
                    reason: decision::reason(d, refused),
                    credential: d.credential.as_str(),
                    resolver: d.resolver,
                    requested_role: d.requested_role.as_deref(),
                    upstream: d.upstream.as_deref(),
                    detail: d.detail.as_deref(),
                    trace_id: d.trace.or(response_trace).map(|t| t.trace_id),
                });
            }
            let status_label = status_class(status);
            record_metrics(
                d.service.as_ref(),
                d.role.as_ref(),
                status_label,
                elapsed.as_secs_f64(),
            );
            match status {
                502 | 504 => {
                    let service_label = label(d.service.as_ref());
                    metrics::counter!("gateway_upstream_errors_total", "service" => service_label, "status" => status_label).increment(1);
                }
                503 => metrics::counter!("gateway_store_errors_total").increment(1),
                _ => {}
            }
        });
    }
}

/// How many (status class, role) request counters a service keeps handles for, per thread.
/// Roles come from sessions; past this many the counter is looked up in the registry each time.
const CACHED_COUNTERS: usize = 256;

/// One service's metric handles: looking a labelled metric up in the registry builds its key
/// and hashes it on every request, a handle is an `Arc` to the atomic.
struct ServiceMetrics {
    duration: Histogram,
    requests: Vec<(&'static str, Arc<str>, Counter)>,
}

thread_local! {
    /// Keyed by service names from the config, not by anything a client chooses: a fast
    /// hasher is safe.
    static METRICS: RefCell<HashMap<Arc<str>, ServiceMetrics, foldhash::fast::RandomState>> =
        RefCell::new(HashMap::with_hasher(foldhash::fast::RandomState::default()));
}

/// A metric label for a service or role, `-` when there is none. It shares the request's
/// `Arc<str>`: no `String` per request.
fn label(s: Option<&Arc<str>>) -> SharedString {
    s.map_or(SharedString::const_str(DASH), |s| {
        SharedString::from(s.clone())
    })
}

/// The label value for no service or no role.
const DASH: &str = "-";

fn record_metrics(
    service: Option<&Arc<str>>,
    role: Option<&Arc<str>>,
    status_label: &'static str,
    seconds: f64,
) {
    METRICS.with(|cache| {
        let mut cache = cache.borrow_mut();
        let key: &str = service.map_or(DASH, |s| s);
        // One hash lookup on the usual path; a service seen for the first time on this thread
        // gets its handles built once.
        let m = match cache.get_mut(key) {
            Some(m) => m,
            None => cache
                .entry(service.cloned().unwrap_or_else(|| Arc::from(DASH)))
                .or_insert_with(|| ServiceMetrics {
                    duration: metrics::histogram!("gateway_request_duration_seconds", "service" => label(service)),
                    requests: Vec::new(),
                }),
        };
        m.duration.record(seconds);
        let role_str: &str = role.map_or(DASH, |r| r);
        if let Some((_, _, counter)) = m
            .requests
            .iter()
            .find(|(st, r, _)| *st == status_label && &**r == role_str)
        {
            counter.increment(1);
            return;
        }
        let counter = metrics::counter!("gateway_requests_total", "service" => label(service), "status" => status_label, "role" => label(role));
        counter.increment(1);
        if m.requests.len() < CACHED_COUNTERS {
            let role_key = role.cloned().unwrap_or_else(|| Arc::from(DASH));
            m.requests.push((status_label, role_key, counter));
        }
    });
}

fn status_class(status: u16) -> &'static str {
    // Exact codes for the statuses operators alert on; classes for the rest keep cardinality low.
    match status {
        401 => "401",
        403 => "403",
        404 => "404",
        421 => "421",
        502 => "502",
        503 => "503",
        504 => "504",
        100..=199 => "1xx",
        // 200 has its own class label "2xx": nearly all traffic, so no exact code is needed.
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

pin_project! {
    /// Response future for [`Front`].
    pub struct FrontFuture<F> {
        #[pin]
        fut: F,
        log: Option<Log>,
    }
}

impl<F> Future for FrontFuture<F>
where
    F: Future<Output = Result<Response<Body>, std::convert::Infallible>>,
{
    type Output = Result<Response<Body>, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(res) = ready!(this.fut.poll(cx));
        if let Some(log) = this.log.take() {
            log.record(&res);
        }
        Poll::Ready(Ok(res))
    }
}
