//! [`RedisConn`]: one connection handle for the three deployments of
//! [`RedisTarget`](super::RedisTarget), and the pub/sub link beside it (feature `redis`).
//!
//! - **One server**: redis-rs's `ConnectionManager`, which reconnects by itself.
//! - **Sentinel**: the master the Sentinels name, asked again whenever the connection fails or
//!   the server answers `READONLY` (a master demoted by a failover). redis-rs checks that the
//!   server it connects to calls itself master (`ROLE`) before it is used, so a failover is
//!   followed without a restart: commands fail (503) while no master answers, then go to the
//!   new one.
//! - **Cluster**: redis-rs's cluster connection, which routes each command (and each script,
//!   by its first key) to the node that owns the key's slot and follows `MOVED`/`ASK`.
//!
//! Connections are made lazily, so a gateway starts while Redis is down. No error message
//! contains a password.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline,
    RedisConnectionInfo, RedisError, RedisFuture, RedisResult, Value,
};

use super::redis_target::{ClusterTarget, RedisAuth, RedisNode, RedisTarget, SentinelTarget};
use super::StoreError;

/// A cheap-to-clone handle that sends commands to the right Redis server of a
/// [`RedisTarget`]. It implements redis-rs's [`ConnectionLike`], so redis-rs commands, pipelines
/// and scripts run on it as on any redis-rs connection; other stores (cert-core's
/// `RedisCertStore`) can share it.
///
/// A pipeline must touch keys of one slot in Cluster mode (redis-rs sends it to one node).
#[derive(Clone)]
pub struct RedisConn {
    inner: Conn,
}

#[derive(Clone)]
enum Conn {
    Single {
        // Boxed: a client holds the whole connection info, and clones of the handle are
        // made per command.
        client: Arc<Client>,
        manager: ConnectionManager,
    },
    Sentinel(Arc<SentinelConn>),
    Cluster(Arc<ClusterConn>),
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.inner {
            Conn::Single { .. } => "single",
            Conn::Sentinel(_) => "sentinel",
            Conn::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisConn").field("kind", &kind).finish()
    }
}

impl RedisConn {
    /// A handle for `target`, every connection attempt and every answer bounded by `timeout`.
    /// Connects lazily. Must be called within a tokio runtime. Fails only on a target that
    /// cannot be used (the message never contains a password).
    pub fn open(target: &RedisTarget, timeout: Duration) -> Result<RedisConn, StoreError> {
        let inner = match target {
            RedisTarget::Single(url) => {
                let client = Client::open(url.as_str()).map_err(|e| {
                    StoreError::Unavailable(format!("invalid Redis URL ({:?})", e.kind()))
                })?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    // Few, quick retries: requests wait at most `timeout` anyway, and every
                    // later command starts a new attempt.
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500));
                let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)
                    .map_err(|e| {
                        StoreError::Unavailable(format!("cannot set up the Redis connection: {e}"))
                    })?;
                Conn::Single {
                    client: Arc::new(client),
                    manager,
                }
            }
            RedisTarget::Sentinel(s) => Conn::Sentinel(Arc::new(SentinelConn::new(s, timeout)?)),
            RedisTarget::Cluster(c) => Conn::Cluster(Arc::new(ClusterConn::new(c, timeout)?)),
        };
        Ok(RedisConn { inner })
    }

    /// True for a Redis Cluster: multi-key work must be split by slot.
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner, Conn::Cluster(_))
    }

    /// True for a Sentinel-watched master.
    pub fn is_sentinel(&self) -> bool {
        matches!(self.inner, Conn::Sentinel(_))
    }

    /// A new pub/sub connection subscribed to `channel`: to the server, to the current master
    /// (a Sentinel target; PUBLISH reaches replicas too, so a demoted master keeps hearing the
    /// messages), or to the first seed node that answers (a Cluster broadcasts PUBLISH to every
    /// node, so any node hears every message).
    pub(crate) async fn subscribe(&self, channel: &str) -> RedisResult<redis::aio::PubSub> {
        match &self.inner {
            Conn::Single { client, .. } => {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(channel).await?;
                Ok(pubsub)
            }
            Conn::Sentinel(s) => {
                let client = s.master_client().await?;
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(channel).await?;
                Ok(pubsub)
            }
            Conn::Cluster(c) => c.subscribe(channel).await,
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.inner {
            Conn::Single { manager, .. } => manager.req_packed_command(cmd),
            Conn::Sentinel(s) => {
                let s = s.clone();
                Box::pin(async move {
                    let deadline = s.deadline();
                    let (generation, mut conn) = s.timed(deadline, s.connection()).await?;
                    let result = s.timed(deadline, conn.req_packed_command(cmd)).await;
                    s.check(generation, result.as_ref().err());
                    result
                })
            }
            Conn::Cluster(c) => {
                let c = c.clone();
                Box::pin(async move { c.connection().await?.req_packed_command(cmd).await })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.inner {
            Conn::Single { manager, .. } => manager.req_packed_commands(pipeline, offset, count),
            Conn::Sentinel(s) => {
                let s = s.clone();
                Box::pin(async move {
                    let deadline = s.deadline();
                    let (generation, mut conn) = s.timed(deadline, s.connection()).await?;
                    let result = s
                        .timed(deadline, conn.req_packed_commands(pipeline, offset, count))
                        .await;
                    s.check(generation, result.as_ref().err());
                    result
                })
            }
            Conn::Cluster(c) => {
                let c = c.clone();
                Box::pin(async move {
                    c.connection()
                        .await?
                        .req_packed_commands(pipeline, offset, count)
                        .await
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match &self.inner {
            Conn::Single { manager, .. } => manager.get_db(),
            Conn::Sentinel(s) => s.db,
            Conn::Cluster(_) => 0,
        }
    }
}

/// The connection info for `node`, with `auth` and `db`. Built through a URL without
/// credentials so that redis-rs reads the TLS form (`rediss://`) itself.
fn node_info(
    node: &RedisNode,
    tls: bool,
    auth: &RedisAuth,
    db: i64,
) -> RedisResult<ConnectionInfo> {
    let scheme = if tls { "rediss" } else { "redis" };
    let host = if node.host.contains(':') {
        format!("[{}]", node.host)
    } else {
        node.host.clone()
    };
    let info = format!("{scheme}://{host}:{}", node.port).into_connection_info()?;
    Ok(info.set_redis_settings(redis_settings(auth, db)))
}

fn redis_settings(auth: &RedisAuth, db: i64) -> RedisConnectionInfo {
    let mut settings = RedisConnectionInfo::default().set_db(db);
    if let Some(u) = &auth.username {
        settings = settings.set_username(u);
    }
    if let Some(p) = &auth.password {
        settings = settings.set_password(p);
    }
    settings
}

fn unusable(what: &str, e: &RedisError) -> StoreError {
    StoreError::Unavailable(format!("{what}: {:?}", e.kind()))
}

/// The master of a Sentinel target, asked for again after a failure.
struct SentinelConn {
    sentinel: tokio::sync::Mutex<Sentinel>,
    master_name: String,
    master: SentinelNodeConnectionInfo,
    db: i64,
    config: AsyncConnectionConfig,
    timeout: Duration,
    /// The connection in use and its generation; `None` until connected or after a failure.
    current: ArcSwapOption<(u64, MultiplexedConnection)>,
    /// Serialises reconnections, so that a burst of requests after a failover makes one.
    connecting: tokio::sync::Mutex<u64>,
}

impl SentinelConn {
    fn new(target: &SentinelTarget, timeout: Duration) -> Result<SentinelConn, StoreError> {
        if target.sentinels.is_empty() {
            return Err(StoreError::Unavailable(
                "a Sentinel target needs at least one sentinel".into(),
            ));
        }
        let sentinels = target
            .sentinels
            .iter()
            .map(|n| node_info(n, target.tls, &target.sentinel_auth, 0))
            .collect::<RedisResult<Vec<_>>>()
            .map_err(|e| unusable("a sentinel address cannot be used", &e))?;
        let sentinel = Sentinel::build(sentinels)
            .map_err(|e| unusable("cannot set up the Sentinel client", &e))?;
        let mut master = SentinelNodeConnectionInfo::default()
            .set_redis_connection_info(redis_settings(&target.master_auth, target.db));
        if target.tls {
            master = master.set_tls_mode(redis::TlsMode::Secure);
        }
        Ok(SentinelConn {
            sentinel: tokio::sync::Mutex::new(sentinel),
            master_name: target.master_name.clone(),
            master,
            db: target.db,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout)),
            timeout,
            current: ArcSwapOption::empty(),
            connecting: tokio::sync::Mutex::new(0),
        })
    }

    /// When a command must have its answer: a little before the store's own timeout, so that
    /// a master that stopped answering (frozen, partitioned) is noticed here, and dropped, before
    /// the caller gives up on the command. Otherwise the caller's timeout would cancel the
    /// command first, every time, and the dead connection would be used forever.
    fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.timeout.mul_f64(0.9)
    }

    async fn timed<T>(
        &self,
        deadline: tokio::time::Instant,
        call: impl std::future::Future<Output = RedisResult<T>>,
    ) -> RedisResult<T> {
        match tokio::time::timeout_at(deadline, call).await {
            Ok(r) => r,
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the Redis master did not answer in time",
            ))),
        }
    }

    /// A client for the master the Sentinels name now (checked with `ROLE`).
    async fn master_client(&self) -> RedisResult<Client> {
        let ask = async {
            let mut sentinel = self.sentinel.lock().await;
            sentinel
                .async_master_for(&self.master_name, Some(&self.master))
                .await
        };
        match tokio::time::timeout(self.timeout, ask).await {
            Ok(r) => r,
            Err(_) => Err(RedisError::from((
                redis::ErrorKind::Io,
                "no Sentinel named a master in time",
            ))),
        }
    }

    /// The current master connection, connecting first if there is none.
    async fn connection(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(c) = self.current.load_full() {
            return Ok((c.0, c.1.clone()));
        }
        let mut generation = self.connecting.lock().await;
        // Another caller may have connected while this one waited.
        if let Some(c) = self.current.load_full() {
            return Ok((c.0, c.1.clone()));
        }
        let client = self.master_client().await?;
        let conn = client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        *generation += 1;
        self.current
            .store(Some(Arc::new((*generation, conn.clone()))));
        tracing::info!(master = %self.master_name, "connected to the Redis master the Sentinels name");
        Ok((*generation, conn))
    }

    /// Drops the connection of `generation` after an error that means it no longer reaches a
    /// working master, so the next command asks the Sentinels again.
    fn check(&self, generation: u64, error: Option<&RedisError>) {
        let Some(e) = error else { return };
        let stale = e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
            || e.is_unrecoverable_error()
            || matches!(
                e.kind(),
                redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
                    | redis::ErrorKind::Server(redis::ServerErrorKind::MasterDown)
            );
        if !stale {
            return;
        }
        let cur = self.current.load();
        if cur.as_ref().is_some_and(|c| c.0 == generation) {
            self.current.store(None);
            tracing::warn!(master = %self.master_name, error = %e, "lost the Redis master; asking the Sentinels again");
        }
    }
}

/// A Redis Cluster connection, made on first use.
struct ClusterConn {
    client: ClusterClient,
    seeds: Vec<ConnectionInfo>,
    conn: tokio::sync::OnceCell<ClusterConnection>,
}

impl ClusterConn {
    fn new(target: &ClusterTarget, timeout: Duration) -> Result<ClusterConn, StoreError> {
        if target.nodes.is_empty() {
            return Err(StoreError::Unavailable(
                "a Cluster target needs at least one node".into(),
            ));
        }
        let seeds = target
            .nodes
            .iter()
            .map(|n| node_info(n, target.tls, &target.auth, 0))
            .collect::<RedisResult<Vec<_>>>()
            .map_err(|e| unusable("a cluster node address cannot be used", &e))?;
        let client = ClusterClient::builder(seeds.clone())
            .connection_timeout(timeout)
            .response_timeout(timeout)
            // Every call is bounded by the store's command timeout anyway; a few retries
            // follow a MOVED after a failover within it.
            .retries(2)
            .min_retry_wait(10)
            .max_retry_wait(100)
            .build()
            .map_err(|e| unusable("cannot set up the Cluster client", &e))?;
        Ok(ClusterConn {
            client,
            seeds,
            conn: tokio::sync::OnceCell::new(),
        })
    }

    async fn connection(&self) -> RedisResult<ClusterConnection> {
        self.conn
            .get_or_try_init(|| self.client.get_async_connection())
            .await
            .cloned()
    }

    async fn subscribe(&self, channel: &str) -> RedisResult<redis::aio::PubSub> {
        let mut last = None;
        for seed in &self.seeds {
            let attempt = async {
                let mut pubsub = Client::open(seed.clone())?.get_async_pubsub().await?;
                pubsub.subscribe(channel).await?;
                Ok::<_, RedisError>(pubsub)
            };
            match attempt.await {
                Ok(p) => return Ok(p),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            RedisError::from((redis::ErrorKind::Io, "no cluster node to subscribe on"))
        }))
    }
}
