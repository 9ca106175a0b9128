use std::task::{Context, Poll};

use http::Request;
use tower_service::Service;

use super::{
    has_token, is_websocket_upgrade, strip_hop_by_hop, HopByHopLayer, TeTrailers, UpgradeRequest,
};

/// Strips hop-by-hop request headers and records a genuine WebSocket upgrade as
/// [`UpgradeRequest`]. See the [module docs](crate::hop).
#[derive(Clone, Debug)]
pub struct HopByHop<S> {
    inner: S,
}

impl<S> HopByHop<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        HopByHop { inner }
    }

    /// The layer form.
    pub fn layer() -> HopByHopLayer {
        HopByHopLayer::new()
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for HopByHop<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    // Nothing happens on the way back (the proxy strips responses), so the inner future is
    // returned as it is: no wrapper, no allocation.
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> S::Future {
        let upgrade = is_websocket_upgrade(&req);
        let te_trailers = has_token(req.headers(), http::header::TE, "trailers");
        strip_hop_by_hop(req.headers_mut());
        if te_trailers {
            req.extensions_mut().insert(TeTrailers);
        } else {
            req.extensions_mut().remove::<TeTrailers>();
        }
        if upgrade {
            req.extensions_mut().insert(UpgradeRequest::websocket());
        } else {
            // Never trust an extension that something before us may have set.
            req.extensions_mut().remove::<UpgradeRequest>();
        }
        self.inner.call(req)
    }
}
