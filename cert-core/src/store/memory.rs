//! An in-memory [`CertStore`].

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;

use super::{BoxFuture, CertStore, Expiring, LocalLeases, StoredCert};
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
    challenges: Expiring<String>,
    tls_alpn_challenges: Expiring<StoredCert>,
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
        self.challenges
            .insert(token, key_authorization.to_owned(), ttl);
        Box::pin(async { Ok(()) })
    }

    fn load_challenge<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, Error>> {
        let found = self.challenges.get(token);
        Box::pin(async move { Ok(found) })
    }

    fn remove_challenge<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.challenges.remove(token);
        Box::pin(async { Ok(()) })
    }

    fn store_tls_alpn_challenge<'a>(
        &'a self,
        name: &'a str,
        cert: &'a StoredCert,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.tls_alpn_challenges.insert(name, cert.clone(), ttl);
        Box::pin(async { Ok(()) })
    }

    fn load_tls_alpn_challenge<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredCert>, Error>> {
        let found = self.tls_alpn_challenges.get(name);
        Box::pin(async move { Ok(found) })
    }

    fn remove_tls_alpn_challenge<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.tls_alpn_challenges.remove(name);
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pending_challenges_expire_and_are_removed() {
        let store = MemoryStore::new();
        let cert = StoredCert {
            chain_pem: "CHAIN".into(),
            key_pem: "KEY".into(),
        };
        let name = "a.example.com";
        assert_eq!(store.load_tls_alpn_challenge(name).await.unwrap(), None);
        store
            .store_tls_alpn_challenge(name, &cert, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            store.load_tls_alpn_challenge(name).await.unwrap(),
            Some(cert.clone())
        );
        // By name: neither another name nor the HTTP-01 table sees it.
        assert_eq!(
            store
                .load_tls_alpn_challenge("b.example.com")
                .await
                .unwrap(),
            None
        );
        assert_eq!(store.load_challenge(name).await.unwrap(), None);
        store.remove_tls_alpn_challenge(name).await.unwrap();
        assert_eq!(store.load_tls_alpn_challenge(name).await.unwrap(), None);

        store
            .store_tls_alpn_challenge(name, &cert, Duration::from_millis(30))
            .await
            .unwrap();
        store
            .store_challenge("tok", "tok.ka", Duration::from_millis(30))
            .await
            .unwrap();
        assert_eq!(
            store.load_challenge("tok").await.unwrap().as_deref(),
            Some("tok.ka")
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(store.load_tls_alpn_challenge(name).await.unwrap(), None);
        assert_eq!(store.load_challenge("tok").await.unwrap(), None);
    }
}
