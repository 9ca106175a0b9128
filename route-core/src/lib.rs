//! Subdomain routing and a streaming reverse proxy: the data path of the gateway.
//!
//! # Layers, in the order a request meets them
//!
//! | piece | what it does |
//! |---|---|
//! | [`HopByHopLayer`] | **first** in the stack: strips hop-by-hop headers (and the names listed in `Connection`), records a real WebSocket upgrade as [`UpgradeRequest`] |
//! | [`TracePropagationLayer`] | W3C `traceparent`/`tracestate`: a trusted front proxy's trace is kept, anyone else's replaced by a new one; the gateway's span goes upstream as the parent; [`TraceContext`] inserted ([`trace`]) |
//! | [`Router`] | host ([`request_host`]) and path ([`try_normalize_path`]) normalised once, SNI = Host checked ([`Router::with_sni_check`]), looked up once in a swappable [`RouteTable`]; 400 / 404 / 421 as JSON (400 `ambiguous-path` when another common reading of the path picks a route with another [`PolicyKey`]); the URI is rewritten to the normalised path, [`RouteMatch`] inserted, and the route's own pipeline called |
//! | per route: [`RouteCorsLayer`] | CORS on tower-http's: preflights answered, credentialed CORS headers for the project's origins ([`ProjectOrigins`]) on every answer, refusals included |
//! | *(session-core's layers)* | identity, CSRF, login, roles |
//! | [`ProxyService`] | made by [`Proxy::service`]: pooled upstream connections (HTTP/1.1 idle connections per runtime thread, no lock), streaming bodies, forwarded headers ([`ForwardedHeaders`]) from [`ConnectionInfo`], WebSocket tunnels, 413 / 502 / 504 |
//!
//! Besides: [`HttpsRedirectLayer`] (the plain listener's redirect to HTTPS, project hosts only),
//! [`h2guard`] (HTTP/2 stream and control-frame guards for a hyper server), and
//! [`ProjectOrigins`], the one rule for whether a host or an origin is the project's.
//!
//! Every answer this crate makes up is a [`Rejection`]: JSON `{"error": …, "code": …}`, the
//! workspace's one error vocabulary ([`rejections!`] declares a table of them).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use route_core::{Body, HopByHopLayer, Proxy, ProxyConfig, RouteTable, Router, UpstreamConfig};
//! use tower_layer::Layer;
//! use tower_service::Service;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let proxy = Proxy::new(ProxyConfig::default());
//! let mut table = RouteTable::new();
//! table.insert("data.example.com", proxy.service(UpstreamConfig::new("data", vec!["http://127.0.0.1:9".parse()?]))?)?;
//! let table = Arc::new(arc_swap::ArcSwap::from_pointee(table));
//! let mut gateway = HopByHopLayer::new().layer(Router::new(table.clone()));
//!
//! // A host nobody routes gets a JSON 404, without touching any upstream.
//! let req = http::Request::builder().uri("/").header("host", "Other.Example.com.").body(Body::empty())?;
//! let res = gateway.call(req).await?;
//! assert_eq!(res.status(), 404);
//!
//! // An IP literal gets 421.
//! let req = http::Request::builder().uri("/").header("host", "127.0.0.1:8080").body(Body::empty())?;
//! assert_eq!(gateway.call(req).await?.status(), 421);
//!
//! // Reload: swap the whole table; requests in flight keep the old one.
//! table.store(Arc::new(RouteTable::new()));
//! # Ok(())
//! # }
//! ```
#![deny(rust_2018_idioms)]
#![forbid(unsafe_code)]

mod body;
mod connection;
pub mod cors;
pub mod decision;
pub mod forwarded;
pub mod h2guard;
pub mod hop;
mod host;
pub mod origin;
mod path;
pub mod proxy;
mod redirect;
mod rejection;
pub mod router;
mod table;
pub mod trace;

#[doc(hidden)]
pub use http as __http;

pub use body::{Body, BoxError};
pub use connection::ConnectionInfo;
pub use cors::{CorsConfig, RouteCors, RouteCorsLayer};
pub use forwarded::ForwardedHeaders;
pub use hop::{
    is_websocket_upgrade, strip_hop_by_hop, strip_hop_by_hop_fixed, HopByHop, HopByHopLayer,
    UpgradeRequest,
};
pub use host::{normalize_host, request_host, HostError};
pub use origin::{url_origin, ProjectOrigins, RequestSite};
pub use path::{normalize_path, try_normalize_path, PathError};
pub use proxy::{Proxy, ProxyConfig, ProxyError, ProxyService, UpstreamConfig};
pub use redirect::{HttpsRedirect, HttpsRedirectLayer};
pub use rejection::Rejection;
pub use router::{RouteMatch, Router, SharedRouteTable};
pub use table::{AmbiguousPath, Matched, PolicyKey, RouteError, RouteTable};
pub use trace::{TraceConfig, TraceContext, TracePropagation, TracePropagationLayer};
