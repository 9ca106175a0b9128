//! Per-service CORS, built on tower-http's [`CorsLayer`].
//!
//! A browser app on `app.<domain>` calls `data.<domain>` with `credentials: 'include'`, so by
//! default a service allows credentialed requests from the project's own origins: every project
//! domain and every subdomain of one, over `http` or `https`, on any port. The request's exact
//! `Origin` is echoed back (never `*`, which browsers refuse with credentials), with
//! `Access-Control-Allow-Credentials: true` and `Vary: Origin`. A service adds exact origins
//! with `cors_allowed_origins`, and replaces the default methods and request headers with
//! `cors_allowed_methods` and `cors_allowed_headers`.
//!
//! Every `OPTIONS` request to a service with CORS is answered here, as a preflight: it needs no
//! session and never reaches the upstream. The layer sits inside the router, after the session
//! layer, which admits a request without credentials (a preflight never carries any) as
//! anonymous; and before the role check, so a role-restricted service still answers its
//! preflights. `cors = false` turns all of this off for a service: no CORS headers, and
//! `OPTIONS` is authorized and proxied like any other method.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use tower::util::Either;
use tower::Layer;
use tower_http::cors::{AllowOrigin, Cors, CorsLayer};

use crate::config::Service;

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The methods allowed when a service configures none.
pub const DEFAULT_METHODS: [Method; 6] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

/// A service's pipeline with its CORS policy: tower-http's [`Cors`] when CORS is on, the
/// pipeline itself when the service has `cors = false`.
pub type ServiceCors<S> = Either<Cors<S>, S>;

/// Layer for [`ServiceCors`], built once per service when the config loads.
#[derive(Clone, Debug)]
pub struct ServiceCorsLayer {
    cors: Option<CorsLayer>,
}

impl ServiceCorsLayer {
    /// The CORS policy of `service` in a project with these `domains`. `role_header` (the
    /// header a client uses to ask for a role, `x-hasura-role` by default) is among the default
    /// allowed request headers.
    pub fn new(service: &Service, domains: &[String], role_header: &HeaderName) -> Self {
        if !service.cors {
            return ServiceCorsLayer { cors: None };
        }
        let domains: Arc<[String]> = domains.iter().map(|d| d.to_ascii_lowercase()).collect();
        let extra: Arc<[String]> = service.cors_allowed_origins.iter().cloned().collect();
        let allow_origin = AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin.to_str().is_ok_and(|o| {
                extra.iter().any(|e| e.eq_ignore_ascii_case(o)) || is_project_origin(o, &domains)
            })
        });
        // "*" is a legal token, but as a value it is a wildcard, which tower-http refuses (with
        // a panic) next to credentials: a configured "*" is dropped.
        let mut methods: Vec<Method> = service
            .cors_allowed_methods
            .iter()
            .filter(|m| m.as_str() != "*")
            .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
            .collect();
        if methods.is_empty() {
            methods = DEFAULT_METHODS.to_vec();
        }
        let mut headers: Vec<HeaderName> = service
            .cors_allowed_headers
            .iter()
            .filter(|h| h.as_str() != "*")
            .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
            .collect();
        if headers.is_empty() {
            headers = vec![
                http::header::CONTENT_TYPE,
                http::header::AUTHORIZATION,
                role_header.clone(),
            ];
        }
        let cors = CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_credentials(true)
            .allow_methods(methods)
            .allow_headers(headers)
            .max_age(PREFLIGHT_MAX_AGE);
        ServiceCorsLayer { cors: Some(cors) }
    }

    /// Whether CORS is on for the service.
    pub fn is_enabled(&self) -> bool {
        self.cors.is_some()
    }
}

impl<S> Layer<S> for ServiceCorsLayer {
    type Service = ServiceCors<S>;
    fn layer(&self, inner: S) -> ServiceCors<S> {
        match &self.cors {
            Some(cors) => Either::Left(cors.layer(inner)),
            None => Either::Right(inner),
        }
    }
}

/// Whether `origin` (`scheme://host[:port]`) is `http` or `https` on one of `domains` (lowercase)
/// or a subdomain of one. `null`, other schemes, paths, user info and malformed hosts are not.
pub fn is_project_origin(origin: &str, domains: &[String]) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return false;
    }
    is_project_authority(authority, domains)
}

/// Whether `authority` (`host[:port]`) names one of `domains` (lowercase) or a subdomain of one.
/// Only DNS names are accepted: no user info, no IP literals, no path, a numeric port.
pub fn is_project_authority(authority: &str, domains: &[String]) -> bool {
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if port.is_some_and(|p| p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    is_project_host(host, domains)
}

/// Whether `host` (no port) is one of `domains` (lowercase) or a subdomain of one, ignoring case
/// and one trailing dot.
pub fn is_project_host(host: &str, domains: &[String]) -> bool {
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
    use super::*;

    fn domains() -> Vec<String> {
        vec!["example.com".to_owned(), "example.org".to_owned()]
    }

    #[test]
    fn project_origins() {
        let d = domains();
        for ok in [
            "https://example.com",
            "http://example.com",
            "https://app.example.com",
            "https://a.b.example.org:8443",
            "http://APP.Example.COM",
            "https://app.example.com.",
        ] {
            assert!(is_project_origin(ok, &d), "{ok}");
        }
        for bad in [
            "null",
            "https://evilexample.com",
            "https://example.com.evil.test",
            "ftp://app.example.com",
            "https://user@app.example.com",
            "https://app.example.com/path",
            "https://app.example.com:",
            "https://app.example.com:99999x",
            "https://..example.com",
            "https://127.0.0.1",
            "app.example.com",
        ] {
            assert!(!is_project_origin(bad, &d), "{bad}");
        }
    }
}
