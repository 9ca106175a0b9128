//! route-core's host and path normalisation and the route table, through the public API only
//! (`normalize_host`, `request_host`, `try_normalize_path`, `normalize_path`,
//! `RouteTable::lookup`), so route-core needs no `fuzzing` module.
//!
//! Input: `host\npath\nauthority`, split at the first two `\n` (missing parts are absent).
//! The host is tried as a plain string, as a `Host` header, as a URI authority and as two
//! `Host` headers; the authority, when present, is paired with the `Host` header. Every check
//! below is a documented contract of route-core (`src/host.rs`, `src/path.rs`, `src/table.rs`).
#![no_main]

use std::borrow::Cow;
use std::sync::OnceLock;

use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Uri};
use route_core::{
    normalize_host, normalize_path, request_host, try_normalize_path, HostError, RouteTable,
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let host = parts.next().unwrap_or_default();
    let path = parts.next();
    let authority = parts.next();

    let host_str = String::from_utf8_lossy(host);
    let host_norm = check_host(&host_str);
    check_request_host(host, authority);

    let path_str = String::from_utf8_lossy(path.unwrap_or(host));
    let path_norm = check_path(&path_str);
    if let Some(pq) = path.and_then(|p| PathAndQuery::try_from(p).ok()) {
        // What the router sees: the path of an `http::Uri`.
        let _ = check_path(pq.path());
    }

    // Lookups take a normalised host and path; raw input must only never panic.
    let table = table();
    let _ = table.lookup(&host_str, &path_str);
    if let (Ok(h), Ok(p)) = (&host_norm, &path_norm) {
        let got = table.lookup(h, p).copied();
        assert_eq!(got, expected_route(h, p), "lookup({h:?}, {p:?})");
        if h == "a.example.com" {
            assert_eq!(got, Some("a"), "{host_str:?} normalises to a.example.com");
        }
    }
    for probe in ["/", "/v1", "/v1/x", "/v10", "/admin/x"] {
        if let Ok(h) = &host_norm {
            assert_eq!(
                table.lookup(h, probe).copied(),
                expected_route(h, probe),
                "lookup({h:?}, {probe:?})"
            );
        }
    }
});

/// The fixed table: an apex, an exact name, a wildcard with a path-prefix route of its own,
/// and a host that has only a path-prefix route (so other paths there are 404, never the
/// wildcard's route).
fn table() -> &'static RouteTable<&'static str> {
    static TABLE: OnceLock<RouteTable<&'static str>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = RouteTable::new();
        t.insert("example.com", "apex").unwrap();
        t.insert("A.Example.COM.", "a").unwrap();
        t.insert("*.example.com", "wild").unwrap();
        t.insert_prefix("*.example.com", "/admin/", "wild-admin")
            .unwrap();
        t.insert_prefix("api.example.com", "/v1", "api-v1").unwrap();
        t
    })
}

/// What `table()` must answer, written from the module docs of `table.rs`: exact names first,
/// then the wildcard for one or more labels (never the bare suffix); the longest path prefix
/// at a segment boundary wins; the most specific host entry decides alone.
fn expected_route(host: &str, path: &str) -> Option<&'static str> {
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    match host {
        "example.com" => Some("apex"),
        "a.example.com" => Some("a"),
        "api.example.com" => under("/v1").then_some("api-v1"),
        h => match h.strip_suffix(".example.com") {
            Some(sub) if !sub.is_empty() => Some(if under("/admin") {
                "wild-admin"
            } else {
                "wild"
            }),
            _ => None,
        },
    }
}

/// `normalize_host`'s contract (host.rs): lowercase, port removed, one trailing dot removed,
/// `[a-z0-9._-]` labels of 1..=63 bytes, at most 253 bytes, no numeric or `0x` hex last label,
/// no bracketed literal; borrowed when nothing changes; a normalised name is its own
/// normalisation.
fn check_host(raw: &str) -> Result<Cow<'_, str>, HostError> {
    let result = normalize_host(raw);
    let Ok(n) = &result else {
        return result;
    };
    assert!(!raw.starts_with('['), "{raw:?}: bracketed host accepted");
    assert!(!n.is_empty() && n.len() <= 253, "{raw:?} -> {n:?}: length");
    assert!(
        n.bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_')),
        "{raw:?} -> {n:?}: not lowercase [a-z0-9._-]"
    );
    assert!(!n.ends_with('.'), "{raw:?} -> {n:?}: trailing dot");
    for label in n.split('.') {
        assert!(
            (1..=63).contains(&label.len()),
            "{raw:?} -> {n:?}: label {label:?}"
        );
    }
    let last = n.rsplit('.').next().unwrap_or_default();
    assert!(
        !last.bytes().all(|b| b.is_ascii_digit()),
        "{raw:?} -> {n:?}: numeric last label (an IP literal)"
    );
    assert!(
        !(last.len() > 2
            && last.starts_with("0x")
            && last[2..].bytes().all(|b| b.is_ascii_hexdigit())),
        "{raw:?} -> {n:?}: hex last label (an IP literal)"
    );
    // Exactly the input less an optional `:port` and one trailing dot, lowercased.
    let lower = raw.to_ascii_lowercase();
    let rest = lower
        .strip_prefix(n.as_ref())
        .unwrap_or_else(|| panic!("{raw:?} -> {n:?}: not a prefix of the input"));
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    if let Some(port) = rest.strip_prefix(':') {
        assert!(
            (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit()),
            "{raw:?} -> {n:?}: bad port {port:?}"
        );
    } else {
        assert!(rest.is_empty(), "{raw:?} -> {n:?}: dropped {rest:?}");
    }
    if matches!(n, Cow::Borrowed(_)) {
        assert!(
            !raw.bytes().any(|b| b.is_ascii_uppercase()),
            "{raw:?}: borrowed although the case changed"
        );
    }
    // Idempotent, and borrowed the second time since nothing changes.
    match normalize_host(n) {
        Ok(Cow::Borrowed(again)) => assert_eq!(again, n.as_ref(), "{raw:?}: not idempotent"),
        other => panic!("{raw:?} -> {n:?} -> {other:?}: not idempotent"),
    }
    result
}

/// `request_host`'s contract: the `Host` header, else the URI authority; two `Host` headers
/// are `Duplicate`; userinfo in the authority is `Invalid`; an authority that normalises to
/// another name than `Host` is `Mismatch`.
fn check_request_host(host: &[u8], authority: Option<&[u8]>) {
    let header = HeaderValue::from_bytes(host).ok();
    let uri_with = |a: &Authority| -> Uri {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(a.clone());
        parts.path_and_query = Some(PathAndQuery::from_static("/"));
        Uri::from_parts(parts).expect("scheme, authority and path make a URI")
    };
    let request = |h: Option<&HeaderValue>, a: Option<&Authority>| -> Request<()> {
        let mut req = Request::new(());
        if let Some(h) = h {
            req.headers_mut().append(HOST, h.clone());
        }
        if let Some(a) = a {
            *req.uri_mut() = uri_with(a);
        }
        req
    };
    let from_header = |h: &HeaderValue| match h.to_str() {
        Ok(s) => normalize_host(s).map(Cow::into_owned),
        Err(_) => Err(HostError::Invalid),
    };
    let from_authority = |a: &Authority| {
        if a.as_str().contains('@') {
            Err(HostError::Invalid)
        } else {
            normalize_host(a.as_str()).map(Cow::into_owned)
        }
    };
    let got = |req: &Request<()>| {
        let r = request_host(req).map(Cow::into_owned);
        if let Ok(n) = &r {
            let _ = check_host(n);
        }
        r
    };

    if let Some(h) = &header {
        assert_eq!(got(&request(Some(h), None)), from_header(h), "Host {h:?}");
        let mut two = request(Some(h), None);
        two.headers_mut().append(HOST, h.clone());
        assert_eq!(got(&two), Err(HostError::Duplicate), "two Host {h:?}");
    }
    if let Ok(a) = Authority::try_from(host) {
        assert_eq!(got(&request(None, Some(&a))), from_authority(&a), "{a:?}");
        if let Some(h) = &header {
            // The same text as header and authority: never a mismatch.
            let want = if a.as_str().contains('@') {
                Err(HostError::Invalid)
            } else {
                from_header(h)
            };
            assert_eq!(got(&request(Some(h), Some(&a))), want, "Host and URI {a:?}");
        }
    }
    if let (Some(h), Some(a)) = (&header, authority.and_then(|a| Authority::try_from(a).ok())) {
        let want = if a.as_str().contains('@') {
            Err(HostError::Invalid)
        } else {
            from_header(h).and_then(|hn| {
                let an = from_authority(&a)?;
                if an == hn {
                    Ok(hn)
                } else {
                    Err(HostError::Mismatch)
                }
            })
        };
        assert_eq!(
            got(&request(Some(h), Some(&a))),
            want,
            "Host {h:?}, URI {a:?}"
        );
    }
}

/// The path contract (path.rs), for the strict and the lenient form.
fn check_path(raw: &str) -> Result<Cow<'_, str>, route_core::PathError> {
    let lenient = normalize_path(raw);
    if !raw.starts_with('/') {
        assert_eq!(lenient, raw, "lenient form changed a non-absolute path");
    } else {
        assert_normalised(raw, &lenient, false);
    }
    // Idempotent, also the lenient form (this target's first finding: a lone `%` used to
    // form a new escape with the decoded bytes after it; fixed in path.rs).
    assert_eq!(
        normalize_path(&lenient),
        lenient,
        "normalize_path is not idempotent on {raw:?}"
    );

    let strict = try_normalize_path(raw);
    match &strict {
        Ok(n) => {
            assert_normalised(raw, n, true);
            // Accepted input is normalised the same way by both forms.
            assert_eq!(n, &lenient, "strict and lenient differ on {raw:?}");
            match try_normalize_path(n) {
                Ok(Cow::Borrowed(again)) => assert_eq!(again, n.as_ref()),
                other => panic!("{raw:?} -> {n:?} -> {other:?}: not idempotent"),
            }
        }
        Err(route_core::PathError::NotAbsolute) => assert!(!raw.starts_with('/')),
        Err(_) => assert!(raw.starts_with('/')),
    }
    strict
}

fn assert_normalised(raw: &str, n: &str, strict: bool) {
    assert!(n.starts_with('/'), "{raw:?} -> {n:?}: not absolute");
    assert!(!n.contains("//"), "{raw:?} -> {n:?}: empty segment");
    for seg in n.split('/').skip(1) {
        assert!(
            seg != "." && seg != "..",
            "{raw:?} -> {n:?}: dot segment left"
        );
    }
    let b = n.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: Option<&u8>| {
                c.copied()
                    .filter(|c| matches!(c, b'0'..=b'9' | b'A'..=b'F'))
            };
            match (hex(b.get(i + 1)), hex(b.get(i + 2))) {
                (Some(h), Some(l)) => {
                    let v = u8::from_str_radix(std::str::from_utf8(&[h, l]).unwrap(), 16).unwrap();
                    assert!(
                        !(v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~')),
                        "{raw:?} -> {n:?}: encoded unreserved byte left"
                    );
                    if strict {
                        assert!(
                            v != b'/' && v != b'\\' && v >= 0x20 && v != 0x7f,
                            "{raw:?} -> {n:?}: refused escape accepted"
                        );
                    }
                    i += 3;
                    continue;
                }
                _ => assert!(!strict, "{raw:?} -> {n:?}: malformed escape accepted"),
            }
        } else if strict {
            assert!(
                b[i] != b'\\' && b[i] >= 0x20 && b[i] != 0x7f,
                "{raw:?} -> {n:?}: backslash or control byte accepted"
            );
        }
        i += 1;
    }
    if strict {
        for seg in n.split('/') {
            assert!(
                !seg.starts_with(".;") && !seg.starts_with("..;"),
                "{raw:?} -> {n:?}: dot parameter accepted"
            );
        }
    }
}
