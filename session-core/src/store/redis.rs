//! [`RedisStore`]: sessions in Redis, shared by every replica (feature `redis`).
//!
//! # Key schema
//!
//! Every key starts with a configurable prefix (`gateway` by default, written `<prefix>`
//! below). A token is never stored: sessions are keyed by the lowercase hex SHA-256 of the
//! token's bytes (the token is the 43-character base64url string the client sends).
//!
//! | key | type | content |
//! |---|---|---|
//! | `<prefix>:session:<sha256 hex>` | hash | `user_id`, `roles` (comma-separated, in order), `default_role`, `created_at`, `expires_at` (Unix milliseconds); `variables` (a JSON object of name → value strings) only when the session has variables |
//! | `<prefix>:user:<user_id>` | sorted set | the hex hashes of the user's sessions, each scored by its creation time in Unix **microseconds** |
//! | `<prefix>:revocations` | pub/sub channel | the hex hash of a revoked session, or `user:<user_id>` when all of a user's sessions are revoked, after the publish time (`@<Unix µs> `) |
//!
//! - A session hash carries a native Redis expiry (`PEXPIREAT` = `expires_at`), so Redis
//!   removes it by itself. Sliding expiry moves `expires_at` and the key's expiry together,
//!   never backwards.
//! - The user index expires with the user's longest-lived session. Members whose session hash
//!   is gone (expired) are removed lazily: the three oldest on each create, all of them when the
//!   user's sessions are listed or revoked or the index reaches `max_per_user`.
//! - A user holds at most `max_per_user` sessions ([`RedisConfig::max_per_user`]): a create that
//!   would exceed it revokes the oldest (lowest score) first, published on the revocation
//!   channel like any revocation, in the same atomic script.
//! - Upgrading from the schema where the user index was a set: every script that reads or
//!   writes the index checks its `TYPE` first and converts a set in place (atomically, inside the
//!   script: each member still alive is scored by its `created_at` × 1000, dead ones are dropped,
//!   the expiry is kept). Sessions written before the upgrade keep resolving, and are listed,
//!   bounded and revoked like new ones.
//! - A reader also refuses a session whose `expires_at` is in the past, or whose fields break
//!   the session rules (user id and roles of visible ASCII, no `,` in a role, the default role
//!   among the roles, `variables` a JSON object of strings that passes the variable rules).
//! - A hash without `variables` (every session written before variables existed, and every
//!   session without any) resolves with no variables: nothing to migrate. A replica of an older
//!   version ignores the field, so it serves such sessions without their variables: upgrade
//!   every replica together.
//! - Times in scripts come from the Redis server's clock (`TIME`), so replicas with skewed
//!   clocks agree on expiry.
//!
//! Another service may create a session directly, in one `MULTI`/`EXEC` or script:
//!
//! ```text
//! HSET      <prefix>:session:<hex> user_id <id> roles <r1,r2> default_role <r1> created_at <ms> expires_at <ms> [variables <json object>]
//! PEXPIREAT <prefix>:session:<hex> <expires_at ms>
//! ZADD      <prefix>:user:<id> <created_at ms × 1000> <hex>
//! PEXPIREAT <prefix>:user:<id> <expires_at ms>   (only if later than the index's current expiry)
//! ```
//!
//! (such a session counts towards `max_per_user` from the gateway's next create for that user),
//! and revoke one with `DEL <prefix>:session:<hex>`, `ZREM <prefix>:user:<id> <hex>` and
//! `PUBLISH <prefix>:revocations <hex>` (without the `PUBLISH`, replicas may serve the session
//! from their local cache until the cache TTL ends). The gateway's own messages carry their
//! publish time first, `@<Unix µs> <hex>` ([`Revocation::parse_timed`]); both forms are read.
//!
//! # Failures
//!
//! Every command runs under a timeout (500 ms by default). Every Redis error, timeout or lost
//! connection is [`StoreError::Unavailable`]: callers fail closed (503). The connection
//! ([`RedisConn`]) is created lazily: a gateway starts while Redis is down and reconnects by
//! itself, following a Sentinel failover or a Cluster's slot moves.
//!
//! # Deployments
//!
//! The URL ([`RedisTarget`]) picks one server (`redis://`, `rediss://`, `redis+unix://`), a
//! master followed through Sentinel (`redis+sentinel://`) or a Redis Cluster
//! (`redis+cluster://`). The key names are the same in all three.
//!
//! - **Sentinel.** Replication is asynchronous, so a write acknowledged by a master that dies
//!   before sending it on is lost in the failover. A lost revocation would bring a session back,
//!   so revocations (and the evictions of [`RedisConfig::max_per_user`]) are acknowledged only
//!   once `WAIT` says [`RedisConfig::wait_replicas`] replicas have them (one by default with
//!   Sentinel); otherwise the call fails ([`StoreError::Unavailable`]) although the master
//!   applied it, and can be repeated. A creation waits too, so that a login answered before a
//!   failover survives it; but it fails only when it evicted a session that no replica
//!   confirmed: a new session that is lost only logs its user out (fail closed), and refusing
//!   logins whenever a replica is slow would turn a replica's trouble into an outage. Sliding
//!   expiry does not wait (a lost slide ends a session earlier).
//! - **Cluster.** Every script touches one key, so that it runs on the node owning the key's
//!   slot. A session and its user's index live on different nodes, so creating, revoking and
//!   revoking all of a user's sessions are steps, the session first: a create writes the
//!   session, then indexes it (and removes it again if indexing fails); a revocation deletes
//!   the session (and publishes), then unindexes it; revoke-all reads the index, deletes each
//!   session, then unindexes those it deleted. The bound of `max_per_user` is enforced by the
//!   create that pushes the index past it: concurrent logins of one user may hold more than
//!   the bound until the last of them has evicted (at most the number of logins in flight;
//!   the end state is within the bound). Revocations are published with plain `PUBLISH`, which
//!   a Cluster broadcasts to every node, so the subscriber may sit on any node and no single
//!   shard carries the channel. The index conversion from a set (above) is not done in
//!   Cluster mode: a set index is read and trimmed as it is.
//!
//! A URL may carry a password: it is never logged or put into an error message.
//!
//! This file holds the store's operations. Beside it: the Lua scripts (`redis_scripts`), how a
//! command runs (`redis_exec`: the script cache, `WAIT`, timeouts), the session hash as read and
//! written (`redis_record`) and the Cluster's steps (`redis_cluster_ops`).

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::redis_conn::RedisConn;
use super::redis_exec::{evalsha, Scripts};
use super::redis_record::{duration_ms, Fields, Found, NewRecord, FIELDS};
use super::redis_target::RedisTarget;
use super::revocations::{Revocation, Revocations};
use super::{SessionStore, StoreError, DEFAULT_MAX_PER_USER};
use crate::identity::Identity;
use crate::session::{NewSession, Session};
use crate::token::{Token, TokenHash};
use crate::BoxFuture;

/// Sliding expiry only writes when it moves the expiry by more than this (milliseconds).
const SLIDE_GRANULARITY_MS: u64 = 1_000;

/// Settings of a [`RedisStore`].
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// The key prefix (`<prefix>:session:<hex>`); default `gateway`.
    pub prefix: String,
    /// How long one command may take before it counts as a failure; default 500 ms. Also the
    /// connect timeout.
    pub command_timeout: Duration,
    /// The most live sessions one user holds; creating one more revokes the oldest. Default
    /// [`DEFAULT_MAX_PER_USER`] (100).
    pub max_per_user: NonZeroUsize,
    /// How many replicas must confirm a revocation (`WAIT`) before it is acknowledged (see
    /// the module docs). `None`: 1 with Sentinel, 0 (no `WAIT`) otherwise.
    pub wait_replicas: Option<usize>,
    /// How long `WAIT` may take; default 500 ms. A revocation not confirmed in time fails.
    pub wait_timeout: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            prefix: "gateway".into(),
            command_timeout: Duration::from_millis(500),
            max_per_user: DEFAULT_MAX_PER_USER,
            wait_replicas: None,
            wait_timeout: Duration::from_millis(500),
        }
    }
}

/// A [`SessionStore`] in Redis: the key schema is in the module docs.
///
/// Cloning is cheap; clones share the connection. Revocations made through this store are
/// published on `<prefix>:revocations` and reported at once to this process's
/// [`Revocations`] listeners.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<StoreConnection>,
}

struct StoreConnection {
    conn: RedisConn,
    timeout: Duration,
    /// Replicas that must confirm a revocation, and for how long to wait; `None`: no `WAIT`.
    wait: Option<(usize, Duration)>,
    max_per_user: usize,
    session_prefix: String,
    user_prefix: String,
    channel: String,
    revocations: Revocations,
    scripts: Scripts,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client holds the URL (maybe a password): it is left out.
        f.debug_struct("RedisStore")
            .field("channel", &self.inner.channel)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store for the Redis at `url`, any form of [`RedisTarget`] (see the module docs). It
    /// does not connect yet: the first command does, and a lost connection is re-established
    /// by itself.
    ///
    /// Must be called within a tokio runtime. Fails only on a malformed URL; the error never
    /// contains the URL.
    pub fn open(url: &str, config: RedisConfig) -> Result<RedisStore, StoreError> {
        RedisStore::with_target(&RedisTarget::parse(url)?, config)
    }

    /// A store for `target`, as [`RedisStore::open`].
    pub fn with_target(
        target: &RedisTarget,
        config: RedisConfig,
    ) -> Result<RedisStore, StoreError> {
        let replicas = config
            .wait_replicas
            .unwrap_or(usize::from(matches!(target, RedisTarget::Sentinel(_))));
        let slack = if replicas > 0 {
            config.wait_timeout
        } else {
            Duration::ZERO
        };
        let conn = RedisConn::open_with_slack(target, config.command_timeout, slack)?;
        let p = &config.prefix;
        Ok(RedisStore {
            inner: Arc::new(StoreConnection {
                conn,
                timeout: config.command_timeout,
                wait: (replicas > 0).then_some((replicas, config.wait_timeout)),
                max_per_user: config.max_per_user.get(),
                session_prefix: format!("{p}:session:"),
                user_prefix: format!("{p}:user:"),
                channel: format!("{p}:revocations"),
                revocations: Revocations::default(),
                scripts: Scripts::new(),
            }),
        })
    }

    /// Sends `PING`; `Ok` when Redis answered within the command timeout.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.inner.conn.clone();
        self.run("PING", async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await
        })
        .await
        .map(|_| ())
    }

    /// The listeners told about every revocation this process makes or hears of.
    pub fn revocations(&self) -> &Revocations {
        &self.inner.revocations
    }

    /// The revocation channel (`<prefix>:revocations`).
    pub fn channel(&self) -> &str {
        &self.inner.channel
    }

    /// The command timeout.
    pub fn command_timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The connection, for other stores that share this Redis (cert-core's
    /// `RedisCertStore::with_connection`).
    pub fn connection(&self) -> &RedisConn {
        &self.inner.conn
    }

    pub(super) fn session_key(&self, id: &TokenHash) -> String {
        self.session_key_hex(&id.to_hex())
    }

    pub(super) fn session_key_hex(&self, hex: &str) -> String {
        format!("{}{hex}", self.inner.session_prefix)
    }

    pub(super) fn user_key(&self, user_id: &str) -> String {
        format!("{}{}", self.inner.user_prefix, user_id)
    }

    pub(super) fn scripts(&self) -> &Scripts {
        &self.inner.scripts
    }

    pub(super) fn max_per_user(&self) -> usize {
        self.inner.max_per_user
    }

    /// Replicas that must confirm a revocation, and for how long to wait; `None`: no `WAIT`.
    pub(super) fn wait(&self) -> Option<(usize, Duration)> {
        self.inner.wait
    }

    /// The live session `id` as the request path needs it, sliding its expiry when asked:
    /// one round trip either way.
    pub(crate) async fn lookup(
        &self,
        id: &TokenHash,
        slide: Option<Duration>,
    ) -> Result<Option<Found>, StoreError> {
        Ok(self
            .fields(id, slide)
            .await?
            .and_then(|f| f.found(id).map(|(found, _)| found)))
    }

    async fn fields(
        &self,
        id: &TokenHash,
        slide: Option<Duration>,
    ) -> Result<Option<Fields>, StoreError> {
        let key = self.session_key(id);
        let raw: Vec<Option<String>> = match slide {
            None => {
                let mut cmd = redis::cmd("HMGET");
                cmd.arg(&key).arg(&FIELDS);
                self.query("HMGET", cmd).await?
            }
            Some(ttl) => {
                let script = &self.inner.scripts.resolve_slide;
                let cluster = self.inner.conn.is_cluster();
                let mut cmd = evalsha(script, &[&key]);
                cmd.arg(duration_ms(ttl))
                    .arg(SLIDE_GRANULARITY_MS)
                    .arg(if cluster {
                        ""
                    } else {
                        self.inner.user_prefix.as_str()
                    });
                let mut raw: Vec<Option<String>> = self.eval("resolve", script, cmd).await?;
                // Cluster: the script moved the session's expiry and left the user's index
                // (maybe on another node) to us.
                if raw.len() > FIELDS.len() {
                    raw.truncate(FIELDS.len());
                    if let (Some(Some(user)), Some(Some(exp))) = (raw.first(), raw.get(4)) {
                        self.extend_user(user, exp).await?;
                    }
                }
                raw
            }
        };
        Ok(Fields::from_raw(raw))
    }

    /// Cluster: pushes the user's index expiry to at least `expires_at` (ms).
    async fn extend_user(&self, user_id: &str, expires_at: &str) -> Result<(), StoreError> {
        let script = &self.inner.scripts.cluster_extend_user;
        let key = self.user_key(user_id);
        let mut cmd = evalsha(script, &[&key]);
        cmd.arg(expires_at);
        self.eval::<i64>("extend user index", script, cmd)
            .await
            .map(|_| ())
    }

    /// Publishes nothing and tells local listeners: used after every revocation attempt, even a
    /// failed one (the caller meant to end the session; dropping a cache entry or closing a
    /// WebSocket of a session that survives is harmless).
    pub(super) fn tell_local(&self, r: &Revocation) {
        self.inner.revocations.notify(r);
    }
}

impl SessionStore for RedisStore {
    fn create<'a>(
        &'a self,
        new: NewSession,
    ) -> BoxFuture<'a, Result<(Token, Session), StoreError>> {
        Box::pin(async move {
            new.validate()?;
            let token = Token::try_generate()
                .map_err(|e| StoreError::Unavailable(format!("OS random source failed: {e}")))?;
            let id = token.hash();
            let default_role = new
                .roles
                .get(new.default_role_index())
                .cloned()
                .unwrap_or_default();
            let variables = if new.variables.is_empty() {
                String::new()
            } else {
                // A map of strings always encodes; the error is only passed on.
                serde_json::to_string(&new.variables).map_err(|e| {
                    StoreError::Unavailable(format!("cannot encode the variables: {e}"))
                })?
            };
            let record = NewRecord {
                hex: id.to_hex(),
                user_id: new.user_id.clone(),
                roles: new.roles.join(","),
                default_role: default_role.clone(),
                ttl_ms: duration_ms(new.ttl).max(1),
                variables,
            };
            let (created, expires) = if self.inner.conn.is_cluster() {
                self.cluster_create(&id, &record).await?
            } else {
                self.create_atomic(&id, &record).await?
            };
            let session = Session {
                id,
                user_id: new.user_id,
                roles: new.roles,
                default_role,
                created_at: UNIX_EPOCH + Duration::from_millis(created),
                expires_at: UNIX_EPOCH + Duration::from_millis(expires),
                variables: new.variables,
            };
            Ok((token, session))
        })
    }

    fn resolve<'a>(
        &'a self,
        id: &'a TokenHash,
    ) -> BoxFuture<'a, Result<Option<Session>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .fields(id, None)
                .await?
                .and_then(|f| f.found(id).map(|(_, s)| s)))
        })
    }

    fn touch<'a>(
        &'a self,
        id: &'a TokenHash,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let script = &self.inner.scripts.touch;
            let cluster = self.inner.conn.is_cluster();
            let mut cmd = evalsha(script, &[&self.session_key(id)]);
            cmd.arg(duration_ms(ttl)).arg(if cluster {
                ""
            } else {
                self.inner.user_prefix.as_str()
            });
            let answer: Vec<String> = self.eval("touch", script, cmd).await?;
            let alive = answer.first().is_some_and(|n| n == "1");
            if alive && cluster {
                if let (Some(user), Some(exp)) = (answer.get(1), answer.get(2)) {
                    self.extend_user(user, exp).await?;
                }
            }
            Ok(alive)
        })
    }

    fn revoke<'a>(&'a self, id: &'a TokenHash) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let result = if self.inner.conn.is_cluster() {
                self.cluster_revoke(&id.to_hex()).await
            } else {
                let script = &self.inner.scripts.revoke;
                let mut cmd = evalsha(script, &[&self.session_key(id)]);
                cmd.arg(id.to_hex())
                    .arg(&self.inner.user_prefix)
                    .arg(&self.inner.channel);
                self.eval_confirmed::<i64>("revoke", Some(script), &cmd)
                    .await
                    .and_then(|(n, confirmed)| confirmed.require("revocation").map(|()| n == 1))
            };
            // Told even after a failure: the caller meant to end the session, and dropping a
            // cached copy or closing a WebSocket of a session that survives is harmless.
            self.tell_local(&Revocation::Session(*id));
            result
        })
    }

    fn revoke_user<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<usize, StoreError>> {
        Box::pin(async move {
            let result = if self.inner.conn.is_cluster() {
                self.cluster_revoke_user(user_id).await
            } else {
                let script = &self.inner.scripts.revoke_user;
                let mut cmd = evalsha(script, &[&self.user_key(user_id)]);
                cmd.arg(&self.inner.session_prefix)
                    .arg(&self.inner.channel)
                    .arg(format!("user:{user_id}"));
                self.eval_confirmed::<i64>("revoke_user", Some(script), &cmd)
                    .await
                    .and_then(|(n, confirmed)| {
                        confirmed
                            .require("revocation")
                            .map(|()| usize::try_from(n).unwrap_or(0))
                    })
            };
            self.tell_local(&Revocation::User(Arc::from(user_id)));
            result
        })
    }

    fn list_user<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Session>, StoreError>> {
        Box::pin(async move {
            let flat: Vec<String> = if self.inner.conn.is_cluster() {
                self.cluster_list_user(user_id).await?
            } else {
                let script = &self.inner.scripts.list_user;
                let mut cmd = evalsha(script, &[&self.user_key(user_id)]);
                cmd.arg(&self.inner.session_prefix);
                self.eval("list_user", script, cmd).await?
            };
            let mut out = Vec::with_capacity(flat.len() / 7);
            for chunk in flat.chunks_exact(7) {
                let Some(id) = TokenHash::from_hex(&chunk[0]) else {
                    continue;
                };
                let raw = chunk[1..]
                    .iter()
                    .map(|s| Some(s.clone()).filter(|s| !s.is_empty()))
                    .collect();
                if let Some((_, session)) = Fields::from_raw(raw).and_then(|f| f.found(&id)) {
                    out.push(session);
                }
            }
            out.sort_by_key(|s| s.created_at);
            Ok(out)
        })
    }

    fn resolve_identity<'a>(
        &'a self,
        id: &'a TokenHash,
        slide: Option<Duration>,
    ) -> BoxFuture<'a, Result<Option<Identity>, StoreError>> {
        Box::pin(async move { Ok(self.lookup(id, slide).await?.map(|f| f.identity)) })
    }
}

impl RedisStore {
    /// One server or Sentinel: the whole create, bound included, in one atomic script, and
    /// `WAIT` after it.
    async fn create_atomic(&self, id: &TokenHash, r: &NewRecord) -> Result<(u64, u64), StoreError> {
        let script = &self.inner.scripts.create;
        let mut cmd = evalsha(script, &[&self.session_key(id), &self.user_key(&r.user_id)]);
        cmd.arg(&r.hex)
            .arg(&r.user_id)
            .arg(&r.roles)
            .arg(&r.default_role)
            .arg(r.ttl_ms)
            .arg(self.inner.max_per_user)
            .arg(&self.inner.channel)
            .arg(&r.variables);
        let ((created, expires, evicted), confirmed): ((u64, u64, Vec<String>), _) =
            self.eval_confirmed("create", Some(script), &cmd).await?;
        // The script published each eviction like any revocation; this process hears of it at
        // once, as after `revoke`.
        for old in evicted.iter().filter_map(|h| TokenHash::from_hex(h)) {
            self.tell_local(&Revocation::Session(old));
        }
        if !evicted.is_empty() {
            confirmed.require("eviction of the oldest sessions beyond max_per_user")?;
        } else {
            confirmed.warn_for_new_session();
        }
        Ok((created, expires))
    }
}
