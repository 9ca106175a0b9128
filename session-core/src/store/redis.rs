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
//! | `<prefix>:revocations` | pub/sub channel | the hex hash of a revoked session, or `user:<user_id>` when all of a user's sessions are revoked |
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
//! from their local cache until the cache TTL ends).
//!
//! # Failures
//!
//! Every command runs under a timeout (500 ms by default). Every Redis error, timeout or lost
//! connection is [`StoreError::Unavailable`]: callers fail closed (503). The connection is a
//! redis-rs `ConnectionManager`, created lazily: a gateway starts while Redis is down and
//! reconnects by itself.
//!
//! # URLs
//!
//! `redis://[user[:password]@]host[:port][/db]` (AUTH and ACL users), `redis+unix:///path`,
//! and `rediss://` with the `redis-tls` feature (rustls; the process must install a rustls
//! crypto provider). Redis Cluster is not supported (the scripts compute user and session
//! keys, which need not share a hash slot); Sentinel is not enabled in this build.
//! The URL may carry a password: it is never logged or put into an error message.

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script};

use super::redis_scripts::{CREATE, LIST_USER, RESOLVE_SLIDE, REVOKE, REVOKE_USER, TOUCH};
use super::revocations::{Revocation, Revocations};
use super::{SessionStore, StoreError, DEFAULT_MAX_PER_USER};
use crate::identity::{Identity, RoleHeaders};
use crate::session::{
    validate_role, validate_user_id, variable_headers, variables_of, NewSession, Session, Variables,
};
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
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            prefix: "gateway".into(),
            command_timeout: Duration::from_millis(500),
            max_per_user: DEFAULT_MAX_PER_USER,
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
    client: redis::Client,
    conn: ConnectionManager,
    timeout: Duration,
    max_per_user: usize,
    session_prefix: String,
    user_prefix: String,
    channel: String,
    revocations: Revocations,
    scripts: Scripts,
}

struct Scripts {
    create: Script,
    resolve_slide: Script,
    touch: Script,
    revoke: Script,
    revoke_user: Script,
    list_user: Script,
}

impl Scripts {
    /// Every script with its source, for [`RedisStore::load_scripts`].
    fn all(&self) -> [(&Script, &'static str); 6] {
        [
            (&self.create, CREATE),
            (&self.resolve_slide, RESOLVE_SLIDE),
            (&self.touch, TOUCH),
            (&self.revoke, REVOKE),
            (&self.revoke_user, REVOKE_USER),
            (&self.list_user, LIST_USER),
        ]
    }
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

/// One session as read for the request path: its identity and when it expires.
#[derive(Clone, Debug)]
pub(crate) struct Found {
    pub(crate) identity: Identity,
    pub(crate) expires_ms: u64,
}

impl RedisStore {
    /// A store for the Redis at `url` (see the module docs for the forms). It does not connect
    /// yet: the first command does, and a lost connection is re-established by itself.
    ///
    /// Must be called within a tokio runtime. Fails only on a malformed URL; the error never
    /// contains the URL.
    pub fn open(url: &str, config: RedisConfig) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL ({:?})", e.kind())))?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.command_timeout))
            .set_response_timeout(Some(config.command_timeout))
            // Few, quick retries: requests wait at most `command_timeout` anyway, and every
            // later command starts a new attempt.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn =
            ConnectionManager::new_lazy_with_config(client.clone(), manager).map_err(|e| {
                StoreError::Unavailable(format!("cannot set up the Redis connection: {e}"))
            })?;
        let p = &config.prefix;
        Ok(RedisStore {
            inner: Arc::new(StoreConnection {
                client,
                conn,
                timeout: config.command_timeout,
                max_per_user: config.max_per_user.get(),
                session_prefix: format!("{p}:session:"),
                user_prefix: format!("{p}:user:"),
                channel: format!("{p}:revocations"),
                revocations: Revocations::default(),
                scripts: Scripts {
                    create: Script::new(CREATE),
                    resolve_slide: Script::new(RESOLVE_SLIDE),
                    touch: Script::new(TOUCH),
                    revoke: Script::new(REVOKE),
                    revoke_user: Script::new(REVOKE_USER),
                    list_user: Script::new(LIST_USER),
                },
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

    /// Loads the store's Lua scripts into Redis's script cache, in one round trip, and returns
    /// how many it loaded.
    ///
    /// Every command runs its script by hash (`EVALSHA`). A Redis that has not seen the script
    /// (a fresh or restarted server, a failover) answers `NOSCRIPT`, and that command pays two
    /// more round trips to load and retry, inside its command timeout. The caching resolver
    /// calls this each time its connection comes up, before it reports ready, so no request
    /// pays for that.
    pub async fn load_scripts(&self) -> Result<usize, StoreError> {
        let scripts = self.inner.scripts.all();
        let mut pipe = redis::pipe();
        for (_, source) in &scripts {
            pipe.cmd("SCRIPT").arg("LOAD").arg(*source);
        }
        let mut conn = self.inner.conn.clone();
        let hashes: Vec<String> = self
            .run(
                "SCRIPT LOAD",
                async move { pipe.query_async(&mut conn).await },
            )
            .await?;
        // Redis answers each script's SHA-1: the hash `EVALSHA` sends must be that one.
        for ((script, _), hash) in scripts.iter().zip(&hashes) {
            if script.get_hash() != hash {
                return Err(StoreError::Unavailable(format!(
                    "redis SCRIPT LOAD: the server hashed a script as {hash}, not {}",
                    script.get_hash()
                )));
            }
        }
        Ok(hashes.len())
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

    pub(crate) fn client(&self) -> &redis::Client {
        &self.inner.client
    }

    fn session_key(&self, id: &TokenHash) -> String {
        format!("{}{}", self.inner.session_prefix, id.to_hex())
    }

    fn user_key(&self, user_id: &str) -> String {
        format!("{}{}", self.inner.user_prefix, user_id)
    }

    /// Runs one Redis call under the command timeout; every failure is `Unavailable`.
    async fn run<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.inner.timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError::Unavailable(format!("redis {what}: {e}"))),
            Err(_) => Err(StoreError::Unavailable(format!(
                "redis {what}: no answer within {} ms",
                self.inner.timeout.as_millis()
            ))),
        }
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
        let mut conn = self.inner.conn.clone();
        let raw: Vec<Option<String>> = match slide {
            None => {
                self.run("HMGET", async move {
                    redis::cmd("HMGET")
                        .arg(&key)
                        .arg(&FIELDS)
                        .query_async(&mut conn)
                        .await
                })
                .await?
            }
            Some(ttl) => {
                let script = &self.inner.scripts.resolve_slide;
                let mut inv = script.key(&key);
                inv.arg(duration_ms(ttl))
                    .arg(SLIDE_GRANULARITY_MS)
                    .arg(&self.inner.user_prefix);
                self.run("resolve", async move { inv.invoke_async(&mut conn).await })
                    .await?
            }
        };
        Ok(Fields::from_raw(raw))
    }

    /// Publishes nothing and tells local listeners: used after every revocation attempt, even a
    /// failed one (the caller meant to end the session; dropping a cache entry or closing a
    /// WebSocket of a session that survives is harmless).
    fn tell_local(&self, r: &Revocation) {
        self.inner.revocations.notify(r);
    }
}

/// The hash fields, in the order every script and `HMGET` returns them.
const FIELDS: [&str; 6] = [
    "user_id",
    "roles",
    "default_role",
    "created_at",
    "expires_at",
    "variables",
];

/// A session hash as read from Redis, not yet checked.
struct Fields {
    user_id: String,
    roles: String,
    default_role: String,
    created_ms: u64,
    expires_ms: u64,
    /// The JSON object; `None` for a session without variables (and every hash written before
    /// they existed).
    variables: Option<String>,
}

impl Fields {
    fn from_raw(raw: Vec<Option<String>>) -> Option<Fields> {
        let mut it = raw.into_iter();
        let user_id = it.next()??;
        let roles = it.next()??;
        let default_role = it.next()??;
        let created_ms = it
            .next()
            .flatten()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let expires_ms = it.next()??.parse().ok()?;
        let variables = it.next().flatten().filter(|v| !v.is_empty());
        Some(Fields {
            user_id,
            roles,
            default_role,
            created_ms,
            expires_ms,
            variables,
        })
    }

    /// The identity and the session record, if the fields pass the session rules and the
    /// session has not expired.
    fn found(self, id: &TokenHash) -> Option<(Found, Session)> {
        if self.expires_ms <= now_ms() {
            return None;
        }
        let valid = validate_user_id(&self.user_id).is_ok()
            && !self.roles.is_empty()
            && self.roles.split(',').all(|r| validate_role(r).is_ok());
        let variables = match self.variables.as_deref() {
            None => Some(None),
            Some(json) => serde_json::from_str::<Variables>(json)
                .ok()
                .and_then(|v| variable_headers(&v).ok()),
        };
        let role_list: Arc<[Arc<str>]> = self.roles.split(',').map(Arc::from).collect();
        let default = role_list
            .iter()
            .find(|r| ***r == *self.default_role)
            .cloned();
        let (Some(role), true, Some(variables)) = (default, valid, variables) else {
            tracing::warn!(
                session = %id.to_hex(),
                "a Redis session record breaks the session rules; refusing it"
            );
            return None;
        };
        let headers = Arc::new(RoleHeaders::build(role_list)?);
        let identity =
            Identity::with_role_headers(Arc::from(self.user_id.as_str()), role, &headers)
                .with_variable_headers(variables.clone());
        let session = Session {
            id: *id,
            user_id: self.user_id,
            roles: self.roles.split(',').map(str::to_owned).collect(),
            default_role: self.default_role,
            created_at: UNIX_EPOCH + Duration::from_millis(self.created_ms),
            expires_at: UNIX_EPOCH + Duration::from_millis(self.expires_ms),
            variables: variables_of(variables.as_ref()),
        };
        Some((
            Found {
                identity,
                expires_ms: self.expires_ms,
            },
            session,
        ))
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, duration_ms)
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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
            let hex = id.to_hex();
            let default_role = new
                .roles
                .get(new.default_role_index())
                .cloned()
                .unwrap_or_default();
            let roles = new.roles.join(",");
            // An empty string tells the script to write no field: the hash of a session without
            // variables stays exactly what it was before they existed.
            let variables = if new.variables.is_empty() {
                String::new()
            } else {
                // A map of strings always encodes; the error is only passed on.
                serde_json::to_string(&new.variables).map_err(|e| {
                    StoreError::Unavailable(format!("cannot encode the variables: {e}"))
                })?
            };
            let mut inv = self.inner.scripts.create.key(self.session_key(&id));
            inv.key(self.user_key(&new.user_id))
                .arg(&hex)
                .arg(&new.user_id)
                .arg(&roles)
                .arg(&default_role)
                .arg(duration_ms(new.ttl).max(1))
                .arg(self.inner.max_per_user)
                .arg(&self.inner.channel)
                .arg(&variables);
            let mut conn = self.inner.conn.clone();
            let (created, expires, evicted): (u64, u64, Vec<String>) = self
                .run("create", async move { inv.invoke_async(&mut conn).await })
                .await?;
            // The script published each eviction like any revocation; this process hears of
            // it at once, as after `revoke`.
            for old in evicted.iter().filter_map(|h| TokenHash::from_hex(h)) {
                self.tell_local(&Revocation::Session(old));
            }
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
            let mut inv = self.inner.scripts.touch.key(self.session_key(id));
            inv.arg(duration_ms(ttl)).arg(&self.inner.user_prefix);
            let mut conn = self.inner.conn.clone();
            let n: i64 = self
                .run("touch", async move { inv.invoke_async(&mut conn).await })
                .await?;
            Ok(n == 1)
        })
    }

    fn revoke<'a>(&'a self, id: &'a TokenHash) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut inv = self.inner.scripts.revoke.key(self.session_key(id));
            inv.arg(id.to_hex())
                .arg(&self.inner.user_prefix)
                .arg(&self.inner.channel);
            let mut conn = self.inner.conn.clone();
            let result = self
                .run(
                    "revoke",
                    async move { inv.invoke_async::<i64>(&mut conn).await },
                )
                .await;
            self.tell_local(&Revocation::Session(*id));
            Ok(result? == 1)
        })
    }

    fn revoke_user<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<usize, StoreError>> {
        Box::pin(async move {
            let mut inv = self.inner.scripts.revoke_user.key(self.user_key(user_id));
            inv.arg(&self.inner.session_prefix)
                .arg(&self.inner.channel)
                .arg(format!("user:{user_id}"));
            let mut conn = self.inner.conn.clone();
            let result = self
                .run("revoke_user", async move {
                    inv.invoke_async::<i64>(&mut conn).await
                })
                .await;
            self.tell_local(&Revocation::User(Arc::from(user_id)));
            Ok(usize::try_from(result?).unwrap_or(0))
        })
    }

    fn list_user<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Session>, StoreError>> {
        Box::pin(async move {
            let mut inv = self.inner.scripts.list_user.key(self.user_key(user_id));
            inv.arg(&self.inner.session_prefix);
            let mut conn = self.inner.conn.clone();
            let flat: Vec<String> = self
                .run(
                    "list_user",
                    async move { inv.invoke_async(&mut conn).await },
                )
                .await?;
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
