//! [`RedisCertStore`]: certificates, keys, ACME accounts, pending challenges and order leases
//! in Redis, shared by every replica (feature `redis`).
//!
//! # Key schema
//!
//! | key | type | content |
//! |---|---|---|
//! | `<prefix>:cert:<name>` | hash | `chain_pem` (leaf first), `key_pem` |
//! | `<prefix>:certs` | set | the names that have a certificate |
//! | `<prefix>:account:<sha256 hex of the directory URL>` | string | the serialised ACME account credentials |
//! | `<prefix>:lease:<name>` | string, with expiry | the owner id of the order lease (`SET NX PX`) |
//! | `<prefix>:challenge:<token>` | string, with expiry | the HTTP-01 key authorization |
//! | `<prefix>:alpn:<name>` | hash, with expiry | the pending TLS-ALPN-01 challenge certificate: `chain_pem`, `key_pem` |
//!
//! # One key per command (Redis Cluster)
//!
//! Every command and script touches exactly one key, so the store works unchanged against a
//! Redis Cluster (any connection given to [`RedisCertStore::with_connection`], such as
//! session-core's `RedisConn`) with the key names above: no hash tags, no migration.
//!
//! A certificate and its key are written by one `HSET` of one hash, so a reader sees the old
//! pair or the new pair, never a mix. The name is added to `<prefix>:certs` by a second
//! command, *after* the hash is written (the two keys may live on different Cluster nodes, so
//! they cannot share a `MULTI`). That order is safe: a name is listed only once its
//! certificate can be read, and a crash between the two leaves a certificate that is served
//! (the manager loads certificates by managed name, not from the set) but missing from
//! `gateway cert list` until its next renewal writes both again. The opposite order could
//! list a name with no certificate.
//!
//! A lease is taken with `SET NX PX`, extended only by its owner and released with a
//! compare-and-delete script, so a replica whose lease expired can never release another's.
//! A TLS-ALPN-01 challenge is written with its expiry by one script, so no crash can leave a
//! challenge certificate without one.
//!
//! Everything stored here is secret (private keys, account keys): protect the Redis with
//! AUTH/ACL and TLS. Every Redis failure or timeout is [`Error::Store`]; the message never
//! contains the URL.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script};
use sha2::{Digest, Sha256};

use super::{BoxFuture, CertStore, StoredCert};
use crate::Error;

/// A [`CertStore`] in Redis (key schema in the module docs). Cloning is cheap; clones share the
/// connection.
///
/// `C` is the connection: by default a single node's [`ConnectionManager`] (see
/// [`open`](Self::open)); [`with_connection`](Self::with_connection) takes any other, such as
/// one that follows a Sentinel failover or speaks to a Redis Cluster.
#[derive(Clone)]
pub struct RedisCertStore<C = ConnectionManager> {
    conn: C,
    prefix: String,
    timeout: Duration,
    scripts: Arc<Scripts>,
}

impl<C> std::fmt::Debug for RedisCertStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCertStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The Lua scripts, hashed once per store rather than per call (`Script::new` computes the
/// SHA-1 that `EVALSHA` sends).
struct Scripts {
    try_lease: Script,
    release: Script,
    store_tls_alpn: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            try_lease: Script::new(TRY_LEASE),
            release: Script::new(RELEASE),
            store_tls_alpn: Script::new(STORE_TLS_ALPN),
        }
    }
}

/// KEYS: lease. ARGV: owner, ttl ms. Takes a free lease or extends one `owner` holds.
const TRY_LEASE: &str = "local holder = redis.call('GET', KEYS[1])\n\
    if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end\n\
    if holder then return 0 end\n\
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n\
    return 1\n";

/// KEYS: lease. ARGV: owner. Deletes the lease only if `owner` holds it.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n\
    return redis.call('DEL', KEYS[1]) end\n\
    return 0\n";

/// KEYS: the challenge hash. ARGV: chain PEM, key PEM, ttl ms. Replaces the hash and sets its
/// expiry in one step.
const STORE_TLS_ALPN: &str = "redis.call('DEL', KEYS[1])\n\
    redis.call('HSET', KEYS[1], 'chain_pem', ARGV[1], 'key_pem', ARGV[2])\n\
    redis.call('PEXPIRE', KEYS[1], ARGV[3])\n\
    return 1\n";

impl RedisCertStore {
    /// A store for the single Redis at `url` (`redis://`, with AUTH/ACL credentials in the
    /// URL), keys under `prefix`, every command bounded by `timeout`. Connects lazily and
    /// reconnects by itself; must be called within a tokio runtime.
    pub fn open(url: &str, prefix: &str, timeout: Duration) -> Result<RedisCertStore, Error> {
        let client = redis::Client::open(url)
            .map_err(|e| Error::Store(format!("invalid Redis URL ({:?})", e.kind())))?;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_lazy_with_config(client, cfg)
            .map_err(|e| Error::Store(format!("cannot set up the Redis connection: {e}")))?;
        Ok(RedisCertStore::with_connection(conn, prefix, timeout))
    }
}

impl<C> RedisCertStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// A store over an existing connection (a Sentinel-following or Cluster connection, say),
    /// keys under `prefix`, every command bounded by `timeout`. The connection must reconnect
    /// by itself; the store only clones it per command.
    pub fn with_connection(conn: C, prefix: &str, timeout: Duration) -> RedisCertStore<C> {
        RedisCertStore {
            conn,
            prefix: prefix.to_owned(),
            timeout,
            scripts: Arc::new(Scripts::new()),
        }
    }

    async fn run<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Error::Store(format!("redis {what}: {e}"))),
            Err(_) => Err(Error::Store(format!(
                "redis {what}: no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}:{kind}:{id}", self.prefix)
    }

    /// `HMGET key chain_pem key_pem`: both fields, or `None`.
    async fn load_pair(
        &self,
        what: &'static str,
        key: String,
    ) -> Result<Option<StoredCert>, Error> {
        let mut c = self.conn.clone();
        let (chain, key_pem): (Option<String>, Option<String>) = self
            .run(what, async move {
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg("chain_pem")
                    .arg("key_pem")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(match (chain, key_pem) {
            (Some(chain_pem), Some(key_pem)) => Some(StoredCert { chain_pem, key_pem }),
            _ => None,
        })
    }

    /// `DEL key`.
    async fn delete(&self, key: String) -> Result<(), Error> {
        let mut c = self.conn.clone();
        self.run("DEL", async move {
            redis::cmd("DEL").arg(&key).query_async::<i64>(&mut c).await
        })
        .await
        .map(|_| ())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl<C> CertStore for RedisCertStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    fn load_cert<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<StoredCert>, Error>> {
        Box::pin(self.load_pair("HMGET", self.key("cert", name)))
    }

    fn store_cert<'a>(
        &'a self,
        name: &'a str,
        cert: &'a StoredCert,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            // Two keys, so two commands (they may be on different Cluster nodes): the hash
            // first, then the name into the set. Why that order is safe: the module docs.
            let mut c = self.conn.clone();
            let key = self.key("cert", name);
            self.run("HSET", async move {
                redis::cmd("HSET")
                    .arg(&key)
                    .arg("chain_pem")
                    .arg(&cert.chain_pem)
                    .arg("key_pem")
                    .arg(&cert.key_pem)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await?;
            let mut c = self.conn.clone();
            let set = format!("{}:certs", self.prefix);
            self.run("SADD", async move {
                redis::cmd("SADD")
                    .arg(&set)
                    .arg(name)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
        })
    }

    fn list_names(&self) -> BoxFuture<'_, Result<Vec<String>, Error>> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let key = format!("{}:certs", self.prefix);
            let mut names: Vec<String> = self
                .run("SMEMBERS", async move {
                    redis::cmd("SMEMBERS").arg(&key).query_async(&mut c).await
                })
                .await?;
            names.sort();
            Ok(names)
        })
    }

    fn load_account<'a>(
        &'a self,
        directory_url: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, Error>> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let key = self.key("account", &hex::encode(Sha256::digest(directory_url)));
            self.run("GET", async move {
                redis::cmd("GET").arg(&key).query_async(&mut c).await
            })
            .await
        })
    }

    fn store_account<'a>(
        &'a self,
        directory_url: &'a str,
        credentials: &'a [u8],
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let key = self.key("account", &hex::encode(Sha256::digest(directory_url)));
            self.run("SET", async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(credentials)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
        })
    }

    fn try_lease<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let mut inv = self.scripts.try_lease.key(self.key("lease", name));
            inv.arg(owner).arg(millis(ttl));
            let got: i64 = self
                .run("try_lease", async move { inv.invoke_async(&mut c).await })
                .await?;
            Ok(got == 1)
        })
    }

    fn release<'a>(&'a self, name: &'a str, owner: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let mut inv = self.scripts.release.key(self.key("lease", name));
            inv.arg(owner);
            self.run(
                "release",
                async move { inv.invoke_async::<i64>(&mut c).await },
            )
            .await
            .map(|_| ())
        })
    }

    fn store_challenge<'a>(
        &'a self,
        token: &'a str,
        key_authorization: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let key = self.key("challenge", token);
            self.run("SET", async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(key_authorization)
                    .arg("PX")
                    .arg(millis(ttl))
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
        })
    }

    fn load_challenge<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, Error>> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let key = self.key("challenge", token);
            self.run("GET", async move {
                redis::cmd("GET").arg(&key).query_async(&mut c).await
            })
            .await
        })
    }

    fn remove_challenge<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.delete(self.key("challenge", token)))
    }

    fn store_tls_alpn_challenge<'a>(
        &'a self,
        name: &'a str,
        cert: &'a StoredCert,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let mut inv = self.scripts.store_tls_alpn.key(self.key("alpn", name));
            inv.arg(&cert.chain_pem).arg(&cert.key_pem).arg(millis(ttl));
            self.run("store_tls_alpn_challenge", async move {
                inv.invoke_async::<i64>(&mut c).await
            })
            .await
            .map(|_| ())
        })
    }

    fn load_tls_alpn_challenge<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredCert>, Error>> {
        Box::pin(self.load_pair("HMGET", self.key("alpn", name)))
    }

    fn remove_tls_alpn_challenge<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.delete(self.key("alpn", name)))
    }
}
