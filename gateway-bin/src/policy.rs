//! Per-service policy that sits between role authorization and the proxy: it hands the
//! gateway's credential on to services that asked for it, lets the login service create and
//! end sessions through response headers, and scrubs what no other upstream may set.
//!
//! # The issuer header contract
//!
//! A service with `session_issuer = true` answers a login with:
//!
//! | response header | meaning |
//! |---|---|
//! | `X-Gateway-Session-User-Id` | create a session for this user id |
//! | `X-Gateway-Session-Roles` | its allowed roles, comma-separated (required with the user id) |
//! | `X-Gateway-Session-Default-Role` | the role used when the client asks for none (default: the first role) |
//! | `X-Gateway-Session-Ttl` | the lifetime in seconds (default: `sessions.ttl`) |
//! | `X-Gateway-Session-End` | end the session the request came with (logout) |
//!
//! The gateway removes these headers, mints a new token (a session the request already had is
//! revoked, so a pre-login token is never promoted), sets the session cookie on the project
//! domain, and returns the token to non-browser clients in `X-Gateway-Session-Token` with
//! `X-Gateway-Session-Expires-At` (RFC 3339). From any other service these headers, and any
//! `Set-Cookie` that a browser would store or send back as the session cookie
//! ([`sets_session_cookie`]: nameless `=gateway_session=…` forms, case and `__Host-` variants
//! included), are removed and logged.
//!
//! A state-changing request to an issuer is checked against login CSRF first, credential or
//! not ([`CsrfRule`], SECURITY-CASES 32): a cross-site login gets 403 and never reaches the
//! issuer, so no session is minted.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures_util::future::Either;
use http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use route_core::Body;
use session_core::{
    sets_session_cookie, CookieConfig, Credential, CredentialSource, NewSession, SessionStore,
    StoreError,
};
use tower::Service;

use crate::csrf::{self, CsrfRule, Guarded};
use crate::reject;

/// The response headers of the issuer contract share this prefix; all of them are removed from
/// every upstream response.
pub const ISSUER_PREFIX: &str = "x-gateway-session-";
const H_USER_ID: HeaderName = HeaderName::from_static("x-gateway-session-user-id");
const H_ROLES: HeaderName = HeaderName::from_static("x-gateway-session-roles");
const H_DEFAULT_ROLE: HeaderName = HeaderName::from_static("x-gateway-session-default-role");
const H_TTL: HeaderName = HeaderName::from_static("x-gateway-session-ttl");
const H_END: HeaderName = HeaderName::from_static("x-gateway-session-end");
/// The response header that carries a newly minted token to non-browser clients.
pub const H_TOKEN: HeaderName = HeaderName::from_static("x-gateway-session-token");
/// The response header that carries the new session's expiry (RFC 3339).
pub const H_EXPIRES_AT: HeaderName = HeaderName::from_static("x-gateway-session-expires-at");

/// What a service's policy needs from the gateway, shared by every service.
#[derive(Clone)]
pub struct SessionPolicy {
    /// The session store that issuer services create sessions in.
    pub store: Arc<dyn SessionStore>,
    /// The cookie settings.
    pub cookie: CookieConfig,
    /// The lifetime of a session when the issuer names none.
    pub default_ttl: Duration,
    /// The CSRF rule that logins are checked with (the one the CSRF layer holds).
    pub csrf: Arc<CsrfRule>,
}

/// The per-service policy around an inner (proxy) service.
#[derive(Clone)]
pub struct RoutePolicy<S> {
    inner: S,
    shared: SessionPolicy,
    service: Arc<str>,
    cookie_name: Arc<str>,
    forward_credentials: bool,
    session_issuer: bool,
}

impl<S> RoutePolicy<S> {
    /// Wraps `inner` for the service `name`.
    pub fn new(
        inner: S,
        shared: SessionPolicy,
        name: &str,
        forward_credentials: bool,
        session_issuer: bool,
    ) -> Self {
        RoutePolicy {
            inner,
            cookie_name: Arc::from(shared.cookie.name.as_str()),
            shared,
            service: Arc::from(name),
            forward_credentials,
            session_issuer,
        }
    }

    /// The wrapped pipeline.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<Request<B>> for RoutePolicy<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = Either<
        PolicyFuture<S::Future>,
        BoxFuture<Result<Response<Body>, std::convert::Infallible>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let identity = req.extensions().get::<session_core::Identity>().cloned();
        if self.forward_credentials {
            if let Some(c) = req.extensions().get::<Credential>().cloned() {
                restore_credential(req.headers_mut(), &c, &self.shared.cookie.name);
            }
        }
        let service = self.service.clone();
        if !self.session_issuer {
            // Most services: the response only needs synchronous scrubbing, so no boxed future
            // and no clone of the inner service (it is called now).
            return Either::Left(PolicyFuture {
                inner: self.inner.call(req),
                after: Some(After {
                    service,
                    identity,
                    cookie_name: self.cookie_name.clone(),
                }),
            });
        }
        // Login CSRF. A cookie-authenticated request was checked by the CSRF layer already.
        if csrf::is_state_changing(&req) && !csrf::by_cookie(&req) {
            if let Err(why) = self.shared.csrf.check(&req, Guarded::Login) {
                let mut res = why.response();
                res.extensions_mut()
                    .insert(crate::front::Served { service, identity });
                return Either::Right(Box::pin(std::future::ready(Ok(res))));
            }
        }
        // An issuer's answer is handled in a boxed future that owns the service polled ready;
        // a fresh clone takes its place (tower's convention).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let credential = req.extensions().get::<Credential>().cloned();
        let shared = self.shared.clone();
        Either::Right(Box::pin(async move {
            let Ok(mut res) = inner.call(req).await;
            res.extensions_mut().insert(crate::front::Served {
                service: service.clone(),
                identity,
            });
            let ask = scrub_response(res.headers_mut(), &shared.cookie.name, true, &service);
            if let Err(mut rejection) = apply_issuer(
                &shared,
                &service,
                ask,
                credential.as_ref(),
                res.headers_mut(),
            )
            .await
            {
                if let Some(served) = res.extensions_mut().remove::<crate::front::Served>() {
                    rejection.extensions_mut().insert(served);
                }
                return Ok(rejection);
            }
            Ok(res)
        }))
    }
}

/// What a non-issuer service's response gets once it arrives.
struct After {
    service: Arc<str>,
    identity: Option<session_core::Identity>,
    cookie_name: Arc<str>,
}

pin_project_lite::pin_project! {
    /// Response future of a service that is not a session issuer: the inner future, then the
    /// synchronous scrubbing of the response.
    pub struct PolicyFuture<F> {
        #[pin]
        inner: F,
        after: Option<After>,
    }
}

impl<F> Future for PolicyFuture<F>
where
    F: Future<Output = Result<Response<Body>, std::convert::Infallible>>,
{
    type Output = Result<Response<Body>, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut res) = std::task::ready!(this.inner.poll(cx));
        if let Some(after) = this.after.take() {
            scrub_response(res.headers_mut(), &after.cookie_name, false, &after.service);
            res.extensions_mut().insert(crate::front::Served {
                service: after.service,
                identity: after.identity,
            });
        }
        Poll::Ready(Ok(res))
    }
}

/// Puts the gateway's credential back for a service that asked to receive it.
fn restore_credential(headers: &mut HeaderMap, credential: &Credential, cookie_name: &str) {
    match credential.source {
        CredentialSource::Bearer => {
            if let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", credential.token.expose())) {
                headers.insert(AUTHORIZATION, v);
            }
        }
        CredentialSource::Cookie => {
            if let Ok(v) =
                HeaderValue::from_str(&format!("{cookie_name}={}", credential.token.expose()))
            {
                headers.append(COOKIE, v);
            }
        }
    }
}

/// What an issuer asked for in its response headers.
#[derive(Default)]
struct IssuerAsk {
    user_id: Option<HeaderValue>,
    roles: Option<HeaderValue>,
    default_role: Option<HeaderValue>,
    ttl: Option<HeaderValue>,
    end: bool,
}

/// Removes every issuer-contract header and every `Set-Cookie` for the session cookie from an
/// upstream response, keeping what an issuer asked for.
fn scrub_response(
    headers: &mut HeaderMap,
    cookie_name: &str,
    issuer: bool,
    service: &str,
) -> IssuerAsk {
    let mut ask = IssuerAsk::default();
    let has_prefixed = headers
        .keys()
        .any(|k| k.as_str().starts_with(ISSUER_PREFIX));
    if has_prefixed {
        ask.user_id = headers.remove(H_USER_ID);
        ask.roles = headers.remove(H_ROLES);
        ask.default_role = headers.remove(H_DEFAULT_ROLE);
        ask.ttl = headers.remove(H_TTL);
        ask.end = headers.remove(H_END).is_some();
        let rest: Vec<HeaderName> = headers
            .keys()
            .filter(|k| k.as_str().starts_with(ISSUER_PREFIX))
            .cloned()
            .collect();
        for k in rest {
            headers.remove(k);
        }
        if !issuer {
            tracing::warn!(
                service,
                "a service that is not a session issuer sent session headers; they were removed"
            );
        }
    }
    if headers.contains_key(SET_COOKIE) {
        let kept: Vec<HeaderValue> = headers
            .get_all(SET_COOKIE)
            .iter()
            .filter(|v| !sets_session_cookie(v, cookie_name))
            .cloned()
            .collect();
        if kept.len() != headers.get_all(SET_COOKIE).iter().count() {
            tracing::warn!(
                service,
                "an upstream tried to set the session cookie; it was removed"
            );
            headers.remove(SET_COOKIE);
            for v in kept {
                headers.append(SET_COOKIE, v);
            }
        }
    }
    if !issuer {
        return IssuerAsk::default();
    }
    ask
}

async fn apply_issuer(
    shared: &SessionPolicy,
    service: &str,
    ask: IssuerAsk,
    current: Option<&Credential>,
    headers: &mut HeaderMap,
) -> Result<(), Response<Body>> {
    if ask.end || ask.user_id.is_some() {
        // Logout, and login too: a token from before the login is never promoted.
        if let Some(c) = current {
            match shared.store.revoke(&c.token.hash()).await {
                Ok(true) => metrics::counter!("gateway_sessions_revoked_total").increment(1),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(service, error = %e, "cannot revoke the current session");
                    return Err(reject::store_unavailable());
                }
            }
        }
        if ask.end && ask.user_id.is_none() {
            headers.append(SET_COOKIE, shared.cookie.clearing_cookie());
        }
    }
    let Some(user_id) = ask.user_id else {
        return Ok(());
    };
    let text = |v: Option<&HeaderValue>| {
        v.and_then(|v| v.to_str().ok())
            .map(str::trim)
            .map(str::to_owned)
    };
    let Some(user_id) = text(Some(&user_id)) else {
        return Err(bad_issuer(service, "the user id header is not text"));
    };
    let roles: Vec<String> = text(ask.roles.as_ref())
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect();
    let default_role = text(ask.default_role.as_ref()).filter(|r| !r.is_empty());
    let ttl = match text(ask.ttl.as_ref()) {
        None => shared.default_ttl,
        Some(t) => match t.parse::<u64>() {
            Ok(secs) if secs > 0 => Duration::from_secs(secs),
            _ => {
                return Err(bad_issuer(
                    service,
                    "the ttl header is not a positive number of seconds",
                ))
            }
        },
    };
    let new = NewSession {
        user_id,
        roles,
        default_role,
        ttl,
    };
    if let Err(e) = new.validate() {
        return Err(bad_issuer(service, &e.to_string()));
    }
    let (token, session) = match shared.store.create(new).await {
        Ok(created) => created,
        Err(StoreError::Invalid(e)) => return Err(bad_issuer(service, &e.to_string())),
        Err(e) => {
            tracing::error!(service, error = %e, "cannot create a session");
            return Err(reject::store_unavailable());
        }
    };
    metrics::counter!("gateway_sessions_created_total", "via" => "issuer").increment(1);
    tracing::info!(service, user_id = %session.user_id, "session created by the issuer service");
    let ttl_left = session
        .expires_at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    headers.append(SET_COOKIE, shared.cookie.session_cookie(&token, ttl_left));
    if let Ok(v) = HeaderValue::from_str(token.expose()) {
        headers.insert(H_TOKEN, v);
    }
    if let Ok(v) =
        HeaderValue::from_str(&humantime::format_rfc3339_seconds(session.expires_at).to_string())
    {
        headers.insert(H_EXPIRES_AT, v);
    }
    Ok(())
}

fn bad_issuer(service: &str, why: &str) -> Response<Body> {
    tracing::error!(
        service,
        why,
        "the session issuer sent an invalid session request"
    );
    reject::json(
        StatusCode::BAD_GATEWAY,
        "bad-session-issue",
        "the login service sent an invalid session request",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_issuer_headers_from_non_issuers() {
        let mut h = HeaderMap::new();
        h.insert(H_USER_ID, HeaderValue::from_static("1"));
        h.insert(H_ROLES, HeaderValue::from_static("admin"));
        h.insert("x-gateway-session-whatever", HeaderValue::from_static("x"));
        h.append(
            SET_COOKIE,
            HeaderValue::from_static("gateway_session=abc; Path=/"),
        );
        h.append(SET_COOKIE, HeaderValue::from_static("theme=dark"));
        let ask = scrub_response(&mut h, "gateway_session", false, "data");
        assert!(ask.user_id.is_none());
        assert!(!h.keys().any(|k| k.as_str().starts_with(ISSUER_PREFIX)));
        let cookies: Vec<_> = h.get_all(SET_COOKIE).iter().collect();
        assert_eq!(cookies, vec![HeaderValue::from_static("theme=dark")]);
    }

    #[test]
    fn scrub_keeps_what_an_issuer_asked() {
        let mut h = HeaderMap::new();
        h.insert(H_USER_ID, HeaderValue::from_static("7"));
        h.insert(H_ROLES, HeaderValue::from_static("user,admin"));
        h.insert(H_END, HeaderValue::from_static("true"));
        let ask = scrub_response(&mut h, "gateway_session", true, "auth");
        assert_eq!(ask.user_id, Some(HeaderValue::from_static("7")));
        assert_eq!(ask.roles, Some(HeaderValue::from_static("user,admin")));
        assert!(ask.end);
        assert!(h.is_empty());
    }

    #[test]
    fn session_cookie_detection_ignores_case_and_attributes() {
        assert!(sets_session_cookie(
            &HeaderValue::from_static("GATEWAY_SESSION=x; Domain=a.b"),
            "gateway_session"
        ));
        assert!(!sets_session_cookie(
            &HeaderValue::from_static("gateway_session_other=x"),
            "gateway_session"
        ));
    }
}
