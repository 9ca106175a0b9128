//! Cross-site request refusal (SECURITY-CASES 13, 32 and 41).
//!
//! A browser attaches the session cookie to cross-site requests, so a state-changing request
//! (POST, PUT, PATCH, DELETE) or a WebSocket upgrade that authenticated with the cookie must
//! come from the project's own origins ([`ProjectOrigins::allows`]: the one rule CORS and the
//! redirects use too) or one of [`CsrfConfig::trusted_origins`]:
//!
//! 1. With an `Origin`: it must be allowed, and `Sec-Fetch-Site` must not be `cross-site`
//!    unless the origin is a trusted one (an identity provider's `form_post` is cross-site by
//!    nature). Two `Origin` headers are refused.
//! 2. Without one, a `Sec-Fetch-Site` decides: anything but `cross-site` passes.
//! 3. With neither, the `Referer`'s origin must be allowed (same rule).
//! 4. With none of the three, 403, unless [`CsrfConfig::allow_missing_origin`]: a browser sends
//!    at least one of them (OWASP's "verifying origin with standard headers"), so their absence
//!    means a non-browser client, or a browser whose headers were stripped on the way.
//!
//! A login is checked the same way (login CSRF: a page on any site could otherwise log a
//! visitor into the attacker's account): on a route that mints sessions
//! ([`CsrfLayer::guard_logins`], the issuer routes), every state-changing request is checked,
//! credential or not, except that one with none of the three headers (curl, a mobile app) logs
//! in.
//!
//! Bearer-authenticated and anonymous requests to other routes are not checked: a browser
//! never adds a bearer token by itself. The layer goes after the
//! [`SessionLayer`](crate::SessionLayer), which records how the request authenticated.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use session_core::csrf::{CsrfConfig, CsrfLayer, CsrfRule};
//! use route_core::ProjectOrigins;
//!
//! let origins = ProjectOrigins::new(&["example.com".to_owned()], &[]);
//! let rule = Arc::new(CsrfRule::new(origins, &CsrfConfig::default()));
//! // In a route's pipeline, after the SessionLayer:
//! let layer = CsrfLayer::new(rule);
//! # let _ = layer;
//! ```

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{ORIGIN, REFERER};
use http::{Method, Request, Response};
use route_core::{url_origin, ProjectOrigins};
use tower_layer::Layer;
use tower_service::Service;

use crate::rejection;
use crate::{Credential, CredentialSource};

/// What a request is checked as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guarded {
    /// A request that authenticated with the session cookie.
    CookieRequest,
    /// A request to a session issuer without the session cookie: a login.
    Login,
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A foreign origin, or a cross-site fetch.
    CrossSite,
    /// No `Origin`, `Sec-Fetch-Site` or `Referer` on a cookie-authenticated request.
    MissingOrigin,
}

impl Refusal {
    /// The 403 JSON answer.
    pub fn response<RB: From<Bytes>>(self) -> Response<RB> {
        match self {
            Refusal::CrossSite => rejection::CROSS_SITE_REQUEST.response(),
            Refusal::MissingOrigin => rejection::ORIGIN_REQUIRED.response(),
        }
    }
}

/// What the CSRF check accepts besides the project's own origins: plain data.
#[derive(Clone, Debug, Default)]
pub struct CsrfConfig {
    /// Exact extra origins (`scheme://host[:port]`): an identity provider's `form_post`, a
    /// partner site. They pass even on a cross-site fetch.
    pub trusted_origins: Vec<String>,
    /// Let cookie requests with none of `Origin`, `Sec-Fetch-Site` and `Referer` through (a
    /// client behind a proxy that strips them). Default `false`.
    pub allow_missing_origin: bool,
}

/// The CSRF rule: the project's origins, the trusted extra ones, and what a request with no
/// origin information gets. Built once when the gateway starts.
#[derive(Clone, Debug)]
pub struct CsrfRule {
    origins: ProjectOrigins,
    /// Exact extra origins (`scheme://host[:port]`, lowercase).
    trusted: Arc<[String]>,
    allow_missing_origin: bool,
}

impl CsrfRule {
    /// The rule for the project `origins`, with `config`'s extra origins.
    pub fn new(origins: ProjectOrigins, config: &CsrfConfig) -> Self {
        CsrfRule {
            origins,
            trusted: config
                .trusted_origins
                .iter()
                .map(|o| o.to_ascii_lowercase())
                .collect(),
            allow_missing_origin: config.allow_missing_origin,
        }
    }

    /// Checks a state-changing request (see the module docs). Logs a refusal, without values.
    pub fn check<B>(&self, req: &Request<B>, guarded: Guarded) -> Result<(), Refusal> {
        let result = self.decide(req, guarded);
        if let Err(why) = result {
            tracing::warn!(method = %req.method(), ?guarded, ?why, "cross-site request refused");
        }
        result
    }

    fn decide<B>(&self, req: &Request<B>, guarded: Guarded) -> Result<(), Refusal> {
        let headers = req.headers();
        let site = || self.origins.site(headers, req.extensions());
        let cross_site = headers
            .get("sec-fetch-site")
            .map(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
        let mut origins = headers.get_all(ORIGIN).iter();
        if let Some(origin) = origins.next() {
            let Ok(origin) = origin.to_str() else {
                return Err(Refusal::CrossSite);
            };
            if origins.next().is_some() {
                return Err(Refusal::CrossSite);
            }
            let trusted = self.trusted.iter().any(|t| t.eq_ignore_ascii_case(origin));
            if trusted || (cross_site != Some(true) && self.origins.allows(origin, site(), &[])) {
                return Ok(());
            }
            return Err(Refusal::CrossSite);
        }
        match cross_site {
            Some(true) => return Err(Refusal::CrossSite),
            Some(false) => return Ok(()),
            None => {}
        }
        match headers.get(REFERER) {
            Some(referer) => {
                let allowed = referer
                    .to_str()
                    .ok()
                    .and_then(url_origin)
                    .is_some_and(|o| self.origins.allows(o, site(), &self.trusted));
                if allowed {
                    Ok(())
                } else {
                    Err(Refusal::CrossSite)
                }
            }
            None if guarded == Guarded::Login || self.allow_missing_origin => Ok(()),
            None => Err(Refusal::MissingOrigin),
        }
    }
}

/// Whether `req` changes state: POST, PUT, PATCH, DELETE, or a WebSocket upgrade.
pub fn is_state_changing<B>(req: &Request<B>) -> bool {
    matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) || req
        .extensions()
        .get::<route_core::UpgradeRequest>()
        .is_some()
        || req.headers().contains_key(http::header::UPGRADE)
}

/// Whether `req` authenticated with the session cookie.
pub fn by_cookie<B>(req: &Request<B>) -> bool {
    matches!(req.extensions().get::<Credential>(), Some(c) if matches!(c.source, CredentialSource::Cookie))
}

/// Layer for [`Csrf`].
#[derive(Clone, Debug)]
pub struct CsrfLayer {
    rule: Arc<CsrfRule>,
    logins: bool,
}

impl CsrfLayer {
    /// Checks cookie-authenticated requests with `rule`.
    pub fn new(rule: Arc<CsrfRule>) -> Self {
        CsrfLayer {
            rule,
            logins: false,
        }
    }

    /// Also check every state-changing request without the session cookie, as a login (the
    /// route mints sessions: login CSRF, SECURITY-CASES 32).
    pub fn guard_logins(mut self, yes: bool) -> Self {
        self.logins = yes;
        self
    }
}

impl<S> Layer<S> for CsrfLayer {
    type Service = Csrf<S>;
    fn layer(&self, inner: S) -> Csrf<S> {
        Csrf {
            inner,
            rule: self.rule.clone(),
            logins: self.logins,
        }
    }
}

/// Refuses cross-site, cookie-authenticated (or, on a login route, any) state-changing
/// requests with 403.
#[derive(Clone, Debug)]
pub struct Csrf<S> {
    inner: S,
    rule: Arc<CsrfRule>,
    logins: bool,
}

impl<S, B, RB> Service<Request<B>> for Csrf<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: From<Bytes>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = crate::require_role::ResponseFuture<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if is_state_changing(&req) {
            let guarded = if by_cookie(&req) {
                Some(Guarded::CookieRequest)
            } else if self.logins {
                Some(Guarded::Login)
            } else {
                None
            };
            if let Some(guarded) = guarded {
                if let Err(why) = self.rule.check(&req, guarded) {
                    return crate::require_role::ResponseFuture::rejected(why.response());
                }
            }
        }
        crate::require_role::ResponseFuture::inner(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn rule(allow_missing_origin: bool) -> CsrfRule {
        CsrfRule::new(
            ProjectOrigins::new(&["example.com".to_owned()], &[]),
            &CsrfConfig {
                trusted_origins: vec!["https://Partner.example.org".to_owned()],
                allow_missing_origin,
            },
        )
    }

    fn post(headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(Method::POST).uri("/");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn decisions() {
        use Guarded::*;
        use Refusal::*;
        let r = rule(false);
        type Case = (
            &'static [(&'static str, &'static str)],
            Guarded,
            Result<(), Refusal>,
        );
        let cases: &[Case] = &[
            (
                &[("origin", "https://app.example.com")],
                CookieRequest,
                Ok(()),
            ),
            (
                &[("origin", "ftp://app.example.com")],
                CookieRequest,
                Err(CrossSite),
            ),
            (&[("origin", "null")], Login, Err(CrossSite)),
            (
                &[
                    ("origin", "https://app.example.com"),
                    ("origin", "https://app.example.com"),
                ],
                CookieRequest,
                Err(CrossSite),
            ),
            (
                &[
                    ("origin", "https://app.example.com"),
                    ("sec-fetch-site", "cross-site"),
                ],
                Login,
                Err(CrossSite),
            ),
            // A trusted origin passes a cross-site fetch: an identity provider's form_post.
            (
                &[
                    ("origin", "https://partner.example.org"),
                    ("sec-fetch-site", "Cross-Site"),
                ],
                Login,
                Ok(()),
            ),
            (&[("sec-fetch-site", "cross-site")], Login, Err(CrossSite)),
            (&[("sec-fetch-site", "same-site")], CookieRequest, Ok(())),
            (
                &[("referer", "https://app.example.com/page?x")],
                CookieRequest,
                Ok(()),
            ),
            (
                &[("referer", "https://partner.example.org/cb")],
                CookieRequest,
                Ok(()),
            ),
            (&[("referer", "https://evil.test/")], Login, Err(CrossSite)),
            (
                &[("referer", "https://u@app.example.com/")],
                CookieRequest,
                Err(CrossSite),
            ),
            (&[], CookieRequest, Err(MissingOrigin)),
            (&[], Login, Ok(())),
        ];
        for (headers, guarded, want) in cases {
            assert_eq!(
                r.decide(&post(headers), *guarded),
                *want,
                "{headers:?} {guarded:?}"
            );
        }
        assert_eq!(rule(true).decide(&post(&[]), CookieRequest), Ok(()));
        assert_eq!(
            rule(true).decide(&post(&[("origin", "https://evil.test")]), CookieRequest),
            Err(CrossSite)
        );
    }
}
