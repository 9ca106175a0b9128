//! `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` and `Forwarded`, rebuilt from
//! the socket (SECURITY-CASES 5).
//!
//! Every copy the client sent is removed and exactly one of each is written:
//! - `X-Forwarded-For: <peer ip>` (omitted when the peer is unknown);
//! - `X-Forwarded-Proto: https|http` (from [`ConnectionInfo::tls`]; `http` when unknown);
//! - `X-Forwarded-Host: <normalised host>`;
//! - `Forwarded: for=<peer ip>;host=<host>;proto=<proto>` (`for=unknown` when unknown,
//!   IPv6 quoted as `"[::1]"`).
//!
//! Trusting a front proxy is opt-in, by CIDR. When the peer is inside a trusted network, its
//! `X-Forwarded-For` and `Forwarded` chains are kept (joined into one header) and the peer is
//! appended, and its `X-Forwarded-Proto` (`http` or `https` only) is believed.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, FORWARDED};
use http::HeaderMap;
use ipnet::IpNet;

use crate::ConnectionInfo;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static HTTPS: HeaderValue = HeaderValue::from_static("https");
static HTTP: HeaderValue = HeaderValue::from_static("http");

/// The forwarded-header rules: which front proxies are trusted. Built once, cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct ForwardedHeaders {
    trusted: Arc<[IpNet]>,
}

fn join(headers: &HeaderMap, name: &HeaderName, out: &mut String) {
    for v in headers.get_all(name) {
        if let Ok(s) = v.to_str() {
            let s = s.trim();
            if s.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(s);
        }
    }
}

/// Replaces every value of `name` with `value`, or removes the name when there is none.
fn set_or_remove(headers: &mut HeaderMap, name: &HeaderName, value: Option<HeaderValue>) {
    match value {
        Some(v) => {
            headers.insert(name, v);
        }
        None => {
            headers.remove(name);
        }
    }
}

fn value(s: String) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(Bytes::from(s)).ok()
}

impl ForwardedHeaders {
    /// Rules that trust the front proxies in `trusted` (empty: trust nobody).
    pub fn new(trusted: Vec<IpNet>) -> Self {
        ForwardedHeaders {
            trusted: trusted.into(),
        }
    }

    /// Whether `ip` is a trusted front proxy.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        !self.trusted.is_empty() && self.trusted.iter().any(|n| n.contains(&ip))
    }

    /// Rewrites the forwarded headers of a request about to go upstream. `host` is the
    /// normalised request host (its header value, so that it is built once).
    pub fn apply(
        &self,
        headers: &mut HeaderMap,
        conn: Option<&ConnectionInfo>,
        host: Option<HeaderValue>,
    ) {
        let peer = conn.map(|c| c.remote_addr.ip().to_canonical());
        let trusted = peer.is_some_and(|ip| self.is_trusted(ip));
        let mut https = conn.is_some_and(|c| c.tls);

        let (xff, fwd) = if trusted {
            let mut xff = String::new();
            let mut fwd = String::new();
            join(headers, &X_FORWARDED_FOR, &mut xff);
            join(headers, &FORWARDED, &mut fwd);
            match headers.get(&X_FORWARDED_PROTO).map(HeaderValue::as_bytes) {
                Some(b"https") => https = true,
                Some(b"http") => https = false,
                _ => {}
            }
            build(xff, fwd, peer, host.as_ref(), https)
        } else {
            // Nothing of the client's is kept: the values depend only on the peer, the host
            // and the scheme, which repeat from request to request on a connection.
            cached(peer, host.as_ref(), https)
        };
        // `insert` replaces every value the client sent under that name, so a name is removed
        // separately only when no value of ours replaces it (each lookup hashes the name).
        set_or_remove(headers, &X_FORWARDED_FOR, xff);
        set_or_remove(headers, &FORWARDED, fwd);
        headers.insert(
            X_FORWARDED_PROTO.clone(),
            if https { HTTPS.clone() } else { HTTP.clone() },
        );
        set_or_remove(headers, &X_FORWARDED_HOST, host);
    }
}

/// `X-Forwarded-For` and `Forwarded` values: the kept chains (empty unless the peer is a
/// trusted proxy) with this hop appended.
fn build(
    mut xff: String,
    mut fwd: String,
    peer: Option<IpAddr>,
    host: Option<&HeaderValue>,
    https: bool,
) -> (Option<HeaderValue>, Option<HeaderValue>) {
    let xff = peer.and_then(|ip| {
        if !xff.is_empty() {
            xff.push_str(", ");
        }
        // Writing to a String cannot fail.
        let _ = write!(xff, "{ip}");
        value(xff)
    });

    if !fwd.is_empty() {
        fwd.push_str(", ");
    }
    match peer {
        Some(IpAddr::V4(ip)) => {
            let _ = write!(fwd, "for={ip}");
        }
        Some(IpAddr::V6(ip)) => {
            let _ = write!(fwd, "for=\"[{ip}]\"");
        }
        None => fwd.push_str("for=unknown"),
    }
    if let Some(h) = host {
        // A normalised host is a token ([a-z0-9._-]), so it needs no quoting.
        if let Ok(h) = h.to_str() {
            fwd.push_str(";host=");
            fwd.push_str(h);
        }
    }
    fwd.push_str(";proto=");
    fwd.push_str(if https { "https" } else { "http" });
    (xff, value(fwd))
}

/// One remembered pair of values for an untrusted peer.
struct Cached {
    peer: Option<IpAddr>,
    host: Option<HeaderValue>,
    https: bool,
    xff: Option<HeaderValue>,
    fwd: Option<HeaderValue>,
}

/// Slots of the per-thread cache: direct-mapped, so a lookup is one hash and one compare.
const SLOTS: usize = 64;

thread_local! {
    static CACHE: std::cell::RefCell<Vec<Option<Cached>>> =
        std::cell::RefCell::new((0..SLOTS).map(|_| None).collect());
}

/// [`build`] for an untrusted peer, remembered per thread: formatting the address and
/// building two header values cost more than the rest of the header rewrite.
fn cached(
    peer: Option<IpAddr>,
    host: Option<&HeaderValue>,
    https: bool,
) -> (Option<HeaderValue>, Option<HeaderValue>) {
    // FNV-1a over what the values depend on.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    match peer {
        Some(IpAddr::V4(ip)) => eat(&ip.octets()),
        Some(IpAddr::V6(ip)) => eat(&ip.octets()),
        None => eat(b"?"),
    }
    eat(host.map_or(&b""[..], HeaderValue::as_bytes));
    eat(&[u8::from(https)]);
    // `h % SLOTS` is below SLOTS, so the index is in bounds and fits a usize.
    let slot = (h % SLOTS as u64) as usize;
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(Some(c)) = cache.get(slot) {
            if c.peer == peer && c.https == https && c.host.as_ref() == host {
                return (c.xff.clone(), c.fwd.clone());
            }
        }
        let (xff, fwd) = build(String::new(), String::new(), peer, host, https);
        if let Some(entry) = cache.get_mut(slot) {
            // A copy, not a clone: a request's header values share hyper's read buffer, which
            // a cache entry must not keep alive.
            let host = host.and_then(|h| {
                HeaderValue::from_maybe_shared(Bytes::copy_from_slice(h.as_bytes())).ok()
            });
            *entry = Some(Cached {
                peer,
                host,
                https,
                xff: xff.clone(),
                fwd: fwd.clone(),
            });
        }
        (xff, fwd)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(addr: &str, tls: bool) -> ConnectionInfo {
        ConnectionInfo {
            remote_addr: addr.parse().unwrap(),
            local_addr: "127.0.0.1:443".parse().unwrap(),
            tls,
            sni: None,
        }
    }

    fn spoofed() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.append("x-forwarded-for", HeaderValue::from_static("7.7.7.7"));
        h.append("X-Forwarded-Proto", HeaderValue::from_static("https"));
        h.append("x-forwarded-host", HeaderValue::from_static("evil.com"));
        h.append(
            "forwarded",
            HeaderValue::from_static("for=6.6.6.6;host=evil.com"),
        );
        h
    }

    /// The per-thread cache never hands one peer's (or host's, or scheme's) values to
    /// another, however their slots collide.
    #[test]
    fn cached_values_match_fresh_ones() {
        let rules = ForwardedHeaders::default();
        for round in 0..3 {
            for i in 0..150u32 {
                let addr = if i % 3 == 0 {
                    format!("[2001:db8::{:x}]:4000", i)
                } else {
                    format!("10.0.{}.{}:4000", i / 200, i % 200)
                };
                let tls = (i + round) % 2 == 0;
                let host = HeaderValue::from_str(&format!("s{}.example.com", i % 7)).unwrap();
                let mut h = HeaderMap::new();
                rules.apply(&mut h, Some(&info(&addr, tls)), Some(host.clone()));
                let peer = Some(addr.parse::<std::net::SocketAddr>().unwrap().ip());
                let (xff, fwd) = build(String::new(), String::new(), peer, Some(&host), tls);
                assert_eq!(h.get("x-forwarded-for"), xff.as_ref(), "{addr}");
                assert_eq!(h.get("forwarded"), fwd.as_ref(), "{addr} {tls}");
                assert_eq!(h.get("x-forwarded-host"), Some(&host));
                let proto = if tls { "https" } else { "http" };
                assert_eq!(h.get("x-forwarded-proto").unwrap(), proto);
            }
        }
    }

    #[test]
    fn client_copies_are_replaced() {
        let mut h = spoofed();
        let rules = ForwardedHeaders::default();
        rules.apply(
            &mut h,
            Some(&info("203.0.113.9:5000", false)),
            Some(HeaderValue::from_static("a.com")),
        );
        assert_eq!(
            h.get_all("x-forwarded-for").iter().collect::<Vec<_>>(),
            ["203.0.113.9"]
        );
        assert_eq!(
            h.get_all("x-forwarded-proto").iter().collect::<Vec<_>>(),
            ["http"]
        );
        assert_eq!(
            h.get_all("x-forwarded-host").iter().collect::<Vec<_>>(),
            ["a.com"]
        );
        assert_eq!(
            h.get_all("forwarded").iter().collect::<Vec<_>>(),
            ["for=203.0.113.9;host=a.com;proto=http"]
        );
    }

    #[test]
    fn trusted_front_proxy_chain_is_extended() {
        let mut h = spoofed();
        let rules = ForwardedHeaders::new(vec!["10.0.0.0/8".parse().unwrap()]);
        rules.apply(
            &mut h,
            Some(&info("10.1.2.3:5000", false)),
            Some(HeaderValue::from_static("a.com")),
        );
        assert_eq!(h["x-forwarded-for"], "6.6.6.6, 7.7.7.7, 10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(
            h["forwarded"],
            "for=6.6.6.6;host=evil.com, for=10.1.2.3;host=a.com;proto=https"
        );
    }

    #[test]
    fn ipv6_and_unknown_peer() {
        let mut h = HeaderMap::new();
        ForwardedHeaders::default().apply(&mut h, Some(&info("[::1]:1", true)), None);
        assert_eq!(h["x-forwarded-for"], "::1");
        assert_eq!(h["forwarded"], "for=\"[::1]\";proto=https");
        assert_eq!(h["x-forwarded-proto"], "https");

        let mut h = spoofed();
        ForwardedHeaders::new(vec!["0.0.0.0/0".parse().unwrap()]).apply(&mut h, None, None);
        assert!(h.get("x-forwarded-for").is_none());
        assert!(h.get("x-forwarded-host").is_none());
        assert_eq!(h["forwarded"], "for=unknown;proto=http");
        assert_eq!(h["x-forwarded-proto"], "http");
    }

    #[test]
    fn v4_mapped_peer_is_canonical() {
        let mut h = HeaderMap::new();
        let rules = ForwardedHeaders::new(vec!["10.0.0.0/8".parse().unwrap()]);
        h.insert("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        rules.apply(&mut h, Some(&info("[::ffff:10.0.0.1]:1", false)), None);
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 10.0.0.1");
    }
}
