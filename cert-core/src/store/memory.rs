//! An in-memory [`CertStore`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{BoxFuture, CertStore, LocalLeases, StoredCert};
use crate::Error;

/// Keeps everything in process memory; nothing survives a restart.
///
/// Useful in tests and as a stand-in for a shared store: several managers given clones of one
/// `Arc<MemoryStore>` behave like replicas sharing Redis (leases and pending challenges
/// included).
#[derive(Debug, Default)]
pub struct MemoryStore {
    certs: Mutex<HashMap<String, StoredCert>>,
    accounts: Mutex<HashMap<String, Vec<u8>>>,
    challenges: Mutex<HashMap<String, (String, Instant)>>,
    leases: LocalLeases,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl CertStore for MemoryStore {
    fn load_cert<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<StoredCert>, Error>> {
        let found = self.certs.lock().get(name).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn store_cert<'a>(
        &'a self,
        name: &'a str,
        cert: &'a StoredCert,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.certs.lock().insert(name.to_owned(), cert.clone());
        Box::pin(async { Ok(()) })
    }

    fn list_names(&self) -> BoxFuture<'_, Result<Vec<String>, Error>> {
        let mut names: Vec<String> = self.certs.lock().keys().cloned().collect();
        names.sort();
        Box::pin(async move { Ok(names) })
    }

    fn load_account<'a>(
        &'a self,
        directory_url: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, Error>> {
        let found = self.accounts.lock().get(directory_url).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn store_account<'a>(
        &'a self,
        directory_url: &'a str,
        credentials: &'a [u8],
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.accounts
            .lock()
            .insert(directory_url.to_owned(), credentials.to_vec());
        Box::pin(async { Ok(()) })
    }

    fn try_lease<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        let granted = self.leases.try_lease(name, owner, ttl);
        Box::pin(async move { Ok(granted) })
    }

    fn release<'a>(&'a self, name: &'a str, owner: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.leases.release(name, owner);
        Box::pin(async { Ok(()) })
    }

    fn store_challenge<'a>(
        &'a self,
        token: &'a str,
        key_authorization: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.challenges.lock().insert(
            token.to_owned(),
            (key_authorization.to_owned(), Instant::now() + ttl),
        );
        Box::pin(async { Ok(()) })
    }

    fn load_challenge<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, Error>> {
        let found = self
            .challenges
            .lock()
            .get(token)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(ka, _)| ka.clone());
        Box::pin(async move { Ok(found) })
    }

    fn remove_challenge<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.challenges.lock().remove(token);
        Box::pin(async { Ok(()) })
    }
}
