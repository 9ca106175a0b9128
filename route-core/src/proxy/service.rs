use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, HOST, TE, UPGRADE};
use http::{Request, Response, StatusCode, Version};
use http_body::Body as HttpBody;
use tower_service::Service;

use super::balance::{Balancer, Target};
use super::body::{BodyTooLarge, ClientBodyError, DownstreamBody};
use super::connector::ConnectTimeout;
use super::future::ResponseFuture;
use super::{ProxyClients, UpstreamConfig};
use crate::decision::{DecisionRecord, WouldProxy};
use crate::hop::{strip_hop_by_hop, strip_hop_by_hop_fixed, TeTrailers};
use crate::{request_host, Body, BoxError, ConnectionInfo, Rejection, UpgradeRequest};

pub(crate) static UPGRADE_TOKEN: HeaderValue = HeaderValue::from_static("upgrade");
static TRAILERS: HeaderValue = HeaderValue::from_static("trailers");
pub(crate) static WEBSOCKET: HeaderValue = HeaderValue::from_static("websocket");

/// One route's proxy: `Service<Request<B>, Response = Response<Body>, Error = Infallible>`.
/// Cheap to clone (one `Arc`). See the [module docs](crate::proxy).
#[derive(Clone)]
pub struct ProxyService {
    inner: Arc<RouteUpstream>,
}

impl fmt::Debug for ProxyService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyService")
            .field("route", &self.inner.route)
            .field(
                "upstreams",
                &self
                    .inner
                    .balancer
                    .targets
                    .iter()
                    .map(|t| &t.label)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

pub(crate) struct RouteUpstream {
    pub(crate) shared: Arc<ProxyClients>,
    pub(crate) route: Arc<str>,
    pub(crate) balancer: Balancer,
    pub(crate) response_timeout: Duration,
    pub(crate) body_limit: Option<u64>,
    pub(crate) websocket: bool,
    pub(crate) http2: bool,
}

/// Displays an error with its whole `source()` chain, for log lines.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut src = self.0.source();
        while let Some(s) = src {
            write!(f, ": {s}")?;
            src = s.source();
        }
        Ok(())
    }
}

fn find<T: StdError + 'static>(err: &(dyn StdError + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<T>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// What a failure is answered with, and whether it was a failure to connect.
pub(crate) fn classify(err: &(dyn StdError + 'static), connecting: bool) -> (Rejection, bool) {
    if find::<BodyTooLarge>(err) {
        (Rejection::BODY_TOO_LARGE, false)
    } else if find::<ClientBodyError>(err) {
        (Rejection::INVALID_BODY, false)
    } else if find::<ConnectTimeout>(err) {
        (Rejection::CONNECT_TIMEOUT, true)
    } else if connecting {
        (Rejection::UPSTREAM_UNREACHABLE, true)
    } else {
        (Rejection::BAD_GATEWAY, false)
    }
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The value for `X-Forwarded-Host`: the normalised host the router found, or (without a
/// router in front) normalised here, reusing the `Host` header's bytes when it is normal.
fn forwarded_host<B>(req: &Request<B>) -> Option<HeaderValue> {
    if let Some(m) = req.extensions().get::<crate::RouteMatch>() {
        return Some(m.host.clone());
    }
    let host = request_host(req).ok()?;
    if let Some(raw) = req.headers().get(HOST) {
        if raw.as_bytes() == host.as_bytes() {
            return Some(raw.clone());
        }
    }
    HeaderValue::from_str(&host).ok()
}

impl RouteUpstream {
    pub(crate) fn target(&self, idx: usize) -> &Target {
        &self.balancer.targets[idx]
    }

    /// Logs a failure naming the route and upstream, marks the upstream down after a
    /// connect failure, and builds the rejection.
    pub(crate) fn fail(
        &self,
        idx: usize,
        rejection: Rejection,
        mark_down: bool,
        err: &dyn fmt::Display,
    ) -> Response<Body> {
        if mark_down {
            self.balancer.mark_down(idx);
        }
        tracing::warn!(
            route = %self.route,
            upstream = %self.target(idx).label,
            status = rejection.status.as_u16(),
            code = rejection.code,
            error = %err,
            "proxy request failed"
        );
        rejection.response()
    }

    pub(crate) fn fail_error(
        &self,
        idx: usize,
        err: &(dyn StdError + 'static),
        connecting: bool,
    ) -> Response<Body> {
        let (rejection, down) = classify(err, connecting);
        self.fail(idx, rejection, down, &Chain(err))
    }

    pub(crate) fn fail_client(
        &self,
        idx: usize,
        err: &hyper_util::client::legacy::Error,
    ) -> Response<Body> {
        self.fail_error(idx, err, err.is_connect())
    }

    /// Relays an upstream response that is not an upgrade.
    pub(crate) fn relay<RB>(&self, idx: usize, res: Response<RB>) -> Response<Body>
    where
        RB: HttpBody<Data = Bytes> + Send + 'static,
        RB::Error: Into<BoxError>,
    {
        if res.status() == StatusCode::SWITCHING_PROTOCOLS {
            // Nothing asked for an upgrade on this path (h2c and friends were stripped).
            return self.fail(
                idx,
                Rejection::BAD_GATEWAY,
                false,
                &"unrequested 101 Switching Protocols",
            );
        }
        let (mut parts, body) = res.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        parts.version = Version::HTTP_11;
        Response::from_parts(parts, Body::new(body))
    }
}

impl ProxyService {
    pub(crate) fn new(
        shared: Arc<ProxyClients>,
        cfg: UpstreamConfig,
        targets: Vec<Target>,
        down: Duration,
    ) -> Self {
        let epoch = shared.epoch;
        ProxyService {
            inner: Arc::new(RouteUpstream {
                shared,
                route: cfg.route.into(),
                balancer: Balancer::new(targets, epoch, down),
                response_timeout: cfg.response_timeout,
                body_limit: cfg.body_limit,
                websocket: cfg.websocket,
                http2: cfg.http2,
            }),
        }
    }

    /// The route name this service was built for.
    pub fn route(&self) -> &str {
        &self.inner.route
    }
}

impl<B> Service<Request<B>> for ProxyService
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> ResponseFuture {
        let inner = &*self.inner;
        if let Some(limit) = inner.body_limit {
            let declared = content_length(req.headers()).or(req.body().size_hint().exact());
            if declared.is_some_and(|n| n > limit) {
                tracing::debug!(route = %inner.route, limit, "declared request body over the limit");
                return ResponseFuture::done(Rejection::BODY_TOO_LARGE.response());
            }
        }
        let idx = match req.extensions().get::<DecisionRecord>() {
            Some(record) if record.is_dry_run() => {
                // Explained, not served: name the upstreams without picking one (picking moves
                // the round robin) and answer here.
                let upstream: Arc<str> = match &inner.balancer.targets[..] {
                    [one] => one.label.clone(),
                    all => all
                        .iter()
                        .map(|t| &*t.label)
                        .collect::<Vec<_>>()
                        .join(" | ")
                        .into(),
                };
                record.update(|d| d.upstream = Some(upstream));
                let mut res = Response::new(Body::empty());
                res.extensions_mut().insert(WouldProxy);
                return ResponseFuture::done(res);
            }
            Some(record) => {
                let idx = inner.balancer.pick();
                record.update(|d| d.upstream = Some(inner.target(idx).label.clone()));
                idx
            }
            None => inner.balancer.pick(),
        };
        let x_forwarded_host = forwarded_host(&req);
        let (mut parts, body) = req.into_parts();
        // HTTP/1.1 connections (pooled, and the WebSocket tunnel's) send the origin form;
        // hyper-util's HTTP/2 client needs the absolute URI.
        let target = inner.target(idx);
        let uri = if inner.http2 {
            target.uri(parts.uri.path_and_query())
        } else {
            target.origin_form(parts.uri.path_and_query())
        };
        let Some(uri) = uri else {
            return ResponseFuture::done(Rejection::INVALID_PATH.response());
        };

        let headers = &mut parts.headers;
        strip_hop_by_hop_fixed(headers);
        if inner.http2 {
            headers.remove(HOST);
            if parts.extensions.get::<TeTrailers>().is_some() {
                headers.insert(TE, TRAILERS.clone());
            }
        } else if !headers.contains_key(HOST) {
            if let Some(v) = parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            {
                headers.insert(HOST, v);
            }
        }
        inner.shared.forwarded.apply(
            headers,
            parts.extensions.get::<ConnectionInfo>(),
            x_forwarded_host,
        );

        parts.uri = uri;
        parts.version = if inner.http2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        let body = Body::new(DownstreamBody::new(
            body,
            inner.body_limit,
            inner.shared.trailers.clone(),
        ));

        let upgrade = parts.extensions.remove::<UpgradeRequest>().is_some()
            && inner.websocket
            && !inner.http2;
        if upgrade {
            let on_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
            let close = super::upgrade::TunnelHook::watch(&parts.extensions);
            parts.extensions.clear();
            parts.headers.insert(CONNECTION, UPGRADE_TOKEN.clone());
            parts.headers.insert(UPGRADE, WEBSOCKET.clone());
            let req = Request::from_parts(parts, body);
            return ResponseFuture::boxed(Box::pin(super::upgrade::tunnel(
                self.inner.clone(),
                idx,
                req,
                on_upgrade,
                close,
            )));
        }
        // Downstream extensions (hyper's upgrade handle, an HTTP/2 `:protocol`…) must not
        // change what the client sends upstream.
        parts.extensions.clear();
        let req = Request::from_parts(parts, body);
        if inner.http2 {
            let future = inner.shared.client.request(req);
            return ResponseFuture::requesting(
                tokio::time::timeout(inner.response_timeout, future),
                self.inner.clone(),
                idx,
            );
        }
        let owned = self.inner.clone();
        let future: super::future::PooledFuture = Box::pin(async move {
            let target = owned.target(idx);
            owned
                .shared
                .h1
                .send(target.pool_key.clone(), target.connect_uri.clone(), req)
                .await
        });
        ResponseFuture::pooled(
            tokio::time::timeout(inner.response_timeout, future),
            self.inner.clone(),
            idx,
        )
    }
}
