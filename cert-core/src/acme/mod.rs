//! ACME issuance and renewal in the background.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, CertificateIdentifier, ChallengeType,
    Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use parking_lot::Mutex;
use rustls::pki_types::CertificateDer;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::certs::{csr_for, CertInfo, LoadedCert};
use crate::clock::{Clock, SystemClock};
use crate::names::{normalize_name, ManagedNames};
use crate::store::{CertStore, StoredCert};
use crate::{CertResolver, ChallengeResponder, Error};

mod backoff;
mod http;

use http::AcmeHttp;

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

#[derive(Debug, Default)]
struct NameState {
    cert: Option<CertInfo>,
    /// The chain last installed, to skip re-parsing an unchanged stored copy.
    chain_pem: Option<String>,
    failures: u32,
    next_attempt: Option<SystemTime>,
    last_error: Option<String>,
    forced: bool,
    /// The served leaf, to identify it to the server's renewal information (ARI) endpoint.
    leaf_der: Option<CertificateDer<'static>>,
    /// The renewal time chosen inside the server's ARI window, and when to ask again.
    ari: Option<AriChoice>,
}

#[derive(Debug, Clone, Copy)]
struct AriChoice {
    /// `None`: the server gave no usable window; the lifetime rule alone applies.
    renew_at: Option<SystemTime>,
    refresh_at: SystemTime,
}

impl NameState {
    /// When to renew: a third of the lifetime left (configurable), or earlier when the
    /// server's ARI window says so.
    fn renew_at(&self, fraction: f64) -> Option<SystemTime> {
        let by_lifetime = self.cert.as_ref()?.renew_at(fraction);
        Some(match self.ari.and_then(|a| a.renew_at) {
            Some(at) => by_lifetime.min(at),
            None => by_lifetime,
        })
    }
}

/// A uniformly random point of an ARI window (RFC 9773 §4.2), as the RFC asks, so replicas
/// and clients spread their renewals. A window already open means now.
fn ari_pick(start: SystemTime, end: SystemTime, now: SystemTime, fraction: f64) -> SystemTime {
    if start <= now {
        return now;
    }
    let span = end.duration_since(start).unwrap_or_default();
    start + span.mul_f64(fraction.clamp(0.0, 1.0))
}

/// Orders, renews and installs certificates over ACME, in the background.
///
/// - Orders only for names from its [`ManagedNames`] (the route table). Nothing else —
///   TLS SNI included — can make it order or write to the store (security case 28).
/// - One order per name (SAN = that name), with a fresh ECDSA P-256 key; wildcard names are
///   skipped (they need DNS-01).
/// - HTTP-01 through its [`ChallengeResponder`], TLS-ALPN-01 through the [`CertResolver`].
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
    inner: Arc<Inner>,
}

struct Inner {
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
            inner: Arc::new(Inner {
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

/// Removes locally published challenge answers when the order ends, however it ends
/// (including cancellation by the order timeout).
struct PendingChallenges<'a> {
    inner: &'a Inner,
    tokens: Vec<String>,
    alpn_names: Vec<String>,
}

impl Drop for PendingChallenges<'_> {
    fn drop(&mut self) {
        for token in &self.tokens {
            self.inner.responder.remove(token);
        }
        for name in &self.alpn_names {
            self.inner.resolver.clear_tls_alpn_challenge(name);
        }
    }
}

/// Marks a name as being ordered by this process until dropped.
struct InFlight<'a> {
    set: &'a Mutex<HashSet<String>>,
    name: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.set.lock().remove(&self.name);
    }
}

impl Inner {
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

    fn status_of(&self, name: &str, st: Option<&NameState>) -> CertStatus {
        let frac = self.cfg.renew_remaining_fraction;
        CertStatus {
            name: name.to_owned(),
            issuer: st.and_then(|s| s.cert.as_ref()).map(|c| c.issuer.clone()),
            not_after: st.and_then(|s| s.cert.as_ref()).map(|c| c.not_after),
            next_renewal: st.and_then(|s| s.renew_at(frac)),
            failures: st.map_or(0, |s| s.failures),
            last_error: st.and_then(|s| s.last_error.clone()),
            next_attempt: st.and_then(|s| s.next_attempt),
        }
    }

    /// Installs the stored certificate for `name` if it differs from the one served and
    /// expires later (restart, another replica, an offline `cert renew`). Returns whether
    /// one was installed.
    async fn sync_from_store(&self, name: &str) -> Result<bool, Error> {
        let Some(stored) = self.store.load_cert(name).await? else {
            return Ok(false);
        };
        {
            let state = self.state.lock();
            if state
                .get(name)
                .and_then(|s| s.chain_pem.as_deref())
                .is_some_and(|c| c == stored.chain_pem)
            {
                return Ok(false);
            }
        }
        let loaded = LoadedCert::from_stored(&stored)?;
        let mut state = self.state.lock();
        let st = state.entry(name.to_owned()).or_default();
        if st
            .cert
            .as_ref()
            .is_some_and(|c| c.not_after >= loaded.info.not_after)
        {
            // Older than (or as old as) what we serve: remember it so it is not re-parsed.
            st.chain_pem = Some(stored.chain_pem);
            return Ok(false);
        }
        self.resolver.insert(name, loaded.key.clone());
        st.cert = Some(loaded.info);
        st.chain_pem = Some(stored.chain_pem);
        st.leaf_der = loaded.key.cert.first().cloned();
        st.ari = None;
        Ok(true)
    }

    /// One pass over the managed names; returns how long the loop may sleep.
    async fn tick(&self) -> Duration {
        let names = self.managed_names();
        {
            // Forget names that are no longer managed.
            let keep: HashSet<&String> = names.iter().collect();
            self.state.lock().retain(|n, _| keep.contains(n));
        }
        let mut wait = self.cfg.check_interval;
        for name in &names {
            if self.stopped.load(Ordering::Acquire) {
                break;
            }
            wait = wait.min(self.check(name).await);
        }
        // Never spin: wake at most every 50 ms even when something is due right away.
        wait.max(Duration::from_millis(50))
    }

    /// Checks one name, ordering if due; returns the time until it needs another look.
    async fn check(&self, name: &str) -> Duration {
        if let Err(e) = self.sync_from_store(name).await {
            tracing::warn!(name, error = %e, "reading the stored certificate failed");
        }
        self.refresh_ari(name).await;
        let now = self.clock.now();
        let frac = self.cfg.renew_remaining_fraction;
        let until = |t: SystemTime| t.duration_since(now).unwrap_or_default();
        let forced = {
            let state = self.state.lock();
            let st = state.get(name);
            if let Some(cert) = st.and_then(|s| s.cert.as_ref()) {
                metrics::gauge!("cert_days_to_expiry", "name" => name.to_owned())
                    .set(cert.days_to_expiry(now));
            }
            // A forced renewal skips the expiry check but not the backoff: it keeps being
            // retried until it succeeds.
            let forced = st.is_some_and(|s| s.forced);
            let renew_at = st.and_then(|s| s.renew_at(frac));
            if !forced {
                if let Some(at) = renew_at.filter(|at| *at > now) {
                    return until(at);
                }
            }
            if let Some(at) = st.and_then(|s| s.next_attempt).filter(|at| *at > now) {
                return until(at);
            }
            forced
        };
        match self.obtain(name, forced).await {
            Ok(loaded) => {
                self.on_success(name, &loaded).await;
                let next = until(loaded.info.renew_at(frac));
                if self.ari_unsupported.load(Ordering::Relaxed) {
                    next
                } else {
                    // Ask the server's ARI window for the new certificate soon.
                    next.min(self.cfg.retry_min)
                }
            }
            Err(Error::Leased(_)) => {
                // Another replica is ordering; its certificate will appear in the store.
                self.cfg.retry_min.min(self.cfg.check_interval)
            }
            Err(e) => {
                self.on_failure(name, &e);
                let state = self.state.lock();
                state
                    .get(name)
                    .and_then(|s| s.next_attempt)
                    .map_or(self.cfg.retry_min, until)
            }
        }
    }

    async fn on_success(&self, name: &str, loaded: &LoadedCert) {
        let now = self.clock.now();
        metrics::counter!("cert_acme_issued_total", "name" => name.to_owned()).increment(1);
        metrics::gauge!("cert_days_to_expiry", "name" => name.to_owned())
            .set(loaded.info.days_to_expiry(now));
        tracing::info!(
            name,
            issuer = %loaded.info.issuer,
            not_after = ?loaded.info.not_after,
            "certificate issued and installed"
        );
        let mut state = self.state.lock();
        let st = state.entry(name.to_owned()).or_default();
        st.cert = Some(loaded.info.clone());
        st.failures = 0;
        st.next_attempt = None;
        st.last_error = None;
        st.forced = false;
        st.leaf_der = loaded.key.cert.first().cloned();
        st.ari = None;
    }

    /// Asks the server's renewal information (ARI, RFC 9773) for the served certificate of
    /// `name` when it offers it and the last answer is due for a refresh. A server without
    /// ARI is remembered and never asked again; other failures are retried later and never
    /// delay the lifetime rule.
    async fn refresh_ari(&self, name: &str) {
        if self.ari_unsupported.load(Ordering::Relaxed) {
            return;
        }
        let now = self.clock.now();
        let leaf = {
            let state = self.state.lock();
            let Some(st) = state.get(name) else { return };
            if st.ari.is_some_and(|a| a.refresh_at > now) {
                return;
            }
            match &st.leaf_der {
                Some(der) => der.clone(),
                None => return,
            }
        };
        let id = match CertificateIdentifier::try_from(&leaf) {
            Ok(id) => id,
            Err(e) => {
                tracing::debug!(name, error = %e, "certificate has no ARI identifier");
                self.set_ari(name, None, now + self.cfg.check_interval);
                return;
            }
        };
        let account = match self.account().await {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(name, error = %e, "no ACME account for ARI yet");
                return;
            }
        };
        match account.renewal_info(&id).await {
            Ok((info, retry)) => {
                let start = SystemTime::from(info.suggested_window.start);
                let end = SystemTime::from(info.suggested_window.end);
                let renew_at = ari_pick(start, end, now, rand::random::<f64>());
                let refresh = retry.clamp(Duration::from_secs(60), self.cfg.check_interval);
                tracing::debug!(name, ?renew_at, "ARI renewal window");
                self.set_ari(name, Some(renew_at), now + refresh);
            }
            Err(instant_acme::Error::Unsupported(_)) => {
                self.ari_unsupported.store(true, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::debug!(name, error = %e, "ARI request failed; the lifetime rule applies");
                self.set_ari(name, None, now + self.cfg.retry_min);
            }
        }
    }

    fn set_ari(&self, name: &str, renew_at: Option<SystemTime>, refresh_at: SystemTime) {
        let mut state = self.state.lock();
        if let Some(st) = state.get_mut(name) {
            st.ari = Some(AriChoice {
                renew_at,
                refresh_at,
            });
        }
    }

    fn on_failure(&self, name: &str, e: &Error) {
        let mut retry_after = self.retry_after.lock().take();
        let mut rate_limited = false;
        let reason = match e {
            Error::Acme(instant_acme::Error::Api(p)) => {
                let kind = p.r#type.as_deref().unwrap_or_default();
                rate_limited = kind.ends_with(":rateLimited");
                if rate_limited {
                    "rate_limited"
                } else {
                    "acme_error"
                }
            }
            Error::Acme(instant_acme::Error::Timeout(at)) => {
                if let Some(at) = at {
                    retry_after = Some(at.saturating_duration_since(std::time::Instant::now()));
                }
                "timeout"
            }
            Error::Acme(_) => "acme_transport",
            Error::OrderFailed { .. } => "order_failed",
            Error::NameNotAllowed(_) => "not_allowed",
            _ => "local",
        };
        metrics::counter!("cert_acme_failures_total", "name" => name.to_owned(), "reason" => reason)
            .increment(1);
        let now = self.clock.now();
        let mut state = self.state.lock();
        let st = state.entry(name.to_owned()).or_default();
        st.failures = st.failures.saturating_add(1);
        let delay = backoff::delay(
            st.failures,
            self.cfg.retry_min,
            self.cfg.retry_max,
            retry_after,
            rate_limited,
        );
        st.next_attempt = Some(now + delay);
        st.last_error = Some(e.to_string());
        tracing::warn!(
            name,
            error = %e,
            reason,
            failures = st.failures,
            retry_in = ?delay,
            still_serving_old = st.cert.is_some(),
            "ACME order failed; will retry"
        );
    }

    /// Leases, orders and installs a certificate for `name`, which must be managed.
    /// Orders a certificate for `name` under the store's lease. Unless `force`, a certificate
    /// that another replica stored between the caller's check and the lease wins: it is
    /// installed and nothing is ordered (reported as [`Error::Leased`], "someone else did it").
    async fn obtain(&self, name: &str, force: bool) -> Result<LoadedCert, Error> {
        // Checked here, at the single entry to ordering, so that no path can order or write
        // for a name outside the route table (security case 28).
        if !self.names.contains(name) {
            return Err(Error::NameNotAllowed(name.to_owned()));
        }
        if !self.in_flight.lock().insert(name.to_owned()) {
            return Err(Error::Leased(name.to_owned()));
        }
        let _in_flight = InFlight {
            set: &self.in_flight,
            name: name.to_owned(),
        };
        let owner = self.cfg.owner_id.as_str();
        if !self
            .store
            .try_lease(name, owner, self.cfg.lease_ttl)
            .await?
        {
            return Err(Error::Leased(name.to_owned()));
        }
        if !force {
            // Double-checked under the lease: the holder before us may have just stored a
            // fresh certificate and released.
            if let Err(e) = self.sync_from_store(name).await {
                tracing::warn!(name, error = %e, "reading the stored certificate failed");
            }
            let now = self.clock.now();
            let frac = self.cfg.renew_remaining_fraction;
            let fresh = self
                .state
                .lock()
                .get(name)
                .and_then(|s| s.renew_at(frac))
                .is_some_and(|at| at > now);
            if fresh {
                if let Err(e) = self.store.release(name, owner).await {
                    tracing::warn!(name, error = %e, "releasing the order lease failed");
                }
                return Err(Error::Leased(name.to_owned()));
            }
        }
        *self.retry_after.lock() = None;
        let attempt = self.state.lock().get(name).map_or(0, |s| s.failures);
        let result =
            match tokio::time::timeout(self.cfg.order_timeout, self.order(name, attempt)).await {
                Ok(r) => r,
                Err(_) => Err(Error::OrderFailed {
                    name: name.to_owned(),
                    detail: format!("timed out after {:?}", self.cfg.order_timeout),
                }),
            };
        if let Err(e) = self.store.release(name, owner).await {
            tracing::warn!(name, error = %e, "releasing the order lease failed");
        }
        result
    }

    async fn account(&self) -> Result<Account, Error> {
        let mut slot = self.account.lock().await;
        if let Some(account) = slot.as_ref() {
            return Ok(account.clone());
        }
        let url = self.cfg.directory_url.as_str();
        let builder = Account::builder_with_http(Box::new(self.http.clone()));
        let account = match self.store.load_account(url).await? {
            Some(bytes) => {
                let creds: AccountCredentials =
                    serde_json::from_slice(&bytes).map_err(|source| Error::Corrupt {
                        what: "ACME account",
                        source,
                    })?;
                builder.from_credentials(creds).await?
            }
            None => {
                let contact: Vec<&str> = self.cfg.contact.iter().map(String::as_str).collect();
                let (account, creds) = builder
                    .create(
                        &NewAccount {
                            contact: &contact,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        url.to_owned(),
                        None,
                    )
                    .await?;
                let bytes = serde_json::to_vec(&creds).map_err(|source| Error::Corrupt {
                    what: "ACME account",
                    source,
                })?;
                self.store.store_account(url, &bytes).await?;
                tracing::info!(directory = url, id = account.id(), "ACME account created");
                account
            }
        };
        *slot = Some(account.clone());
        Ok(account)
    }

    /// One ACME order for `name`; installs and stores the certificate on success.
    async fn order(&self, name: &str, attempt: u32) -> Result<LoadedCert, Error> {
        let account = self.account().await?;
        let identifiers = [Identifier::Dns(name.to_owned())];
        let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
        self.orders.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("cert_acme_orders_total", "name" => name.to_owned()).increment(1);

        // With both types enabled, alternate after failures: if port 80 is not reachable,
        // the next attempt uses 443, and vice versa.
        let prefer_tls = self.cfg.tls_alpn01 && (!self.cfg.http01 || attempt % 2 == 1);
        let mut pending = PendingChallenges {
            inner: self,
            tokens: Vec::new(),
            alpn_names: Vec::new(),
        };
        let mut published_tokens = Vec::new();
        {
            let mut authorizations = order.authorizations();
            while let Some(authz) = authorizations.next().await {
                let mut authz = authz?;
                match authz.status {
                    AuthorizationStatus::Pending => {}
                    AuthorizationStatus::Valid => continue,
                    other => {
                        return Err(Error::OrderFailed {
                            name: name.to_owned(),
                            detail: format!("authorization is {other:?}"),
                        })
                    }
                }
                let offered = |t: &ChallengeType| authz.challenges.iter().any(|c| &c.r#type == t);
                let http_ok = self.cfg.http01 && offered(&ChallengeType::Http01);
                let tls_ok = self.cfg.tls_alpn01 && offered(&ChallengeType::TlsAlpn01);
                let kind = match (http_ok, tls_ok) {
                    (true, true) if prefer_tls => ChallengeType::TlsAlpn01,
                    (true, _) => ChallengeType::Http01,
                    (false, true) => ChallengeType::TlsAlpn01,
                    (false, false) => {
                        return Err(Error::OrderFailed {
                            name: name.to_owned(),
                            detail: "the CA offered no enabled challenge type".into(),
                        })
                    }
                };
                let Some(mut challenge) = authz.challenge(kind.clone()) else {
                    return Err(Error::OrderFailed {
                        name: name.to_owned(),
                        detail: "challenge disappeared".into(),
                    });
                };
                let key_auth = challenge.key_authorization();
                match kind {
                    ChallengeType::TlsAlpn01 => {
                        self.resolver
                            .set_tls_alpn_challenge(name, key_auth.digest().as_ref())?;
                        pending.alpn_names.push(name.to_owned());
                    }
                    _ => {
                        let token = challenge.token.clone();
                        self.responder.insert(&token, key_auth.as_str());
                        pending.tokens.push(token.clone());
                        // Let other replicas answer too; failing that, this one still can.
                        match self
                            .store
                            .store_challenge(&token, key_auth.as_str(), self.cfg.order_timeout)
                            .await
                        {
                            Ok(()) => published_tokens.push(token),
                            Err(e) => {
                                tracing::warn!(name, error = %e, "publishing the challenge failed")
                            }
                        }
                    }
                }
                tracing::debug!(name, challenge = ?kind, "challenge ready");
                challenge.set_ready().await?;
            }
        }

        let retry = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(self.cfg.order_timeout);
        let status = order.poll_ready(&retry).await;
        drop(pending);
        for token in &published_tokens {
            if let Err(e) = self.store.remove_challenge(token).await {
                tracing::debug!(error = %e, "removing a shared challenge failed");
            }
        }
        match status? {
            OrderStatus::Ready => {}
            other => {
                let mut details = Vec::new();
                let mut authorizations = order.authorizations();
                while let Some(Ok(mut authz)) = authorizations.next().await {
                    if let Ok(state) = authz.refresh().await {
                        for c in &state.challenges {
                            if let Some(err) = &c.error {
                                details.push(err.to_string());
                            }
                        }
                    }
                }
                return Err(Error::OrderFailed {
                    name: name.to_owned(),
                    detail: if details.is_empty() {
                        format!("order is {other:?}")
                    } else {
                        details.join("; ")
                    },
                });
            }
        }

        let (csr, key_pem) = csr_for(name)?;
        order.finalize_csr(&csr).await?;
        let chain_pem = order.poll_certificate(&retry).await?;
        let stored = StoredCert { chain_pem, key_pem };
        let loaded = LoadedCert::from_stored(&stored)?;
        // Serve first: a store failure must not keep a valid certificate out of service.
        self.resolver.insert(name, loaded.key.clone());
        {
            let mut state = self.state.lock();
            let st = state.entry(name.to_owned()).or_default();
            st.cert = Some(loaded.info.clone());
            st.chain_pem = Some(stored.chain_pem.clone());
        }
        if let Err(e) = self.store.store_cert(name, &stored).await {
            metrics::counter!("cert_acme_failures_total", "name" => name.to_owned(), "reason" => "store")
                .increment(1);
            tracing::error!(name, error = %e, "storing the new certificate failed; serving it from memory");
        }
        Ok(loaded)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::{ari_pick, AriChoice, NameState};
    use crate::certs::CertInfo;

    #[test]
    fn ari_picks_inside_the_window_or_now_when_it_is_open() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let start = now + Duration::from_secs(100);
        let end = now + Duration::from_secs(300);
        assert_eq!(ari_pick(start, end, now, 0.0), start);
        assert_eq!(ari_pick(start, end, now, 1.0), end);
        assert_eq!(
            ari_pick(start, end, now, 0.5),
            now + Duration::from_secs(200)
        );
        // An open window (or one in the past) means renew now.
        assert_eq!(ari_pick(now - Duration::from_secs(5), end, now, 0.7), now);
        // A reversed window collapses to its start.
        assert_eq!(ari_pick(end, start, now, 0.7), end);
    }

    #[test]
    fn the_earlier_of_lifetime_and_ari_wins() {
        let start = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let info = CertInfo {
            names: vec![],
            issuer: String::new(),
            not_before: start,
            not_after: start + Duration::from_secs(90 * 86_400),
            serial: String::new(),
        };
        let lifetime_rule = info.renew_at(1.0 / 3.0);
        let mut st = NameState {
            cert: Some(info),
            ..Default::default()
        };
        assert_eq!(st.renew_at(1.0 / 3.0), Some(lifetime_rule));
        let early = start + Duration::from_secs(10 * 86_400);
        let at = |renew_at| {
            Some(AriChoice {
                renew_at,
                refresh_at: start,
            })
        };
        st.ari = at(Some(early));
        assert_eq!(st.renew_at(1.0 / 3.0), Some(early));
        st.ari = at(Some(lifetime_rule + Duration::from_secs(1)));
        assert_eq!(st.renew_at(1.0 / 3.0), Some(lifetime_rule));
        st.ari = at(None);
        assert_eq!(st.renew_at(1.0 / 3.0), Some(lifetime_rule));
        assert_eq!(NameState::default().renew_at(1.0 / 3.0), None);
    }
}
