//! Sessions minted at login: the issuer layer for login services that answer with headers,
//! and [`Login`] for embedders that mint sessions in their own handler.
//!
//! # The issuer header contract
//!
//! A route with an [`IssuerLayer::issuer`] (the gateway's `session_issuer = true` services)
//! answers a login with:
//!
//! | response header | meaning |
//! |---|---|
//! | `X-Gateway-Session-User-Id` | create a session for this user id |
//! | `X-Gateway-Session-Roles` | its allowed roles, comma-separated (required with the user id) |
//! | `X-Gateway-Session-Default-Role` | the role used when the client asks for none (default: the first role) |
//! | `X-Gateway-Session-Ttl` | the lifetime in seconds (default: the configured one) |
//! | `X-Gateway-Session-Variables` | optional: a JSON object of extra identity headers, `{"x-hasura-org-id": "42"}`, forwarded with every request of the session ([variable rules](crate::NewSession::validate_for)) |
//! | `X-Gateway-Session-End` | end the session the request came with (logout) |
//!
//! A user id with roles, default role, ttl or variables that break the session rules (or
//! variables that are not a JSON object of strings) mints nothing: the client gets 502
//! `bad-session-issue`.
//!
//! The layer removes these headers, mints a new token (a session the request already had is
//! revoked, so a pre-login token is never promoted), sets the session cookie with the
//! configured attributes, and returns the token to non-browser clients in
//! `X-Gateway-Session-Token` with `X-Gateway-Session-Expires-At` (RFC 3339). On every other
//! route ([`IssuerLayer::scrubber`]) these headers, and any `Set-Cookie` that a browser would
//! store or send back as the session cookie ([`sets_session_cookie`]: nameless
//! `=gateway_session=…` forms, case and `__Host-` variants included), are removed and logged:
//! no upstream but a login service may plant a session.
//!
//! The layer goes after the [`SessionLayer`](crate::SessionLayer) (it revokes the session the
//! request came with) and after the [CSRF check](crate::csrf) with
//! [`guard_logins`](crate::csrf::CsrfLayer::guard_logins), so a cross-site login gets 403 and
//! never reaches the login service (SECURITY-CASES 32).
//!
//! # Minting a session in your own handler
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use session_core::{issuer::Login, CookieConfig, MemoryStore, NewSession};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let login = Login::new(Arc::new(MemoryStore::new()), CookieConfig::default());
//! let issued = login
//!     .issue(NewSession {
//!         user_id: "alice".into(),
//!         roles: vec!["user".into()],
//!         ttl: Duration::from_secs(3600),
//!         ..Default::default()
//!     })
//!     .await
//!     .unwrap();
//! // Put `issued.set_cookie` in the response's Set-Cookie; give `issued.token` to API clients.
//! assert!(issued.set_cookie.to_str().unwrap().starts_with("gateway_session="));
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::future::Either;
use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::rejection;
use crate::session::Variables;
use crate::session_layer::IdentityNames;
use crate::{
    sets_session_cookie, ConfigError, CookieConfig, Credential, NewSession, Session, SessionConfig,
    SessionStore, StoreError, Token,
};

/// The response headers of the issuer contract share this prefix; all of them are removed from
/// every upstream response.
pub const ISSUER_PREFIX: &str = "x-gateway-session-";
const H_USER_ID: HeaderName = HeaderName::from_static("x-gateway-session-user-id");
const H_ROLES: HeaderName = HeaderName::from_static("x-gateway-session-roles");
const H_DEFAULT_ROLE: HeaderName = HeaderName::from_static("x-gateway-session-default-role");
const H_TTL: HeaderName = HeaderName::from_static("x-gateway-session-ttl");
const H_VARIABLES: HeaderName = HeaderName::from_static("x-gateway-session-variables");
const H_END: HeaderName = HeaderName::from_static("x-gateway-session-end");
/// The response header that carries a newly minted token to non-browser clients.
pub const H_TOKEN: HeaderName = HeaderName::from_static("x-gateway-session-token");
/// The response header that carries the new session's expiry (RFC 3339).
pub const H_EXPIRES_AT: HeaderName = HeaderName::from_static("x-gateway-session-expires-at");

/// Mints and ends sessions with the session cookie's attributes: what a login handler needs.
/// Cheap to clone.
#[derive(Clone)]
pub struct Login {
    store: Arc<dyn SessionStore>,
    cookie: CookieConfig,
    /// The session layer's names, which every variable of a minted session must fit.
    names: Arc<IdentityNames>,
}

/// A session just minted by [`Login::issue`].
pub struct Issued {
    /// The new token: give it to API clients; never log it.
    pub token: Token,
    /// The stored session.
    pub session: Session,
    /// The `Set-Cookie` value that hands the token to a browser.
    pub set_cookie: HeaderValue,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("user_id", &self.session.user_id)
            .finish_non_exhaustive()
    }
}

impl Login {
    /// Sessions in `store`, cookies set with `cookie`'s attributes.
    ///
    /// # Panics
    ///
    /// If [`CookieConfig::validate`] fails (use [`Login::try_new`] to get an error instead),
    /// as [`SessionLayer::new`](crate::SessionLayer::new) does for the same cookie.
    pub fn new(store: Arc<dyn SessionStore>, cookie: CookieConfig) -> Self {
        match Login::try_new(store, cookie) {
            Ok(login) => login,
            Err(e) => panic!("invalid cookie config: {e}"),
        }
    }

    /// [`Login::new`], reporting an invalid cookie config: every cookie it builds later is then
    /// valid.
    pub fn try_new(
        store: Arc<dyn SessionStore>,
        cookie: CookieConfig,
    ) -> Result<Self, ConfigError> {
        cookie.validate()?;
        Ok(Login {
            store,
            cookie,
            names: Arc::new(IdentityNames::from_config(&SessionConfig::default())),
        })
    }

    /// Sessions minted here carry variables only under `config`'s identity prefix, and none
    /// named like its identity headers ([`NewSession::validate_for`]): give it the
    /// [`SessionLayer`](crate::SessionLayer)'s config. Without it, the default names
    /// (`x-hasura-*`) apply.
    pub fn with_identity_headers(mut self, config: &SessionConfig) -> Self {
        self.names = Arc::new(IdentityNames::from_config(config));
        self
    }

    /// The cookie settings.
    pub fn cookie(&self) -> &CookieConfig {
        &self.cookie
    }

    /// Creates a session (a fresh token every time) and the cookie that carries it. The session
    /// is checked first ([`NewSession::validate_for`] with the identity headers of
    /// [`with_identity_headers`](Login::with_identity_headers)): a broken one is
    /// [`StoreError::Invalid`].
    pub async fn issue(&self, new: NewSession) -> Result<Issued, StoreError> {
        new.validate_with(&self.names)?;
        let (token, session) = self.store.create(new).await?;
        metrics::counter!("gateway_sessions_created_total", "via" => "issuer").increment(1);
        // Rounded to the nearest second: truncating made an 8-hour session's cookie expire a
        // second early.
        let ttl_left = session
            .expires_at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            + Duration::from_millis(500);
        // The config was validated by `try_new`: building the cookie cannot fail.
        let set_cookie = self.cookie.session_cookie(&token, ttl_left);
        Ok(Issued {
            token,
            session,
            set_cookie,
        })
    }

    /// Ends the session `credential` carries (if any) and returns the `Set-Cookie` value that
    /// clears the cookie.
    pub async fn end(&self, credential: Option<&Credential>) -> Result<HeaderValue, StoreError> {
        self.revoke(credential).await?;
        Ok(self.cookie.clearing_cookie())
    }

    /// Ends the session `credential` carries (if any) without clearing the cookie: what a
    /// login does first, so that a token from before it is never promoted.
    pub async fn revoke(&self, credential: Option<&Credential>) -> Result<(), StoreError> {
        if let Some(c) = credential {
            if self.store.revoke(&c.token.hash()).await? {
                metrics::counter!("gateway_sessions_revoked_total").increment(1);
            }
        }
        Ok(())
    }
}

/// What an issuer route needs: the [`Login`] and the lifetime of a session when the login
/// service names none.
#[derive(Clone)]
struct Minting {
    login: Login,
    default_ttl: Duration,
}

/// What one route's [`Issuer`] holds, shared by the route's clones: one reference count per
/// request, however many fields.
#[derive(Clone)]
struct IssuerSettings {
    /// `Some` on a login route.
    minting: Option<Minting>,
    cookie_name: Box<str>,
    /// The route's name, for log lines.
    route: Box<str>,
}

/// Layer for [`Issuer`]: built once per route.
#[derive(Clone)]
pub struct IssuerLayer {
    settings: Arc<IssuerSettings>,
}

impl IssuerLayer {
    /// A login route: its answers mint and end sessions (see the module docs).
    pub fn issuer(login: Login, default_ttl: Duration) -> Self {
        IssuerLayer {
            settings: Arc::new(IssuerSettings {
                cookie_name: login.cookie.name.as_str().into(),
                minting: Some(Minting { login, default_ttl }),
                route: "-".into(),
            }),
        }
    }

    /// Any other route: the issuer headers and session cookies of its answers are removed.
    pub fn scrubber(cookie: &CookieConfig) -> Self {
        IssuerLayer {
            settings: Arc::new(IssuerSettings {
                minting: None,
                cookie_name: cookie.name.as_str().into(),
                route: "-".into(),
            }),
        }
    }

    /// The route's name, for the log lines about its answers.
    pub fn route_name(mut self, name: &str) -> Self {
        Arc::make_mut(&mut self.settings).route = name.into();
        self
    }
}

impl<S> Layer<S> for IssuerLayer {
    type Service = Issuer<S>;
    fn layer(&self, inner: S) -> Issuer<S> {
        Issuer {
            inner,
            settings: self.settings.clone(),
        }
    }
}

/// Handles a route's answers: mints sessions for a login route, scrubs the others.
#[derive(Clone)]
pub struct Issuer<S> {
    inner: S,
    settings: Arc<IssuerSettings>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, RB> Service<Request<B>> for Issuer<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    RB: From<Bytes> + Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Either<ScrubFuture<S::Future>, BoxFuture<Result<Response<RB>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if self.settings.minting.is_none() {
            // Most routes: the response only needs synchronous scrubbing, so no boxed future
            // and no clone of the inner service (it is called now).
            return Either::Left(ScrubFuture {
                inner: self.inner.call(req),
                settings: Some(self.settings.clone()),
            });
        }
        // An issuer's answer is handled in a boxed future that owns the service polled ready;
        // a fresh clone takes its place (tower's convention).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let credential = req.extensions().get::<Credential>().cloned();
        let settings = self.settings.clone();
        Either::Right(Box::pin(async move {
            let mut res = inner.call(req).await?;
            let route = &settings.route;
            let ask = scrub_response(res.headers_mut(), &settings.cookie_name, true, route);
            let Some(minting) = &settings.minting else {
                return Ok(res);
            };
            match apply_issuer(minting, route, ask, credential.as_ref(), res.headers_mut()).await {
                Ok(()) => Ok(res),
                Err(rejection) => Ok(rejection),
            }
        }))
    }
}

pin_project_lite::pin_project! {
    /// Response future of a route that is not a login route: the inner future, then the
    /// synchronous scrubbing of the response.
    pub struct ScrubFuture<F> {
        #[pin]
        inner: F,
        settings: Option<Arc<IssuerSettings>>,
    }
}

impl<F, RB, E> Future for ScrubFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = std::task::ready!(this.inner.poll(cx))?;
        if let Some(settings) = this.settings.take() {
            scrub_response(
                res.headers_mut(),
                &settings.cookie_name,
                false,
                &settings.route,
            );
        }
        Poll::Ready(Ok(res))
    }
}

/// What an issuer asked for in its response headers.
#[derive(Default)]
struct IssuerAsk {
    user_id: Option<HeaderValue>,
    roles: Option<HeaderValue>,
    default_role: Option<HeaderValue>,
    ttl: Option<HeaderValue>,
    variables: Option<HeaderValue>,
    end: bool,
}

/// Removes every issuer-contract header and every `Set-Cookie` for the session cookie from an
/// upstream response, keeping what an issuer asked for.
fn scrub_response(
    headers: &mut HeaderMap,
    cookie_name: &str,
    issuer: bool,
    route: &str,
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
        ask.variables = headers.remove(H_VARIABLES);
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
                route,
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
                route,
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

async fn apply_issuer<RB: From<Bytes>>(
    minting: &Minting,
    route: &str,
    ask: IssuerAsk,
    current: Option<&Credential>,
    headers: &mut HeaderMap,
) -> Result<(), Response<RB>> {
    let login = &minting.login;
    if ask.end || ask.user_id.is_some() {
        // Logout, and login too: a token from before the login is never promoted.
        if let Err(e) = login.revoke(current).await {
            tracing::error!(route, error = %e, "cannot revoke the current session");
            return Err(rejection::unavailable(&HeaderValue::from_static("1")));
        }
        if ask.end && ask.user_id.is_none() {
            headers.append(SET_COOKIE, login.cookie.clearing_cookie());
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
        return Err(bad_issuer(route, "the user id header is not text"));
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
        None => minting.default_ttl,
        Some(t) => match t.parse::<u64>() {
            Ok(secs) if secs > 0 => Duration::from_secs(secs),
            _ => {
                return Err(bad_issuer(
                    route,
                    "the ttl header is not a positive number of seconds",
                ))
            }
        },
    };
    let variables = match ask.variables.as_ref() {
        None => Variables::new(),
        Some(v) => match serde_json::from_slice::<Variables>(v.as_bytes()) {
            Ok(vars) => vars,
            Err(_) => {
                return Err(bad_issuer(
                    route,
                    "the variables header is not a JSON object of strings",
                ))
            }
        },
    };
    let new = NewSession {
        user_id,
        roles,
        default_role,
        ttl,
        variables,
    };
    // `Login::issue` checks the session (the variables against the layer's names included)
    // before the store sees it: an invalid one comes back as `StoreError::Invalid`.
    let issued = match login.issue(new).await {
        Ok(issued) => issued,
        Err(StoreError::Invalid(e)) => return Err(bad_issuer(route, &e.to_string())),
        Err(e) => {
            tracing::error!(route, error = %e, "cannot create a session");
            return Err(rejection::unavailable(&HeaderValue::from_static("1")));
        }
    };
    tracing::info!(route, user_id = %issued.session.user_id, "session created by the issuer service");
    headers.append(SET_COOKIE, issued.set_cookie);
    if let Ok(v) = HeaderValue::from_str(issued.token.expose()) {
        headers.insert(H_TOKEN, v);
    }
    if let Ok(v) = HeaderValue::from_str(
        &humantime::format_rfc3339_seconds(issued.session.expires_at).to_string(),
    ) {
        headers.insert(H_EXPIRES_AT, v);
    }
    Ok(())
}

fn bad_issuer<RB: From<Bytes>>(route: &str, why: &str) -> Response<RB> {
    tracing::error!(
        route,
        why,
        "the session issuer sent an invalid session request"
    );
    rejection::BAD_SESSION_ISSUE.response()
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
        h.insert(
            H_VARIABLES,
            HeaderValue::from_static(r#"{"x-hasura-org-id":"1"}"#),
        );
        h.insert(H_END, HeaderValue::from_static("true"));
        let ask = scrub_response(&mut h, "gateway_session", true, "auth");
        assert_eq!(ask.user_id, Some(HeaderValue::from_static("7")));
        assert_eq!(ask.roles, Some(HeaderValue::from_static("user,admin")));
        assert_eq!(
            ask.variables,
            Some(HeaderValue::from_static(r#"{"x-hasura-org-id":"1"}"#))
        );
        assert!(ask.end);
        assert!(h.is_empty());
    }

    /// One login through an issuer layer whose service answers user 7, role `user`, and
    /// `variables` in the variables header.
    async fn login_with(login: Login, variables: &'static str) -> Response<Bytes> {
        use tower::ServiceExt;
        let svc = IssuerLayer::issuer(login, Duration::from_secs(60)).layer(tower::service_fn(
            move |_: Request<()>| async move {
                let mut res = Response::new(Bytes::new());
                let h = res.headers_mut();
                h.insert(H_USER_ID, HeaderValue::from_static("7"));
                h.insert(H_ROLES, HeaderValue::from_static("user"));
                h.insert(H_VARIABLES, HeaderValue::from_static(variables));
                Ok::<_, std::convert::Infallible>(res)
            },
        ));
        svc.oneshot(Request::new(())).await.unwrap()
    }

    #[tokio::test]
    async fn the_variables_header_mints_a_session_with_them_or_nothing() {
        let store = Arc::new(crate::MemoryStore::new());
        let login = Login::new(store.clone(), CookieConfig::default());
        let res = login_with(login.clone(), r#"{"x-hasura-org-id": "42"}"#).await;
        assert_eq!(res.status(), 200);
        assert!(res.headers().get(H_TOKEN).is_some());
        assert!(res.headers().get(H_VARIABLES).is_none());
        let sessions = store.list_user("7").await.unwrap();
        assert_eq!(sessions.len(), 1);
        let want: Variables = [("x-hasura-org-id".to_owned(), "42".to_owned())].into();
        assert_eq!(sessions[0].variables, want);

        let custom = SessionConfig {
            identity_prefix: "x-app-".into(),
            ..SessionConfig::default()
        };
        for (login, bad) in [
            (login.clone(), "not json"),
            (login.clone(), r#"["x-hasura-org-id"]"#),
            (login.clone(), r#"{"x-hasura-org-id": 42}"#),
            (login.clone(), r#"{"x-hasura-org-id": "4 2"}"#),
            (login.clone(), r#"{"x-hasura-role": "admin"}"#),
            (login.clone(), r#"{"x-other": "1"}"#),
            (
                login.clone().with_identity_headers(&custom),
                r#"{"x-hasura-org-id": "42"}"#,
            ),
        ] {
            let res = login_with(login, bad).await;
            assert_eq!(res.status(), 502, "{bad}");
            assert!(res.headers().get(H_TOKEN).is_none(), "{bad}");
        }
        assert_eq!(
            store.list_user("7").await.unwrap().len(),
            1,
            "no new session"
        );
        let res = login_with(
            login.with_identity_headers(&custom),
            r#"{"x-app-org": "1"}"#,
        )
        .await;
        assert_eq!(res.status(), 200);
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
