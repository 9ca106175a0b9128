//! The request body on its way upstream: streamed frame by frame, with the route's limit,
//! and its trailers filtered (SECURITY-CASES 39).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderName};
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::BoxError;

/// Names that belong in a request's header section only (RFC 9110 §6.5.1: framing, routing,
/// authentication, request modifiers), the list hyper's own HTTP/1 encoder refuses in trailers
/// plus `cookie`, `expect` and `range`. An upstream that merges trailers into the header
/// section must not get them from the end of a body the gateway never checked.
const HEADER_SECTION_ONLY: [&str; 13] = [
    "authorization",
    "cache-control",
    "content-encoding",
    "content-length",
    "content-range",
    "content-type",
    "cookie",
    "expect",
    "host",
    "max-forwards",
    "range",
    "set-cookie",
    "trailer",
];

/// Which request trailers never reach an upstream: identity names (the prefixes the gateway
/// owns, [`super::ProxyConfig::reserved_header_prefixes`]), hop-by-hop names, names that belong
/// in the header section only, and the client-address names the proxy rebuilds
/// ([`crate::forwarded`]). Names are compared without case and with `_` read as `-`, as the
/// session layer compares identity names.
#[derive(Debug, Default)]
pub(crate) struct TrailerRules {
    /// Lowercase, `_` written as `-`.
    reserved: Box<[Box<[u8]>]>,
}

fn loose(b: u8) -> u8 {
    if b == b'_' {
        b'-'
    } else {
        b.to_ascii_lowercase()
    }
}

fn loose_starts_with(name: &[u8], prefix: &[u8]) -> bool {
    name.len() >= prefix.len() && name.iter().zip(prefix).all(|(n, p)| loose(*n) == *p)
}

fn loose_eq(name: &[u8], want: &str) -> bool {
    name.len() == want.len() && loose_starts_with(name, want.as_bytes())
}

impl TrailerRules {
    pub(crate) fn new(reserved_prefixes: &[String]) -> Self {
        TrailerRules {
            reserved: reserved_prefixes
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| p.bytes().map(loose).collect())
                .collect(),
        }
    }

    /// Whether a request trailer named `name` is dropped.
    pub(crate) fn drops(&self, name: &[u8]) -> bool {
        self.reserved.iter().any(|p| loose_starts_with(name, p))
            || loose_starts_with(name, b"proxy-")
            || crate::hop::FIXED_HOPS.iter().any(|h| loose_eq(name, h))
            || HEADER_SECTION_ONLY.iter().any(|h| loose_eq(name, h))
            || crate::forwarded::is_client_address_header(name)
    }

    /// Removes every dropped name from a trailer section.
    pub(crate) fn filter(&self, trailers: &mut HeaderMap) {
        let dropped: Vec<HeaderName> = trailers
            .keys()
            .filter(|n| self.drops(n.as_str().as_bytes()))
            .cloned()
            .collect();
        for name in dropped {
            tracing::debug!(trailer = %name, "request trailer dropped");
            trailers.remove(name);
        }
    }
}

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
    /// completing it) once more than `remaining` bytes went through, marking client-side
    /// errors so that they are answered 400, not 502, and filtering trailers with `trailers`
    /// (whatever the client's and the upstream's protocol: HTTP/1 chunked or HTTP/2).
    pub(crate) struct DownstreamBody<B> {
        #[pin]
        inner: B,
        remaining: Option<u64>,
        limit: u64,
        trailers: Arc<TrailerRules>,
    }
}

impl<B> DownstreamBody<B> {
    pub(crate) fn new(inner: B, limit: Option<u64>, trailers: Arc<TrailerRules>) -> Self {
        DownstreamBody {
            inner,
            remaining: limit,
            limit: limit.unwrap_or(0),
            trailers,
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
            Poll::Ready(Some(Ok(mut frame))) => {
                if let Some(trailers) = frame.trailers_mut() {
                    this.trailers.filter(trailers);
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_names_that_are_dropped() {
        let rules = TrailerRules::new(&["X-Hasura-".to_owned(), "x-user-id".to_owned()]);
        for name in [
            "x-hasura-role",
            "X_Hasura_Role",
            "x-user-id",
            "connection",
            "keep-alive",
            "transfer-encoding",
            "te",
            "trailer",
            "upgrade",
            "proxy-authorization",
            "proxy_authorization",
            "content-length",
            "host",
            "authorization",
            "cookie",
            "x-forwarded-for",
            "x-real-ip",
            "x_original_url",
        ] {
            assert!(rules.drops(name.as_bytes()), "{name} kept");
        }
        for name in ["x-checksum", "grpc-status", "x-hasura", "x-user"] {
            assert!(!rules.drops(name.as_bytes()), "{name} dropped");
        }
    }
}
