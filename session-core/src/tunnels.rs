//! Closing WebSocket tunnels whose session ends.
//!
//! [`Tunnels`] registers every tunnel opened with a session under its token hash and listens
//! to the session store's [`Revocations`]: a revocation (made on this gateway, or with Redis
//! heard from another replica) closes the matching tunnels at once, whichever store is in use.
//! A [`Revocation::Resync`] (the Redis channel came back after a gap) checks every open
//! tunnel's session in the store again.
//!
//! `Tunnels` is also the layer ([`WatchTunnels`]) that hands route-core's proxy the hook to
//! register a tunnel with; it goes anywhere before the proxy. The proxy registers a tunnel only
//! once the upgrade succeeded, with the [`Credential`] and [`Identity`] the session layer left
//! in the request's extensions. A tunnel opened with an identity that expires on its own (a
//! JWT, [`Identity::with_expiry`]) is closed at that instant instead; one opened with a
//! webhook's answer ([`Identity::without_session`]) has nothing to watch.

use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use dashmap::DashMap;
use http::Request;
use route_core::proxy::{TunnelClose, TunnelHook};
use tokio::sync::watch;
use tower_layer::Layer;
use tower_service::Service;

use crate::{Credential, Identity, Revocation, Revocations, SessionStore, TokenHash};

/// Open WebSocket tunnels by the token hash of their session; revocations close them.
#[derive(Clone)]
pub struct Tunnels {
    inner: Arc<TunnelRegistry>,
}

struct TunnelRegistry {
    store: Arc<dyn SessionStore>,
    open: DashMap<TokenHash, Slot>,
}

struct Slot {
    user_id: Arc<str>,
    close: watch::Sender<bool>,
}

impl Tunnels {
    /// A registry that closes tunnels on `revocations` (the session store's: every store
    /// reports its revocations there) and checks sessions again in `store`.
    pub fn new(store: Arc<dyn SessionStore>, revocations: &Revocations) -> Tunnels {
        let inner = Arc::new(TunnelRegistry {
            store,
            open: DashMap::new(),
        });
        let weak = Arc::downgrade(&inner);
        revocations.listen(move |r| {
            if let Some(inner) = weak.upgrade() {
                Tunnels { inner }.on_revocation(r);
            }
        });
        Tunnels { inner }
    }

    /// Number of sessions with at least one open tunnel.
    pub fn sessions(&self) -> usize {
        self.inner.open.len()
    }

    /// The request extension that registers a tunnel when the proxy opens one.
    pub fn hook(&self) -> TunnelHook {
        // A strong reference: the request path keeps the registry alive.
        let tunnels = self.clone();
        TunnelHook::new(move |ext| tunnels.close_for(ext))
    }

    /// How the tunnel of a request with these extensions ends: at its session's revocation, at
    /// its credential's expiry, or (a webhook's answer) only when either side closes it.
    fn close_for(&self, ext: &http::Extensions) -> Option<TunnelClose> {
        let identity = ext.get::<Identity>().filter(|i| i.is_authenticated())?;
        if let Some(at) = identity.expires_at() {
            return Some(close_at(at));
        }
        if !identity.is_session() {
            return None;
        }
        let credential = ext.get::<Credential>()?;
        Some(self.watch(credential.token.hash(), identity.user_id.clone()))
    }

    /// A future that completes when the session `id` is revoked. The session is checked once
    /// more in the store, so a revocation that landed between the request's lookup and this
    /// registration still closes the tunnel.
    pub fn watch(&self, id: TokenHash, user_id: Arc<str>) -> TunnelClose {
        let rx = self
            .inner
            .open
            .entry(id)
            .or_insert_with(|| Slot {
                user_id,
                close: watch::channel(false).0,
            })
            .close
            .subscribe();
        self.verify(vec![id]);
        let mut guard = Registered {
            rx: Some(rx),
            id,
            registry: Arc::downgrade(&self.inner),
        };
        Box::pin(async move {
            if let Some(rx) = guard.rx.as_mut() {
                // An error means the slot is gone (closed): end the tunnel too.
                let _ = rx.wait_for(|closed| *closed).await;
            }
        })
    }

    fn on_revocation(&self, r: &Revocation) {
        match r {
            Revocation::Session(id) => self.close(id),
            Revocation::User(user) => {
                let ids: Vec<TokenHash> = self
                    .inner
                    .open
                    .iter()
                    .filter(|e| *e.user_id == **user)
                    .map(|e| *e.key())
                    .collect();
                for id in &ids {
                    self.close(id);
                }
            }
            _ => {
                let ids: Vec<TokenHash> = self.inner.open.iter().map(|e| *e.key()).collect();
                self.verify(ids);
            }
        }
    }

    fn close(&self, id: &TokenHash) {
        if let Some((_, slot)) = self.inner.open.remove(id) {
            let n = slot.close.receiver_count();
            slot.close.send_replace(true);
            metrics::counter!("gateway_websockets_closed_on_revocation_total").increment(n as u64);
        }
    }

    /// Checks these sessions in the store and closes the tunnels of those that are gone. When
    /// the store cannot answer, the tunnels stay (a later resync checks them again).
    fn verify(&self, ids: Vec<TokenHash>) {
        if ids.is_empty() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            for id in ids {
                if let Ok(None) = this.inner.store.resolve(&id).await {
                    this.close(&id);
                }
            }
        });
    }
}

/// A tunnel opened with a self-contained credential (a JWT) ends when the credential expires:
/// no revocation can reach it, so its `exp` is the only end the gateway can enforce.
fn close_at(at: std::time::SystemTime) -> TunnelClose {
    let left = at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    Box::pin(async move {
        tokio::time::sleep(left).await;
        metrics::counter!("gateway_websockets_closed_on_expiry_total").increment(1);
    })
}

/// One registered tunnel; unregisters on drop (the tunnel ended, or the upgrade failed).
struct Registered {
    rx: Option<watch::Receiver<bool>>,
    id: TokenHash,
    registry: Weak<TunnelRegistry>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        drop(self.rx.take());
        if let Some(inner) = self.registry.upgrade() {
            inner
                .open
                .remove_if(&self.id, |_, slot| slot.close.receiver_count() == 0);
        }
    }
}

impl<S> Layer<S> for Tunnels {
    type Service = WatchTunnels<S>;
    fn layer(&self, inner: S) -> WatchTunnels<S> {
        WatchTunnels::new(inner, self)
    }
}

/// Upgrade requests carry the [`TunnelHook`] of the tunnel registry. Other requests pass
/// untouched.
#[derive(Clone)]
pub struct WatchTunnels<S> {
    inner: S,
    hook: TunnelHook,
}

impl<S> WatchTunnels<S> {
    /// Wraps `inner`: its upgrade requests register their tunnels with `tunnels`.
    pub fn new(inner: S, tunnels: &Tunnels) -> Self {
        WatchTunnels {
            inner,
            hook: tunnels.hook(),
        }
    }
}

impl<S, B> Service<Request<B>> for WatchTunnels<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if req.headers().contains_key(http::header::UPGRADE) {
            req.extensions_mut().insert(self.hook.clone());
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::{CredentialSource, MemoryStore, Token};

    fn extensions(identity: Identity) -> http::Extensions {
        let mut ext = http::Extensions::new();
        ext.insert(identity);
        ext.insert(Credential {
            token: Token::generate(),
            source: CredentialSource::Bearer,
        });
        ext
    }

    #[tokio::test]
    async fn a_tunnel_ends_with_its_identity() {
        let store = MemoryStore::new();
        let tunnels = Tunnels::new(Arc::new(store.clone()), store.revocations());
        let alice = || Identity::new("alice", "user", ["user"]);

        // A JWT: closed at its expiry, and never registered as a session.
        let at = SystemTime::now() + Duration::from_millis(100);
        let close = tunnels.close_for(&extensions(alice().with_expiry(at)));
        let started = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(5), close.expect("an expiring tunnel"))
            .await
            .expect("closed at the expiry");
        assert!(started.elapsed() >= Duration::from_millis(80));
        assert_eq!(tunnels.sessions(), 0);

        // A webhook's answer: nothing to wait for.
        assert!(tunnels
            .close_for(&extensions(alice().without_session()))
            .is_none());

        // A session: watched in the registry (and, unknown to this store, closed by the check).
        let close = tunnels
            .close_for(&extensions(alice()))
            .expect("a session tunnel");
        tokio::time::timeout(Duration::from_secs(5), close)
            .await
            .expect("an unknown session's tunnel is closed by the store check");
    }
}
