//! The router: Host → route, with the path normalised once.
//!
//! For each request [`Router`]:
//! 1. takes the host from `Host` or the URI authority ([`crate::request_host`]): two `Host`
//!    headers or a differing absolute-form authority get 400, an IP literal 421;
//! 2. normalises the path strictly ([`crate::try_normalize_path`]): encoded slashes,
//!    backslashes, control bytes and malformed escapes get 400;
//! 3. looks the host and path up in the current [`crate::RouteTable`] (an `ArcSwap` load, no
//!    lock): no host gets 404 `unknown-host`, a host without a matching prefix 404 `no-route`,
//!    a path that another common reading (`;` parameters dropped, case folded, decoded first)
//!    sends to a route with a different policy 400 `ambiguous-path` (see [`crate::RouteTable`]);
//! 4. rewrites the request URI to the normalised path (the query is kept as it was), so that
//!    authorization, the upstream and the logs all see the same path;
//! 5. inserts [`RouteMatch`] into the request extensions and calls the route's service.
//!
//! Every rejection is a JSON response ([`crate::Rejection`]); the router never fails.

mod future;
mod service;

pub use future::ResponseFuture;
pub use service::{RouteMatch, Router, SharedRouteTable};

#[cfg(test)]
mod tests;
