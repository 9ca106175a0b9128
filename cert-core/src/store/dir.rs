//! The default [`CertStore`]: one directory on local disk.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{BoxFuture, CertStore, Expiring, LocalLeases, StoredCert};
use crate::Error;

/// File mode of every file the store writes: owner read/write only.
pub const FILE_MODE: u32 = 0o600;
/// File mode of every directory the store creates: owner only.
pub const DIR_MODE: u32 = 0o700;

/// Stores certificates and accounts as files under one directory.
///
/// Layout (all directories 0700, all files 0600):
///
/// ```text
/// <root>/certs/<name>.pem          private key, then the chain (leaf first)
/// <root>/certs/_.<suffix>.pem      the wildcard certificate for *.<suffix>
/// <root>/accounts/<sha256(url)>.json  ACME account credentials per directory URL
/// ```
///
/// Key and chain share one file so that a reader never pairs a new chain with an old key.
/// Every write goes to a temporary file created with mode 0600 from the start (`O_CREAT |
/// O_EXCL`, never following a symlink), is fsynced, renamed over the target, and the directory
/// is fsynced: a crash leaves the old or the new file, and no moment exists at which the
/// secret is readable by another user (security case 30).
///
/// Leases and pending TLS-ALPN-01 challenge certificates are kept in process memory: they
/// coordinate managers and listeners within one process (a challenge key is a throwaway that
/// is useless once the order ends, so it is never written to disk). Several gateways sharing
/// one directory (over NFS, say) are not coordinated; use a shared store such as Redis for
/// replicas.
#[derive(Debug, Clone)]
pub struct DirStore {
    inner: Arc<DirStoreState>,
}

/// Behind one `Arc` so that clones of a [`DirStore`] share its in-process leases and
/// challenges; a copy would lease on its own.
#[derive(Debug)]
struct DirStoreState {
    root: PathBuf,
    leases: LocalLeases,
    tls_alpn_challenges: Expiring<StoredCert>,
}

impl DirStore {
    /// Opens (creating if needed) the store at `root`. Existing store directories are
    /// tightened to 0700. Blocking; call it at startup.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, Error> {
        let root = root.into();
        ensure_private_dir(&root)?;
        ensure_private_dir(&root.join("certs"))?;
        ensure_private_dir(&root.join("accounts"))?;
        Ok(Self {
            inner: Arc::new(DirStoreState {
                root,
                leases: LocalLeases::default(),
                tls_alpn_challenges: Expiring::default(),
            }),
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The file holding `name`'s key and chain.
    pub fn cert_path(&self, name: &str) -> PathBuf {
        let file = match name.strip_prefix("*.") {
            // '_' is not valid in a normalised name, so this cannot collide with a real name.
            Some(suffix) => format!("_.{suffix}.pem"),
            None => format!("{name}.pem"),
        };
        self.inner.root.join("certs").join(file)
    }

    /// The file holding the account credentials for `directory_url`.
    pub fn account_path(&self, directory_url: &str) -> PathBuf {
        let digest = Sha256::digest(directory_url.as_bytes());
        self.inner
            .root
            .join("accounts")
            .join(format!("{}.json", hex::encode(digest)))
    }
}

/// Runs blocking file I/O off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Store(format!("file task failed: {e}")))?
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

impl CertStore for DirStore {
    fn load_cert<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<StoredCert>, Error>> {
        let path = self.cert_path(name);
        Box::pin(async move {
            let Some(bytes) = blocking(move || read_optional(&path)).await? else {
                return Ok(None);
            };
            let text = String::from_utf8(bytes)
                .map_err(|_| Error::InvalidCert(format!("stored file for {name} is not UTF-8")))?;
            split_bundle(&text).map(Some)
        })
    }

    fn store_cert<'a>(
        &'a self,
        name: &'a str,
        cert: &'a StoredCert,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let path = self.cert_path(name);
        let mut bundle = String::with_capacity(cert.key_pem.len() + cert.chain_pem.len() + 1);
        bundle.push_str(cert.key_pem.trim_end());
        bundle.push('\n');
        bundle.push_str(cert.chain_pem.trim_end());
        bundle.push('\n');
        Box::pin(blocking(move || {
            write_private_file(&path, bundle.as_bytes())
        }))
    }

    fn list_names(&self) -> BoxFuture<'_, Result<Vec<String>, Error>> {
        let dir = self.inner.root.join("certs");
        Box::pin(blocking(move || {
            let entries = fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))?;
            let mut names = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
                let file = entry.file_name();
                let Some(file) = file.to_str() else { continue };
                // Temporary files start with '.', and are not certificates yet.
                if file.starts_with('.') {
                    continue;
                }
                let Some(stem) = file.strip_suffix(".pem") else {
                    continue;
                };
                let name = match stem.strip_prefix("_.") {
                    Some(suffix) => format!("*.{suffix}"),
                    None => stem.to_owned(),
                };
                names.push(name);
            }
            names.sort();
            Ok(names)
        }))
    }

    fn load_account<'a>(
        &'a self,
        directory_url: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, Error>> {
        let path = self.account_path(directory_url);
        Box::pin(blocking(move || read_optional(&path)))
    }

    fn store_account<'a>(
        &'a self,
        directory_url: &'a str,
        credentials: &'a [u8],
    ) -> BoxFuture<'a, Result<(), Error>> {
        let path = self.account_path(directory_url);
        let bytes = credentials.to_vec();
        Box::pin(blocking(move || write_private_file(&path, &bytes)))
    }

    fn try_lease<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        let granted = self.inner.leases.try_lease(name, owner, ttl);
        Box::pin(async move { Ok(granted) })
    }

    fn release<'a>(&'a self, name: &'a str, owner: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.leases.release(name, owner);
        Box::pin(async { Ok(()) })
    }

    fn store_tls_alpn_challenge<'a>(
        &'a self,
        name: &'a str,
        cert: &'a StoredCert,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.inner
            .tls_alpn_challenges
            .insert(name, cert.clone(), ttl);
        Box::pin(async { Ok(()) })
    }

    fn load_tls_alpn_challenge<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredCert>, Error>> {
        let found = self.inner.tls_alpn_challenges.get(name);
        Box::pin(async move { Ok(found) })
    }

    fn remove_tls_alpn_challenge<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.tls_alpn_challenges.remove(name);
        Box::pin(async { Ok(()) })
    }
}

/// Splits a stored bundle into the key block(s) and the certificate blocks.
fn split_bundle(text: &str) -> Result<StoredCert, Error> {
    let mut key_pem = String::new();
    let mut chain_pem = String::new();
    let mut current: Option<&mut String> = None;
    for line in text.lines() {
        if line.starts_with("-----BEGIN ") {
            let target = if line.contains("CERTIFICATE") {
                &mut chain_pem
            } else {
                &mut key_pem
            };
            target.push_str(line);
            target.push('\n');
            current = Some(target);
        } else if let Some(target) = current.as_deref_mut() {
            target.push_str(line);
            target.push('\n');
            if line.starts_with("-----END ") {
                current = None;
            }
        }
    }
    if key_pem.is_empty() || chain_pem.is_empty() {
        return Err(Error::InvalidCert(
            "stored bundle lacks a key or a certificate".into(),
        ));
    }
    Ok(StoredCert { chain_pem, key_pem })
}

/// Creates `dir` (and missing parents) with mode 0700, or tightens an existing one to 0700.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<(), Error> {
    match DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir) {
        Ok(()) => {}
        Err(e) => return Err(Error::io("create directory", dir, e)),
    }
    // The mode above is filtered by the umask and ignored for an existing directory; set it
    // explicitly so the guarantee holds either way.
    fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
        .map_err(|e| Error::io("chmod", dir, e))
}

/// Atomically replaces `path` with `bytes`, never exposing them to other users.
pub(crate) fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::io("write", path, ErrorKind::InvalidInput.into()))?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::io("write", path, ErrorKind::InvalidInput.into()))?;
    let tmp = dir.join(format!(".{file_name}.{:016x}.tmp", rand::random::<u64>()));
    let result = (|| {
        // create_new = O_CREAT|O_EXCL: fails on an existing file or a planted symlink, and the
        // file is born 0600 (umask can only remove bits), so it is never readable by others.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        file.write_all(bytes)
            .map_err(|e| Error::io("write", &tmp, e))?;
        file.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))?;
        // Persist the rename itself.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("fsync", dir, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().mode() & 0o777
    }

    #[tokio::test]
    async fn round_trip_and_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("store");
        let store = DirStore::open(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("certs")), 0o700);
        assert_eq!(mode(&root.join("accounts")), 0o700);

        let cert = StoredCert {
            chain_pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
            key_pem: "-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n".into(),
        };
        assert_eq!(store.load_cert("a.example.com").await.unwrap(), None);
        store.store_cert("a.example.com", &cert).await.unwrap();
        store.store_cert("*.example.com", &cert).await.unwrap();
        assert_eq!(
            store.load_cert("a.example.com").await.unwrap(),
            Some(cert.clone())
        );
        assert_eq!(mode(&store.cert_path("a.example.com")), 0o600);
        assert_eq!(
            store.list_names().await.unwrap(),
            vec!["*.example.com".to_owned(), "a.example.com".to_owned()]
        );

        store.store_account("https://ca/dir", b"{}").await.unwrap();
        assert_eq!(mode(&store.account_path("https://ca/dir")), 0o600);
        assert_eq!(
            store.load_account("https://ca/dir").await.unwrap(),
            Some(b"{}".to_vec())
        );

        // Reopening an over-permissive directory tightens it.
        fs::set_permissions(&root, Permissions::from_mode(0o755)).unwrap();
        DirStore::open(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
        // No temporary files are left behind.
        let leftovers = fs::read_dir(root.join("certs"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count();
        assert_eq!(leftovers, 0);
    }

    #[tokio::test]
    async fn leases() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirStore::open(tmp.path()).unwrap();
        let ttl = Duration::from_secs(60);
        assert!(store.try_lease("a", "one", ttl).await.unwrap());
        assert!(store.try_lease("a", "one", ttl).await.unwrap());
        assert!(!store.try_lease("a", "two", ttl).await.unwrap());
        store.release("a", "two").await.unwrap();
        assert!(!store.try_lease("a", "two", ttl).await.unwrap());
        store.release("a", "one").await.unwrap();
        assert!(store.try_lease("a", "two", ttl).await.unwrap());
        assert!(store
            .try_lease("b", "one", Duration::from_millis(0))
            .await
            .unwrap());
        assert!(store.try_lease("b", "two", ttl).await.unwrap());
    }

    #[tokio::test]
    async fn tls_alpn_challenges_are_shared_by_clones_and_never_written() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirStore::open(tmp.path()).unwrap();
        let other = store.clone();
        let cert = StoredCert {
            chain_pem: "CHAIN".into(),
            key_pem: "KEY".into(),
        };
        let name = "a.example.com";
        store
            .store_tls_alpn_challenge(name, &cert, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            other.load_tls_alpn_challenge(name).await.unwrap(),
            Some(cert.clone())
        );
        assert_eq!(
            other
                .load_tls_alpn_challenge("b.example.com")
                .await
                .unwrap(),
            None
        );
        // Not a certificate of the store: nothing on disk, not listed.
        assert!(store.list_names().await.unwrap().is_empty());
        assert_eq!(store.load_cert(name).await.unwrap(), None);
        other.remove_tls_alpn_challenge(name).await.unwrap();
        assert_eq!(store.load_tls_alpn_challenge(name).await.unwrap(), None);
        store
            .store_tls_alpn_challenge(name, &cert, Duration::from_millis(30))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(other.load_tls_alpn_challenge(name).await.unwrap(), None);
    }
}
