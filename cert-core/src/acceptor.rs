//! The TLS acceptor of the HTTPS listener: the normal handshake, plus TLS-ALPN-01 answered by
//! any replica from the shared store.
//!
//! [`CertResolver`] answers a TLS-ALPN-01 validation only with a challenge this process
//! published, and rustls resolves certificates synchronously, so it cannot ask a shared store.
//! [`Acceptor`] reads the ClientHello first ([`LazyConfigAcceptor`]); only a validation
//! ClientHello for a managed name with no local challenge makes it look in the store, and
//! then it finishes that one handshake with a config that serves the stored certificate.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::server::{ClientHello, NoServerSessionStorage, ProducesTickets, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::{LazyConfigAcceptor, TlsAcceptor};

use crate::certs;
use crate::names::{normalize_name, ManagedNames};
use crate::store::CertStore;
use crate::tls::ACME_TLS_ALPN;
use crate::CertResolver;

/// The least time between two store lookups for one name (default of
/// [`Acceptor::with_lookup_limits`]).
pub const DEFAULT_LOOKUP_INTERVAL: Duration = Duration::from_millis(200);

/// The longest one store lookup may take before the handshake is refused (default of
/// [`Acceptor::with_lookup_limits`]).
pub const DEFAULT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);

/// Accepts TLS connections for the HTTPS listener; use it where you would use
/// [`tokio_rustls::TlsAcceptor`].
///
/// Built from a config alone ([`Acceptor::new`], `From<Arc<ServerConfig>>`) it is exactly a
/// `TlsAcceptor`. Built with a shared store ([`Acceptor::with_shared_challenges`], or
/// [`crate::AcmeManager::acceptor`]) it also answers TLS-ALPN-01 validations for orders that
/// another replica placed:
///
/// - It reads the ClientHello first. Only a ClientHello whose ALPN list is exactly
///   `acme-tls/1` (RFC 8737 §3), with an SNI that this process has no local challenge for and
///   that is a managed name (the route table), leads to a store lookup. Every other handshake
///   continues at once with the normal config: no lookup, no allocation beyond the ClientHello
///   buffer [`LazyConfigAcceptor`] needs.
/// - A challenge certificate found in the store is checked (one certificate, SAN = the name,
///   the acmeIdentifier extension, the key matches) and served with a one-off config that
///   offers only `acme-tls/1`, no session resumption and no tickets. The listener must still
///   close such a connection without HTTP: [`crate::is_acme_tls_alpn`].
/// - None found (or the store failed, or took longer than the lookup timeout): the handshake
///   continues with the normal config, which refuses it (no certificate), as before.
///
/// # Bounds on the store
///
/// An unmanaged name never reaches the store, so the lookups are spread over managed names
/// only. For each of them at most one lookup runs at a time, and lookups start at least the
/// lookup interval apart: concurrent and closely following validation handshakes share one
/// lookup. A flood of `acme-tls/1` ClientHellos for a managed name therefore costs the store
/// at most one lookup per interval (5 per second by default), however many connections it
/// opens. The answer a handshake gets always comes from a lookup that started after its
/// ClientHello arrived: a flood cannot make a real validation see an answer from before its
/// challenge was published (a negative cache could), it only waits up to one interval plus
/// the lookup. The handshake timeout of the listener bounds the whole wait.
///
/// Cheap to clone; clones share the lookup state.
#[derive(Clone)]
pub struct Acceptor {
    tls: TlsAcceptor,
    shared: Option<Arc<SharedChallenges>>,
}

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acceptor")
            .field("shared_challenges", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

impl From<Arc<ServerConfig>> for Acceptor {
    fn from(config: Arc<ServerConfig>) -> Self {
        Self::new(config)
    }
}

/// What a replica needs to answer a validation for another replica's order.
struct SharedChallenges {
    store: Arc<dyn CertStore>,
    names: Arc<dyn ManagedNames>,
    resolver: Arc<CertResolver>,
    interval: Duration,
    timeout: Duration,
    /// One slot per managed name that has seen a validation handshake: bounded by the number
    /// of names managed while this process ran, never by what clients send.
    slots: parking_lot::Mutex<HashMap<String, Arc<Slot>>>,
    lookups: AtomicU64,
    answered: AtomicU64,
}

/// The lookups for one name, one at a time (the async mutex queues the handshakes, FIFO).
#[derive(Default)]
struct Slot {
    last: tokio::sync::Mutex<Option<Lookup>>,
}

/// The latest lookup for a name: when it started and what it found.
struct Lookup {
    started: Instant,
    found: Option<Arc<CertifiedKey>>,
}

impl Acceptor {
    /// An acceptor that completes every handshake with `config`, like
    /// [`tokio_rustls::TlsAcceptor`].
    pub fn new(config: Arc<ServerConfig>) -> Self {
        Self {
            tls: TlsAcceptor::from(config),
            shared: None,
        }
    }

    /// Also answers TLS-ALPN-01 validations from `store` for the names in `names`, when
    /// `resolver` (the one in the config) has no local challenge for them. Does nothing
    /// unless the config offers `acme-tls/1` ([`crate::TlsConfig::acme_tls_alpn`]).
    pub fn with_shared_challenges(
        self,
        store: Arc<dyn CertStore>,
        names: Arc<dyn ManagedNames>,
        resolver: Arc<CertResolver>,
    ) -> Self {
        let offers_acme = self
            .tls
            .config()
            .alpn_protocols
            .iter()
            .any(|p| p == ACME_TLS_ALPN);
        if !offers_acme {
            return Self {
                tls: self.tls,
                shared: None,
            };
        }
        Self {
            tls: self.tls,
            shared: Some(Arc::new(SharedChallenges {
                store,
                names,
                resolver,
                interval: DEFAULT_LOOKUP_INTERVAL,
                timeout: DEFAULT_LOOKUP_TIMEOUT,
                slots: parking_lot::Mutex::default(),
                lookups: AtomicU64::new(0),
                answered: AtomicU64::new(0),
            })),
        }
    }

    /// Sets the least time between two store lookups for one name and the longest a lookup
    /// may take (defaults: [`DEFAULT_LOOKUP_INTERVAL`], [`DEFAULT_LOOKUP_TIMEOUT`]). Call it
    /// before cloning; clones made earlier keep the old limits.
    pub fn with_lookup_limits(mut self, interval: Duration, timeout: Duration) -> Self {
        if let Some(shared) = self.shared.as_mut().and_then(Arc::get_mut) {
            shared.interval = interval;
            shared.timeout = timeout;
        }
        self
    }

    /// The normal server config.
    pub fn config(&self) -> &Arc<ServerConfig> {
        self.tls.config()
    }

    /// How many times this acceptor (and its clones) asked the store for a challenge.
    pub fn store_lookups(&self) -> u64 {
        self.shared
            .as_ref()
            .map_or(0, |s| s.lookups.load(Ordering::Relaxed))
    }

    /// How many validation handshakes this acceptor (and its clones) answered with a
    /// challenge certificate from the store (a challenge another replica published).
    pub fn answered_from_store(&self) -> u64 {
        self.shared
            .as_ref()
            .map_or(0, |s| s.answered.load(Ordering::Relaxed))
    }

    /// Performs the TLS handshake on `io`. Wrap it in a timeout: it covers the whole
    /// handshake, store lookup included.
    pub async fn accept<IO>(&self, io: IO) -> io::Result<TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let Some(shared) = &self.shared else {
            return self.tls.accept(io).await;
        };
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io).await?;
        // Allocates only for a validation ClientHello; the borrow of the ClientHello ends here.
        let sni = validation_sni(&start.client_hello()).map(str::to_owned);
        let config = match sni {
            None => self.tls.config().clone(),
            Some(sni) => {
                shared
                    .config_for(&sni, Instant::now(), self.tls.config())
                    .await
            }
        };
        start.into_stream(config).await
    }
}

/// The SNI of a TLS-ALPN-01 validation ClientHello: ALPN exactly `acme-tls/1` (RFC 8737 §3,
/// the rule [`CertResolver`] applies too) and an SNI.
fn validation_sni<'h>(hello: &'h ClientHello<'_>) -> Option<&'h str> {
    let mut alpn = hello.alpn()?;
    if alpn.next() != Some(ACME_TLS_ALPN) || alpn.next().is_some() {
        return None;
    }
    hello.server_name()
}

impl SharedChallenges {
    /// The config to finish a validation handshake for `sni` with.
    async fn config_for(
        &self,
        sni: &str,
        arrived: Instant,
        normal: &Arc<ServerConfig>,
    ) -> Arc<ServerConfig> {
        // A challenge this process published: the resolver serves it.
        if self.resolver.has_tls_alpn_challenge(sni) {
            return normal.clone();
        }
        // An unmanaged (or invalid, or wildcard) name never reaches the store; the normal
        // config refuses it.
        let Ok(name) = normalize_name(sni) else {
            return normal.clone();
        };
        if name.starts_with("*.") || !self.names.contains(&name) {
            return normal.clone();
        }
        match self.lookup(&name, arrived).await {
            Some(key) => {
                self.answered.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("cert_tls_alpn_shared_answers_total").increment(1);
                challenge_config(normal, key)
            }
            None => normal.clone(),
        }
    }

    /// The stored challenge for `name`, from a lookup that started at or after `arrived`.
    async fn lookup(&self, name: &str, arrived: Instant) -> Option<Arc<CertifiedKey>> {
        let slot = self
            .slots
            .lock()
            .entry(name.to_owned())
            .or_default()
            .clone();
        let mut last = slot.last.lock().await;
        if let Some(prev) = last.as_ref() {
            // Started after this ClientHello arrived: its answer is as fresh as our own
            // would be, so share it.
            if prev.started >= arrived {
                return prev.found.clone();
            }
            tokio::time::sleep_until((prev.started + self.interval).into()).await;
        }
        let started = Instant::now();
        self.lookups.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("cert_tls_alpn_store_lookups_total").increment(1);
        let found = match tokio::time::timeout(
            self.timeout,
            self.store.load_tls_alpn_challenge(name),
        )
        .await
        {
            Ok(Ok(Some(stored))) => match certs::tls_alpn_challenge_from_stored(name, &stored) {
                Ok(key) => Some(key),
                Err(e) => {
                    tracing::warn!(name, error = %e, "ignoring a stored TLS-ALPN-01 challenge");
                    None
                }
            },
            Ok(Ok(None)) => None,
            Ok(Err(e)) => {
                tracing::warn!(name, error = %e, "loading a shared TLS-ALPN-01 challenge failed");
                None
            }
            Err(_) => {
                tracing::warn!(
                    name,
                    timeout_ms = self.timeout.as_millis(),
                    "loading a shared TLS-ALPN-01 challenge timed out"
                );
                None
            }
        };
        *last = Some(Lookup {
            started,
            found: found.clone(),
        });
        found
    }
}

/// The normal config with only `acme-tls/1`, the challenge certificate, and no resumption:
/// nothing from a validation connection is reused by another.
fn challenge_config(normal: &ServerConfig, key: Arc<CertifiedKey>) -> Arc<ServerConfig> {
    let mut config = normal.clone();
    config.cert_resolver = Arc::new(ChallengeOnly(key));
    config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.ticketer = Arc::new(NoTickets);
    config.send_tls13_tickets = 0;
    Arc::new(config)
}

/// Serves one challenge certificate, and only to an `acme-tls/1` validation ClientHello.
#[derive(Debug)]
struct ChallengeOnly(Arc<CertifiedKey>);

impl ResolvesServerCert for ChallengeOnly {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        validation_sni(&hello).map(|_| self.0.clone())
    }
}

/// Issues no session tickets (rustls' own `NeverProducesTickets` is private).
#[derive(Debug)]
struct NoTickets;

impl ProducesTickets for NoTickets {
    fn enabled(&self) -> bool {
        false
    }
    fn lifetime(&self) -> u32 {
        0
    }
    fn encrypt(&self, _plain: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn decrypt(&self, _cipher: &[u8]) -> Option<Vec<u8>> {
        None
    }
}
