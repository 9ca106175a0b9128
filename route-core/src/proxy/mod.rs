//! The reverse proxy: pooled upstream connections; bodies streamed both ways.
//!
//! [`Proxy`] owns the upstream connections (HTTP/1.1: idle connections kept per runtime
//! thread, see `h1pool`; HTTP/2: hyper-util's client, one multiplexed connection per
//! authority) and the forwarded-header rules. [`Proxy::service`] makes the [`ProxyService`] of one route. What
//! a [`ProxyService`] does with each request:
//! - **Limits.** A declared `Content-Length` over [`UpstreamConfig::body_limit`] is answered
//!   413 before anything is read or sent. A body without a declared length (chunked, HTTP/2)
//!   is counted as it streams; once it passes the limit the upstream request is aborted
//!   *before the body completes* (the upstream sees a truncated chunked stream or a short
//!   `Content-Length` body, never a complete request), and the client gets 413 if the
//!   upstream had not answered yet (otherwise the upstream's own answer, cut short).
//! - **Headers.** The fixed hop-by-hop list is stripped again (defence in depth; see
//!   [`crate::hop`]), the forwarded headers are rebuilt ([`crate::forwarded`]), `Host` is kept
//!   (and made from the HTTP/2 `:authority` for HTTP/1.1 upstreams). HTTP/2 upstreams get the
//!   upstream's authority as `:authority` and no `Host`; the client's host is in
//!   `X-Forwarded-Host` and `Forwarded`.
//! - **Trailers.** Request trailers (HTTP/1 chunked or HTTP/2) are filtered before they go
//!   upstream: names under [`ProxyConfig::reserved_header_prefixes`] (identity headers),
//!   hop-by-hop names (`Connection`, `TE`, `Transfer-Encoding`, every `Proxy-*`…), names that
//!   belong in the header section only (`Host`, `Content-Length`, `Authorization`, `Cookie`…)
//!   and the client-address names of [`crate::forwarded`] are dropped, any case, `_` read as
//!   `-`. An HTTP/1.1 upstream gets no trailers at all: the client's `Trailer` header is
//!   hop-by-hop, and hyper sends only the trailers a `Trailer` header declared.
//! - **Balancing and passive health.** The route's upstream URLs are used round-robin. An
//!   upstream whose connect fails (refused, unreachable, timed out) is skipped for a short
//!   time ([`Proxy::with_down_time`], 10 s by default) and then tried again. If every upstream
//!   is marked down, the next one in round-robin order is still tried: a short outage of all
//!   of them should not turn into a longer self-inflicted one.
//! - **Failures** (each with a JSON body and a `warn` log line naming the route and the
//!   upstream): connect refused/reset or an unusable answer 502; connect timeout or no
//!   response headers within [`UpstreamConfig::response_timeout`] 504; an invalid client
//!   body (bad chunk) 400. A request that fails is not retried on another upstream (its body
//!   may be gone); later requests avoid the upstream that failed to connect.
//! - **WebSocket.** A request marked [`crate::UpgradeRequest`] by the hop-by-hop layer, on a
//!   route with [`UpstreamConfig::websocket`], goes over a dedicated, unpooled HTTP/1.1
//!   connection. On 101 both sides are tunnelled; on anything else the answer is relayed and
//!   that connection is closed, never reused (SECURITY-CASES 21). An upstream that answers
//!   101 to a request that was not a WebSocket upgrade (say to a stripped `h2c` upgrade) gets
//!   502 (SECURITY-CASES 20). A [`TunnelHook`] in the request's extensions can close the
//!   tunnel later (the gateway closes WebSockets whose session is revoked).
//! - Upstream URLs are `http://` only (TLS to upstreams is not part of this crate yet).

mod balance;
mod body;
mod connector;
mod future;
mod h1pool;
mod service;
mod upgrade;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use ipnet::IpNet;

pub use future::ResponseFuture;
pub use service::ProxyService;
pub use upgrade::{TunnelClose, TunnelHook};

use crate::{Body, ForwardedHeaders};
use connector::{ConnSettings, UpstreamConnector};

/// Proxy-wide settings.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Front proxies whose `X-Forwarded-*`/`Forwarded` are believed and extended.
    /// Empty by default: nobody is trusted.
    pub trusted_proxies: Vec<IpNet>,
    /// How long an idle pooled upstream connection is kept (default 90 s). HTTP/1.1 connections
    /// idle longer are closed at the next checkout for their upstream.
    pub pool_idle_timeout: Duration,
    /// How many idle connections are kept per upstream authority (default 256); for HTTP/1.1
    /// upstreams, per runtime thread.
    pub pool_max_idle_per_host: usize,
    /// The connect timeout for upstreams that have none of their own (default 5 s).
    pub connect_timeout: Duration,
    /// Header-name prefixes that only the gateway itself may set: the session layer's identity
    /// prefix and its configured identity names. A request **trailer** under one of them
    /// (compared without case, `_` read as `-`) is dropped, as are hop-by-hop trailers and the
    /// other names listed in the [module docs](crate::proxy) (SECURITY-CASES 39). Default
    /// `["x-hasura-"]`, the session layer's default identity prefix.
    pub reserved_header_prefixes: Vec<String>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            trusted_proxies: Vec::new(),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 256,
            connect_timeout: Duration::from_secs(5),
            reserved_header_prefixes: vec!["x-hasura-".to_owned()],
        }
    }
}

/// One route's upstream settings.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// The route's name, for logs and metrics.
    pub route: String,
    /// The upstream base URLs (`http://host:port` with an optional base path), used
    /// round-robin with passive health.
    pub urls: Vec<http::Uri>,
    /// How long connecting may take (504 after it).
    pub connect_timeout: Duration,
    /// How long the upstream may take to send response headers, counted from the start of
    /// the request (504 after it).
    pub response_timeout: Duration,
    /// The largest request body accepted (413 over it); `None` for no limit.
    pub body_limit: Option<u64>,
    /// Whether WebSocket upgrades are tunnelled to this upstream.
    pub websocket: bool,
    /// Whether to speak HTTP/2 (prior knowledge) to this upstream.
    pub http2: bool,
}

impl UpstreamConfig {
    /// Settings with the defaults (5 s connect, 60 s response, no body limit, no WebSocket,
    /// HTTP/1.1) for these URLs.
    pub fn new(route: impl Into<String>, urls: Vec<http::Uri>) -> Self {
        UpstreamConfig {
            route: route.into(),
            urls,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            body_limit: None,
            websocket: false,
            http2: false,
        }
    }
}

/// Why a [`ProxyService`] could not be built.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The route has no upstream URL.
    #[error("route {0:?} has no upstream URL")]
    NoUpstreams(String),
    /// An upstream URL is not `http://authority[/base]` without a query.
    #[error("upstream URL {0:?} is not http://host[:port][/path]")]
    InvalidUrl(String),
}

pub(crate) struct ProxyClients {
    /// HTTP/2 upstreams: hyper-util's client multiplexes one connection per authority.
    client: Client<UpstreamConnector, Body>,
    /// HTTP/1.1 upstreams: idle connections per runtime thread.
    h1: h1pool::H1Pool,
    connector: UpstreamConnector,
    forwarded: ForwardedHeaders,
    /// Which request trailers are dropped.
    trailers: Arc<body::TrailerRules>,
    /// The zero of the passive-health clock.
    epoch: Instant,
}

/// The proxy: one shared pooled client for every route. Cheap to clone.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<ProxyClients>,
    down_time: Duration,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("down_time", &self.down_time)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Builds the shared client. Building needs no runtime; sending requests needs tokio.
    pub fn new(cfg: ProxyConfig) -> Self {
        let connector = UpstreamConnector::new(cfg.connect_timeout);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(cfg.pool_idle_timeout)
            .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector.clone());
        Proxy {
            shared: Arc::new(ProxyClients {
                client,
                h1: h1pool::H1Pool::new(
                    connector.clone(),
                    cfg.pool_idle_timeout,
                    cfg.pool_max_idle_per_host,
                ),
                connector,
                forwarded: ForwardedHeaders::new(cfg.trusted_proxies),
                trailers: Arc::new(body::TrailerRules::new(&cfg.reserved_header_prefixes)),
                epoch: Instant::now(),
            }),
            down_time: Duration::from_secs(10),
        }
    }

    /// How long an upstream that failed to connect is skipped (default 10 s).
    pub fn with_down_time(mut self, down_time: Duration) -> Self {
        self.down_time = down_time;
        self
    }

    /// The service for one route. Its connect timeout and protocol are registered for the
    /// upstream authorities (an authority shared by two routes uses the last settings).
    pub fn service(&self, upstream: UpstreamConfig) -> Result<ProxyService, ProxyError> {
        if upstream.urls.is_empty() {
            return Err(ProxyError::NoUpstreams(upstream.route));
        }
        let mut targets = Vec::with_capacity(upstream.urls.len());
        for url in &upstream.urls {
            let target = balance::Target::from_uri(url)?;
            self.shared.connector.register(
                target.authority.as_str(),
                ConnSettings {
                    connect_timeout: upstream.connect_timeout,
                    http2: upstream.http2,
                },
            );
            targets.push(target);
        }
        Ok(ProxyService::new(
            self.shared.clone(),
            upstream,
            targets,
            self.down_time,
        ))
    }
}
