//! Per-service CORS, built on tower-http's [`CorsLayer`].
//!
//! A browser app on `app.<domain>` calls `data.<domain>` with `credentials: 'include'`, so by
//! default a service allows credentialed requests from the project's own origins, as
//! [`ProjectOrigins::allows`] decides for the CSRF check too: every project domain and every
//! subdomain of one, over `https` (or `http` for a plain-HTTP request), without a port or on the
//! listener's. The request's exact
//! `Origin` is echoed back (never `*`, which browsers refuse with credentials), with
//! `Access-Control-Allow-Credentials: true` and `Vary: Origin`. A service adds exact origins
//! with `cors_allowed_origins`, and replaces the default methods and request headers with
//! `cors_allowed_methods` and `cors_allowed_headers`.
//!
//! Every `OPTIONS` request to a service with CORS is answered here, as a preflight: it needs no
//! session and never reaches the upstream. The layer sits inside the router, after the session
//! layer, which admits a request without credentials (a preflight never carries any) as
//! anonymous; and before the role check, so a role-restricted service still answers its
//! preflights. `cors = false` turns all of this off for a service: no CORS headers, and
//! `OPTIONS` is authorized and proxied like any other method.
//!
//! Answers made before the router knows the service (the session layer's 400/401/403/503, the
//! CSRF check's 403) would otherwise reach the browser without CORS headers, and a
//! `fetch()` would see an opaque network error instead of the JSON body and status: an app
//! could not tell an expired session from a dead network. [`RejectionCorsLayer`] sits in
//! front of the session layer, looks the request's route up once when it carries an `Origin`,
//! and adds the credentialed CORS headers to an answer that has none, when that service's
//! policy allows the origin. It never adds them for a service with `cors = false`, for an
//! origin the service refuses, or for a host no service serves.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::Either;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS,
    ORIGIN, VARY,
};
use http::request::Parts;
use http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use pin_project_lite::pin_project;
use route_core::{request_host, try_normalize_path, SharedRouteTable};
use tower::{Layer, Service as TowerService};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::Service;
use crate::origin::ProjectOrigins;
use crate::stack::RouteService;

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The methods allowed when a service configures none.
pub const DEFAULT_METHODS: [Method; 6] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

/// The origins a service accepts for credentialed CORS: the project's own (see the module
/// docs) plus the service's exact `cors_allowed_origins`.
#[derive(Debug)]
pub struct OriginPolicy {
    origins: ProjectOrigins,
    /// Exact extra origins, compared ignoring ASCII case.
    extra: Box<[String]>,
}

impl OriginPolicy {
    /// Whether a request from `origin`, with these headers and extensions (which say how it
    /// came in), may read the service's answers.
    pub fn allows(
        &self,
        origin: &HeaderValue,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> bool {
        origin.to_str().is_ok_and(|o| {
            self.origins
                .allows(o, self.origins.site(headers, extensions), &self.extra)
        })
    }
}

/// What tower-http's `Cors` puts in `Vary` on every answer (its default list), prebuilt for
/// the answers that do not go through it.
const CORS_VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);

/// A service's pipeline with its CORS policy.
///
/// Requests that carry an `Origin`, and every `OPTIONS` (tower-http treats them all as
/// preflights), go through tower-http's [`Cors`](tower_http::cors::Cors). The others cannot
/// be CORS requests: they go straight to the pipeline and their answer only gets the `Vary`
/// that `Cors` would have added, so caches keep telling the two apart. `Cors` builds a header
/// map and a few header values per call, which most traffic (server-to-server, same-origin
/// navigations) does not need. A service with `cors = false` gets neither.
///
/// Cloning is cheap (the route table clones the pipeline for every request): the policy is
/// shared.
#[derive(Clone, Debug)]
pub struct ServiceCors<S> {
    inner: S,
    cors: Option<Arc<CorsLayer>>,
    origins: Option<Arc<OriginPolicy>>,
}

impl<S> ServiceCors<S> {
    /// The origins the service accepts; `None` when the service has `cors = false`.
    pub fn origins(&self) -> Option<&Arc<OriginPolicy>> {
        self.origins.as_ref()
    }
}

impl<S, B, RB> TowerService<Request<B>> for ServiceCors<S>
where
    S: TowerService<Request<B>, Response = Response<RB>> + Clone,
    RB: Default,
{
    type Response = Response<RB>;
    type Error = S::Error;
    // tower-http's future holds the CORS headers it will add (about 180 bytes). Boxed, only
    // the requests with `Origin` or `OPTIONS` pay for it; unboxed, every request's future, and
    // the future of every layer above, would carry and copy those bytes.
    type Future =
        Either<Pin<Box<tower_http::cors::ResponseFuture<S::Future>>>, VaryFuture<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match &self.cors {
            Some(layer)
                if req.method() == Method::OPTIONS || req.headers().contains_key(ORIGIN) =>
            {
                // `Cors` owns the service polled ready; a fresh clone takes its place.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                Either::Left(Box::pin(layer.layer(inner).call(req)))
            }
            cors => Either::Right(VaryFuture {
                fut: self.inner.call(req),
                vary: cors.is_some(),
            }),
        }
    }
}

pin_project! {
    /// Response future of a request that skipped tower-http's `Cors`: adds `Vary` when CORS is
    /// on.
    pub struct VaryFuture<F> {
        #[pin]
        fut: F,
        vary: bool,
    }
}

impl<F, RB, E> Future for VaryFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.fut.poll(cx))?;
        if *this.vary {
            response.headers_mut().append(VARY, CORS_VARY);
        }
        Poll::Ready(Ok(response))
    }
}

/// Layer for [`ServiceCors`], built once per service when the config loads.
#[derive(Clone, Debug)]
pub struct ServiceCorsLayer {
    cors: Option<(Arc<CorsLayer>, Arc<OriginPolicy>)>,
}

impl ServiceCorsLayer {
    /// The CORS policy of `service` in a project with these `origins`. `role_header` (the
    /// header a client uses to ask for a role, `x-hasura-role` by default) is among the default
    /// allowed request headers.
    pub fn new(service: &Service, origins: &ProjectOrigins, role_header: &HeaderName) -> Self {
        if !service.cors {
            return ServiceCorsLayer { cors: None };
        }
        let origins = Arc::new(OriginPolicy {
            origins: origins.clone(),
            extra: service.cors_allowed_origins.iter().cloned().collect(),
        });
        let predicate = origins.clone();
        let allow_origin = AllowOrigin::predicate(move |origin: &HeaderValue, parts: &Parts| {
            predicate.allows(origin, &parts.headers, &parts.extensions)
        });
        // "*" is a legal token, but as a value it is a wildcard, which tower-http refuses (with
        // a panic) next to credentials: a configured "*" is dropped.
        let mut methods: Vec<Method> = service
            .cors_allowed_methods
            .iter()
            .filter(|m| m.as_str() != "*")
            .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
            .collect();
        if methods.is_empty() {
            methods = DEFAULT_METHODS.to_vec();
        }
        let mut headers: Vec<HeaderName> = service
            .cors_allowed_headers
            .iter()
            .filter(|h| h.as_str() != "*")
            .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
            .collect();
        if headers.is_empty() {
            headers = vec![
                http::header::CONTENT_TYPE,
                http::header::AUTHORIZATION,
                role_header.clone(),
            ];
        }
        let cors = CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_credentials(true)
            .allow_methods(methods)
            .allow_headers(headers)
            .max_age(PREFLIGHT_MAX_AGE);
        ServiceCorsLayer {
            cors: Some((Arc::new(cors), origins)),
        }
    }

    /// Whether CORS is on for the service.
    pub fn is_enabled(&self) -> bool {
        self.cors.is_some()
    }
}

impl<S> Layer<S> for ServiceCorsLayer {
    type Service = ServiceCors<S>;
    fn layer(&self, inner: S) -> ServiceCors<S> {
        match &self.cors {
            Some((cors, origins)) => ServiceCors {
                inner,
                cors: Some(cors.clone()),
                origins: Some(origins.clone()),
            },
            None => ServiceCors {
                inner,
                cors: None,
                origins: None,
            },
        }
    }
}

/// The response headers a browser may read on a rejection: why a bearer token was refused, and
/// when to retry after a 503.
const REJECTION_EXPOSED: HeaderValue = HeaderValue::from_static("www-authenticate, retry-after");

/// Adds CORS headers to answers made before the router (see the module docs).
#[derive(Clone)]
pub struct RejectionCorsLayer {
    table: SharedRouteTable<RouteService>,
}

impl RejectionCorsLayer {
    /// Looks routes up in `table`, the one the router serves.
    pub fn new(table: SharedRouteTable<RouteService>) -> Self {
        RejectionCorsLayer { table }
    }
}

impl<S> Layer<S> for RejectionCorsLayer {
    type Service = RejectionCors<S>;
    fn layer(&self, inner: S) -> RejectionCors<S> {
        RejectionCors {
            inner,
            table: self.table.clone(),
        }
    }
}

impl std::fmt::Debug for RejectionCorsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RejectionCorsLayer").finish_non_exhaustive()
    }
}

/// The service of [`RejectionCorsLayer`].
#[derive(Clone)]
pub struct RejectionCors<S> {
    inner: S,
    table: SharedRouteTable<RouteService>,
}

impl<S> std::fmt::Debug for RejectionCors<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RejectionCors").finish_non_exhaustive()
    }
}

impl<S> RejectionCors<S> {
    /// The request's `Origin`, when there is exactly one and the service the request routes to
    /// allows it.
    fn allowed_origin<B>(&self, req: &Request<B>) -> Option<HeaderValue> {
        let mut origins = req.headers().get_all(ORIGIN).iter();
        let origin = match (origins.next(), origins.next()) {
            (Some(o), None) => o,
            _ => return None,
        };
        let host = request_host(req).ok()?;
        let path = try_normalize_path(req.uri().path()).ok()?;
        let table = self.table.load();
        let policy = table.lookup(&host, &path)?.inner().origins()?;
        policy
            .allows(origin, req.headers(), req.extensions())
            .then(|| origin.clone())
    }
}

impl<S, B, RB> TowerService<Request<B>> for RejectionCors<S>
where
    S: TowerService<Request<B>, Response = Response<RB>>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = RejectionCorsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Most requests carry no Origin: no route lookup for them.
        let origin = if req.headers().contains_key(ORIGIN) {
            self.allowed_origin(&req)
        } else {
            None
        };
        RejectionCorsFuture {
            fut: self.inner.call(req),
            origin: origin.map(Box::new),
        }
    }
}

pin_project! {
    /// Response future of [`RejectionCors`].
    pub struct RejectionCorsFuture<F> {
        #[pin]
        fut: F,
        // Boxed: only requests with an allowed `Origin` have one, and every request's future
        // (moved by each layer above and by hyper) would otherwise carry its 40 bytes.
        origin: Option<Box<HeaderValue>>,
    }
}

impl<F, RB, E> Future for RejectionCorsFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.fut.poll(cx))?;
        if let Some(origin) = this.origin.take() {
            let headers = response.headers_mut();
            // The service's own CORS layer answered (or refused the origin): leave it alone.
            if !headers.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN) {
                headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, *origin);
                headers.insert(
                    ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
                headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, REJECTION_EXPOSED);
                headers.append(VARY, HeaderValue::from_static("origin"));
            }
        }
        Poll::Ready(Ok(response))
    }
}
