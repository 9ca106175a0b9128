//! Hop-by-hop headers: removed before anything else sees the request.
//!
//! A hop-by-hop header describes one connection, not the message, so a proxy must not
//! forward it (RFC 9110 §7.6.1). [`strip_hop_by_hop`] removes `Connection`, `Keep-Alive`,
//! every `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding` and `Upgrade`, plus every header that
//! `Connection` names.
//!
//! [`HopByHopLayer`] must be the **first** layer of the stack, before the session layer
//! injects identity headers: otherwise `Connection: close, X-Hasura-Role` from a client would
//! make a later strip remove the injected identity (SECURITY-CASES 4). Once the layer has run
//! there is no `Connection` header left, so the proxy's own defensive strip
//! ([`strip_hop_by_hop_fixed`]) only removes the fixed list and never a header the gateway
//! added.
//!
//! A real WebSocket upgrade (HTTP/1.1 `GET` with `Connection: upgrade` and exactly one
//! `Upgrade: websocket`) is recorded as an [`UpgradeRequest`] extension; the proxy writes the
//! `Connection`/`Upgrade` pair again itself when the route allows WebSockets. Every other
//! upgrade, `h2c` above all (SECURITY-CASES 20), is simply dropped, so it is forwarded as a
//! plain request.

mod layer;
mod service;

pub use layer::HopByHopLayer;
pub use service::HopByHop;

use http::header::{HeaderName, HeaderValue, CONNECTION, UPGRADE};
use http::{HeaderMap, Method, Request, Version};

/// The extension that marks a request as a genuine WebSocket upgrade.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The protocol the client asked for (`websocket`).
    pub protocol: HeaderValue,
}

impl UpgradeRequest {
    /// A WebSocket upgrade.
    pub fn websocket() -> Self {
        UpgradeRequest {
            protocol: HeaderValue::from_static("websocket"),
        }
    }
}

/// The client sent `TE: trailers`: the one `TE` value that HTTP/2 allows end to end (gRPC
/// needs it). The proxy sends `te: trailers` again to HTTP/2 upstreams only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TeTrailers;

/// Removes the fixed hop-by-hop list (`Connection`, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`,
/// `Transfer-Encoding`, `Upgrade`) without reading `Connection`. Allocation-free unless a
/// `Proxy-*` header other than the standard ones is present.
pub fn strip_hop_by_hop_fixed(headers: &mut HeaderMap) {
    // One pass over the names finds the ones present, and only those are removed: every
    // `remove` hashes its name, and the usual message (an upstream response with
    // `Connection: keep-alive`) carries one of these names, not all of them.
    let mut present = 0u8;
    let mut proxied = false;
    for name in headers.keys() {
        match FIXED_HOPS.iter().position(|fixed| name.as_str() == *fixed) {
            Some(i) => present |= 1 << i,
            None => proxied |= name.as_str().starts_with("proxy-"),
        }
    }
    for (i, fixed) in FIXED_HOPS.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(*fixed);
        }
    }
    if proxied {
        let names: Vec<HeaderName> = headers
            .keys()
            .filter(|n| n.as_str().starts_with("proxy-"))
            .cloned()
            .collect();
        for name in names {
            headers.remove(name);
        }
    }
}

/// The hop-by-hop names that do not depend on `Connection` (besides every `Proxy-*`).
pub(crate) const FIXED_HOPS: [&str; 6] = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes every header named in `Connection`, then the fixed hop-by-hop list.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(CONNECTION) {
        let mut listed: Vec<HeaderName> = Vec::new();
        for value in headers.get_all(CONNECTION) {
            for token in value.as_bytes().split(|&b| b == b',') {
                let token = token.trim_ascii();
                // `keep-alive` (what nearly every upstream response lists) and the other fixed
                // names are removed below anyway: no lookup for them here.
                if token.is_empty()
                    || FIXED_HOPS
                        .iter()
                        .any(|f| token.eq_ignore_ascii_case(f.as_bytes()))
                {
                    continue;
                }
                // Only a listed header that is present needs removing: `keep-alive` and
                // `close` usually are not, and looking a name up by `&str` allocates nothing
                // (a `HeaderName` for an unknown name would). Invalid names cannot be present.
                let Ok(text) = std::str::from_utf8(token) else {
                    continue;
                };
                if !headers.contains_key(text) {
                    continue;
                }
                if let Ok(name) = HeaderName::from_bytes(token) {
                    listed.push(name);
                }
            }
        }
        for name in listed {
            headers.remove(name);
        }
    }
    strip_hop_by_hop_fixed(headers);
}

pub(crate) fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// Whether the request is a genuine HTTP/1.1 WebSocket upgrade.
pub fn is_websocket_upgrade<B>(req: &Request<B>) -> bool {
    if req.version() != Version::HTTP_11 || req.method() != Method::GET {
        return false;
    }
    let mut upgrades = req.headers().get_all(UPGRADE).iter();
    let (Some(up), None) = (upgrades.next(), upgrades.next()) else {
        return false;
    };
    up.as_bytes()
        .trim_ascii()
        .eq_ignore_ascii_case(b"websocket")
        && has_token(req.headers(), CONNECTION, "upgrade")
}

#[cfg(test)]
mod tests;
