use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, Uri};
use tower_service::Service;

use super::future::ResponseFuture;
use crate::decision::DecisionRecord;
use crate::{
    normalize_host, request_host, try_normalize_path, ConnectionInfo, Rejection, RouteTable,
};

/// The route table as the router holds it: swapped whole on reload, read without locks.
pub type SharedRouteTable<S> = Arc<arc_swap::ArcSwap<RouteTable<S>>>;

/// The extension the router inserts into each routed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteMatch {
    /// The pattern that matched, e.g. `*.example.com` or `example.com/api`.
    pub pattern: Arc<str>,
    /// The request's normalised host ([`request_host`]) as a header value, so that later
    /// layers (the proxy's `X-Forwarded-Host`) need not normalise it again.
    pub host: HeaderValue,
}

/// Routes each request to the service of the route its host (and path) match. See the
/// [module docs](crate::router).
pub struct Router<S> {
    table: SharedRouteTable<S>,
    sni_check: bool,
}

impl<S> Clone for Router<S> {
    fn clone(&self) -> Self {
        Router {
            table: self.table.clone(),
            sni_check: self.sni_check,
        }
    }
}

impl<S> std::fmt::Debug for Router<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("routes", &self.table.load().len())
            .finish()
    }
}

impl<S> Router<S> {
    /// A router over a shared, swappable table.
    pub fn new(table: SharedRouteTable<S>) -> Self {
        Router {
            table,
            sni_check: false,
        }
    }

    /// Also answer 421 when a TLS request's host differs from the connection's SNI
    /// ([`ConnectionInfo::sni`], normalised the same way), so that a connection opened for
    /// one name cannot be used for another route (SECURITY-CASES 14). Off by default; a TLS
    /// connection without SNI is not checked.
    pub fn with_sni_check(mut self, yes: bool) -> Self {
        self.sni_check = yes;
        self
    }

    /// The shared table: `store` a new one to reload.
    pub fn table(&self) -> &SharedRouteTable<S> {
        &self.table
    }
}

/// Says why a request has no route, beside the rejection (which two reasons may share).
fn note<B>(req: &Request<B>, why: &'static str) {
    if let Some(record) = req.extensions().get::<DecisionRecord>() {
        record.update(|d| d.detail = Some(why.into()));
    }
}

/// The URI with its path replaced, query kept. Only called when the path changed.
fn with_path(uri: &Uri, path: &str) -> Option<Uri> {
    let pq = match uri.query() {
        Some(q) => PathAndQuery::try_from(format!("{path}?{q}")).ok()?,
        None => PathAndQuery::try_from(path).ok()?,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq);
    Uri::from_parts(parts).ok()
}

impl<S, B, RB> Service<Request<B>> for Router<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = Infallible> + Clone,
    RB: From<Bytes>,
{
    type Response = Response<RB>;
    type Error = Infallible;
    type Future = ResponseFuture<S, B, RB>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Readiness is the route's, checked in the future once the route is known.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let host = match request_host(&req) {
            Ok(h) => h,
            Err(e) => {
                if e == crate::HostError::IpLiteral {
                    note(&req, "the host is an IP address, not a name");
                }
                return ResponseFuture::rejected(e.rejection().response());
            }
        };
        if self.sni_check {
            if let Some(sni) = req
                .extensions()
                .get::<ConnectionInfo>()
                .filter(|i| i.tls)
                .and_then(|i| i.sni.as_deref())
            {
                if normalize_host(sni).map_or(true, |s| s != host) {
                    note(
                        &req,
                        "the host differs from the name the TLS connection was opened for",
                    );
                    return ResponseFuture::rejected(Rejection::SNI_MISMATCH.response());
                }
            }
        }
        let path = match try_normalize_path(req.uri().path()) {
            Ok(p) => p,
            Err(_) => return ResponseFuture::rejected(Rejection::INVALID_PATH.response()),
        };
        let table = self.table.load();
        let Some(entry) = table.lookup_host(&host) else {
            return ResponseFuture::rejected(Rejection::UNKNOWN_HOST.response());
        };
        let found = match entry.lookup_unambiguous(&path) {
            Ok(Some(found)) => found,
            Ok(None) => return ResponseFuture::rejected(Rejection::NO_ROUTE.response()),
            Err(_) => return ResponseFuture::rejected(Rejection::AMBIGUOUS_PATH.response()),
        };
        let mut service = found.route.clone();
        let host_value = match req.headers().get(http::header::HOST) {
            // The usual case: the header is already normal, share its bytes.
            Some(raw) if raw.as_bytes() == host.as_bytes() => Some(raw.clone()),
            _ => HeaderValue::from_str(&host).ok(),
        };
        // A normalised host is [a-z0-9._-] only, always a legal header value.
        let Some(host_value) = host_value else {
            return ResponseFuture::rejected(Rejection::INVALID_HOST.response());
        };
        let route = RouteMatch {
            pattern: found.pattern.clone(),
            host: host_value,
        };
        drop(table);
        let new_uri = match path {
            std::borrow::Cow::Owned(p) => match with_path(req.uri(), &p) {
                Some(u) => Some(u),
                None => return ResponseFuture::rejected(Rejection::INVALID_PATH.response()),
            },
            std::borrow::Cow::Borrowed(_) => None,
        };
        drop(host);
        if let Some(u) = new_uri {
            *req.uri_mut() = u;
        }
        req.extensions_mut().insert(route);
        // Ask the route's service now: when it is ready (the usual case) it is called here and
        // the future holds only its response future. A waker that does nothing is enough: a
        // service that is not ready yet is polled again, with the task's waker, by the future.
        let mut probe = Context::from_waker(Waker::noop());
        match service.poll_ready(&mut probe) {
            Poll::Ready(Ok(())) => ResponseFuture::called(service.call(req)),
            Poll::Pending => ResponseFuture::ready(service, req),
        }
    }
}
