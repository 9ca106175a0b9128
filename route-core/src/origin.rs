//! Whether a host, an authority or an origin belongs to the project: one type,
//! [`ProjectOrigins`], used by CORS ([`crate::cors`]), by session-core's CSRF check, session
//! cookie and browser redirects, and by the HTTP→HTTPS redirect (SECURITY-CASES 41). Two
//! copies of this rule drifted once (the CSRF check took `ftp://` origins that CORS refused).
//!
//! It lives in route-core because it is made of route-core's facts: the project's domains are
//! what the router serves, and how a request came in (scheme and port) is the listener's
//! [`ConnectionInfo`], or a trusted front proxy's forwarded headers as [`ForwardedHeaders`]
//! reads them. session-core depends on route-core for it, so there is one rule, not one per
//! crate.
//!
//! An origin (`scheme://host[:port]`, as a browser writes `Origin`) is the project's when it is
//! listed exactly by the caller (`[csrf] trusted_origins`, a service's `cors_allowed_origins`),
//! or when all of these hold:
//!
//! - its scheme is `https`, or `http` when the request itself came over plain HTTP;
//! - it has no user info, path, query or fragment;
//! - its host is a project domain or a subdomain of one: a DNS name (no IP literal), compared
//!   ignoring ASCII case and one trailing dot ([`ProjectOrigins::allows_host`]);
//! - it has no port, the scheme's default port, or the port the request came in on (the
//!   listener's). An origin without a port passes on any listener: a gateway listening on 8443
//!   behind a port mapping from 443 sees browsers' origins without one.

use std::sync::Arc;

use http::{Extensions, HeaderMap};
use ipnet::IpNet;

use crate::{ConnectionInfo, ForwardedHeaders};

/// The scheme and port a request came in on, as the client used them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestSite {
    /// Whether the client used `https`.
    pub https: bool,
    /// The port the client connected to; `None` when unknown, which admits only origins on the
    /// scheme's default port.
    pub port: Option<u16>,
}

/// The project's domains and the front proxies trusted to say how a request came in. Built once
/// per config; cheap to clone. `Default` is a project without domains: nothing is its own.
#[derive(Clone, Debug, Default)]
pub struct ProjectOrigins {
    /// Project domains, lowercase, without a trailing dot.
    domains: Arc<[String]>,
    proxies: ForwardedHeaders,
}

impl ProjectOrigins {
    /// The origins of `domains` (and their subdomains), trusting the forwarded scheme and port
    /// of the front proxies in `trusted_proxies`.
    pub fn new(domains: &[String], trusted_proxies: &[IpNet]) -> Self {
        ProjectOrigins {
            domains: domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            proxies: ForwardedHeaders::new(trusted_proxies.to_vec()),
        }
    }

    /// How the request with these headers and extensions came in: see
    /// [`ForwardedHeaders::site`].
    pub fn site(&self, headers: &HeaderMap, extensions: &Extensions) -> RequestSite {
        self.proxies
            .site(headers, extensions.get::<ConnectionInfo>())
    }

    /// Whether `host` (no port) is a project domain or a subdomain of one: a DNS name,
    /// compared ignoring ASCII case and one trailing dot.
    pub fn allows_host(&self, host: &str) -> bool {
        is_project_host(host, &self.domains)
    }

    /// Whether `origin` belongs to the project for a request that came in as `site`, or is one
    /// of `listed` (exact origins, compared ignoring ASCII case). See the module docs.
    pub fn allows(&self, origin: &str, site: RequestSite, listed: &[String]) -> bool {
        if listed.iter().any(|l| l.eq_ignore_ascii_case(origin)) {
            return true;
        }
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false;
        };
        let https = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") && !site.https {
            false
        } else {
            return false;
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if let Some(port) = port {
            if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            let Ok(port) = port.parse::<u16>() else {
                return false;
            };
            let default = if https { 443 } else { 80 };
            if port != default && Some(port) != site.port {
                return false;
            }
        }
        // User info, a path, a query or a fragment leave characters a host cannot hold.
        is_project_host(host, &self.domains)
    }
}

/// The origin (`scheme://authority`) of an absolute URL such as a `Referer`: everything before
/// the path, query or fragment. `None` without a scheme.
pub fn url_origin(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    url.get(..scheme.len() + 3 + end)
}

/// Whether `host` (no port) is one of `domains` (lowercase) or a subdomain of one, ignoring case
/// and one trailing dot. Only DNS names: letters, digits, `-` and non-empty labels.
fn is_project_host(host: &str, domains: &[String]) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let legal = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !host.split('.').any(str::is_empty);
    if !legal {
        return false;
    }
    let host = host.to_ascii_lowercase();
    domains.iter().any(|d| {
        host == *d
            || (host.len() > d.len()
                && host.ends_with(d.as_str())
                && host.as_bytes()[host.len() - d.len() - 1] == b'.')
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use http::HeaderValue;

    fn origins(proxies: &[&str]) -> ProjectOrigins {
        let proxies: Vec<IpNet> = proxies.iter().map(|p| p.parse().unwrap()).collect();
        ProjectOrigins::new(
            &["example.com".to_owned(), "Example.ORG".to_owned()],
            &proxies,
        )
    }

    const HTTPS_8443: RequestSite = RequestSite {
        https: true,
        port: Some(8443),
    };
    const HTTP_8080: RequestSite = RequestSite {
        https: false,
        port: Some(8080),
    };

    #[test]
    fn strict_origins() {
        let o = origins(&[]);
        for ok in [
            "https://example.com",
            "https://app.example.com",
            "https://a.b.example.org:8443",
            "https://app.example.com:443",
            "HTTPS://APP.Example.COM",
            "https://app.example.com.",
        ] {
            assert!(o.allows(ok, HTTPS_8443, &[]), "{ok}");
        }
        for bad in [
            "null",
            "",
            "http://app.example.com",
            "ftp://app.example.com",
            "https://evilexample.com",
            "https://example.com.evil.test",
            "https://user@app.example.com",
            "https://user:pw@app.example.com:8443",
            "https://app.example.com/path",
            "https://app.example.com?x",
            "https://app.example.com#x",
            "https://app.example.com:",
            "https://app.example.com:8444",
            "https://app.example.com:80",
            "https://app.example.com:99999",
            "https://app.example.com:+443",
            "https://..example.com",
            "https://127.0.0.1",
            "https://[::1]:8443",
            "app.example.com",
        ] {
            assert!(!o.allows(bad, HTTPS_8443, &[]), "{bad}");
        }
        // Plain HTTP requests also accept http origins, on port 80 or the listener's.
        for ok in [
            "http://app.example.com",
            "http://app.example.com:8080",
            "https://app.example.com",
        ] {
            assert!(o.allows(ok, HTTP_8080, &[]), "{ok}");
        }
        assert!(!o.allows("http://app.example.com:8081", HTTP_8080, &[]));
        // An unknown port admits only the default ones.
        let unknown = RequestSite {
            https: false,
            port: None,
        };
        assert!(o.allows("http://app.example.com:80", unknown, &[]));
        assert!(!o.allows("http://app.example.com:8080", unknown, &[]));
    }

    #[test]
    fn listed_origins_pass_whatever_their_scheme_and_port() {
        let o = origins(&[]);
        let listed = ["http://partner.example.net:8000".to_owned()];
        assert!(o.allows("http://partner.example.net:8000", HTTPS_8443, &listed));
        assert!(o.allows("HTTP://Partner.example.net:8000", HTTPS_8443, &listed));
        assert!(!o.allows("http://partner.example.net:8001", HTTPS_8443, &listed));
    }

    fn conn(peer: &str, local: &str, tls: bool) -> Extensions {
        let mut e = Extensions::new();
        e.insert(ConnectionInfo {
            remote_addr: peer.parse().unwrap(),
            local_addr: local.parse().unwrap(),
            tls,
            sni: None,
        });
        e
    }

    fn forwarded(proto: &str, port: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", HeaderValue::from_str(proto).unwrap());
        if let Some(p) = port {
            h.insert("x-forwarded-port", HeaderValue::from_str(p).unwrap());
        }
        h
    }

    #[test]
    fn the_site_comes_from_the_listener_or_a_trusted_proxy() {
        let o = origins(&["10.0.0.0/8"]);
        let none = HeaderMap::new();
        assert_eq!(
            o.site(&none, &conn("203.0.113.1:5000", "127.0.0.1:8443", true)),
            HTTPS_8443
        );
        assert_eq!(
            o.site(&none, &Extensions::new()),
            RequestSite {
                https: false,
                port: None
            }
        );
        // An untrusted peer's forwarded headers change nothing.
        let spoofed = forwarded("https", Some("9999"));
        assert_eq!(
            o.site(&spoofed, &conn("203.0.113.1:5000", "127.0.0.1:8080", false)),
            HTTP_8080
        );
        // A trusted proxy's do, v4-mapped peers included.
        let behind = conn("[::ffff:10.1.2.3]:5000", "127.0.0.1:8080", false);
        assert_eq!(
            o.site(&forwarded("https", None), &behind),
            RequestSite {
                https: true,
                port: None
            }
        );
        assert_eq!(
            o.site(&forwarded("https", Some("8443")), &behind),
            HTTPS_8443
        );
        assert_eq!(
            o.site(&forwarded("HTTPS", Some("x")), &behind),
            HTTP_8080,
            "only the exact values are believed"
        );
    }

    #[test]
    fn url_origins() {
        assert_eq!(
            url_origin("https://app.example.com:8443/a/b?c#d"),
            Some("https://app.example.com:8443")
        );
        assert_eq!(
            url_origin("https://app.example.com?x"),
            Some("https://app.example.com")
        );
        assert_eq!(
            url_origin("https://u@evil.test/"),
            Some("https://u@evil.test")
        );
        assert_eq!(url_origin("/relative"), None);
    }
}
