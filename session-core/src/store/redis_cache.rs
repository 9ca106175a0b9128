//! [`CachingResolver`]: a small local cache in front of a [`RedisStore`], kept honest by the
//! revocation channel (feature `redis`).
//!
//! # What it guarantees
//!
//! - **Revocation beats the cache.** Every revocation is published on `<prefix>:revocations`;
//!   each replica subscribes and drops the matching entries as the message arrives (a session
//!   hash, or every entry of a user). Revocations made in this process drop them before the
//!   revoking call returns. A lookup that raced with a revocation never puts its (older) answer
//!   into the cache.
//! - **No channel, no cache.** The cache is used only while the subscription is up and
//!   answering a heartbeat (`PING` on the subscription connection every
//!   [`CacheConfig::heartbeat`], answered within [`CacheConfig::heartbeat_timeout`]). When the
//!   channel drops, stalls or reconnects, the whole cache is dropped and every request with a
//!   token goes to Redis until the channel is back: a revocation missed during a gap can never
//!   be served from the cache. So while Redis is down or stalled, every request with a token
//!   fails closed ([`ResolveError::Unavailable`], a 503) within about the command timeout,
//!   cached or not; a stall is noticed within `heartbeat` + `heartbeat_timeout` (400 ms by
//!   default), and until then cached sessions are still served (no revocation can take effect
//!   while Redis does not answer).
//! - **Bounded.** Entries live at most [`CacheConfig::ttl`] and never past the session's own
//!   expiry; when [`CacheConfig::capacity`] entries are held, the cache is emptied before the
//!   next insert (it is only a cache). Unknown tokens are not cached.
//! - **Reconnection is automatic**, with a backoff from 50 ms to 250 ms (short: after a
//!   Sentinel failover the cache and readiness come back within that of the new master). On every (re)subscription
//!   listeners of [`Revocations`](super::Revocations) get [`Revocation::Resync`].
//!
//! Sliding expiry: a cache hit does not touch Redis, so a session in active use has its expiry
//! pushed on the next miss, at most [`CacheConfig::ttl`] later.

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use dashmap::DashMap;
use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};

use super::redis::RedisStore;
use super::redis_conn::RedisConn;
use super::redis_record::{now_ms, Found};
use super::revocations::Revocation;
use crate::identity::Identity;
use crate::resolver::{ResolveError, ResolveRequest, Resolver};
use crate::token::TokenHash;
use crate::BoxFuture;

/// The histogram of how long revocations took to arrive here: from the publish time the
/// message carries (the Redis server's clock, stamped by the revoking script) to the moment
/// this replica dropped its cached copy, in seconds. Messages without a time (another
/// service's, an older replica's) are not counted.
pub const PROPAGATION_METRIC: &str = "gateway_revocation_propagation_seconds";

/// Settings of a [`CachingResolver`].
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// How long a resolved session is served from the cache (default 5 s).
    pub ttl: Duration,
    /// The most cached sessions (default 100,000); 0 turns the cache off (every request goes
    /// to Redis; the channel still runs, for readiness and revocation listeners).
    pub capacity: usize,
    /// How often the subscription connection is pinged (default 100 ms).
    pub heartbeat: Duration,
    /// How long a heartbeat may go unanswered before the channel counts as down and the cache
    /// is turned off (default 300 ms; at most the store's command timeout is used).
    pub heartbeat_timeout: Duration,
    /// Sliding expiry: a lookup in Redis also pushes the session's expiry to now + this.
    pub slide: Option<Duration>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl: Duration::from_secs(5),
            capacity: 100_000,
            heartbeat: Duration::from_millis(100),
            heartbeat_timeout: Duration::from_millis(300),
            slide: None,
        }
    }
}

/// A [`Resolver`] over a [`RedisStore`] with a local cache that revocations clear at once (see
/// the module docs). Cloning is cheap; clones share the cache. The subscription task stops
/// when the last clone is dropped.
#[derive(Clone)]
pub struct CachingResolver {
    inner: Arc<CacheState>,
}

struct CacheState {
    store: RedisStore,
    map: DashMap<TokenHash, Entry>,
    cfg: CacheConfig,
    /// True while the subscription is up and its heartbeat answered.
    live: AtomicBool,
    /// Bumped by every event that may make a cached answer stale (a revocation, a link change).
    seq: AtomicU64,
    task: parking_lot::Mutex<Option<tokio::task::AbortHandle>>,
}

struct Entry {
    identity: Identity,
    until: Instant,
}

impl Drop for CacheState {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().take() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for CachingResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachingResolver")
            .field("entries", &self.inner.map.len())
            .field("connected", &self.is_connected())
            .field("config", &self.inner.cfg)
            .finish()
    }
}

impl CachingResolver {
    /// A resolver over `store`; starts the subscription task (must be called within a tokio
    /// runtime) and listens to the store's local revocations.
    pub fn new(store: RedisStore, cfg: CacheConfig) -> CachingResolver {
        let inner = Arc::new(CacheState {
            store: store.clone(),
            map: DashMap::new(),
            cfg,
            live: AtomicBool::new(false),
            seq: AtomicU64::new(0),
            task: parking_lot::Mutex::new(None),
        });
        let weak = Arc::downgrade(&inner);
        store.revocations().listen(move |r| {
            if let Some(inner) = weak.upgrade() {
                inner.forget(r);
            }
        });
        let task = tokio::spawn(subscribe(Arc::downgrade(&inner)));
        *inner.task.lock() = Some(task.abort_handle());
        CachingResolver { inner }
    }

    /// True while the revocation channel is subscribed and answering its heartbeat: Redis is
    /// reachable and the cache may be used. Readiness checks report it.
    pub fn is_connected(&self) -> bool {
        self.inner.live.load(Ordering::SeqCst)
    }

    /// Number of cached sessions.
    pub fn cached(&self) -> usize {
        self.inner.map.len()
    }

    /// The store behind the cache.
    pub fn store(&self) -> &RedisStore {
        &self.inner.store
    }
}

impl CacheState {
    /// Drops what `r` makes stale. The sequence is bumped first, so that a lookup in flight
    /// never caches an answer read before the revocation.
    fn forget(&self, r: &Revocation) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        match r {
            Revocation::Session(id) => {
                self.map.remove(id);
            }
            Revocation::User(user) => self.map.retain(|_, e| *e.identity.user_id != **user),
            _ => self.map.clear(),
        }
    }

    fn set_live(&self, live: bool) {
        if !live {
            self.live.store(false, Ordering::SeqCst);
        }
        self.seq.fetch_add(1, Ordering::SeqCst);
        self.map.clear();
        if live {
            self.live.store(true, Ordering::SeqCst);
        }
    }

    fn insert(&self, id: TokenHash, found: &Found, seq: u64) {
        let left = Duration::from_millis(found.expires_ms.saturating_sub(now_ms()));
        let ttl = self.cfg.ttl.min(left);
        if ttl.is_zero() {
            return;
        }
        if self.map.len() >= self.cfg.capacity {
            self.map.clear();
        }
        self.map.insert(
            id,
            Entry {
                identity: found.identity.clone(),
                until: Instant::now() + ttl,
            },
        );
        // A revocation or link change after the lookup began: the answer may be stale. The
        // revoker bumps `seq` before it removes entries, so either it removed this one or this
        // check sees the bump.
        if self.seq.load(Ordering::SeqCst) != seq || !self.live.load(Ordering::SeqCst) {
            self.map.remove(&id);
        }
    }
}

impl Resolver for CachingResolver {
    fn resolve<'a>(
        &'a self,
        request: &'a ResolveRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<Identity>, ResolveError>> {
        Box::pin(async move {
            let Some(token) = request.token() else {
                return Ok(None);
            };
            let inner = &self.inner;
            let id = token.hash();
            let seq = inner.seq.load(Ordering::SeqCst);
            let live = inner.live.load(Ordering::SeqCst);
            // An explained request reads the session without sliding it.
            let slide = inner.cfg.slide.filter(|_| !request.is_dry_run());
            let found = inner.store.lookup(&id, slide).await?;
            Ok(found.map(|f| {
                if live && inner.cfg.capacity > 0 {
                    inner.insert(id, &f, seq);
                }
                f.identity
            }))
        })
    }

    fn resolve_now(
        &self,
        request: &ResolveRequest<'_>,
    ) -> Option<Result<Option<Identity>, ResolveError>> {
        let Some(token) = request.token() else {
            return Some(Ok(None));
        };
        let inner = &self.inner;
        if !inner.live.load(Ordering::SeqCst) {
            return None;
        }
        let id = token.hash();
        let entry = inner.map.get(&id)?;
        let now = Instant::now();
        if entry.until > now {
            return Some(Ok(Some(entry.identity.clone())));
        }
        drop(entry);
        inner.map.remove_if(&id, |_, e| e.until <= now);
        None
    }
}

/// The longest wait between two subscription attempts. Each attempt is one connection (and,
/// with Sentinel, one question to the Sentinels): cheap enough to make four times a second
/// while Redis is away, and it bounds how long readiness lags behind a recovered Redis.
const MAX_BACKOFF: Duration = Duration::from_millis(250);

/// The subscription task: (re)subscribes with a backoff, relays messages to the store's
/// listeners, pings, and turns the cache off whenever the link is not known to be up.
async fn subscribe(weak: Weak<CacheState>) {
    let Some((conn, channel, timeout, heartbeat, heartbeat_timeout)) = weak.upgrade().map(|i| {
        (
            i.store.connection().clone(),
            i.store.channel().to_owned(),
            i.store.command_timeout(),
            i.cfg.heartbeat,
            i.cfg.heartbeat_timeout.min(i.store.command_timeout()),
        )
    }) else {
        return;
    };
    let mut backoff = Duration::from_millis(50);
    let mut was_up = false;
    loop {
        match weak.upgrade() {
            Some(inner) => inner.set_live(false),
            None => return,
        }
        match connect(&conn, &channel, timeout).await {
            Ok((mut sink, mut stream)) => {
                backoff = Duration::from_millis(50);
                let Some(inner) = weak.upgrade() else { return };
                // The command connection may still be waiting out a reconnect backoff: bring it
                // up too before the cache (and readiness) turns on.
                if let Err(e) = inner.store.ping().await {
                    tracing::debug!(error = %e, "Redis commands not answered yet; retrying");
                    drop(inner);
                    tokio::time::sleep(backoff).await;
                    continue;
                }
                // A restarted Redis has an empty script cache: load the scripts now rather
                // than in the first requests' command timeouts. Commands still load a missing
                // script themselves, so a failure here only costs those round trips later.
                if let Err(e) = inner.store.load_scripts().await {
                    tracing::warn!(error = %e, "cannot preload the session scripts; commands will load them");
                }
                inner.set_live(true);
                inner.store.revocations().notify(&Revocation::Resync);
                tracing::info!(%channel, "revocation channel subscribed; local session cache on");
                was_up = true;
                drop(inner);
                let why = pump(&weak, &mut sink, &mut stream, heartbeat, heartbeat_timeout).await;
                if let Some(inner) = weak.upgrade() {
                    inner.set_live(false);
                    tracing::warn!(%channel, reason = why, "revocation channel lost; local session cache off, requests with a token go to Redis");
                }
            }
            Err(e) => {
                if was_up {
                    tracing::warn!(%channel, error = %e, "cannot subscribe to the revocation channel; retrying");
                    was_up = false;
                } else {
                    tracing::debug!(%channel, error = %e, "cannot subscribe to the revocation channel; retrying");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn connect(
    conn: &RedisConn,
    channel: &str,
    timeout: Duration,
) -> Result<(PubSubSink, PubSubStream), String> {
    let attempt = async { Ok::<_, redis::RedisError>(conn.subscribe(channel).await?.split()) };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(pair)) => Ok(pair),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

/// Relays messages until the connection ends or a heartbeat goes unanswered.
async fn pump(
    weak: &Weak<CacheState>,
    sink: &mut PubSubSink,
    stream: &mut PubSubStream,
    heartbeat: Duration,
    timeout: Duration,
) -> &'static str {
    let mut pinger = pin!(ping_loop(sink, heartbeat, timeout));
    loop {
        tokio::select! {
            why = &mut pinger => return why,
            msg = stream.next() => {
                let Some(msg) = msg else { return "connection closed" };
                let Some(inner) = weak.upgrade() else { return "stopped" };
                let (revocation, published) = Revocation::parse_timed(msg.get_payload_bytes());
                // Listeners run here, synchronously: once `notify` returns, the cached copy is
                // gone and open WebSockets are told.
                inner.store.revocations().notify(&revocation);
                if let Some(at) = published {
                    // A publisher's clock ahead of ours reads as no delay.
                    let delay = SystemTime::now().duration_since(at).unwrap_or_default();
                    metrics::histogram!(PROPAGATION_METRIC).record(delay.as_secs_f64());
                }
            }
        }
    }
}

async fn ping_loop(sink: &mut PubSubSink, heartbeat: Duration, timeout: Duration) -> &'static str {
    loop {
        tokio::time::sleep(heartbeat).await;
        match tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return "heartbeat failed",
            Err(_) => return "heartbeat unanswered",
        }
    }
}
