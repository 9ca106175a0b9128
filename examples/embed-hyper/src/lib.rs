//! A minimal gateway on plain hyper: route-core's router and proxy with session-core's layers, as
//! `HopByHopLayer` → `Router` → per route: `SessionLayer` → `RequireRoleLayer` → `ProxyService`
//! (hop-by-hop first, so that `Connection` cannot drop the identity headers injected after it).

use std::sync::Arc;

use hyper_util::{rt::TokioExecutor, rt::TokioIo, server::conn::auto::Builder};
use route_core::{BoxError, ConnectionInfo, HopByHop, Proxy, ProxyConfig, ProxyService};
use route_core::{RouteTable, Router, UpstreamConfig};
use session_core::{RequireRole, RequireRoleLayer, Resolver, SessionConfig, SessionLayer};
use tower_layer::Layer;
use tower_service::Service;

/// The gateway service: the hop-by-hop strip, the router, and one pipeline per route.
pub type Gateway = HopByHop<Router<session_core::SessionService<RequireRole<ProxyService>>>>;

/// Builds the gateway from `(host, upstream URL, allowed roles)`; no roles admits anyone.
pub fn gateway(
    resolver: Arc<dyn Resolver>,
    routes: &[(&str, &str, &[&str])],
) -> Result<Gateway, BoxError> {
    let (proxy, mut table) = (Proxy::new(ProxyConfig::default()), RouteTable::new());
    let session = SessionLayer::try_new(resolver, SessionConfig::default())?;
    for &(host, url, roles) in routes {
        let upstream = proxy.service(UpstreamConfig::new(host, vec![url.parse()?]))?;
        let route = RequireRoleLayer::new(roles.iter().copied()).layer(upstream);
        table.insert(host, session.layer(route))?;
    }
    let table = Arc::new(arc_swap::ArcSwap::from_pointee(table));
    Ok(HopByHop::new(Router::new(table)))
}

/// Serves `gateway` on `listener`, HTTP/1.1 and HTTP/2, until accepting fails.
pub async fn serve(listener: tokio::net::TcpListener, gateway: Gateway) -> std::io::Result<()> {
    let (local_addr, builder) = (listener.local_addr()?, Builder::new(TokioExecutor::new()));
    loop {
        let (stream, remote_addr) = listener.accept().await?;
        let info = ConnectionInfo {
            remote_addr, // for the proxy's X-Forwarded-For and Forwarded
            local_addr,
            tls: false,
            sni: None,
        };
        let gateway = gateway.clone();
        let service = hyper::service::service_fn(move |mut req| {
            req.extensions_mut().insert(info.clone());
            gateway.clone().call(req)
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(conn.into_owned()); // its error concerns that client only: dropped
    }
}
