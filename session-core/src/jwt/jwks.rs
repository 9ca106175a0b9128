//! A JWKS held in memory: fetched at start by a spawned task, refreshed as the response's
//! `Cache-Control: max-age` / `Expires` say (clamped to the configured floor and ceiling),
//! refetched at once for an unknown `kid` but at most once per refetch interval, and kept when
//! a refresh fails.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{ACCEPT, CACHE_CONTROL, EXPIRES};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use super::keys::{parse_jwks, VerifyKey};
use crate::http_client::{expires_in, CacheDirectives, HttpClient};

/// The keys of one successful fetch.
pub(crate) struct KeySet {
    pub(crate) keys: Vec<Arc<VerifyKey>>,
    /// Bumped by every install, so that waiters can tell a fetch happened meanwhile.
    pub(crate) generation: u64,
}

impl KeySet {
    /// The keys a token with this `kid` may be verified with: the one with that kid and any
    /// key without one, or, for a token without a kid, every key (few: a JWKS holds a
    /// handful).
    pub(crate) fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Arc<VerifyKey>> + 'a {
        self.keys
            .iter()
            .filter(move |k| kid.is_none() || k.kid.is_none() || k.kid.as_deref() == kid)
    }

    /// Whether a token with this `kid` has a key to try (else the kid is unknown).
    pub(crate) fn may_verify(&self, kid: &str) -> bool {
        self.keys
            .iter()
            .any(|k| k.kid.is_none() || k.kid.as_deref() == Some(kid))
    }

    pub(crate) fn holds(&self, fingerprint: &[u8; 32]) -> bool {
        self.keys.iter().any(|k| &k.fingerprint == fingerprint)
    }
}

pub(crate) struct JwksSettings {
    pub(crate) url: http::Uri,
    pub(crate) refresh_min: Duration,
    pub(crate) refresh_max: Duration,
    pub(crate) refetch_interval: Duration,
    pub(crate) timeout: Duration,
}

pub(crate) struct Jwks {
    settings: JwksSettings,
    client: HttpClient,
    set: RwLock<Option<Arc<KeySet>>>,
    last_error: RwLock<Option<String>>,
    /// One fetch at a time; the others wait and then use its result.
    fetching: tokio::sync::Mutex<()>,
    /// When the last fetch began: the refetch rate limit.
    last_attempt: Mutex<Option<Instant>>,
    /// True once the first fetch has ended (with a set or an error).
    settled: watch::Sender<bool>,
}

impl Jwks {
    pub(crate) fn new(settings: JwksSettings, client: HttpClient) -> Jwks {
        Jwks {
            settings,
            client,
            set: RwLock::new(None),
            last_error: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
            last_attempt: Mutex::new(None),
            settled: watch::Sender::new(false),
        }
    }

    pub(crate) fn url(&self) -> &http::Uri {
        &self.settings.url
    }

    /// The set held now, if any.
    pub(crate) fn current(&self) -> Option<Arc<KeySet>> {
        self.set.read().clone()
    }

    /// `None` while a usable set is held, else why not.
    pub(crate) fn not_ready(&self) -> Option<String> {
        if self.set.read().is_some() {
            return None;
        }
        let why = self
            .last_error
            .read()
            .clone()
            .unwrap_or_else(|| "not fetched yet".to_owned());
        Some(format!("JWKS {}: {why}", self.settings.url))
    }

    /// Waits until the first fetch has ended.
    pub(crate) async fn settled(&self) {
        let mut rx = self.settled.subscribe();
        // An error only means the sender is gone, which `self` rules out.
        let _ = rx.wait_for(|done| *done).await;
    }

    /// Whether a request should wait for a fetch: the first one is still in flight, or the
    /// rate limit lets an on-demand one start now.
    pub(crate) fn may_refetch(&self) -> bool {
        !self.is_settled()
            || self
                .last_attempt
                .lock()
                .is_none_or(|t| t.elapsed() >= self.settings.refetch_interval)
    }

    /// Whether the first fetch has ended (with a key set or an error).
    fn is_settled(&self) -> bool {
        *self.settled.borrow()
    }

    /// A fetch on demand (an unknown `kid`, no set held): waits for one in flight, and starts
    /// one only if no set newer than `seen` was installed meanwhile and the rate limit allows.
    /// Returns the set held afterwards.
    pub(crate) async fn refetch(&self, seen: Option<u64>) -> Option<Arc<KeySet>> {
        if !self.is_settled() {
            // The start-up fetch is in flight: a JWT sent as soon as the gateway listens waits
            // for it (at most one fetch's timeout) instead of getting 503 for a key set that is
            // a moment away.
            let _ = tokio::time::timeout(self.settings.timeout, self.settled()).await;
            return self.current();
        }
        let _one = self.fetching.lock().await;
        let current = self.current();
        if current.as_ref().map(|s| s.generation) != seen {
            return current;
        }
        if !self.claim_attempt() {
            return current;
        }
        let _ = self.fetch_and_install("unknown kid or no key set").await;
        self.current()
    }

    /// Takes the rate limit's slot if it is free.
    fn claim_attempt(&self) -> bool {
        let mut last = self.last_attempt.lock();
        if last.is_some_and(|t| t.elapsed() < self.settings.refetch_interval) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// The scheduled refresh: fetches (whatever the rate limit says: it is the schedule) and
    /// returns the delay before the next one.
    pub(crate) async fn scheduled_fetch(&self) -> Duration {
        let _one = self.fetching.lock().await;
        // The schedule does not take the on-demand slot: with a short max-age it would keep a
        // new `kid` from ever triggering a fetch.
        let next = match self.fetch_and_install("scheduled").await {
            Ok(next) => next,
            Err(()) => self.settings.refetch_interval,
        };
        self.settled.send_replace(true);
        next
    }

    /// One fetch; on success the new set replaces the old one and the delay until the next
    /// refresh is returned. On failure the old set stays, and the error is kept for
    /// `not_ready`.
    async fn fetch_and_install(&self, why: &'static str) -> Result<Duration, ()> {
        match self.fetch().await {
            Ok((keys, next)) => {
                let mut set = self.set.write();
                let generation = set.as_ref().map_or(0, |s| s.generation + 1);
                tracing::info!(
                    url = %self.settings.url,
                    keys = keys.len(),
                    reason = why,
                    next_refresh_s = next.as_secs(),
                    "JWKS fetched"
                );
                *set = Some(Arc::new(KeySet { keys, generation }));
                *self.last_error.write() = None;
                metrics::counter!("gateway_jwks_fetches_total", "result" => "ok").increment(1);
                Ok(next)
            }
            Err(e) => {
                tracing::warn!(url = %self.settings.url, reason = why, error = %e,
                    "JWKS fetch failed; keeping the last key set");
                *self.last_error.write() = Some(e);
                metrics::counter!("gateway_jwks_fetches_total", "result" => "error").increment(1);
                Err(())
            }
        }
    }

    async fn fetch(&self) -> Result<(Vec<Arc<VerifyKey>>, Duration), String> {
        let req = http::Request::get(self.settings.url.clone())
            .header(ACCEPT, "application/json")
            .body(Bytes::new())
            .map_err(|e| format!("request: {e}"))?;
        let resp = tokio::time::timeout(self.settings.timeout, self.client.send(req))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("answered {}", resp.status()));
        }
        let (keys, warnings) = parse_jwks(resp.body())?;
        for w in warnings {
            tracing::warn!(url = %self.settings.url, "JWKS {w}");
        }
        if keys.is_empty() {
            return Err("no usable key in the set".into());
        }
        let next = refresh_after(resp.headers(), SystemTime::now())
            .unwrap_or(self.settings.refresh_max)
            .clamp(self.settings.refresh_min, self.settings.refresh_max);
        Ok((keys, next))
    }
}

/// How long the response may be cached: `Cache-Control: max-age` (or `s-maxage`), else
/// `Expires` minus now; `None` when neither says (a `no-cache` / `no-store` says zero).
pub(crate) fn refresh_after(headers: &http::HeaderMap, now: SystemTime) -> Option<Duration> {
    let cc = CacheDirectives::parse(
        headers
            .get_all(CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    if let Some(secs) = cc.max_age.or(cc.s_maxage) {
        return Some(Duration::from_secs(secs));
    }
    if cc.no_cache {
        return Some(Duration::ZERO);
    }
    expires_in(headers.get(EXPIRES)?.to_str().ok()?, now)
}

/// The background refresh loop: holds only a weak reference, so it ends when the resolver is
/// dropped.
pub(crate) async fn refresh_loop(jwks: std::sync::Weak<Jwks>) {
    loop {
        let Some(strong) = jwks.upgrade() else { return };
        let next = strong.scheduled_fetch().await;
        drop(strong);
        tokio::time::sleep(next).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    #[test]
    fn refresh_delay_from_headers() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(refresh_after(&h, now), None);
        h.insert(
            CACHE_CONTROL,
            "public, max-age=120, must-revalidate".parse().unwrap(),
        );
        assert_eq!(refresh_after(&h, now), Some(Duration::from_secs(120)));
        h.insert(CACHE_CONTROL, "no-cache".parse().unwrap());
        assert_eq!(refresh_after(&h, now), Some(Duration::ZERO));
        h.remove(CACHE_CONTROL);
        let later = httpdate::fmt_http_date(now + Duration::from_secs(300));
        h.insert(EXPIRES, later.parse().unwrap());
        assert_eq!(refresh_after(&h, now), Some(Duration::from_secs(300)));
        h.insert(EXPIRES, "garbage".parse().unwrap());
        assert_eq!(refresh_after(&h, now), None);
    }
}
