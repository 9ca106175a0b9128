//! Host normalisation: what the router matches on.
//!
//! The rules, and why:
//! - lowercase (DNS names are case-insensitive, `ADMIN.example.com` is `admin.example.com`);
//! - the port is removed (routing is by name; the listener decides the port);
//! - one trailing dot is removed (`admin.example.com.` is the same fully-qualified name);
//! - an IP literal (`127.0.0.1`, `[::1]`, and any name whose last label is numeric such as
//!   `127.1` or `0x7f.1`, which some resolvers read as IPv4) is refused with
//!   [`HostError::IpLiteral`]: no request reaches a route by address;
//! - only `[A-Za-z0-9._-]` labels of 1..=63 bytes, at most 253 bytes in all; anything else is
//!   [`HostError::Invalid`] (userinfo, percent-encoding, spaces, empty labels…).

use std::borrow::Cow;

use http::header::HOST;
use http::Request;

/// Why a request's host could not be used.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// No `Host` header and no URI authority (answered 400).
    #[error("the request has no host")]
    Missing,
    /// More than one `Host` header (answered 400).
    #[error("the request has more than one Host header")]
    Duplicate,
    /// An absolute-form URI (or HTTP/2 `:authority`) names another host than `Host` (400).
    #[error("the request URI authority differs from the Host header")]
    Mismatch,
    /// The host is an IP address literal (answered 421).
    #[error("the host is an IP address literal")]
    IpLiteral,
    /// The host is not a valid DNS name (answered 400).
    #[error("the host is not a valid name")]
    Invalid,
}

impl HostError {
    /// The rejection this error is answered with.
    pub fn rejection(&self) -> crate::Rejection {
        use crate::Rejection;
        match self {
            HostError::Missing => Rejection::MISSING_HOST,
            HostError::Duplicate => Rejection::DUPLICATE_HOST,
            HostError::Mismatch => Rejection::HOST_MISMATCH,
            HostError::IpLiteral => Rejection::IP_HOST,
            HostError::Invalid => Rejection::INVALID_HOST,
        }
    }
}

/// Normalises a `Host` value or URI authority: lowercase, port removed, one trailing dot
/// removed. IP literals give [`HostError::IpLiteral`]. Borrows when nothing changes.
pub fn normalize_host(raw: &str) -> Result<Cow<'_, str>, HostError> {
    let bytes = raw.as_bytes();
    if bytes.first() == Some(&b'[') {
        // `[v6]` or `[v6]:port`: an IPv6 literal; anything else with a bracket is garbage.
        return match raw.find(']') {
            Some(end) if raw[1..end].parse::<std::net::Ipv6Addr>().is_ok() => {
                Err(HostError::IpLiteral)
            }
            _ => Err(HostError::Invalid),
        };
    }
    let mut name = match raw.rfind(':') {
        Some(i) => {
            let port = &raw[i + 1..];
            if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HostError::Invalid);
            }
            &raw[..i]
        }
        None => raw,
    };
    if let Some(stripped) = name.strip_suffix('.') {
        name = stripped;
    }
    if name.is_empty() {
        return Err(HostError::Missing);
    }
    if name.len() > 253 {
        return Err(HostError::Invalid);
    }
    let mut upper = false;
    let mut label_len = 0usize;
    let mut last_label_numeric = true;
    for &b in name.as_bytes() {
        match b {
            b'.' => {
                if label_len == 0 {
                    return Err(HostError::Invalid);
                }
                label_len = 0;
                last_label_numeric = true;
                continue;
            }
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => {}
            b'A'..=b'Z' => upper = true,
            _ => return Err(HostError::Invalid),
        }
        label_len += 1;
        if label_len > 63 {
            return Err(HostError::Invalid);
        }
        if !b.is_ascii_digit() {
            last_label_numeric = false;
        }
    }
    if label_len == 0 {
        // "a..": the one trailing dot was removed and another remains.
        return Err(HostError::Invalid);
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    let hex = last.len() > 2
        && last.as_bytes()[0] == b'0'
        && matches!(last.as_bytes()[1], b'x' | b'X')
        && last[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if last_label_numeric || hex {
        // A numeric top label is never a DNS name (RFC 3696 §2); resolvers read it as IPv4.
        return Err(HostError::IpLiteral);
    }
    if upper {
        Ok(Cow::Owned(name.to_ascii_lowercase()))
    } else {
        Ok(Cow::Borrowed(name))
    }
}

/// The normalised host of a request: `Host`, or the URI authority (HTTP/2 `:authority`, or an
/// HTTP/1.1 absolute-form target).
///
/// Two `Host` headers give [`HostError::Duplicate`]; a URI authority that normalises to
/// another name than `Host` gives [`HostError::Mismatch`]; userinfo in the authority is
/// [`HostError::Invalid`].
pub fn request_host<B>(req: &Request<B>) -> Result<Cow<'_, str>, HostError> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(HostError::Duplicate);
    }
    let authority = req.uri().authority();
    if let Some(a) = authority {
        if a.as_str().contains('@') {
            return Err(HostError::Invalid);
        }
    }
    match (header, authority) {
        (Some(h), authority) => {
            let h = h.to_str().map_err(|_| HostError::Invalid)?;
            let host = normalize_host(h)?;
            if let Some(a) = authority {
                if normalize_host(a.as_str())? != host {
                    return Err(HostError::Mismatch);
                }
            }
            Ok(host)
        }
        (None, Some(a)) => normalize_host(a.as_str()),
        (None, None) => Err(HostError::Missing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_port_and_trailing_dot() {
        assert_eq!(
            normalize_host("admin.example.com").unwrap(),
            "admin.example.com"
        );
        assert!(matches!(
            normalize_host("admin.example.com").unwrap(),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            normalize_host("ADMIN.Example.com").unwrap(),
            "admin.example.com"
        );
        assert_eq!(
            normalize_host("admin.example.com.").unwrap(),
            "admin.example.com"
        );
        assert_eq!(
            normalize_host("admin.example.com:443").unwrap(),
            "admin.example.com"
        );
        assert_eq!(
            normalize_host("Admin.Example.Com.:8443").unwrap(),
            "admin.example.com"
        );
        assert_eq!(normalize_host("localhost").unwrap(), "localhost");
    }

    #[test]
    fn refuses_ip_literals() {
        for ip in [
            "127.0.0.1",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:443",
            "127.1",
            "2130706433",
            "0x7f.1",
            "10.0.0.1.",
        ] {
            assert_eq!(normalize_host(ip), Err(HostError::IpLiteral), "{ip}");
        }
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "a..b",
            "a b",
            "a%2eb",
            "user@a.com",
            "a.com:",
            "a.com:x",
            "[zz]",
            ".a.com",
            "a.com..",
            "a/b",
            "a\\b",
        ] {
            assert!(
                matches!(
                    normalize_host(bad),
                    Err(HostError::Invalid | HostError::Missing)
                ),
                "{bad}"
            );
        }
        assert_eq!(normalize_host(""), Err(HostError::Missing));
        assert_eq!(normalize_host(&"a".repeat(64)), Err(HostError::Invalid));
    }

    #[test]
    fn request_host_rules() {
        let req = Request::builder()
            .uri("/")
            .header("host", "A.com")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req).unwrap(), "a.com");

        let req = Request::builder()
            .uri("/")
            .header("host", "a.com")
            .header("host", "b.com")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req), Err(HostError::Duplicate));

        let req = Request::builder()
            .uri("http://b.com/")
            .header("host", "a.com")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req), Err(HostError::Mismatch));

        let req = Request::builder()
            .uri("http://A.com:443/")
            .header("host", "a.com.")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req).unwrap(), "a.com");

        let req = Request::builder().uri("https://a.com/x").body(()).unwrap();
        assert_eq!(request_host(&req).unwrap(), "a.com");

        let req = Request::builder().uri("/").body(()).unwrap();
        assert_eq!(request_host(&req), Err(HostError::Missing));

        let req = Request::builder()
            .uri("http://u@a.com/")
            .header("host", "a.com")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req), Err(HostError::Invalid));
    }
}
