//! The outermost layer: the access log, request metrics, and the TLS SNI/Host check.
//!
//! It sits outside the session layer, so it learns who the caller was and which service
//! answered from response extensions that [`crate::policy::RoutePolicy`] sets ([`Served`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use http::{HeaderValue, Request, Response, StatusCode};
use metrics::{Counter, Histogram, SharedString};
use pin_project_lite::pin_project;
use route_core::{Body, ConnectionInfo};
use session_core::Identity;
use tower::{Layer, Service};

use crate::reject;

/// Who was served by which service; set on responses by the per-service policy.
#[derive(Clone, Debug)]
pub struct Served {
    /// The service's name.
    pub service: Arc<str>,
    /// The caller's identity as the service saw it.
    pub identity: Option<Identity>,
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

/// Logs and counts every request, and refuses a TLS request whose Host is not its SNI.
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

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let start = Instant::now();
        let method = req.method().clone();
        let host = host_of(&req);
        let info = req.extensions().get::<ConnectionInfo>();
        let client = info.map(|i| i.remote_addr);
        if let Some(sni) = info.and_then(|i| i.sni.as_deref()) {
            if !sni_matches(sni, host.as_ref().and_then(|h| h.to_str().ok())) {
                let res = reject::json(
                    StatusCode::MISDIRECTED_REQUEST,
                    "misdirected-request",
                    "the Host header does not match the TLS server name",
                );
                return FrontFuture::ready(
                    res,
                    Log {
                        start,
                        method,
                        host,
                        client,
                    },
                );
            }
        }
        FrontFuture::inner(
            self.inner.call(req),
            Log {
                start,
                method,
                host,
                client,
            },
        )
    }
}

/// The request's host as the client sent it (URI authority first, then `Host`), for the access
/// log and the SNI check. Kept as the header's bytes (a reference count, no copy): most
/// requests are never logged.
fn host_of<B>(req: &Request<B>) -> Option<HeaderValue> {
    match req.uri().authority() {
        Some(a) => HeaderValue::from_str(a.host()).ok(),
        None => req.headers().get(http::header::HOST).cloned(),
    }
}

/// Compares the TLS server name with the request's host, ignoring case, port and a trailing dot.
fn sni_matches(sni: &str, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let host = match route_core::normalize_host(host) {
        Ok(h) => h,
        Err(_) => return false,
    };
    let sni = sni.strip_suffix('.').unwrap_or(sni);
    sni.eq_ignore_ascii_case(&host)
}

/// What the access log needs from the request. It lives in every request's future, which
/// hyper and each layer move around, so it keeps only what the log line prints.
struct Log {
    start: Instant,
    method: http::Method,
    host: Option<HeaderValue>,
    client: Option<std::net::SocketAddr>,
}

impl Log {
    fn record(self, res: &Response<Body>) {
        let served = res.extensions().get::<Served>();
        let service = served.map(|s| &*s.service).unwrap_or("-");
        let (user, role) = served
            .and_then(|s| s.identity.as_ref())
            .map(|i| (&*i.user_id, &*i.role))
            .unwrap_or(("-", "-"));
        let status = res.status().as_u16();
        let elapsed = self.start.elapsed();
        tracing::info!(
            target: crate::telemetry::ACCESS_TARGET,
            method = %self.method,
            host = self.host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("-"),
            service,
            status,
            role,
            user_id = user,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            client = %OrDash(self.client),
        );
        let status_label = status_class(status);
        record_metrics(
            served.map(|s| &s.service),
            served.and_then(|s| s.identity.as_ref()).map(|i| &i.role),
            status_label,
            elapsed.as_secs_f64(),
        );
        match status {
            502 | 504 => {
                let service_label = label(served.map(|s| &s.service));
                metrics::counter!("gateway_upstream_errors_total", "service" => service_label, "status" => status_label).increment(1);
            }
            503 => metrics::counter!("gateway_store_errors_total").increment(1),
            _ => {}
        }
    }
}

/// Displays the value, or `-` when there is none, without building a `String` first.
pub(crate) struct OrDash<T>(pub(crate) Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for OrDash<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("-"),
        }
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
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Inner { #[pin] fut: F, log: Option<Log> },
        Ready { res: Option<Response<Body>>, log: Option<Log> },
    }
}

impl<F> FrontFuture<F> {
    fn inner(fut: F, log: Log) -> Self {
        FrontFuture {
            state: State::Inner {
                fut,
                log: Some(log),
            },
        }
    }

    fn ready(res: Response<Body>, log: Log) -> Self {
        FrontFuture {
            state: State::Ready {
                res: Some(res),
                log: Some(log),
            },
        }
    }
}

impl<F> Future for FrontFuture<F>
where
    F: Future<Output = Result<Response<Body>, std::convert::Infallible>>,
{
    type Output = Result<Response<Body>, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (res, log) = match self.project().state.project() {
            StateProj::Inner { fut, log } => {
                let Ok(res) = ready!(fut.poll(cx));
                (res, log.take())
            }
            StateProj::Ready { res, log } => {
                let res = res.take().unwrap_or_else(|| {
                    reject::json(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "polled after completion",
                    )
                });
                (res, log.take())
            }
        };
        if let Some(log) = log {
            log.record(&res);
        }
        Poll::Ready(Ok(res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_must_match_the_normalised_host() {
        assert!(sni_matches(
            "public.example.com",
            Some("PUBLIC.example.com:443")
        ));
        assert!(sni_matches(
            "public.example.com",
            Some("public.example.com.")
        ));
        assert!(!sni_matches(
            "public.example.com",
            Some("admin.example.com")
        ));
        assert!(!sni_matches("public.example.com", None));
    }
}
