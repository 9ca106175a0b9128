//! W3C Trace Context (`traceparent`, `tracestate`): the gateway is one hop of the caller's
//! trace when the caller is a front proxy the operator trusts, and the start of a new trace
//! otherwise.
//!
//! [`TracePropagationLayer`] decides, once per request, which trace the request belongs to:
//!
//! - **From a trusted front proxy** (the peer of [`ConnectionInfo`](crate::ConnectionInfo) inside the networks of
//!   [`TraceConfig::trusted`], the very rule [`ForwardedHeaders`](crate::forwarded::ForwardedHeaders) applies to `X-Forwarded-For`)
//!   a valid `traceparent` is kept: its trace id is the request's, its parent id is the parent
//!   of the gateway's span, its flags are kept. Its `tracestate` is kept too, checked and
//!   bounded to 32 list members and 512 bytes ([`bound_tracestate`]).
//! - **Otherwise** (any other peer, no `traceparent`, an invalid one, or several) the client's
//!   `traceparent` and `tracestate` are removed and a new trace is started with random ids.
//!   An untrusted client cannot join the gateway's spans to a trace of its choosing, nor make
//!   the upstream believe a parent the gateway never saw.
//!
//! Either way the gateway's own span id (random, per request) becomes the parent id of the
//! `traceparent` that goes upstream (version `00`), and the request carries a
//! [`TraceContext`] extension with the trace id, the gateway's span id, the caller's span id
//! and the flags. The same `TraceContext` is put into the response's extensions (never its
//! headers), so that an access log or a span exporter outside the layer reads it; when the
//! request carries a [`DecisionRecord`](crate::decision::DecisionRecord), it goes into the
//! record's [`trace`](crate::decision::Decision::trace) instead, where such a reader already
//! looks, which saves the response an extension map of its own.
//!
//! The parsers are pure functions over bytes ([`parse_traceparent`], [`check_tracestate`],
//! [`bound_tracestate`]), so a fuzzer or a property test drives them directly.
//!
//! # Cost
//!
//! A request without `traceparent` costs 24 bytes from the thread-local CSPRNG
//! (`rand::rng()`), one 55-byte header value (the one allocation besides the extensions), one
//! header insert and one removal: no lock and no formatting machinery.
//!
//! # Example
//!
//! ```
//! use route_core::trace::{TraceConfig, TraceContext, TracePropagationLayer};
//! use route_core::{ConnectionInfo, ForwardedHeaders};
//! use tower_layer::Layer;
//! use tower_service::Service;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // Trust the load balancer's network, as for the forwarded headers.
//! let config = TraceConfig {
//!     trusted: ForwardedHeaders::new(vec!["10.0.0.0/8".parse()?]),
//!     ..TraceConfig::default()
//! };
//! // The upstream answers with the traceparent it received.
//! let mut svc = TracePropagationLayer::new(config).layer(tower::service_fn(
//!     |req: http::Request<()>| async move {
//!         let sent = req.headers()["traceparent"].to_str()?.to_owned();
//!         Ok::<_, Box<dyn std::error::Error + Send + Sync>>(http::Response::new(sent))
//!     },
//! ));
//!
//! let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
//! let from = |addr: &str| ConnectionInfo {
//!     remote_addr: addr.parse().unwrap(),
//!     local_addr: "10.9.9.9:443".parse().unwrap(),
//!     tls: true,
//!     sni: None,
//! };
//!
//! // From the load balancer: the trace goes on, the gateway's span is the new parent. The
//! // response carries the context as an extension (for the access log), not as a header.
//! let mut req = http::Request::new(());
//! req.headers_mut().insert("traceparent", parent.parse()?);
//! req.extensions_mut().insert(from("10.1.2.3:5000"));
//! let res = svc.call(req).await?;
//! let ctx = *res.extensions().get::<TraceContext>().ok_or("no context")?;
//! assert_eq!(ctx.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
//! assert_eq!(ctx.parent_span_id.map(|s| s.to_string()).as_deref(), Some("00f067aa0ba902b7"));
//! assert_eq!(res.body(), &format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", ctx.span_id));
//!
//! // From anyone else: a new trace.
//! let mut req = http::Request::new(());
//! req.headers_mut().insert("traceparent", parent.parse()?);
//! req.extensions_mut().insert(from("203.0.113.7:5000"));
//! let res = svc.call(req).await?;
//! let ctx = *res.extensions().get::<TraceContext>().ok_or("no context")?;
//! assert_ne!(ctx.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
//! assert_eq!(ctx.parent_span_id, None);
//! assert_eq!(res.body(), &ctx.traceparent());
//! # Ok(())
//! # }
//! ```

mod layer;
mod parse;
#[cfg(test)]
mod tests;

use std::fmt;

use http::HeaderValue;
use rand::RngCore;

pub use layer::{ResponseFuture, TraceConfig, TracePropagation, TracePropagationLayer};
pub use parse::{
    bound_tracestate, check_tracestate, parse_traceparent, TraceParent, TraceParentError,
    TraceStateError, MAX_TRACESTATE_BYTES, MAX_TRACESTATE_MEMBERS,
};

/// The `traceparent` header name.
pub static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
/// The `tracestate` header name.
pub static TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");

/// The `sampled` bit of the trace flags.
pub const FLAG_SAMPLED: u8 = 0x01;
/// The flags the gateway forwards from a kept parent: `sampled` and Trace Context Level 2's
/// `random` (bit 1), which describes the trace id and so travels with it. Other bits are
/// reserved and sent as zero.
const KNOWN_FLAGS: u8 = 0x03;

const HEX: &[u8; 16] = b"0123456789abcdef";

fn write_hex(bytes: &[u8], out: &mut [u8]) {
    for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0x0f)];
    }
}

/// A 16-byte trace id; never all zero when it comes from this module. Displayed as 32
/// lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span id; never all zero when it comes from this module. Displayed as 16
/// lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

macro_rules! hex_id {
    ($t:ty, $n:expr) => {
        impl $t {
            /// The id as lowercase hex, without allocating.
            pub fn to_hex(&self) -> [u8; $n * 2] {
                let mut out = [0u8; $n * 2];
                write_hex(&self.0, &mut out);
                out
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let hex = self.to_hex();
                // Hex digits are ASCII.
                f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    };
}
hex_id!(TraceId, 16);
hex_id!(SpanId, 8);

/// The trace a request belongs to and the gateway's span in it: a request extension (and a
/// response extension, or the decision record's `trace`) set by [`TracePropagation`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace: the trusted caller's, or a new one.
    pub trace_id: TraceId,
    /// The gateway's span for this request: the parent id the upstream receives.
    pub span_id: SpanId,
    /// The trusted caller's span (the parent id it sent); `None` when the gateway started the
    /// trace.
    pub parent_span_id: Option<SpanId>,
    /// The trace flags sent upstream (bit 0: sampled).
    pub flags: u8,
}

/// Length of a version-00 `traceparent`: `00-<32 hex>-<16 hex>-<2 hex>`.
pub const TRACEPARENT_LEN: usize = 55;

impl TraceContext {
    /// A new trace with random ids (from the thread-local CSPRNG), `sampled` as given.
    pub fn new_root(sampled: bool) -> Self {
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let mut trace = [0u8; 16];
        let mut span = [0u8; 8];
        trace.copy_from_slice(&bytes[..16]);
        span.copy_from_slice(&bytes[16..]);
        TraceContext {
            trace_id: TraceId(non_zero(trace)),
            span_id: SpanId(non_zero(span)),
            parent_span_id: None,
            flags: if sampled { FLAG_SAMPLED } else { 0 },
        }
    }

    /// The gateway's span (a random id) as the child of a kept `parent`.
    pub fn child_of(parent: &TraceParent) -> Self {
        let mut span = [0u8; 8];
        rand::rng().fill_bytes(&mut span);
        TraceContext {
            trace_id: parent.trace_id,
            span_id: SpanId(non_zero(span)),
            parent_span_id: Some(parent.parent_id),
            flags: parent.flags & KNOWN_FLAGS,
        }
    }

    /// Whether the trace is sampled (flag bit 0): the caller, or the gateway for a trace it
    /// started, may record it, so an exporter records the gateway's span.
    pub fn sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }

    /// The version-00 `traceparent` the upstream receives, as bytes:
    /// `00-<trace id>-<gateway's span id>-<flags>`.
    pub fn traceparent_bytes(&self) -> [u8; TRACEPARENT_LEN] {
        let mut out = [b'-'; TRACEPARENT_LEN];
        out[0] = b'0';
        out[1] = b'0';
        write_hex(&self.trace_id.0, &mut out[3..35]);
        write_hex(&self.span_id.0, &mut out[36..52]);
        write_hex(&[self.flags], &mut out[53..55]);
        out
    }

    /// [`traceparent_bytes`](Self::traceparent_bytes) as a string.
    pub fn traceparent(&self) -> String {
        String::from_utf8_lossy(&self.traceparent_bytes()).into_owned()
    }

    /// [`traceparent_bytes`](Self::traceparent_bytes) as a header value: the one allocation.
    /// Always `Some` (hex digits and dashes are valid header bytes); an `Option` rather than
    /// a panic path.
    pub fn traceparent_value(&self) -> Option<HeaderValue> {
        HeaderValue::from_bytes(&self.traceparent_bytes()).ok()
    }
}

/// An all-zero id is invalid (W3C Trace Context §3.2.2.3): 2^-64 at worst, but never sent.
fn non_zero<const N: usize>(mut id: [u8; N]) -> [u8; N] {
    if id.iter().all(|b| *b == 0) {
        id[N - 1] = 1;
    }
    id
}
