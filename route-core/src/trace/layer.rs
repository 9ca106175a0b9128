//! [`TracePropagationLayer`], [`TracePropagation`] and its [`ResponseFuture`].

use std::borrow::Cow;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{HeaderMap, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{
    bound_tracestate, parse_traceparent, TraceContext, TraceParent, TRACEPARENT, TRACESTATE,
};
use crate::decision::DecisionRecord;
use crate::{ConnectionInfo, ForwardedHeaders};

/// Settings of [`TracePropagationLayer`].
#[derive(Clone, Debug)]
pub struct TraceConfig {
    /// The front proxies whose `traceparent` and `tracestate` are kept: the same rules (and
    /// so the same networks) as the forwarded headers. Default: nobody, so every request
    /// starts a new trace.
    pub trusted: ForwardedHeaders,
    /// Whether a trace the gateway starts is marked sampled (default `true`: an upstream
    /// that samples by its parent, as OpenTelemetry SDKs do by default, keeps recording as it
    /// did before it received a `traceparent`).
    pub sample: bool,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            trusted: ForwardedHeaders::default(),
            sample: true,
        }
    }
}

impl TraceConfig {
    /// Decides the request's trace from its headers and connection, rewrites `traceparent`
    /// and `tracestate` for the upstream (see the [module docs](crate::trace)), and returns
    /// the context. The layer's whole per-request work; public for embedders that have no
    /// tower stack.
    /// `peer` is the downstream connection's remote address ([`ConnectionInfo::remote_addr`]);
    /// unknown means untrusted.
    pub fn propagate(&self, headers: &mut HeaderMap, peer: Option<IpAddr>) -> TraceContext {
        // The peer as `ForwardedHeaders` reads it: an IPv4-mapped IPv6 address is the IPv4
        // address the trusted networks are written in.
        let trusted = peer.is_some_and(|ip| self.trusted.is_trusted(ip.to_canonical()));
        let parent = if trusted { kept_parent(headers) } else { None };
        let ctx = match parent {
            Some(parent) => {
                keep_tracestate(headers);
                TraceContext::child_of(&parent)
            }
            None => {
                // Nothing of the client's goes on: its tracestate belongs to a trace the
                // upstream will not see. (`insert` below replaces every `traceparent`.)
                headers.remove(&TRACESTATE);
                TraceContext::new_root(self.sample)
            }
        };
        match ctx.traceparent_value() {
            Some(v) => {
                headers.insert(&TRACEPARENT, v);
            }
            None => {
                headers.remove(&TRACEPARENT);
            }
        }
        ctx
    }
}

/// The one `traceparent` of a trusted caller, when valid. Several copies are invalid: which
/// one is the caller's cannot be told (§3.2: a single header).
fn kept_parent(headers: &HeaderMap) -> Option<TraceParent> {
    let mut values = headers.get_all(&TRACEPARENT).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => parse_traceparent(v.as_bytes()).ok(),
        _ => None,
    }
}

/// Replaces the caller's `tracestate` headers with the one bounded value, or removes them when
/// the list is invalid or empty.
fn keep_tracestate(headers: &mut HeaderMap) {
    let values: Vec<&[u8]> = headers
        .get_all(&TRACESTATE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    let kept = match bound_tracestate(&values) {
        // One valid header within the bounds: left as it is.
        Ok(Some(Cow::Borrowed(_))) if values.len() == 1 => return,
        Ok(Some(v)) => HeaderValue::from_bytes(&v).ok(),
        Ok(None) | Err(_) => None,
    };
    match kept {
        Some(v) => {
            headers.insert(&TRACESTATE, v);
        }
        None => {
            headers.remove(&TRACESTATE);
        }
    }
}

/// Applies [`TracePropagation`]: outside the router, after the hop-by-hop strip (so that
/// `Connection: traceparent` cannot remove what it writes). See the [module docs](crate::trace).
#[derive(Clone, Debug, Default)]
pub struct TracePropagationLayer {
    config: TraceConfig,
}

impl TracePropagationLayer {
    /// The layer for `config`.
    pub fn new(config: TraceConfig) -> Self {
        TracePropagationLayer { config }
    }
}

impl<S> Layer<S> for TracePropagationLayer {
    type Service = TracePropagation<S>;

    fn layer(&self, inner: S) -> TracePropagation<S> {
        TracePropagation::new(inner, self.config.clone())
    }
}

/// Keeps a trusted caller's trace or starts a new one, sends the gateway's span upstream as
/// the parent, and puts the [`TraceContext`] into the request's and the response's extensions.
/// See the [module docs](crate::trace).
#[derive(Clone, Debug)]
pub struct TracePropagation<S> {
    inner: S,
    config: TraceConfig,
}

impl<S> TracePropagation<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, config: TraceConfig) -> Self {
        TracePropagation { inner, config }
    }

    /// The layer form.
    pub fn layer(config: TraceConfig) -> TracePropagationLayer {
        TracePropagationLayer::new(config)
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

impl<S, B, RB> Service<Request<B>> for TracePropagation<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let peer = req
            .extensions()
            .get::<ConnectionInfo>()
            .map(|c| c.remote_addr.ip());
        let ctx = self.config.propagate(req.headers_mut(), peer);
        // The record is read after the response, like a response extension; writing it there
        // spares most responses an extension map (two allocations) of their own.
        let recorded = match req.extensions().get::<DecisionRecord>() {
            Some(record) => {
                record.update(|d| d.trace = Some(ctx));
                true
            }
            None => false,
        };
        req.extensions_mut().insert(ctx);
        ResponseFuture {
            inner: self.inner.call(req),
            ctx: (!recorded).then_some(ctx),
        }
    }
}

pin_project! {
    /// Response future of [`TracePropagation`]: puts the [`TraceContext`] into the response's
    /// extensions (the headers are untouched).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        ctx: Option<TraceContext>,
    }
}

impl<F, RB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.inner.poll(cx))?;
        if let Some(ctx) = this.ctx.take() {
            res.extensions_mut().insert(ctx);
        }
        Poll::Ready(Ok(res))
    }
}
