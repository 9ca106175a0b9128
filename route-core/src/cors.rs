//! Per-route CORS, built on tower-http's [`CorsLayer`].
//!
//! A browser app on `app.<domain>` calls `data.<domain>` with `credentials: 'include'`, so by
//! default a route allows credentialed requests from the project's own origins, as
//! [`ProjectOrigins::allows`] decides for session-core's CSRF check too: every project domain
//! and every subdomain of one, over `https` (or `http` for a plain-HTTP request), without a port
//! or on the listener's. The request's exact `Origin` is echoed back (never `*`, which browsers
//! refuse with credentials), with `Access-Control-Allow-Credentials: true` and `Vary: Origin`.
//! [`CorsConfig`] adds exact origins, and replaces the default methods and request headers.
//!
//! Every `OPTIONS` request to a route with CORS is answered here, as a preflight: it needs no
//! session and never reaches the upstream. [`RouteCorsLayer`] is the **first** layer of a
//! route's pipeline, before the session layer, the CSRF check and the role check, so their
//! refusals (400/401/403/503) carry the CORS headers too: a `fetch()` would otherwise see an
//! opaque network error instead of the JSON body and status, and an app could not tell an
//! expired session from a dead network. `WWW-Authenticate` and `Retry-After` are exposed to
//! the page on answers that expose nothing else. A route with `enabled = false` gets no CORS
//! headers, and `OPTIONS` is authorized and proxied like any other method.

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
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_layer::Layer;
use tower_service::Service as TowerService;

use crate::ProjectOrigins;

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

/// A route's CORS settings: plain data, so that a config file, an API or code can fill it.
#[derive(Clone, Debug)]
pub struct CorsConfig {
    /// `false`: no CORS at all for the route (no headers; `OPTIONS` is proxied). Default `true`.
    pub enabled: bool,
    /// Exact origins (`scheme://host[:port]`) allowed besides the project's own.
    pub allowed_origins: Vec<String>,
    /// The methods a preflight allows; empty: [`DEFAULT_METHODS`]. `*` is ignored: it is a
    /// wildcard, which browsers refuse next to credentials.
    pub allowed_methods: Vec<String>,
    /// The request headers a preflight allows; empty: `default_headers`. `*` is ignored.
    pub allowed_headers: Vec<String>,
    /// The request headers allowed when `allowed_headers` is empty. Default `Content-Type`,
    /// `Authorization` and `X-Hasura-Role` (the header a client asks for a role with).
    pub default_headers: Vec<HeaderName>,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            enabled: true,
            allowed_origins: Vec::new(),
            allowed_methods: Vec::new(),
            allowed_headers: Vec::new(),
            default_headers: vec![
                http::header::CONTENT_TYPE,
                http::header::AUTHORIZATION,
                HeaderName::from_static("x-hasura-role"),
            ],
        }
    }
}

/// The origins a route accepts for credentialed CORS: the project's own (see the module
/// docs) plus the route's exact extra origins.
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

/// A route's pipeline with its CORS policy.
///
/// Requests that carry an `Origin`, and every `OPTIONS` (tower-http treats them all as
/// preflights), go through tower-http's [`Cors`](tower_http::cors::Cors). The others cannot
/// be CORS requests: they go straight to the pipeline and their answer only gets the `Vary`
/// that `Cors` would have added, so caches keep telling the two apart. `Cors` builds a header
/// map and a few header values per call, which most traffic (server-to-server, same-origin
/// navigations) does not need. A route with CORS off gets neither.
///
/// Cloning is cheap (the route table clones the pipeline for every request): the policy is
/// shared.
#[derive(Clone, Debug)]
pub struct RouteCors<S> {
    inner: S,
    cors: Option<Arc<CorsLayer>>,
    origins: Option<Arc<OriginPolicy>>,
}

impl<S> RouteCors<S> {
    /// The origins the route accepts; `None` when CORS is off.
    pub fn origins(&self) -> Option<&Arc<OriginPolicy>> {
        self.origins.as_ref()
    }
}

impl<S, B, RB> TowerService<Request<B>> for RouteCors<S>
where
    S: TowerService<Request<B>, Response = Response<RB>> + Clone,
    RB: Default,
{
    type Response = Response<RB>;
    type Error = S::Error;
    // tower-http's future holds the CORS headers it will add (about 180 bytes). Boxed, only
    // the requests with `Origin` or `OPTIONS` pay for it; unboxed, every request's future, and
    // the future of every layer above, would carry and copy those bytes.
    type Future = Either<
        Pin<Box<ExposeFuture<tower_http::cors::ResponseFuture<S::Future>>>>,
        VaryFuture<S::Future>,
    >;

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
                Either::Left(Box::pin(ExposeFuture {
                    fut: layer.layer(inner).call(req),
                }))
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

pin_project! {
    /// Response future of a request that went through tower-http's `Cors`: exposes
    /// `WWW-Authenticate` and `Retry-After` when the answer exposes nothing itself, so that a
    /// page can read why its token was refused and when to retry; and drops the
    /// `Allow-Credentials` that tower-http adds to the answers of refused origins.
    pub struct ExposeFuture<F> {
        #[pin]
        fut: F,
    }
}

/// The response headers a page may read on a refusal.
const REJECTION_EXPOSED: HeaderValue = HeaderValue::from_static("www-authenticate, retry-after");

impl<F, RB, E> Future for ExposeFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut response = std::task::ready!(self.project().fut.poll(cx))?;
        let headers = response.headers_mut();
        if !headers.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN) {
            // tower-http sends `Allow-Credentials` whatever the origin; without an allowed
            // origin it grants nothing, and a refused origin gets no CORS header at all.
            headers.remove(ACCESS_CONTROL_ALLOW_CREDENTIALS);
        } else if !headers.contains_key(ACCESS_CONTROL_EXPOSE_HEADERS) {
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, REJECTION_EXPOSED);
        }
        Poll::Ready(Ok(response))
    }
}

/// Layer for [`RouteCors`], built once per route when the routes are built.
#[derive(Clone, Debug)]
pub struct RouteCorsLayer {
    cors: Option<(Arc<CorsLayer>, Arc<OriginPolicy>)>,
}

impl RouteCorsLayer {
    /// The CORS policy `config` in a project with these `origins`.
    pub fn new(config: &CorsConfig, origins: &ProjectOrigins) -> Self {
        if !config.enabled {
            return RouteCorsLayer { cors: None };
        }
        let origins = Arc::new(OriginPolicy {
            origins: origins.clone(),
            extra: config.allowed_origins.iter().cloned().collect(),
        });
        let predicate = origins.clone();
        let allow_origin = AllowOrigin::predicate(move |origin: &HeaderValue, parts: &Parts| {
            predicate.allows(origin, &parts.headers, &parts.extensions)
        });
        // "*" is a legal token, but as a value it is a wildcard, which tower-http refuses (with
        // a panic) next to credentials: a configured "*" is dropped.
        let mut methods: Vec<Method> = config
            .allowed_methods
            .iter()
            .filter(|m| m.as_str() != "*")
            .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
            .collect();
        if methods.is_empty() {
            methods = DEFAULT_METHODS.to_vec();
        }
        let mut headers: Vec<HeaderName> = config
            .allowed_headers
            .iter()
            .filter(|h| h.as_str() != "*")
            .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
            .collect();
        if headers.is_empty() {
            headers = config.default_headers.clone();
        }
        let cors = CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_credentials(true)
            .allow_methods(methods)
            .allow_headers(headers)
            .max_age(PREFLIGHT_MAX_AGE);
        RouteCorsLayer {
            cors: Some((Arc::new(cors), origins)),
        }
    }
}

impl<S> Layer<S> for RouteCorsLayer {
    type Service = RouteCors<S>;
    fn layer(&self, inner: S) -> RouteCors<S> {
        match &self.cors {
            Some((cors, origins)) => RouteCors {
                inner,
                cors: Some(cors.clone()),
                origins: Some(origins.clone()),
            },
            None => RouteCors {
                inner,
                cors: None,
                origins: None,
            },
        }
    }
}
