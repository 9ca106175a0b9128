//! Sessions in Redis (`[sessions] store = "redis"`): the store, the local cache, readiness, and
//! the revocations that close WebSockets.
//!
//! - The URL comes from the environment variable named by `sessions.redis_url_env` (default
//!   `GATEWAY_REDIS_URL`), never from the TOML, and is never logged.
//! - Requests resolve through session-core's `CachingResolver`: a local cache that every
//!   replica's revocations clear through `<prefix>:revocations`, turned off while that channel
//!   is down. Redis down or stalled: requests with a token get 503 within about the command
//!   timeout; anonymous requests do not touch Redis.
//! - `/readyz` answers 503 while the revocation channel is down (Redis unreachable).
//! - [`RedisSessions::revocations`] reports revocations made here or heard from another replica
//!   to [`Tunnels`](session_core::tunnels::Tunnels), which closes the matching WebSockets. After the
//!   channel comes back from a gap, every open tunnel's session is checked again in Redis.
//!   Tunnels already open are not closed just because Redis is unreachable.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use session_core::{
    CacheConfig, CachingResolver, RedisConfig, RedisStore, Resolver, Revocations, SessionStore,
};

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
                wait_replicas: settings.wait_replicas,
                wait_timeout: settings.wait_timeout,
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
        tracing::info!(
            url_env = %settings.url_env,
            prefix = %settings.prefix,
            timeout_ms = settings.timeout.as_millis() as u64,
            cache_ttl_ms = settings.cache_ttl.as_millis() as u64,
            cache_capacity = settings.cache_capacity,
            "sessions in Redis"
        );
        Ok(RedisSessions { store, resolver })
    }

    /// The Redis connection, shared with the certificate store.
    pub fn connection(&self) -> &session_core::RedisConn {
        self.store.connection()
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
                Err("redis unreachable".to_owned())
            }
        })
    }

    /// Every revocation made through this store or heard from another replica, and a
    /// [`Revocation::Resync`](session_core::Revocation::Resync) after a gap in the channel.
    pub fn revocations(&self) -> &Revocations {
        self.store.revocations()
    }
}
