//! The outermost layer: the access log, request metrics, and the TLS SNI/Host check.
//!
//! It sits outside the session layer, so it learns who the caller was and which service
//! answered from response extensions that [`crate::policy::RoutePolicy`] sets ([`Served`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use http::{Request, Response, StatusCode};
use metrics::SharedString;
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
        let info = req.extensions().get::<ConnectionInfo>().cloned();
        if let Some(sni) = info.as_ref().and_then(|i| i.sni.as_deref()) {
            if !sni_matches(sni, host.as_deref()) {
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
                        info,
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
                info,
            },
        )
    }
}

fn host_of<B>(req: &Request<B>) -> Option<String> {
    req.uri()
        .authority()
        .map(|a| a.host().to_owned())
        .or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
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

/// What the access log needs from the request.
struct Log {
    start: Instant,
    method: http::Method,
    host: Option<String>,
    info: Option<ConnectionInfo>,
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
            target: "access",
            method = %self.method,
            host = self.host.as_deref().unwrap_or("-"),
            service,
            status,
            role,
            user_id = user,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            client = %self.info.as_ref().map(|i| i.remote_addr.to_string()).unwrap_or_else(|| "-".into()),
        );
        let status_label = status_class(status);
        // Labels share the Arc<str>s the request already holds: no String per request.
        let dash = || SharedString::const_str("-");
        let service_label = served.map_or_else(dash, |s| SharedString::from(s.service.clone()));
        let role_label = served
            .and_then(|s| s.identity.as_ref())
            .map_or_else(dash, |i| SharedString::from(i.role.clone()));
        metrics::counter!("gateway_requests_total", "service" => service_label.clone(), "status" => status_label, "role" => role_label).increment(1);
        metrics::histogram!("gateway_request_duration_seconds", "service" => service_label.clone())
            .record(elapsed.as_secs_f64());
        match status {
            502 | 504 => metrics::counter!("gateway_upstream_errors_total", "service" => service_label, "status" => status_label).increment(1),
            503 => metrics::counter!("gateway_store_errors_total").increment(1),
            _ => {}
        }
    }
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
