//! The request body on its way upstream: streamed frame by frame, with the route's limit.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::BoxError;

/// The request body went over the route's limit while streaming.
#[derive(Debug, thiserror::Error)]
#[error("request body over the limit of {0} bytes")]
pub(crate) struct BodyTooLarge(pub(crate) u64);

/// Reading the client's request body failed (a malformed chunk, a reset…).
#[derive(Debug, thiserror::Error)]
#[error("reading the client request body failed: {0}")]
pub(crate) struct ClientBodyError(#[source] pub(crate) BoxError);

pin_project! {
    /// Streams the client's body, failing (so that hyper aborts the upstream request without
    /// completing it) once more than `remaining` bytes went through, and marking client-side
    /// errors so that they are answered 400, not 502.
    pub(crate) struct DownstreamBody<B> {
        #[pin]
        inner: B,
        remaining: Option<u64>,
        limit: u64,
    }
}

impl<B> DownstreamBody<B> {
    pub(crate) fn new(inner: B, limit: Option<u64>) -> Self {
        DownstreamBody {
            inner,
            remaining: limit,
            limit: limit.unwrap_or(0),
        }
    }
}

impl<B> http_body::Body for DownstreamBody<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(rem), Some(data)) = (this.remaining.as_mut(), frame.data_ref()) {
                    let n = data.len() as u64;
                    if n > *rem {
                        return Poll::Ready(Some(Err(BodyTooLarge(*this.limit).into())));
                    }
                    *rem -= n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(ClientBodyError(e.into()).into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
