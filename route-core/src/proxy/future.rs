use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;
use tokio::time::Timeout;

use super::h1pool::{PooledBody, UpstreamError};
use super::service::RouteUpstream;
use crate::{Body, Rejection};

type LegacyFuture = hyper_util::client::legacy::ResponseFuture;

/// An HTTP/1.1 exchange on a pooled connection (see `h1pool`).
pub(crate) type PooledFuture =
    Pin<Box<dyn Future<Output = Result<Response<PooledBody>, UpstreamError>> + Send>>;

pin_project! {
    /// The proxy's response future: an immediate answer, a pooled request under its response
    /// timeout, or (for the rare WebSocket upgrade) a boxed future.
    pub struct ResponseFuture {
        #[pin]
        state: State,
    }
}

pin_project! {
    #[project = StateProj]
    enum State {
        Done { response: Option<Response<Body>> },
        Requesting { #[pin] future: Timeout<LegacyFuture>, inner: Arc<RouteUpstream>, idx: usize },
        Pooled { #[pin] future: Timeout<PooledFuture>, inner: Arc<RouteUpstream>, idx: usize },
        Boxed { future: Pin<Box<dyn Future<Output = Response<Body>> + Send>> },
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl ResponseFuture {
    pub(crate) fn done(response: Response<Body>) -> Self {
        ResponseFuture {
            state: State::Done {
                response: Some(response),
            },
        }
    }

    pub(crate) fn requesting(
        future: Timeout<LegacyFuture>,
        inner: Arc<RouteUpstream>,
        idx: usize,
    ) -> Self {
        ResponseFuture {
            state: State::Requesting { future, inner, idx },
        }
    }

    pub(crate) fn pooled(
        future: Timeout<PooledFuture>,
        inner: Arc<RouteUpstream>,
        idx: usize,
    ) -> Self {
        ResponseFuture {
            state: State::Pooled { future, inner, idx },
        }
    }

    pub(crate) fn boxed(future: Pin<Box<dyn Future<Output = Response<Body>> + Send>>) -> Self {
        ResponseFuture {
            state: State::Boxed { future },
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            // A second poll after completion is a caller bug; it stays pending.
            StateProj::Done { response } => response
                .take()
                .map_or(Poll::Pending, |r| Poll::Ready(Ok(r))),
            StateProj::Requesting { future, inner, idx } => {
                let res = match ready!(future.poll(cx)) {
                    Ok(Ok(res)) => inner.relay(*idx, res),
                    Ok(Err(err)) => inner.fail_client(*idx, &err),
                    Err(_) => inner.fail(
                        *idx,
                        Rejection::RESPONSE_TIMEOUT,
                        false,
                        &format_args!("no response headers within {:?}", inner.response_timeout),
                    ),
                };
                Poll::Ready(Ok(res))
            }
            StateProj::Pooled { future, inner, idx } => {
                let res = match ready!(future.poll(cx)) {
                    Ok(Ok(res)) => inner.relay(*idx, res),
                    Ok(Err(err)) => inner.fail_error(*idx, &err, err.is_connect()),
                    Err(_) => inner.fail(
                        *idx,
                        Rejection::RESPONSE_TIMEOUT,
                        false,
                        &format_args!("no response headers within {:?}", inner.response_timeout),
                    ),
                };
                Poll::Ready(Ok(res))
            }
            StateProj::Boxed { future } => future.as_mut().poll(cx).map(Ok),
        }
    }
}
