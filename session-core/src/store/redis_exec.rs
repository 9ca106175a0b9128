//! How [`RedisStore`] runs its commands: every Lua script by hash (`EVALSHA`), loaded again
//! after a `NOSCRIPT`; `WAIT` for the replicas in one pipeline with the write it confirms;
//! every call under the command timeout, every failure [`StoreError::Unavailable`]. Kept apart
//! from the store's operations (redis.rs) because this is the one place that talks to the
//! connection, with its own failure handling, read and changed on its own.

use std::future::Future;
use std::time::Duration;

use redis::{Cmd, FromRedisValue, RedisResult, Script, Value};

use super::redis::RedisStore;
use super::redis_record::duration_ms;
use super::redis_scripts as lua;
use super::revocations::Revocation;
use super::StoreError;

/// Every script, created once (each holds its SHA-1 for `EVALSHA`).
pub(super) struct Scripts {
    pub(super) create: Script,
    pub(super) resolve_slide: Script,
    pub(super) touch: Script,
    pub(super) revoke: Script,
    pub(super) revoke_user: Script,
    pub(super) list_user: Script,
    pub(super) cluster_session_create: Script,
    pub(super) cluster_index_add: Script,
    pub(super) cluster_extend_user: Script,
    pub(super) cluster_session_revoke: Script,
    pub(super) cluster_index_members: Script,
    pub(super) cluster_index_remove: Script,
    pub(super) cluster_publish: Script,
}

impl Scripts {
    pub(super) fn new() -> Scripts {
        Scripts {
            create: Script::new(lua::CREATE),
            resolve_slide: Script::new(lua::RESOLVE_SLIDE),
            touch: Script::new(lua::TOUCH),
            revoke: Script::new(lua::REVOKE),
            revoke_user: Script::new(lua::REVOKE_USER),
            list_user: Script::new(lua::LIST_USER),
            cluster_session_create: Script::new(lua::CLUSTER_SESSION_CREATE),
            cluster_index_add: Script::new(lua::CLUSTER_INDEX_ADD),
            cluster_extend_user: Script::new(lua::CLUSTER_EXTEND_USER),
            cluster_session_revoke: Script::new(lua::CLUSTER_SESSION_REVOKE),
            cluster_index_members: Script::new(lua::CLUSTER_INDEX_MEMBERS),
            cluster_index_remove: Script::new(lua::CLUSTER_INDEX_REMOVE),
            cluster_publish: Script::new(lua::CLUSTER_PUBLISH),
        }
    }

    /// The scripts one deployment runs, with their sources: the atomic ones on one server or
    /// Sentinel, the one-key ones in a Cluster (sliding and touching already touch one key and
    /// serve both).
    fn used(&self, cluster: bool) -> Vec<(&Script, &'static str)> {
        let mut used = vec![
            (&self.resolve_slide, lua::RESOLVE_SLIDE),
            (&self.touch, lua::TOUCH),
        ];
        if cluster {
            used.extend([
                (&self.cluster_session_create, lua::CLUSTER_SESSION_CREATE),
                (&self.cluster_index_add, lua::CLUSTER_INDEX_ADD),
                (&self.cluster_extend_user, lua::CLUSTER_EXTEND_USER),
                (&self.cluster_session_revoke, lua::CLUSTER_SESSION_REVOKE),
                (&self.cluster_index_members, lua::CLUSTER_INDEX_MEMBERS),
                (&self.cluster_index_remove, lua::CLUSTER_INDEX_REMOVE),
                (&self.cluster_publish, lua::CLUSTER_PUBLISH),
            ]);
        } else {
            used.extend([
                (&self.create, lua::CREATE),
                (&self.revoke, lua::REVOKE),
                (&self.revoke_user, lua::REVOKE_USER),
                (&self.list_user, lua::LIST_USER),
            ]);
        }
        used
    }

    /// The source of the script with this hash, to load it after a `NOSCRIPT`.
    fn source_of(&self, script: &Script) -> Option<&'static str> {
        self.used(false)
            .into_iter()
            .chain(self.used(true))
            .find(|(s, _)| s.get_hash() == script.get_hash())
            .map(|(_, src)| src)
    }
}

/// `EVALSHA` of `script` over `keys`; the caller adds the arguments.
pub(super) fn evalsha(script: &Script, keys: &[&str]) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len()).arg(keys);
    cmd
}

impl RedisStore {
    /// Loads the store's Lua scripts into Redis's script cache (on every primary of a
    /// Cluster) and returns how many it loaded.
    ///
    /// Every command runs its script by hash (`EVALSHA`). A Redis that has not seen the script
    /// (a fresh or restarted server, a failover) answers `NOSCRIPT`, and that command pays two
    /// more round trips to load and retry, inside its command timeout. The caching resolver
    /// calls this each time its connection comes up, before it reports ready, so no request
    /// pays for that.
    pub async fn load_scripts(&self) -> Result<usize, StoreError> {
        let scripts = self.scripts().used(self.connection().is_cluster());
        // One command per script: in a Cluster, redis-rs sends SCRIPT LOAD to every primary,
        // which it cannot do inside a pipeline.
        let loads = scripts
            .iter()
            .map(|(script, source)| self.load(script, source));
        futures_util::future::try_join_all(loads).await?;
        Ok(scripts.len())
    }

    /// Runs `cmd` (an [`evalsha`] of `script`), loading the script after a `NOSCRIPT` and
    /// trying once more.
    pub(super) async fn eval<T: FromRedisValue>(
        &self,
        what: &'static str,
        script: &Script,
        cmd: Cmd,
    ) -> Result<T, StoreError> {
        let mut conn = self.connection().clone();
        let first = self
            .run(what, async {
                match cmd.query_async::<T>(&mut conn).await {
                    Err(e)
                        if e.kind()
                            == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                    {
                        Ok(None)
                    }
                    other => other.map(Some),
                }
            })
            .await?;
        match first {
            Some(v) => Ok(v),
            None => {
                self.load_one(script).await?;
                let mut conn = self.connection().clone();
                self.run(what, async move { cmd.query_async(&mut conn).await })
                    .await
            }
        }
    }

    /// Runs `cmd` (an [`evalsha`] of `script`) and, when this store waits for replicas, `WAIT`
    /// right after it in one pipeline: on the same connection, so that `WAIT` counts this
    /// write (on another connection it would count that connection's writes, possibly none).
    /// Returns the answer and, with `WAIT`, whether enough replicas confirmed.
    /// `script` is `None` for a plain command (no `NOSCRIPT` to handle).
    pub(super) async fn eval_confirmed<T: FromRedisValue>(
        &self,
        what: &'static str,
        script: Option<&Script>,
        cmd: &Cmd,
    ) -> Result<(T, Confirmed), StoreError> {
        let Some((replicas, wait)) = self.wait() else {
            let answer = match script {
                Some(script) => self.eval(what, script, cmd.clone()).await?,
                None => self.query(what, cmd.clone()).await?,
            };
            return Ok((answer, Confirmed::NotAsked));
        };
        let mut pipe = redis::pipe();
        pipe.add_command(cmd.clone())
            .cmd("WAIT")
            .arg(replicas)
            .arg(duration_ms(wait).max(1))
            .ignore_errors();
        for attempt in 0..2 {
            let mut conn = self.connection().clone();
            let pipe = &pipe;
            // The command timeout plus the WAIT's own: WAIT may legitimately take that long.
            let values: Vec<Value> = self
                .run_for(what, self.command_timeout() + wait, async move {
                    pipe.query_async(&mut conn).await
                })
                .await?;
            let mut it = values.into_iter();
            let (Some(answer), Some(acked)) = (it.next(), it.next()) else {
                return Err(StoreError::Unavailable(format!(
                    "redis {what}: a short pipeline answer"
                )));
            };
            if let Value::ServerError(e) = &answer {
                if let (0, Some(script), Some(redis::ServerErrorKind::NoScript)) =
                    (attempt, script, e.kind())
                {
                    self.load_one(script).await?;
                    continue;
                }
                return Err(StoreError::Unavailable(format!(
                    "redis {what}: {}",
                    redis::RedisError::from(e.clone())
                )));
            }
            let answer = T::from_redis_value(answer)
                .map_err(|e| StoreError::Unavailable(format!("redis {what}: {e}")))?;
            let confirmed = match acked {
                Value::Int(n) => usize::try_from(n).unwrap_or(0),
                // An error here (a server without replication, say) confirms nothing.
                _ => 0,
            };
            let confirmed = if confirmed >= replicas {
                Confirmed::Yes
            } else {
                Confirmed::Short {
                    confirmed,
                    wanted: replicas,
                    wait,
                }
            };
            return Ok((answer, confirmed));
        }
        Err(StoreError::Unavailable(format!(
            "redis {what}: the script is still unknown to the server after loading it"
        )))
    }

    /// Loads `script` after a `NOSCRIPT`.
    async fn load_one(&self, script: &Script) -> Result<(), StoreError> {
        match self.scripts().source_of(script) {
            Some(source) => self.load(script, source).await,
            None => Err(StoreError::Unavailable("redis: an unknown script".into())),
        }
    }

    /// `SCRIPT LOAD` of `source`, checking that the server's SHA-1 is the one `EVALSHA` sends.
    async fn load(&self, script: &Script, source: &'static str) -> Result<(), StoreError> {
        let mut conn = self.connection().clone();
        let hash: String = self
            .run("SCRIPT LOAD", async move {
                redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(source)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        if script.get_hash() != hash {
            return Err(StoreError::Unavailable(format!(
                "redis SCRIPT LOAD: the server hashed a script as {hash}, not {}",
                script.get_hash()
            )));
        }
        Ok(())
    }

    /// Runs a plain command under the command timeout.
    pub(super) async fn query<T: FromRedisValue>(
        &self,
        what: &'static str,
        cmd: Cmd,
    ) -> Result<T, StoreError> {
        let mut conn = self.connection().clone();
        self.run(what, async move { cmd.query_async(&mut conn).await })
            .await
    }

    /// Publishes `r`, stamped with the server's time, on the revocation channel.
    pub(super) async fn publish(&self, r: &Revocation) -> Result<(), StoreError> {
        let Some(payload) = r.payload() else {
            return Ok(());
        };
        let script = &self.scripts().cluster_publish;
        let mut cmd = evalsha(script, &[]);
        cmd.arg(self.channel()).arg(payload);
        self.eval::<i64>("publish", script, cmd).await.map(|_| ())
    }

    /// Runs one Redis call under the command timeout; every failure is `Unavailable`.
    pub(super) async fn run<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        self.run_for(what, self.command_timeout(), call).await
    }

    async fn run_for<T>(
        &self,
        what: &'static str,
        limit: Duration,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(limit, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError::Unavailable(format!("redis {what}: {e}"))),
            Err(_) => Err(StoreError::Unavailable(format!(
                "redis {what}: no answer within {} ms",
                limit.as_millis()
            ))),
        }
    }
}

/// Whether enough replicas confirmed a write ([`RedisStore::eval_confirmed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Confirmed {
    /// This store does not wait for replicas.
    NotAsked,
    /// `WAIT` counted enough replicas.
    Yes,
    /// Fewer replicas than wanted confirmed within the wait.
    Short {
        confirmed: usize,
        wanted: usize,
        wait: Duration,
    },
}

impl Confirmed {
    /// A new session the replicas did not confirm is not an error (losing it in a failover
    /// only logs its user out again, fail closed), but worth a warning.
    pub(super) fn warn_for_new_session(self) {
        if let Confirmed::Short { .. } = self {
            tracing::warn!(
                "a new session was not confirmed by the Redis replicas in time; a failover now would log this user out"
            );
        }
    }

    /// `Err` for a revocation that the replicas did not confirm: the master applied it, but a
    /// failover now could lose it, so it is not acknowledged. Repeating it is safe.
    pub(super) fn require(self, what: &str) -> Result<(), StoreError> {
        match self {
            Confirmed::NotAsked | Confirmed::Yes => Ok(()),
            Confirmed::Short {
                confirmed,
                wanted,
                wait,
            } => Err(StoreError::Unavailable(format!(
                "redis: the {what} was applied on the master, but {confirmed} of {wanted} replicas confirmed it within {} ms (WAIT), so a failover could undo it; repeat it",
                wait.as_millis()
            ))),
        }
    }
}
