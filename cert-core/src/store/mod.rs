//! Where certificates, keys, ACME accounts, pending challenges and order leases live.
//!
//! [`CertStore`] is object-safe and async (boxed futures), so backends plug in without touching
//! the manager. [`DirStore`] is the default; [`MemoryStore`] keeps everything in memory (tests,
//! ephemeral setups); `RedisCertStore` (feature `redis`) is shared by replicas.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::Error;

pub(crate) mod dir;
mod memory;
#[cfg(feature = "redis")]
mod redis;

pub use dir::{DirStore, DIR_MODE, FILE_MODE};
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::RedisCertStore;

/// A boxed, `Send` future: the return type of every [`CertStore`] method.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A certificate chain and its private key, both PEM.
///
/// The chain is leaf first. `Debug` never prints the key.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCert {
    /// The certificate chain, leaf first, PEM.
    pub chain_pem: String,
    /// The leaf's private key, PEM (PKCS#8, SEC1 or PKCS#1).
    pub key_pem: String,
}

impl fmt::Debug for StoredCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredCert")
            .field("chain_pem", &self.chain_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Persistent state for certificates and ACME.
///
/// Names passed in are already normalised by [`crate::normalize_name`] (lowercase, no
/// trailing dot, no path syntax), so implementations may use them as keys directly.
/// Everything a store holds is secret (private keys, account keys): implementations must keep
/// it unreadable by others at every moment, including while writing.
///
/// The lease methods let several replicas sharing one store place a single ACME order per
/// name. A store used by one process only may implement them as always granted.
///
/// The pending-challenge methods let any replica answer a validation for an order placed by
/// another: HTTP-01 key authorizations by token (answered by [`crate::ChallengeResponder`]),
/// and TLS-ALPN-01 challenge certificates by name (answered by [`crate::Acceptor`]). They
/// default to doing nothing, which is right for a single process (the local responder and
/// [`crate::CertResolver`] already hold the answers).
pub trait CertStore: Send + Sync + 'static {
    /// Loads the certificate and key stored for `name`, if any.
    fn load_cert<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<StoredCert>, Error>>;

    /// Stores (replaces) the certificate and key for `name`, atomically: a reader sees the old
    /// pair or the new pair, never a mix.
    fn store_cert<'a>(
        &'a self,
        name: &'a str,
        cert: &'a StoredCert,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// The names that have a stored certificate.
    fn list_names(&self) -> BoxFuture<'_, Result<Vec<String>, Error>>;

    /// Loads the serialised ACME account credentials for `directory_url`, if any.
    fn load_account<'a>(
        &'a self,
        directory_url: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, Error>>;

    /// Stores the serialised ACME account credentials for `directory_url` (they contain the
    /// account's private key).
    fn store_account<'a>(
        &'a self,
        directory_url: &'a str,
        credentials: &'a [u8],
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// Tries to take (or extend, when `owner` already holds it) the order lease for `name` for
    /// `ttl`. Returns `false` when another owner holds an unexpired lease.
    fn try_lease<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>>;

    /// Releases the lease on `name` if `owner` holds it; otherwise does nothing.
    fn release<'a>(&'a self, name: &'a str, owner: &'a str) -> BoxFuture<'a, Result<(), Error>>;

    /// Publishes a pending HTTP-01 answer (`token` → key authorization) for other replicas,
    /// valid for `ttl`. Default: does nothing.
    fn store_challenge<'a>(
        &'a self,
        token: &'a str,
        key_authorization: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let _ = (token, key_authorization, ttl);
        Box::pin(async { Ok(()) })
    }

    /// Looks up a pending HTTP-01 answer published by any replica. Default: none.
    fn load_challenge<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, Error>> {
        let _ = token;
        Box::pin(async { Ok(None) })
    }

    /// Removes a pending HTTP-01 answer. Default: does nothing.
    fn remove_challenge<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        let _ = token;
        Box::pin(async { Ok(()) })
    }

    /// Publishes the pending TLS-ALPN-01 challenge certificate for `name` (the self-signed
    /// certificate with the acmeIdentifier extension, and its throwaway key) for other
    /// replicas, valid for `ttl`, replacing any earlier one for `name`. Default: does nothing.
    fn store_tls_alpn_challenge<'a>(
        &'a self,
        name: &'a str,
        cert: &'a StoredCert,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let _ = (name, cert, ttl);
        Box::pin(async { Ok(()) })
    }

    /// Looks up the pending TLS-ALPN-01 challenge certificate for `name` published by any
    /// replica; `None` once removed or expired. Default: none.
    fn load_tls_alpn_challenge<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredCert>, Error>> {
        let _ = name;
        Box::pin(async { Ok(None) })
    }

    /// Removes the pending TLS-ALPN-01 challenge certificate for `name`. Default: does
    /// nothing.
    fn remove_tls_alpn_challenge<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        let _ = name;
        Box::pin(async { Ok(()) })
    }
}

/// In-process table of values that expire, shared by the built-in stores for pending
/// challenges.
#[derive(Debug)]
struct Expiring<V> {
    entries: parking_lot::Mutex<std::collections::HashMap<String, (V, std::time::Instant)>>,
}

impl<V> Default for Expiring<V> {
    fn default() -> Self {
        Self {
            entries: parking_lot::Mutex::default(),
        }
    }
}

impl<V: Clone> Expiring<V> {
    fn insert(&self, key: &str, value: V, ttl: Duration) {
        let now = std::time::Instant::now();
        let mut entries = self.entries.lock();
        // Dropped here rather than on a timer: the table only grows when something is
        // published, so this keeps it as small as the pending set.
        entries.retain(|_, (_, until)| *until > now);
        entries.insert(key.to_owned(), (value, now + ttl));
    }

    fn get(&self, key: &str) -> Option<V> {
        self.entries
            .lock()
            .get(key)
            .filter(|(_, until)| *until > std::time::Instant::now())
            .map(|(v, _)| v.clone())
    }

    fn remove(&self, key: &str) {
        self.entries.lock().remove(key);
    }
}

/// In-process lease table shared by the built-in stores.
#[derive(Debug, Default)]
struct LocalLeases {
    leases: parking_lot::Mutex<std::collections::HashMap<String, (String, std::time::Instant)>>,
}

impl LocalLeases {
    fn try_lease(&self, name: &str, owner: &str, ttl: Duration) -> bool {
        let now = std::time::Instant::now();
        let mut leases = self.leases.lock();
        match leases.get(name) {
            Some((holder, until)) if holder != owner && *until > now => false,
            _ => {
                leases.insert(name.to_owned(), (owner.to_owned(), now + ttl));
                true
            }
        }
    }

    fn release(&self, name: &str, owner: &str) {
        let mut leases = self.leases.lock();
        if leases.get(name).is_some_and(|(holder, _)| holder == owner) {
            leases.remove(name);
        }
    }
}
