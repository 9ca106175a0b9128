//! Cross-site request refusal for cookie-authenticated requests (SECURITY-CASES 13).
//!
//! A browser attaches the session cookie to cross-site requests, so a state-changing request
//! (POST, PUT, PATCH, DELETE) or a WebSocket upgrade that authenticated with the cookie must
//! come from the project's own origins: its `Origin` is a project domain or a subdomain of one,
//! and `Sec-Fetch-Site` is not `cross-site`. Bearer-authenticated requests are not affected: a
//! browser never adds a bearer token by itself.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::Either;
use http::{Method, Request, Response, StatusCode};
use route_core::Body;
use session_core::{Credential, CredentialSource};
use tower::{Layer, Service};

use crate::reject;

/// Layer for [`Csrf`].
#[derive(Clone, Debug)]
pub struct CsrfLayer {
    domains: Arc<[String]>,
    trusted: Arc<[String]>,
}

impl CsrfLayer {
    /// Trusts the given project domains and their subdomains, plus exact extra origins
    /// (`scheme://host[:port]`, lowercase).
    pub fn new(domains: &[String], trusted_origins: &[String]) -> Self {
        CsrfLayer {
            domains: domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            trusted: trusted_origins
                .iter()
                .map(|o| o.to_ascii_lowercase())
                .collect(),
        }
    }
}

impl<S> Layer<S> for CsrfLayer {
    type Service = Csrf<S>;
    fn layer(&self, inner: S) -> Csrf<S> {
        Csrf {
            inner,
            domains: self.domains.clone(),
            trusted: self.trusted.clone(),
        }
    }
}

/// Refuses cross-site, cookie-authenticated, state-changing requests with 403.
#[derive(Clone, Debug)]
pub struct Csrf<S> {
    inner: S,
    domains: Arc<[String]>,
    trusted: Arc<[String]>,
}

impl<S> Csrf<S> {
    fn same_site(&self, origin: &str) -> bool {
        if self.trusted.iter().any(|t| t.eq_ignore_ascii_case(origin)) {
            return true;
        }
        // An origin is scheme://host[:port]; "null" and anything unparsable is foreign.
        let Some((_, rest)) = origin.split_once("://") else {
            return false;
        };
        let host = rest.split(':').next().unwrap_or("").to_ascii_lowercase();
        let host = host.strip_suffix('.').unwrap_or(&host);
        self.domains.iter().any(|d| {
            host == d
                || (host.len() > d.len()
                    && host.ends_with(d.as_str())
                    && host.as_bytes()[host.len() - d.len() - 1] == b'.')
        })
    }
}

fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.extensions()
        .get::<route_core::UpgradeRequest>()
        .is_some()
        || req.headers().contains_key(http::header::UPGRADE)
}

impl<S, B> Service<Request<B>> for Csrf<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = std::convert::Infallible>,
{
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future =
        Either<S::Future, std::future::Ready<Result<Response<Body>, std::convert::Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let by_cookie = matches!(req.extensions().get::<Credential>(), Some(c) if matches!(c.source, CredentialSource::Cookie));
        if by_cookie {
            let changing = matches!(
                *req.method(),
                Method::POST | Method::PUT | Method::PATCH | Method::DELETE
            ) || is_upgrade(&req);
            if changing {
                let cross_fetch = req
                    .headers()
                    .get("sec-fetch-site")
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
                let foreign_origin = req
                    .headers()
                    .get(http::header::ORIGIN)
                    .is_some_and(|o| !o.to_str().is_ok_and(|o| self.same_site(o)));
                if cross_fetch || foreign_origin {
                    tracing::warn!(method = %req.method(), "cross-site request with the session cookie refused");
                    return Either::Right(std::future::ready(Ok(reject::json(
                        StatusCode::FORBIDDEN,
                        "cross-site-request",
                        "a cross-site request may not use the session cookie",
                    ))));
                }
            }
        }
        Either::Left(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_site_origins() {
        let c = Csrf {
            inner: (),
            domains: Arc::from(vec!["example.com".to_owned()]),
            trusted: Arc::from(vec!["https://partner.example.org".to_owned()]),
        };
        assert!(c.same_site("https://partner.example.org"));
        assert!(!c.same_site("http://partner.example.org"));
        assert!(c.same_site("https://example.com"));
        assert!(c.same_site("https://app.example.com:8443"));
        assert!(c.same_site("http://APP.Example.com"));
        assert!(!c.same_site("https://evilexample.com"));
        assert!(!c.same_site("https://example.com.evil.test"));
        assert!(!c.same_site("null"));
    }
}
