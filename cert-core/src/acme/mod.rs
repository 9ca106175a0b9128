//! ACME issuance and renewal in the background.
//!
//! This module keeps the public face of ACME: [`AcmeConfig`], [`AcmeManager`] and its builder,
//! [`CertStatus`] and [`list_stored`], and the state the manager's clones share. The work
//! itself lives in submodules, one concern each, so that each can be read without the others:
//!
//! - `account`: the ACME account, loaded from the store or created once per directory URL.
//! - `order`: one ACME order, from challenges to the installed certificate.
//! - `lease`: who may order a name right now, within this process and across replicas.
//! - `renewal`: per-name state, the background pass that decides when to order, ARI, backoff.
//! - `backoff` and `http`: retry delays, and the HTTP client instant-acme talks through.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use instant_acme::Account;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::certs::CertInfo;
use crate::clock::{Clock, SystemClock};
use crate::names::{normalize_name, ManagedNames};
use crate::store::CertStore;
use crate::{Acceptor, CertResolver, ChallengeResponder, Error};

mod account;
mod backoff;
mod http;
mod lease;
mod order;
mod renewal;

use http::AcmeHttp;
use renewal::NameState;

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Settings for [`AcmeManager`].
#[derive(Debug, Clone, PartialEq)]
pub struct AcmeConfig {
    /// The ACME directory URL. One account is created (and stored) per directory URL.
    /// Default: Let's Encrypt production.
    pub directory_url: String,
    /// Account contact URIs (`mailto:ops@example.com`). Default: none.
    pub contact: Vec<String>,
    /// Answer HTTP-01 challenges (needs port 80 routed to [`ChallengeResponder`]). Default: on.
    pub http01: bool,
    /// Answer TLS-ALPN-01 challenges (needs port 443 with
    /// [`crate::TlsConfig::acme_tls_alpn`] on). Default: on. With both on, HTTP-01 is tried
    /// first and the types alternate after a failed attempt.
    pub tls_alpn01: bool,
    /// PEM roots trusted for the ACME server's own HTTPS (a test CA such as Pebble's). `None`:
    /// the platform trust store.
    pub directory_roots_pem: Option<String>,
    /// Renew when this fraction of the certificate's lifetime remains. Default: 1/3 (30 days
    /// of 90; 2 days of 6).
    pub renew_remaining_fraction: f64,
    /// The longest the manager sleeps between checks (it also wakes on demand). Default: 1 h.
    pub check_interval: Duration,
    /// First retry delay after a failed order; doubles per failure. Default: 1 min.
    pub retry_min: Duration,
    /// Longest retry delay (also used for a rate-limit error without Retry-After).
    /// Default: 6 h.
    pub retry_max: Duration,
    /// Upper bound for one whole order (challenges, validation, finalisation). Default: 2 min.
    pub order_timeout: Duration,
    /// How long an order lease is held in the store before it expires on its own (if the
    /// holder dies). Must exceed `order_timeout`. Default: 10 min.
    pub lease_ttl: Duration,
    /// This replica's identity in leases. Default: `pid-<pid>-<random>`.
    pub owner_id: String,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        Self {
            directory_url: LETS_ENCRYPT_DIRECTORY.to_owned(),
            contact: Vec::new(),
            http01: true,
            tls_alpn01: true,
            directory_roots_pem: None,
            renew_remaining_fraction: 1.0 / 3.0,
            check_interval: Duration::from_secs(3600),
            retry_min: Duration::from_secs(60),
            retry_max: Duration::from_secs(6 * 3600),
            order_timeout: Duration::from_secs(120),
            lease_ttl: Duration::from_secs(600),
            owner_id: format!("pid-{}-{:08x}", std::process::id(), rand::random::<u32>()),
        }
    }
}

/// What `gateway cert list` shows for one name.
#[derive(Debug, Clone, PartialEq)]
pub struct CertStatus {
    /// The name.
    pub name: String,
    /// The current certificate's issuer, if there is a certificate.
    pub issuer: Option<String>,
    /// The current certificate's notAfter.
    pub not_after: Option<SystemTime>,
    /// When renewal is due (`None` with no certificate: due now).
    pub next_renewal: Option<SystemTime>,
    /// Consecutive failed orders.
    pub failures: u32,
    /// The last failure, if the latest attempt failed.
    pub last_error: Option<String>,
    /// When the next attempt may happen after failures (backoff).
    pub next_attempt: Option<SystemTime>,
}

/// Reads every certificate in `store` (for `gateway cert list` without a running manager).
pub async fn list_stored(
    store: &dyn CertStore,
    renew_remaining_fraction: f64,
) -> Result<Vec<CertStatus>, Error> {
    let mut out = Vec::new();
    for name in store.list_names().await? {
        let Some(stored) = store.load_cert(&name).await? else {
            continue;
        };
        let info = CertInfo::from_pem(&stored.chain_pem)?;
        out.push(CertStatus {
            name,
            issuer: Some(info.issuer.clone()),
            not_after: Some(info.not_after),
            next_renewal: Some(info.renew_at(renew_remaining_fraction)),
            failures: 0,
            last_error: None,
            next_attempt: None,
        });
    }
    Ok(out)
}

/// Orders, renews and installs certificates over ACME, in the background.
///
/// - Orders only for names from its [`ManagedNames`] (the route table). Nothing else —
///   TLS SNI included — can make it order or write to the store (security case 28).
/// - One order per name (SAN = that name), with a fresh ECDSA P-256 key; wildcard names are
///   skipped (they need DNS-01).
/// - HTTP-01 through its [`ChallengeResponder`], TLS-ALPN-01 through the [`CertResolver`].
///   Both answers are also published in the store for the order's duration, so a replica
///   sharing the store answers the validation too (its [`ChallengeResponder`] and its
///   [`Acceptor`]), and withdrawn when the order ends.
/// - Renews when [`AcmeConfig::renew_remaining_fraction`] of the lifetime is left, judged by
///   an injectable [`Clock`]. While renewing or retrying, the old certificate stays served.
/// - Failures back off exponentially with jitter, honour `Retry-After` and rate limits,
///   increment `cert_acme_failures_total{name,reason}` and log a warning.
///   `cert_days_to_expiry{name}` is a gauge; `cert_acme_orders_total{name}` counts orders.
/// - Takes the store's lease for a name before ordering, so replicas sharing a store place
///   one order per name; the others pick the new certificate up from the store.
///
/// It never blocks startup: [`spawn`](Self::spawn) returns at once. Cheap to clone; clones
/// share state.
#[derive(Clone)]
pub struct AcmeManager {
    inner: Arc<ManagerState>,
}

/// Behind one `Arc` so that every clone of an [`AcmeManager`] (the background loop, the admin
/// API, config reloads) sees the same per-name state, in-flight set and wake-up signal.
struct ManagerState {
    cfg: AcmeConfig,
    store: Arc<dyn CertStore>,
    resolver: Arc<CertResolver>,
    responder: ChallengeResponder,
    names: Arc<dyn ManagedNames>,
    clock: Arc<dyn Clock>,
    http: AcmeHttp,
    retry_after: Arc<Mutex<Option<Duration>>>,
    account: tokio::sync::Mutex<Option<Account>>,
    state: Mutex<HashMap<String, NameState>>,
    in_flight: Mutex<HashSet<String>>,
    wake: Notify,
    stopped: AtomicBool,
    orders: AtomicU64,
    /// Set once the directory turned out to offer no renewal information (ARI).
    ari_unsupported: AtomicBool,
}

impl fmt::Debug for AcmeManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcmeManager")
            .field("directory_url", &self.inner.cfg.directory_url)
            .field("orders_placed", &self.orders_placed())
            .finish()
    }
}

/// Builds an [`AcmeManager`]; see [`AcmeManager::builder`].
pub struct AcmeManagerBuilder {
    cfg: AcmeConfig,
    store: Arc<dyn CertStore>,
    resolver: Arc<CertResolver>,
    names: Arc<dyn ManagedNames>,
    clock: Arc<dyn Clock>,
    responder: Option<ChallengeResponder>,
}

impl fmt::Debug for AcmeManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcmeManagerBuilder")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl AcmeManagerBuilder {
    /// Uses `clock` for renewal and backoff decisions (tests move it forward).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Publishes HTTP-01 answers into `responder` (default: a new one sharing the store,
    /// available from [`AcmeManager::challenge_responder`]).
    pub fn challenge_responder(mut self, responder: ChallengeResponder) -> Self {
        self.responder = Some(responder);
        self
    }

    /// Checks the configuration and builds the manager. Nothing is contacted yet.
    pub fn build(self) -> Result<AcmeManager, Error> {
        let cfg = self.cfg;
        if !cfg.http01 && !cfg.tls_alpn01 {
            return Err(Error::Config(
                "ACME needs http01 or tls_alpn01 enabled".into(),
            ));
        }
        if !(cfg.renew_remaining_fraction > 0.0 && cfg.renew_remaining_fraction < 1.0) {
            return Err(Error::Config(
                "renew_remaining_fraction must be between 0 and 1".into(),
            ));
        }
        if cfg.lease_ttl <= cfg.order_timeout {
            return Err(Error::Config(
                "lease_ttl must be longer than order_timeout".into(),
            ));
        }
        let retry_after = Arc::new(Mutex::new(None));
        let http = AcmeHttp::new(cfg.directory_roots_pem.as_deref(), retry_after.clone())?;
        let responder = self
            .responder
            .unwrap_or_else(|| ChallengeResponder::with_store(self.store.clone()));
        Ok(AcmeManager {
            inner: Arc::new(ManagerState {
                cfg,
                store: self.store,
                resolver: self.resolver,
                responder,
                names: self.names,
                clock: self.clock,
                http,
                retry_after,
                account: tokio::sync::Mutex::new(None),
                state: Mutex::new(HashMap::new()),
                in_flight: Mutex::new(HashSet::new()),
                wake: Notify::new(),
                stopped: AtomicBool::new(false),
                orders: AtomicU64::new(0),
                ari_unsupported: AtomicBool::new(false),
            }),
        })
    }
}

impl AcmeManager {
    /// Starts building a manager that orders for `names`, keeps state in `store` and
    /// installs certificates into `resolver`.
    pub fn builder(
        cfg: AcmeConfig,
        store: Arc<dyn CertStore>,
        resolver: Arc<CertResolver>,
        names: Arc<dyn ManagedNames>,
    ) -> AcmeManagerBuilder {
        AcmeManagerBuilder {
            cfg,
            store,
            resolver,
            names,
            clock: Arc::new(SystemClock),
            responder: None,
        }
    }

    /// The HTTP-01 responder the plain listener must consult.
    pub fn challenge_responder(&self) -> ChallengeResponder {
        self.inner.responder.clone()
    }

    /// The resolver certificates are installed into.
    pub fn resolver(&self) -> Arc<CertResolver> {
        self.inner.resolver.clone()
    }

    /// The acceptor for the HTTPS listener: handshakes with `config` (built by
    /// [`crate::server_config`] over this manager's resolver), and, when TLS-ALPN-01 is on,
    /// validations for another replica's orders answered from this manager's store, for this
    /// manager's names (see [`Acceptor`]).
    pub fn acceptor(&self, config: Arc<rustls::ServerConfig>) -> Acceptor {
        let acceptor = Acceptor::new(config);
        if !self.inner.cfg.tls_alpn01 {
            return acceptor;
        }
        acceptor.with_shared_challenges(
            self.inner.store.clone(),
            self.inner.names.clone(),
            self.inner.resolver.clone(),
        )
    }

    /// Runs [`run`](Self::run) on the current tokio runtime and returns at once.
    pub fn spawn(&self) -> JoinHandle<()> {
        tokio::spawn(self.clone().run())
    }

    /// The background loop: installs stored certificates, then orders and renews until
    /// [`stop`](Self::stop). Never returns an error; failures are logged, counted and retried.
    pub async fn run(self) {
        if let Err(e) = self.load_stored().await {
            tracing::warn!(error = %e, "loading stored certificates failed");
        }
        while !self.inner.stopped.load(Ordering::Acquire) {
            let wait = self.inner.tick().await;
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.inner.wake.notified() => {}
            }
        }
    }

    /// Asks the loop to finish after its current step.
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::Release);
        self.inner.wake.notify_one();
    }

    /// Installs every stored certificate of a managed name into the resolver, without
    /// contacting the CA. [`run`](Self::run) does this first; a binary may also await it
    /// before accepting connections (it only reads the store). Returns how many were loaded.
    pub async fn load_stored(&self) -> Result<usize, Error> {
        let mut loaded = 0;
        for name in self.inner.managed_names() {
            if self.inner.sync_from_store(&name).await? {
                loaded += 1;
            }
        }
        Ok(loaded)
    }

    /// Wakes the loop to re-read the managed names now (call after a config reload).
    pub fn names_changed(&self) {
        self.inner.wake.notify_one();
    }

    /// Marks `name` for renewal regardless of its expiry, and wakes the loop; returns at once.
    /// The loop retries it (with backoff) until a new certificate is issued.
    pub fn request_renewal(&self, name: &str) -> Result<(), Error> {
        let name = self.inner.check_allowed(name)?;
        {
            let mut state = self.inner.state.lock();
            let st = state.entry(name).or_default();
            st.forced = true;
            // An explicit request is attempted now, not after the current backoff.
            st.next_attempt = None;
        }
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Orders a new certificate for `name` now (for `gateway cert renew NAME`) and installs
    /// it. Ignores backoff, but not the lease: if another replica is ordering, this fails
    /// with [`Error::Leased`].
    pub async fn renew_now(&self, name: &str) -> Result<CertStatus, Error> {
        let name = self.inner.check_allowed(name)?;
        match self.inner.obtain(&name, true).await {
            Ok(loaded) => {
                self.inner.on_success(&name, &loaded).await;
            }
            Err(e) => {
                self.inner.on_failure(&name, &e);
                return Err(e);
            }
        }
        self.status(&name)
            .ok_or_else(|| Error::NameNotAllowed(name.clone()))
    }

    /// The status of one managed name.
    pub fn status(&self, name: &str) -> Option<CertStatus> {
        let name = normalize_name(name).ok()?;
        let state = self.inner.state.lock();
        Some(self.inner.status_of(&name, state.get(&name)))
    }

    /// The status of every managed name (for `gateway cert list`), sorted by name.
    pub fn list(&self) -> Vec<CertStatus> {
        let names = self.inner.managed_names();
        let state = self.inner.state.lock();
        names
            .iter()
            .map(|n| self.inner.status_of(n, state.get(n)))
            .collect()
    }

    /// How many ACME orders this manager has placed (for tests and metrics).
    pub fn orders_placed(&self) -> u64 {
        self.inner.orders.load(Ordering::Relaxed)
    }
}

impl ManagerState {
    fn check_allowed(&self, name: &str) -> Result<String, Error> {
        let name = normalize_name(name)?;
        if !self.names.contains(&name) {
            return Err(Error::NameNotAllowed(name));
        }
        Ok(name)
    }

    /// The managed names, normalised, deduplicated and sorted; wildcards and invalid entries
    /// are skipped with a log line.
    fn managed_names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for raw in self.names.names() {
            match normalize_name(&raw) {
                Ok(n) if n.starts_with("*.") => {
                    tracing::warn!(name = %n, "wildcard names need DNS-01, which is not supported; skipped");
                }
                Ok(n) => out.push(n),
                Err(e) => tracing::warn!(error = %e, "skipping managed name"),
            }
        }
        out.sort();
        out.dedup();
        out
    }
}
