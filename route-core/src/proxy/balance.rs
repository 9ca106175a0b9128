//! Round-robin over a route's upstreams, with passive health.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::Uri;

use super::ProxyError;

/// One upstream URL, parsed once.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) scheme: Scheme,
    pub(crate) authority: Authority,
    /// The base path without its trailing `/`, if not the root.
    pub(crate) base: Option<Box<str>>,
    /// The URL as configured, for log lines.
    pub(crate) label: Arc<str>,
    /// The authority, lowercase: the key of the HTTP/1.1 idle pools.
    pub(crate) pool_key: Arc<str>,
    /// `http://authority/`: what the connector is given for a new connection.
    pub(crate) connect_uri: Uri,
    /// Milliseconds since the proxy's epoch until which this upstream is skipped.
    down_until: AtomicU64,
}

impl Target {
    pub(crate) fn from_uri(url: &Uri) -> Result<Target, ProxyError> {
        let invalid = || ProxyError::InvalidUrl(url.to_string());
        if url.scheme() != Some(&Scheme::HTTP) || url.query().is_some() {
            return Err(invalid());
        }
        let authority = url
            .authority()
            .filter(|a| !a.as_str().contains('@'))
            .ok_or_else(invalid)?
            .clone();
        let base = match url.path().trim_end_matches('/') {
            "" => None,
            p => Some(p.into()),
        };
        let connect_uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|_| invalid())?;
        Ok(Target {
            pool_key: authority.as_str().to_ascii_lowercase().into(),
            connect_uri,
            scheme: Scheme::HTTP,
            authority,
            base,
            label: url.to_string().into(),
            down_until: AtomicU64::new(0),
        })
    }

    /// The upstream path and query for a request's: the base path, then the request's.
    fn path(&self, pq: Option<&PathAndQuery>) -> Option<PathAndQuery> {
        Some(match (&self.base, pq) {
            (None, Some(pq)) => pq.clone(),
            (None, None) => PathAndQuery::from_static("/"),
            (Some(base), pq) => {
                let rest = pq.map_or("/", |p| p.as_str());
                PathAndQuery::try_from(format!("{base}{rest}")).ok()?
            }
        })
    }

    /// The origin-form URI (`/base/path?query`) that an HTTP/1.1 connection sends.
    pub(crate) fn origin_form(&self, pq: Option<&PathAndQuery>) -> Option<Uri> {
        let mut parts = http::uri::Parts::default();
        parts.path_and_query = Some(self.path(pq)?);
        Uri::from_parts(parts).ok()
    }

    /// The absolute upstream URI for a request path and query.
    pub(crate) fn uri(&self, pq: Option<&PathAndQuery>) -> Option<Uri> {
        let pq = self.path(pq)?;
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .ok()
    }
}

/// The route's upstreams and the round-robin cursor.
#[derive(Debug)]
pub(crate) struct Balancer {
    pub(crate) targets: Box<[Target]>,
    next: AtomicUsize,
    epoch: Instant,
    down_ms: u64,
}

impl Balancer {
    pub(crate) fn new(targets: Vec<Target>, epoch: Instant, down: std::time::Duration) -> Self {
        Balancer {
            targets: targets.into(),
            next: AtomicUsize::new(0),
            epoch,
            down_ms: u64::try_from(down.as_millis()).unwrap_or(u64::MAX),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The index of the next upstream: round-robin, skipping those marked down; if every
    /// one is down, the round-robin choice anyway (see the module docs of `proxy`).
    pub(crate) fn pick(&self) -> usize {
        let n = self.targets.len();
        if n == 1 {
            return 0;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        for k in 0..n {
            let i = start.wrapping_add(k) % n;
            if self.targets[i].down_until.load(Ordering::Relaxed) <= now {
                if k > 0 {
                    // Move the cursor past the skipped ones so they are not all re-probed.
                    self.next.fetch_add(k, Ordering::Relaxed);
                }
                return i;
            }
        }
        start % n
    }

    /// Marks an upstream down after a connect failure.
    pub(crate) fn mark_down(&self, i: usize) {
        let until = self.now_ms().saturating_add(self.down_ms);
        self.targets[i].down_until.store(until, Ordering::Relaxed);
    }

    /// Whether an upstream is currently marked down.
    #[cfg(test)]
    pub(crate) fn is_down(&self, i: usize) -> bool {
        self.targets[i].down_until.load(Ordering::Relaxed) > self.now_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn balancer(n: usize, down: Duration) -> Balancer {
        let targets = (0..n)
            .map(|i| {
                Target::from_uri(&format!("http://127.0.0.1:{}", 1000 + i).parse().unwrap())
                    .unwrap()
            })
            .collect();
        Balancer::new(targets, Instant::now(), down)
    }

    #[test]
    fn round_robin_skips_down_then_retries() {
        let b = balancer(3, Duration::from_millis(50));
        let picks: Vec<_> = (0..6).map(|_| b.pick()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        b.mark_down(1);
        assert!(b.is_down(1));
        let picks: Vec<_> = (0..6).map(|_| b.pick()).collect();
        assert!(!picks.contains(&1), "{picks:?}");
        std::thread::sleep(Duration::from_millis(60));
        let picks: Vec<_> = (0..6).map(|_| b.pick()).collect();
        assert!(picks.contains(&1), "{picks:?}");
    }

    #[test]
    fn all_down_still_picks_one() {
        let b = balancer(2, Duration::from_secs(60));
        b.mark_down(0);
        b.mark_down(1);
        let p = b.pick();
        assert!(p < 2);
    }

    #[test]
    fn urls_are_validated_and_joined() {
        for bad in ["https://a.com", "http://u@a.com", "http://a.com/?x=1", "/x"] {
            assert!(Target::from_uri(&bad.parse().unwrap()).is_err(), "{bad}");
        }
        let t = Target::from_uri(&"http://a.com:81/base/".parse().unwrap()).unwrap();
        let pq = PathAndQuery::from_static("/x?y=1");
        assert_eq!(t.uri(Some(&pq)).unwrap(), "http://a.com:81/base/x?y=1");
        let t = Target::from_uri(&"http://a.com".parse().unwrap()).unwrap();
        assert_eq!(t.uri(Some(&pq)).unwrap(), "http://a.com/x?y=1");
        assert_eq!(t.uri(None).unwrap(), "http://a.com/");
    }
}
