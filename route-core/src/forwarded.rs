//! The headers that tell an upstream who the client is, rebuilt from the socket
//! (SECURITY-CASES 5 and 38).
//!
//! Every copy the client sent is removed and exactly one of each is written:
//! - `X-Forwarded-For: <peer ip>` (omitted when the peer is unknown);
//! - `X-Real-IP: <peer ip>` (as nginx's `proxy_set_header X-Real-IP $remote_addr`; omitted
//!   when the peer is unknown);
//! - `X-Forwarded-Proto: https|http` (from [`ConnectionInfo::tls`]; `http` when unknown);
//! - `X-Forwarded-Port: <listener port>` (from [`ConnectionInfo::local_addr`]; omitted when
//!   unknown);
//! - `X-Forwarded-Host: <normalised host>`;
//! - `Forwarded: for=<peer ip>;host=<host>;proto=<proto>` (`for=unknown` when unknown,
//!   IPv6 quoted as `"[::1]"`).
//!
//! From a peer outside the trusted networks, every other header that some framework reads as
//! the client's address, port, path prefix or original URL is removed: the list is
//! [`SPOOFABLE`], with where each name comes from. A name that reads as one of these once `_`
//! is taken for `-` (`X_Real_IP`: CGI, WSGI and PHP turn both into `HTTP_X_REAL_IP`) is removed
//! from every peer, trusted or not: no proxy sends those.
//!
//! Trusting a front proxy is opt-in, by CIDR. When the peer is inside a trusted network, its
//! `X-Forwarded-For` and `Forwarded` chains are kept (joined into one header) and the peer is
//! appended; its `X-Forwarded-Proto` (`http` or `https` only), `X-Forwarded-Port` (a port
//! number) and `X-Real-IP` are believed (the peer is written when it sent none), and the
//! [`SPOOFABLE`] names it sent are kept.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, FORWARDED};
use http::HeaderMap;
use ipnet::IpNet;

use crate::{ConnectionInfo, RequestSite};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static HTTPS: HeaderValue = HeaderValue::from_static("https");
static HTTP: HeaderValue = HeaderValue::from_static("http");
static PORT_443: HeaderValue = HeaderValue::from_static("443");
static PORT_80: HeaderValue = HeaderValue::from_static("80");

/// The names the proxy writes itself (see the module docs), in the order of [`ALL`]'s first
/// entries. Every client copy of them is replaced.
const REBUILT: [&str; 6] = [
    "x-forwarded-for",
    "forwarded",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-real-ip",
];

/// Headers that frameworks and servers read as the client's address, port, scheme, path prefix
/// or original URL, and that only a proxy the operator trusts may set. From any other peer they
/// are removed: an upstream that believes one of them can be told that the client is
/// `127.0.0.1`, that the request came over HTTPS, or that its path was `/admin`.
pub const SPOOFABLE: [&str; 28] = [
    // Spring's ForwardedHeaderFilter, ASP.NET Core's ForwardedHeaders, Traefik: the path prefix
    // stripped by a proxy, prepended to generated URLs.
    "x-forwarded-prefix",
    // Apache mod_proxy writes the proxy's host name; Werkzeug's ProxyFix and others read it.
    "x-forwarded-server",
    // Rack (Rails), ingress-nginx: the client's scheme.
    "x-forwarded-scheme",
    // Rack (`on` means https), Apache setups: the client's scheme.
    "x-forwarded-ssl",
    // IIS URL Rewrite, Symfony's and Laravel's older request classes, Zend: the original URL,
    // which replaces the request path (a known path-authorization bypass).
    "x-original-url",
    // IIS ISAPI_Rewrite, Symfony's and Zend's older request classes: same as above.
    "x-rewrite-url",
    // ingress-nginx: the chain as the client sent it.
    "x-original-forwarded-for",
    // The npm `request-ip` package, Apache mod_remoteip examples: the client's address.
    "x-client-ip",
    // Akamai and Cloudflare Enterprise: the client's address.
    "true-client-ip",
    // Cloudflare: the client's address.
    "cf-connecting-ip",
    // Fastly: the client's address.
    "fastly-client-ip",
    // Rackspace and Riverbed load balancers, `request-ip`: the client's address.
    "x-cluster-client-ip",
    // Rails' `remote_ip` (`HTTP_CLIENT_IP`), PHP code: the client's address.
    "client-ip",
    // Some PHP frameworks and proxies: the host the client asked for.
    "x-host",
    // Traefik's ForwardAuth, nginx `auth_request` setups: the original request URI.
    "x-forwarded-uri",
    // ASP.NET Core's ForwardedHeaders: the original Host.
    "x-original-host",
    // Some nginx and Kong setups: the original path.
    "x-forwarded-path",
    // Microsoft and some load balancers: the client's scheme.
    "x-forwarded-protocol",
    // Microsoft (Exchange, IIS behind ISA/TMG): `on` means https.
    "front-end-https",
    // `request-ip`: older spellings of X-Forwarded-For.
    "x-forwarded",
    "forwarded-for",
    // Microsoft Exchange and mail gateways: the client's address.
    "x-originating-ip",
    // Used by assorted PHP and Java code as the client's address.
    "x-remote-ip",
    "x-remote-addr",
    // Google App Engine; read by `request-ip`: the client's address.
    "x-appengine-user-ip",
    // Envoy: the client's address as its edge saw it, and the path before a rewrite.
    "x-envoy-external-address",
    "x-envoy-original-path",
    // Fly.io: the client's address.
    "fly-client-ip",
];

/// [`REBUILT`] then [`SPOOFABLE`]: one table for the single pass over the request's names.
const ALL: [&str; 34] = {
    let mut all = [""; 34];
    let mut i = 0;
    while i < REBUILT.len() {
        all[i] = REBUILT[i];
        i += 1;
    }
    let mut j = 0;
    while j < SPOOFABLE.len() {
        all[i + j] = SPOOFABLE[j];
        j += 1;
    }
    all
};

/// A one-byte digest of a name's length, first and last byte (`_` read as `-`, any case):
/// names with different digests cannot be equal.
const fn digest(len: usize, first: u8, last: u8) -> u8 {
    let first = loose_byte(first);
    let last = loose_byte(last);
    // Truncation is the point: a 256-entry filter.
    ((len as u8).wrapping_mul(31) ^ first.wrapping_mul(7)).wrapping_add(last)
}

/// Bit `d` is set when some name of [`ALL`] has digest `d`: most request headers (`accept`,
/// `cookie`, `user-agent`…) are skipped with one lookup instead of a comparison per name.
const FILTER: [u64; 4] = {
    let mut filter = [0u64; 4];
    let mut i = 0;
    while i < ALL.len() {
        let name = ALL[i].as_bytes();
        let d = digest(name.len(), name[0], name[name.len() - 1]);
        filter[(d >> 6) as usize] |= 1 << (d & 63);
        i += 1;
    }
    filter
};

/// Bits of [`ALL`] that are [`SPOOFABLE`] names.
const SPOOFABLE_BITS: u64 = ((1u64 << ALL.len()) - 1) & !((1u64 << REBUILT.len()) - 1);

const fn loose_byte(b: u8) -> u8 {
    if b == b'_' {
        b'-'
    } else {
        b.to_ascii_lowercase()
    }
}

/// The index in [`ALL`] of the name `name` reads as once `_` is taken for `-` (and case is
/// ignored), and whether it was spelled exactly so.
fn classify(name: &[u8]) -> Option<(usize, bool)> {
    let n = name.len();
    let (Some(&first), Some(&last)) = (name.first(), name.last()) else {
        return None;
    };
    let d = digest(n, first, last);
    if FILTER[usize::from(d >> 6)] & (1 << (d & 63)) == 0 {
        return None;
    }
    ALL.iter().enumerate().find_map(|(i, want)| {
        let want = want.as_bytes();
        (want.len() == n && want.iter().zip(name).all(|(w, g)| *w == loose_byte(*g)))
            .then(|| (i, want == name))
    })
}

/// Whether a header name is one the proxy rebuilds or removes (see the module docs), in any
/// case and with `_` for `-`. Request trailers under such a name are dropped
/// ([`crate::proxy`]): an upstream that merges trailers into the header section must not get
/// a client's address from them.
pub fn is_client_address_header(name: &[u8]) -> bool {
    classify(name).is_some()
}

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

/// Replaces every value of `name` with `value`, or removes the name when there is none (and
/// the client sent it: `present`).
fn set_or_remove(
    headers: &mut HeaderMap,
    name: &HeaderName,
    value: Option<HeaderValue>,
    present: bool,
) {
    match value {
        Some(v) => {
            headers.insert(name, v);
        }
        None if present => {
            headers.remove(name);
        }
        None => {}
    }
}

fn value(s: String) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(Bytes::from(s)).ok()
}

fn port_value(port: u16) -> HeaderValue {
    match port {
        443 => PORT_443.clone(),
        80 => PORT_80.clone(),
        p => HeaderValue::from(p),
    }
}

/// The one value of `name` when it is a single, well-formed `X-Forwarded-Port` (a port number).
fn one_port(headers: &HeaderMap, name: &HeaderName) -> Option<HeaderValue> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(v), None) if v.to_str().ok()?.trim().parse::<u16>().is_ok_and(|p| p != 0) => {
            Some(v.clone())
        }
        _ => None,
    }
}

/// A trusted proxy's `X-Forwarded-Proto`: `Some(true)` for exactly `https`, `Some(false)` for
/// exactly `http`, `None` for anything else (then the listener's scheme stands).
fn forwarded_https(headers: &HeaderMap) -> Option<bool> {
    match headers.get(&X_FORWARDED_PROTO).map(HeaderValue::as_bytes) {
        Some(b"https") => Some(true),
        Some(b"http") => Some(false),
        _ => None,
    }
}

/// The one value of `X-Real-IP` when it is a single IP address.
fn one_ip(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut values = headers.get_all(&X_REAL_IP).iter();
    match (values.next(), values.next()) {
        (Some(v), None) if v.to_str().ok()?.trim().parse::<IpAddr>().is_ok() => Some(v.clone()),
        _ => None,
    }
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

    /// How a request came in, as the client used it: the listener's scheme and port from
    /// `conn`, or, from a trusted front proxy, its `X-Forwarded-Proto` (`http` or `https`,
    /// exactly, as [`apply`](Self::apply) believes it) and `X-Forwarded-Port`. A forwarded
    /// scheme without a forwarded port means the scheme's default port.
    pub fn site(&self, headers: &HeaderMap, conn: Option<&ConnectionInfo>) -> RequestSite {
        let mut site = RequestSite {
            https: conn.is_some_and(|c| c.tls),
            port: conn.map(|c| c.local_addr.port()),
        };
        if conn.is_some_and(|c| self.is_trusted(c.remote_addr.ip().to_canonical())) {
            if let Some(https) = forwarded_https(headers) {
                site = RequestSite { https, port: None };
            }
            if let Some(port) = one_port(headers, &X_FORWARDED_PORT)
                .and_then(|v| v.to_str().ok()?.trim().parse::<u16>().ok())
            {
                site.port = Some(port);
            }
        }
        site
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
        let port = conn.map(|c| c.local_addr.port());
        let trusted = peer.is_some_and(|ip| self.is_trusted(ip));
        let mut https = conn.is_some_and(|c| c.tls);

        // One pass over the names, comparing bytes: the usual request carries none of the
        // names in `ALL`, and each `remove` hashes its name. Only the names present are
        // removed afterwards.
        let mut present = 0u64;
        let mut loose = false;
        for name in headers.keys() {
            match classify(name.as_str().as_bytes()) {
                Some((i, true)) => present |= 1 << i,
                Some((_, false)) => loose = true,
                None => {}
            }
        }
        let has = |i: usize| present & (1 << i) != 0;

        let values = if trusted {
            let mut xff = String::new();
            let mut fwd = String::new();
            join(headers, &X_FORWARDED_FOR, &mut xff);
            join(headers, &FORWARDED, &mut fwd);
            https = forwarded_https(headers).unwrap_or(https);
            let (xff, fwd) = build(xff, fwd, peer, host.as_ref(), https);
            Values {
                xff,
                fwd,
                real_ip: one_ip(headers).or_else(|| peer.and_then(|ip| value(ip.to_string()))),
                port: one_port(headers, &X_FORWARDED_PORT).or(port.map(port_value)),
            }
        } else {
            // Nothing of the client's is kept: the values depend only on the peer, the host,
            // the scheme and the listener's port, which repeat from request to request on a
            // connection.
            cached(peer, host.as_ref(), https, port)
        };
        // `insert` replaces every value the client sent under that name, so a name is removed
        // separately only when no value of ours replaces it (each lookup hashes the name).
        set_or_remove(headers, &X_FORWARDED_FOR, values.xff, has(0));
        set_or_remove(headers, &FORWARDED, values.fwd, has(1));
        headers.insert(
            X_FORWARDED_PROTO.clone(),
            if https { HTTPS.clone() } else { HTTP.clone() },
        );
        set_or_remove(headers, &X_FORWARDED_HOST, host, has(3));
        set_or_remove(headers, &X_FORWARDED_PORT, values.port, has(4));
        set_or_remove(headers, &X_REAL_IP, values.real_ip, has(5));
        if !trusted && present & SPOOFABLE_BITS != 0 {
            for (i, name) in ALL.iter().enumerate() {
                if present & SPOOFABLE_BITS & (1 << i) != 0 {
                    headers.remove(*name);
                }
            }
        }
        if loose {
            let odd: Vec<HeaderName> = headers
                .keys()
                .filter(|n| matches!(classify(n.as_str().as_bytes()), Some((_, false))))
                .cloned()
                .collect();
            for name in odd {
                headers.remove(name);
            }
        }
    }
}

/// The values written for one request.
struct Values {
    xff: Option<HeaderValue>,
    fwd: Option<HeaderValue>,
    real_ip: Option<HeaderValue>,
    port: Option<HeaderValue>,
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

/// One remembered set of values for an untrusted peer.
struct Cached {
    peer: Option<IpAddr>,
    host: Option<HeaderValue>,
    https: bool,
    port: Option<u16>,
    xff: Option<HeaderValue>,
    fwd: Option<HeaderValue>,
    port_value: Option<HeaderValue>,
}

impl Cached {
    fn values(&self) -> Values {
        Values {
            // For an untrusted peer `X-Forwarded-For` is the peer's address alone, which is
            // exactly `X-Real-IP`.
            real_ip: self.xff.clone(),
            xff: self.xff.clone(),
            fwd: self.fwd.clone(),
            port: self.port_value.clone(),
        }
    }
}

/// Slots of the per-thread cache: direct-mapped, so a lookup is one hash and one compare.
const SLOTS: usize = 64;

thread_local! {
    static CACHE: std::cell::RefCell<Vec<Option<Cached>>> =
        std::cell::RefCell::new((0..SLOTS).map(|_| None).collect());
}

/// [`build`] for an untrusted peer, remembered per thread: formatting the address and
/// building the header values cost more than the rest of the header rewrite.
fn cached(
    peer: Option<IpAddr>,
    host: Option<&HeaderValue>,
    https: bool,
    port: Option<u16>,
) -> Values {
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
    eat(&port.map_or([0; 2], u16::to_le_bytes));
    // `h % SLOTS` is below SLOTS, so the index is in bounds and fits a usize.
    let slot = (h % SLOTS as u64) as usize;
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(Some(c)) = cache.get(slot) {
            if c.peer == peer && c.https == https && c.port == port && c.host.as_ref() == host {
                return c.values();
            }
        }
        let (xff, fwd) = build(String::new(), String::new(), peer, host, https);
        // A copy, not a clone: a request's header values share hyper's read buffer, which
        // a cache entry must not keep alive.
        let host = host.and_then(|h| {
            HeaderValue::from_maybe_shared(Bytes::copy_from_slice(h.as_bytes())).ok()
        });
        let entry = Cached {
            peer,
            host,
            https,
            port,
            xff,
            fwd,
            port_value: port.map(port_value),
        };
        let values = entry.values();
        if let Some(slot) = cache.get_mut(slot) {
            *slot = Some(entry);
        }
        values
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

    /// SECURITY-CASES 38: every spoofable name goes, in any spelling, from an untrusted peer;
    /// `X-Real-IP` and `X-Forwarded-Port` are written from the socket.
    #[test]
    fn spoofable_names_are_removed_from_untrusted_peers() {
        let mut h = spoofed();
        for name in SPOOFABLE {
            h.append(
                HeaderName::from_static(name),
                HeaderValue::from_static("1.2.3.4"),
            );
        }
        h.append("x-real-ip", HeaderValue::from_static("1.2.3.4"));
        h.append("x-forwarded-port", HeaderValue::from_static("1"));
        h.append("x_real_ip", HeaderValue::from_static("1.2.3.4"));
        h.append("x_forwarded_for", HeaderValue::from_static("1.2.3.4"));
        h.append("true_client_ip", HeaderValue::from_static("1.2.3.4"));
        h.append("x-kept", HeaderValue::from_static("yes"));
        ForwardedHeaders::default().apply(
            &mut h,
            Some(&info("203.0.113.9:5000", true)),
            Some(HeaderValue::from_static("a.com")),
        );
        for name in SPOOFABLE {
            assert!(h.get(name).is_none(), "{name} kept");
        }
        for name in ["x_real_ip", "x_forwarded_for", "true_client_ip"] {
            assert!(h.get(name).is_none(), "{name} kept");
        }
        assert_eq!(
            h.get_all("x-real-ip").iter().collect::<Vec<_>>(),
            ["203.0.113.9"]
        );
        assert_eq!(
            h.get_all("x-forwarded-port").iter().collect::<Vec<_>>(),
            ["443"]
        );
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn trusted_proxy_keeps_its_client_headers() {
        let mut h = spoofed();
        h.insert("x-forwarded-prefix", HeaderValue::from_static("/app"));
        h.insert("x-real-ip", HeaderValue::from_static("198.51.100.1"));
        h.insert("x-forwarded-port", HeaderValue::from_static("8443"));
        h.insert("x_real_ip", HeaderValue::from_static("1.2.3.4"));
        let rules = ForwardedHeaders::new(vec!["10.0.0.0/8".parse().unwrap()]);
        rules.apply(&mut h, Some(&info("10.1.2.3:5000", false)), None);
        assert_eq!(h["x-forwarded-prefix"], "/app");
        assert_eq!(h["x-real-ip"], "198.51.100.1");
        assert_eq!(h["x-forwarded-port"], "8443");
        assert!(h.get("x_real_ip").is_none());

        // Without its own values, the peer's address and the listener's port are written.
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-port", HeaderValue::from_static("99999"));
        rules.apply(&mut h, Some(&info("10.1.2.3:5000", false)), None);
        assert_eq!(h["x-real-ip"], "10.1.2.3");
        assert_eq!(h["x-forwarded-port"], "443");
    }

    #[test]
    fn names_are_classified_loosely() {
        assert!(is_client_address_header(b"x-real-ip"));
        assert!(is_client_address_header(b"X_Original_URL"));
        assert!(is_client_address_header(b"cf-connecting-ip"));
        assert!(!is_client_address_header(b"x-real-ipx"));
        assert!(!is_client_address_header(b"accept"));
        assert!(!is_client_address_header(b""));
        assert_eq!(classify(b"x-original-url"), Some((10, true)));
    }
}
