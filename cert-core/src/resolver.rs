//! SNI → certificate, swapped without a restart.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::certs::{self, LoadedCert};
use crate::tls::ACME_TLS_ALPN;
use crate::Error;

/// The certificates served, by name. Immutable once published; updates publish a new table.
#[derive(Default, Clone)]
struct Table {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the suffix after `*.` (`example.com` for `*.example.com`).
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

/// A rustls [`ResolvesServerCert`] backed by prebuilt [`CertifiedKey`]s.
///
/// Lookup order for a normal handshake:
/// 1. the exact SNI name;
/// 2. a wildcard `*.parent` certificate covering it (one label deep, as in RFC 6125);
/// 3. with no SNI (or an IP literal), the default certificate;
/// 4. otherwise a self-signed placeholder generated at construction.
///
/// An unknown name never causes any side effect (no ACME order, no storage write: security
/// case 28) — the resolver only reads.
///
/// The table sits in an [`ArcSwap`]: a handshake does one atomic load and one hash lookup,
/// and [`insert`](Self::insert) publishes a new table atomically, so issuance and renewal
/// take effect for the next handshake with no restart.
///
/// TLS-ALPN-01 (RFC 8737): a ClientHello offering exactly the one ALPN protocol
/// `acme-tls/1` is a validation handshake. It gets the challenge certificate while one is
/// pending for its SNI, and otherwise the handshake is refused (no certificate). Such a
/// connection must carry no HTTP: see [`crate::is_acme_tls_alpn`]. The resolver knows only
/// the challenges this process published; [`crate::Acceptor`] answers the ones another
/// replica published in a shared store.
pub struct CertResolver {
    table: ArcSwap<Table>,
    challenges: ArcSwap<HashMap<String, Arc<CertifiedKey>>>,
    placeholder: Arc<CertifiedKey>,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table = self.table.load();
        let mut names: Vec<&String> = table.exact.keys().collect();
        names.sort();
        f.debug_struct("CertResolver")
            .field("names", &names)
            .field("wildcards", &table.wildcard.keys().collect::<Vec<_>>())
            .field("has_default", &table.default.is_some())
            .field("pending_tls_alpn", &self.challenges.load().len())
            .finish()
    }
}

impl CertResolver {
    /// An empty resolver; every name gets the placeholder until certificates are inserted.
    pub fn new() -> Result<Self, Error> {
        let placeholder = certs::self_signed(&["placeholder.invalid".to_owned()])?;
        Ok(Self {
            table: ArcSwap::from_pointee(Table::default()),
            challenges: ArcSwap::from_pointee(HashMap::new()),
            placeholder,
        })
    }

    /// Serves `key` for `name` (exact, or `*.suffix` for a wildcard), replacing any previous
    /// certificate for that name. `name` must be normalised ([`crate::normalize_name`]).
    pub fn insert(&self, name: &str, key: Arc<CertifiedKey>) {
        self.table.rcu(|old| {
            let mut t = Table::clone(old);
            match name.strip_prefix("*.") {
                Some(suffix) => t.wildcard.insert(suffix.to_owned(), key.clone()),
                None => t.exact.insert(name.to_owned(), key.clone()),
            };
            t
        });
    }

    /// Serves `cert` under every DNS name in its subjectAltName (wildcards included).
    pub fn insert_loaded(&self, cert: &LoadedCert) {
        self.table.rcu(|old| {
            let mut t = Table::clone(old);
            for name in &cert.info.names {
                match name.strip_prefix("*.") {
                    Some(suffix) => t.wildcard.insert(suffix.to_owned(), cert.key.clone()),
                    None => t.exact.insert(name.clone(), cert.key.clone()),
                };
            }
            t
        });
    }

    /// Stops serving a certificate for `name`.
    pub fn remove(&self, name: &str) {
        self.table.rcu(|old| {
            let mut t = Table::clone(old);
            match name.strip_prefix("*.") {
                Some(suffix) => t.wildcard.remove(suffix),
                None => t.exact.remove(name),
            };
            t
        });
    }

    /// Sets (or clears) the certificate for handshakes without SNI.
    pub fn set_default(&self, key: Option<Arc<CertifiedKey>>) {
        self.table.rcu(|old| {
            let mut t = Table::clone(old);
            t.default = key.clone();
            t
        });
    }

    /// Whether a real (non-placeholder) certificate covers `name`, exactly or by wildcard.
    pub fn has_cert(&self, name: &str) -> bool {
        let t = self.table.load();
        Self::find(&t, name).is_some()
    }

    /// The certificate a normal handshake with this SNI would get.
    pub fn lookup(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let t = self.table.load();
        let found = match sni {
            Some(name) => Self::find(&t, name),
            None => t.default.clone(),
        };
        found.unwrap_or_else(|| self.placeholder.clone())
    }

    /// The placeholder served for names with no certificate.
    pub fn placeholder(&self) -> Arc<CertifiedKey> {
        self.placeholder.clone()
    }

    fn find(t: &Table, name: &str) -> Option<Arc<CertifiedKey>> {
        // rustls lowercases SNI; a trailing dot may survive, so strip it.
        let name = name.strip_suffix('.').unwrap_or(name);
        if let Some(k) = t.exact.get(name) {
            return Some(k.clone());
        }
        let (_, parent) = name.split_once('.')?;
        t.wildcard.get(parent).cloned()
    }

    /// Publishes a TLS-ALPN-01 challenge certificate for `name` built from SHA-256 of the key
    /// authorization. It is served only to `acme-tls/1` handshakes, until
    /// [`clear_tls_alpn_challenge`](Self::clear_tls_alpn_challenge).
    pub fn set_tls_alpn_challenge(
        &self,
        name: &str,
        key_authorization_digest: &[u8],
    ) -> Result<(), Error> {
        let (cert, _) = certs::tls_alpn_challenge(name, key_authorization_digest)?;
        self.set_tls_alpn_challenge_key(name, cert);
        Ok(())
    }

    /// Publishes an already built challenge certificate for `name` (the manager builds it
    /// once, serves it here and stores it for the other replicas).
    pub(crate) fn set_tls_alpn_challenge_key(&self, name: &str, cert: Arc<CertifiedKey>) {
        self.challenges.rcu(|old| {
            let mut m = HashMap::clone(old);
            m.insert(name.to_owned(), cert.clone());
            m
        });
    }

    /// Withdraws the TLS-ALPN-01 challenge certificate for `name`.
    pub fn clear_tls_alpn_challenge(&self, name: &str) {
        self.challenges.rcu(|old| {
            let mut m = HashMap::clone(old);
            m.remove(name);
            m
        });
    }

    /// Whether a TLS-ALPN-01 challenge is pending for `name`.
    pub fn has_tls_alpn_challenge(&self, name: &str) -> bool {
        self.challenges.load().contains_key(name)
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name();
        if let Some(mut alpn) = hello.alpn() {
            // RFC 8737 §3: the validation ClientHello offers acme-tls/1 and nothing else.
            if alpn.next() == Some(ACME_TLS_ALPN) && alpn.next().is_none() {
                // No pending challenge → no certificate → the handshake fails, so nothing
                // is ever served on an acme-tls/1 connection except a challenge.
                return sni.and_then(|name| self.challenges.load().get(name).cloned());
            }
        }
        Some(self.lookup(sni))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Arc<CertifiedKey> {
        certs::self_signed(&[name.to_owned()]).unwrap()
    }

    #[test]
    fn exact_wildcard_default_placeholder() {
        let r = CertResolver::new().unwrap();
        let a = key("a.example.com");
        let w = key("*.example.com");
        let d = key("default.example.com");
        r.insert("a.example.com", a.clone());
        r.insert("*.example.com", w.clone());
        assert!(Arc::ptr_eq(&r.lookup(Some("a.example.com")), &a));
        assert!(Arc::ptr_eq(&r.lookup(Some("a.example.com.")), &a));
        assert!(Arc::ptr_eq(&r.lookup(Some("b.example.com")), &w));
        // A wildcard covers one label only.
        assert!(Arc::ptr_eq(
            &r.lookup(Some("x.b.example.com")),
            &r.placeholder()
        ));
        assert!(Arc::ptr_eq(
            &r.lookup(Some("example.com")),
            &r.placeholder()
        ));
        assert!(Arc::ptr_eq(&r.lookup(None), &r.placeholder()));
        r.set_default(Some(d.clone()));
        assert!(Arc::ptr_eq(&r.lookup(None), &d));
        // Swapping in a new certificate takes effect at once.
        let a2 = key("a.example.com");
        r.insert("a.example.com", a2.clone());
        assert!(Arc::ptr_eq(&r.lookup(Some("a.example.com")), &a2));
        r.remove("a.example.com");
        assert!(Arc::ptr_eq(&r.lookup(Some("a.example.com")), &w));
        assert!(r.has_cert("zzz.example.com"));
        assert!(!r.has_cert("other.org"));
    }

    #[test]
    fn challenges() {
        let r = CertResolver::new().unwrap();
        r.set_tls_alpn_challenge("a.example.com", &[7u8; 32])
            .unwrap();
        assert!(r.has_tls_alpn_challenge("a.example.com"));
        r.clear_tls_alpn_challenge("a.example.com");
        assert!(!r.has_tls_alpn_challenge("a.example.com"));
    }
}
