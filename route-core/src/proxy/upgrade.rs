//! The WebSocket path: a dedicated, unpooled HTTP/1.1 connection per upgrade request.
//!
//! A tunnel can be closed from outside: a [`TunnelHook`] in the request's extensions is asked,
//! when the upgrade is proxied, for a future; once the tunnel is up, it ends (both connections
//! are closed) as soon as that future completes. The gateway uses it to close WebSockets whose
//! session is revoked.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::header::{CONNECTION, UPGRADE};
use http::{Request, Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tower_service::Service;

use super::service::{RouteUpstream, UPGRADE_TOKEN, WEBSOCKET};
use crate::hop::strip_hop_by_hop;
use crate::{Body, Rejection};

/// A future that closes a WebSocket tunnel when it completes.
pub type TunnelClose = Pin<Box<dyn Future<Output = ()> + Send>>;

type HookFn = dyn Fn(&http::Extensions) -> Option<TunnelClose> + Send + Sync;

/// A request extension for WebSocket upgrades: the proxy calls it with the request's extensions
/// (the session layer's credential and identity are there) just before it tunnels the upgrade.
/// The returned future, if any, closes the tunnel when it completes; it is dropped when the
/// tunnel ends or the upgrade fails.
#[derive(Clone)]
pub struct TunnelHook(Arc<HookFn>);

impl TunnelHook {
    /// Wraps the callback.
    pub fn new(
        hook: impl Fn(&http::Extensions) -> Option<TunnelClose> + Send + Sync + 'static,
    ) -> Self {
        TunnelHook(Arc::new(hook))
    }

    /// The close future for a request with these extensions, if the hook gives one.
    pub(super) fn watch(ext: &http::Extensions) -> Option<TunnelClose> {
        ext.get::<TunnelHook>().and_then(|h| (h.0)(ext))
    }
}

impl std::fmt::Debug for TunnelHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TunnelHook")
    }
}

pub(super) async fn tunnel(
    inner: Arc<RouteUpstream>,
    idx: usize,
    req: Request<Body>,
    on_upgrade: Option<OnUpgrade>,
    close: Option<TunnelClose>,
) -> Response<Body> {
    // The request already has the origin form that hyper's connection-level client sends.
    let mut connector = inner.shared.connector.clone();
    let stream = match connector.call(inner.target(idx).connect_uri.clone()).await {
        Ok(s) => s,
        Err(e) => return inner.fail_error(idx, &*e, true),
    };
    let (mut sender, conn) = match hyper::client::conn::http1::Builder::new()
        .handshake(stream)
        .await
    {
        Ok(pair) => pair,
        Err(e) => return inner.fail_error(idx, &e, false),
    };
    tokio::spawn(async move {
        // Ends when the response is done (the sender is dropped below) or the tunnel closes.
        let _ = conn.with_upgrades().await;
    });
    let sent = tokio::time::timeout(inner.response_timeout, sender.send_request(req)).await;
    // Never reuse this connection: after a non-101 answer it closes once the body is relayed.
    drop(sender);
    let mut res = match sent {
        Ok(Ok(res)) => res,
        Ok(Err(e)) => return inner.fail_error(idx, &e, false),
        Err(_) => {
            return inner.fail(
                idx,
                Rejection::RESPONSE_TIMEOUT,
                false,
                &"no upgrade response in time",
            );
        }
    };
    if res.status() != StatusCode::SWITCHING_PROTOCOLS {
        return inner.relay(idx, res);
    }
    let agreed = res
        .headers()
        .get(UPGRADE)
        .is_some_and(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket"));
    let Some(downstream) = on_upgrade.filter(|_| agreed) else {
        return inner.fail(
            idx,
            Rejection::BAD_GATEWAY,
            false,
            &"101 without a usable WebSocket upgrade",
        );
    };
    let upstream = hyper::upgrade::on(&mut res);
    let route = inner.route.clone();
    let label = inner.target(idx).label.clone();
    tokio::spawn(async move {
        match (downstream.await, upstream.await) {
            (Ok(d), Ok(u)) => {
                let (mut d, mut u) = (TokioIo::new(d), TokioIo::new(u));
                let copy = tokio::io::copy_bidirectional(&mut d, &mut u);
                let copied = match close {
                    Some(close) => tokio::select! {
                        r = copy => r,
                        () = close => {
                            tracing::info!(%route, upstream = %label, "websocket tunnel closed by the gateway (session ended)");
                            return;
                        }
                    },
                    None => copy.await,
                };
                if let Err(e) = copied {
                    tracing::debug!(%route, upstream = %label, error = %e, "websocket tunnel closed");
                }
            }
            (d, u) => {
                tracing::warn!(%route, upstream = %label, client = d.is_ok(), upstream_ok = u.is_ok(), "websocket upgrade failed");
            }
        }
    });
    let (mut parts, _) = res.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.insert(CONNECTION, UPGRADE_TOKEN.clone());
    parts.headers.insert(UPGRADE, WEBSOCKET.clone());
    Response::from_parts(parts, Body::empty())
}
