//! Sessions in Redis (`[sessions] store = "redis"`): the store, the local cache, readiness, and
//! closing WebSockets whose session is revoked.
//!
//! - The URL comes from the environment variable named by `sessions.redis_url_env` (default
//!   `GATEWAY_REDIS_URL`), never from the TOML, and is never logged.
//! - Requests resolve through session-core's `CachingResolver`: a local cache that every
//!   replica's revocations clear through `<prefix>:revocations`, turned off while that channel
//!   is down. Redis down or stalled: requests with a token get 503 within about the command
//!   timeout; anonymous requests do not touch Redis.
//! - `/readyz` answers 503 while the revocation channel is down (Redis unreachable).
//! - [`Tunnels`]: every WebSocket tunnel opened with a session is registered under its token
//!   hash; a revocation (made here or heard from another replica) closes the matching tunnels.
//!   After the channel comes back from a gap, every open tunnel's session is checked again in
//!   Redis. Tunnels already open are not closed just because Redis is unreachable.

use std::num::NonZeroUsize;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use dashmap::DashMap;
use http::Request;
use route_core::proxy::{TunnelClose, TunnelHook};
use session_core::{
    CacheConfig, CachingResolver, Credential, Identity, RedisConfig, RedisStore, Resolver,
    Revocation, SessionStore, TokenHash,
};
use tokio::sync::watch;
use tower::Service;

use crate::config::RedisSettings;

/// Why Redis sessions could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisSetupError {
    /// The environment variable that should hold the URL is not set or empty.
    #[error("sessions.store = \"redis\": the environment variable {0} (sessions.redis_url_env) holds no Redis URL")]
    MissingUrl(String),
    /// The URL could not be used (the message never contains the URL).
    #[error("sessions.store = \"redis\": {0}")]
    Store(String),
}

/// The Redis session parts of a running gateway.
#[derive(Clone)]
pub struct RedisSessions {
    store: RedisStore,
    resolver: CachingResolver,
    tunnels: Tunnels,
}

impl std::fmt::Debug for RedisSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessions")
            .field("resolver", &self.resolver)
            .finish_non_exhaustive()
    }
}

impl RedisSessions {
    /// Reads the URL from the environment and starts the store (at most `max_per_user` live
    /// sessions per user), the cache and the revocation subscription. Does not wait for Redis:
    /// a gateway starts (not ready) while Redis is down.
    pub fn start(
        settings: &RedisSettings,
        slide: Option<Duration>,
        max_per_user: NonZeroUsize,
    ) -> Result<RedisSessions, RedisSetupError> {
        let url = std::env::var(&settings.url_env)
            .ok()
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| RedisSetupError::MissingUrl(settings.url_env.clone()))?;
        let store = RedisStore::open(
            url.trim(),
            RedisConfig {
                prefix: settings.prefix.clone(),
                command_timeout: settings.timeout,
                max_per_user,
            },
        )
        .map_err(|e| RedisSetupError::Store(e.to_string()))?;
        let resolver = CachingResolver::new(
            store.clone(),
            CacheConfig {
                ttl: settings.cache_ttl,
                capacity: settings.cache_capacity,
                slide,
                ..CacheConfig::default()
            },
        );
        let tunnels = Tunnels::new(store.clone());
        tracing::info!(
            url_env = %settings.url_env,
            prefix = %settings.prefix,
            timeout_ms = settings.timeout.as_millis() as u64,
            cache_ttl_ms = settings.cache_ttl.as_millis() as u64,
            cache_capacity = settings.cache_capacity,
            "sessions in Redis"
        );
        Ok(RedisSessions {
            store,
            resolver,
            tunnels,
        })
    }

    /// The session store.
    pub fn store(&self) -> Arc<dyn SessionStore> {
        Arc::new(self.store.clone())
    }

    /// The request path's resolver (the local cache in front of Redis).
    pub fn resolver(&self) -> Arc<dyn Resolver> {
        Arc::new(self.resolver.clone())
    }

    /// `/readyz`'s check: `Err` with a reason while Redis is unreachable.
    pub fn readiness(&self) -> crate::admin::Readiness {
        let resolver = self.resolver.clone();
        Arc::new(move || {
            if resolver.is_connected() {
                Ok(())
            } else {
                Err("redis unreachable")
            }
        })
    }

    /// The WebSocket tunnel registry.
    pub fn tunnels(&self) -> &Tunnels {
        &self.tunnels
    }
}

/// Open WebSocket tunnels by the token hash of their session; revocations close them.
#[derive(Clone)]
pub struct Tunnels {
    inner: Arc<TunnelsInner>,
}

struct TunnelsInner {
    store: RedisStore,
    open: DashMap<TokenHash, Slot>,
}

struct Slot {
    user_id: Arc<str>,
    close: watch::Sender<bool>,
}

impl Tunnels {
    /// A registry that listens to `store`'s revocations.
    pub fn new(store: RedisStore) -> Tunnels {
        let inner = Arc::new(TunnelsInner {
            store: store.clone(),
            open: DashMap::new(),
        });
        let weak = Arc::downgrade(&inner);
        store.revocations().listen(move |r| {
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
        TunnelHook::new(move |ext| {
            let credential = ext.get::<Credential>()?;
            let identity = ext.get::<Identity>().filter(|i| i.is_authenticated())?;
            Some(tunnels.watch(credential.token.hash(), identity.user_id.clone()))
        })
    }

    /// A future that completes when the session `id` is revoked. The session is checked once
    /// more in Redis, so a revocation that landed between the request's lookup and this
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

    /// Checks these sessions in Redis and closes the tunnels of those that are gone. When
    /// Redis cannot answer, the tunnels stay (a later resync checks them again).
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

/// One registered tunnel; unregisters on drop (the tunnel ended, or the upgrade failed).
struct Registered {
    rx: Option<watch::Receiver<bool>>,
    id: TokenHash,
    registry: Weak<TunnelsInner>,
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

/// Wraps the whole request path: WebSocket upgrade requests carry the [`TunnelHook`] of the
/// Redis tunnel registry, when there is one. Other requests pass untouched.
#[derive(Clone)]
pub struct WatchTunnels<S> {
    inner: S,
    hook: Option<TunnelHook>,
}

impl<S> WatchTunnels<S> {
    /// Wraps `inner`; with `redis` = `None` it only passes requests on.
    pub fn new(inner: S, redis: Option<&RedisSessions>) -> Self {
        WatchTunnels {
            inner,
            hook: redis.map(|r| r.tunnels().hook()),
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
        if let Some(hook) = &self.hook {
            if req.headers().contains_key(http::header::UPGRADE) {
                req.extensions_mut().insert(hook.clone());
            }
        }
        self.inner.call(req)
    }
}
