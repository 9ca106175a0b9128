//! When to order: per-name renewal state, the background pass over the managed names, the
//! server's renewal information (ARI, RFC 9773), and what a success or failure changes.
//!
//! Separate from ordering itself (`order`) because these decisions depend only on the clock,
//! the stored certificates and past outcomes, never on the ACME protocol's steps.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use instant_acme::CertificateIdentifier;
use rustls::pki_types::CertificateDer;

use super::{backoff, CertStatus, ManagerState};
use crate::certs::{CertInfo, LoadedCert};
use crate::Error;

#[derive(Debug, Default)]
pub(super) struct NameState {
    pub(super) cert: Option<CertInfo>,
    /// The chain last installed, to skip re-parsing an unchanged stored copy.
    pub(super) chain_pem: Option<String>,
    pub(super) failures: u32,
    pub(super) next_attempt: Option<SystemTime>,
    last_error: Option<String>,
    pub(super) forced: bool,
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
    pub(super) fn renew_at(&self, fraction: f64) -> Option<SystemTime> {
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

impl ManagerState {
    pub(super) fn status_of(&self, name: &str, st: Option<&NameState>) -> CertStatus {
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
    pub(super) async fn sync_from_store(&self, name: &str) -> Result<bool, Error> {
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
    pub(super) async fn tick(&self) -> Duration {
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
    pub(super) async fn check(&self, name: &str) -> Duration {
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

    pub(super) async fn on_success(&self, name: &str, loaded: &LoadedCert) {
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

    pub(super) fn on_failure(&self, name: &str, e: &Error) {
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
