//! The app of the `embed-axum` example: a small browser-safe axum app built from the gateway's
//! layers, served over TLS with a certificate from cert-core. It is a library so that its tests
//! drive the same code that `src/main.rs` runs.
//!
//! # Layer order
//!
//! A request meets, from the outside in:
//!
//! ```text
//! SetResponseHeader (CSP) → RouteCorsLayer → SessionLayer → CsrfLayer → routes
//!                                              POST /login: CsrfLayer::guard_logins(true)
//!                                              GET /admin:  RequireRoleLayer(["admin"])
//! ```
//!
//! - `RouteCorsLayer` is outermost, so that the refusals of every layer inside it (400, 401,
//!   403, 503) carry the CORS headers: a `fetch()` from a project page reads the JSON refusal
//!   instead of an opaque network error. It also answers preflights before any session lookup.
//! - `SessionLayer` turns the bearer token or the session cookie into the `Identity` (and the
//!   `Credential`) in the request extensions, which everything inside it reads.
//! - `CsrfLayer` comes after it because it checks only the requests that authenticated with the
//!   cookie, which the session layer records (a browser never adds a bearer token by itself).
//!   `/login` has a second one with `guard_logins(true)`: a login carries no cookie yet, and a
//!   foreign page must not log a visitor into the attacker's account (login CSRF).
//! - `RequireRoleLayer` guards `/admin` as a route layer, after the session layer whose
//!   `Identity` it reads. A browser navigation without a session is sent to the login page; an
//!   API call gets the JSON 401, and a session without the role a 403.
//!
//! CORS, the CSRF check and the role check's `redirect_to` judge origins by one
//! `ProjectOrigins` rule: the app's domain and its subdomains, over `https`, on the default port
//! or the listener's. The listener ([`serve`]) says which scheme and port a request came in on by
//! putting a `ConnectionInfo` into every request; without it an origin on a non-default port
//! would be refused.
//!
//! Axum's `Router::layer` wraps every route (and the fallback) after routing, so each route gets
//! the whole stack; `route_layer` adds a layer to one route only.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::{FromRequest, Query, Request, State};
use axum::http::header::SET_COOKIE;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Json, Router};
use cert_core::{is_acme_tls_alpn, server_config, CertResolver, DevCa, TlsConfig};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use route_core::RouteCorsLayer;
use route_core::{url_origin, ConnectionInfo, CorsConfig, ProjectOrigins, RequestSite};
use serde::Deserialize;
use serde_json::json;
use session_core::csrf::{CsrfConfig, CsrfLayer, CsrfRule};
use session_core::issuer::Login;
use session_core::rejection::SESSION_STORE_UNAVAILABLE;
use session_core::{constant_time_eq, json_rejection, BrowserRedirects, ConfigError};
use session_core::{CookieConfig, Credential, Identity, NewSession, RequireRoleLayer};
use session_core::{SessionConfig, SessionLayer, SessionStore, StoreResolver};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tower_http::set_header::SetResponseHeaderLayer;

/// Where the role check sends a browser that has no session.
pub const LOGIN_PAGE: &str = "/login-page";

/// Our pages load nothing and run no script; `frame-ancestors` keeps them out of other sites'
/// frames, where a click on "log out" could be stolen.
const CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// A client that opens a connection and never finishes the TLS handshake holds a task this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

struct User {
    /// Also the session's user id.
    name: &'static str,
    /// In clear: a demo. A real app keeps argon2 hashes (see the `login-service` example).
    password: &'static str,
    /// The first is the session's default role, used when a client asks for none.
    roles: &'static [&'static str],
}

/// alice is an admin by default, bob a plain user.
const USERS: &[User] = &[
    User {
        name: "alice",
        password: "alice-password",
        roles: &["admin", "user"],
    },
    User {
        name: "bob",
        password: "bob-password",
        roles: &["user"],
    },
];

/// What the app is told.
#[derive(Clone, Debug)]
pub struct AppConfig {
    /// The project domain: the app's host, and with its subdomains the origins CORS, the CSRF
    /// check and the login redirects accept.
    pub domain: String,
    /// The session cookie's name and attributes.
    pub cookie: CookieConfig,
    /// How long a login lasts.
    pub session_ttl: Duration,
}

impl AppConfig {
    /// The app on `domain`, with a `__Host-session` cookie (`Secure`, `HttpOnly`,
    /// `SameSite=Lax`, `Path=/`, no `Domain`) and 8-hour sessions.
    pub fn new(domain: &str) -> Self {
        AppConfig {
            domain: domain.to_owned(),
            // The `__Host-` prefix makes the browser refuse the cookie unless it is Secure,
            // host-only and for `/`: a sibling subdomain can neither read nor plant it.
            cookie: CookieConfig {
                name: "__Host-session".to_owned(),
                ..CookieConfig::default()
            },
            session_ttl: Duration::from_secs(8 * 3600),
        }
    }
}

#[derive(Clone)]
struct AppState {
    login: Login,
    origins: ProjectOrigins,
    ttl: Duration,
}

/// The app, its sessions in `store`:
///
/// | route | answer |
/// |---|---|
/// | `GET /` | an HTML page: who you are, links, a logout button |
/// | `GET /me` | the same as JSON |
/// | `GET /login-page` | the login form |
/// | `POST /login` | form: session cookie and 303 to `redirect_to` or `/`; JSON: cookie and token |
/// | `POST /logout` | ends the session, clears the cookie |
/// | `GET /admin` | the `admin` role only |
///
/// # Errors
///
/// The cookie configuration cannot be written into a `Set-Cookie` header.
pub fn app(store: Arc<dyn SessionStore>, config: &AppConfig) -> Result<Router, ConfigError> {
    let origins = ProjectOrigins::new(std::slice::from_ref(&config.domain), &[]);
    let csrf = Arc::new(CsrfRule::new(origins.clone(), &CsrfConfig::default()));
    let sessions = SessionConfig {
        cookie: config.cookie.clone(),
        ..SessionConfig::default()
    };
    let to_login_page = BrowserRedirects {
        no_session: Some(LOGIN_PAGE.to_owned()),
        no_access: None,
        origins: origins.clone(),
    };
    let state = AppState {
        login: Login::new(store.clone(), config.cookie.clone()),
        origins: origins.clone(),
        ttl: config.session_ttl,
    };
    let resolver = Arc::new(StoreResolver::new(store));
    // Built here so that the builder below shows each layer on one line.
    let login_csrf = CsrfLayer::new(csrf.clone()).guard_logins(true);
    let admins_only = RequireRoleLayer::new(["admin"])
        .forbid_authenticated(true)
        .redirect_browsers(to_login_page);
    let csp = HeaderValue::from_static(CSP);
    let csp = SetResponseHeaderLayer::if_not_present(CONTENT_SECURITY_POLICY, csp);
    // The last layer added is the outermost; the crate docs say why this order.
    Ok(Router::new()
        .route("/", get(home))
        .route("/me", get(me))
        .route(LOGIN_PAGE, get(login_page))
        .route("/login", post(login).route_layer(login_csrf))
        .route("/logout", post(logout))
        .route("/admin", get(admin).route_layer(admins_only))
        .with_state(state)
        .layer(CsrfLayer::new(csrf))
        .layer(SessionLayer::try_new(resolver, sessions)?)
        .layer(RouteCorsLayer::new(&CorsConfig::default(), &origins))
        .layer(csp))
}

/// A certificate resolver that serves a certificate from `ca` for `names`. An `AcmeManager`
/// fills the same kind of resolver in production (see the README).
///
/// # Errors
///
/// The certificate cannot be issued, or the resolver's placeholder cannot be made.
pub fn dev_certificates(
    ca: &DevCa,
    names: &[String],
) -> Result<Arc<CertResolver>, cert_core::Error> {
    let resolver = Arc::new(CertResolver::new()?);
    resolver.insert_loaded(&ca.issue_loaded(names)?);
    Ok(resolver)
}

/// The TLS acceptor for the certificates in `resolver`: TLS 1.2 and 1.3, `h2` and `http/1.1`.
///
/// # Errors
///
/// rustls refuses the configuration.
pub fn tls_acceptor(resolver: Arc<CertResolver>) -> Result<TlsAcceptor, cert_core::Error> {
    let config = server_config(resolver, &TlsConfig::default())?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `app` over TLS on `listener`, HTTP/1.1 and HTTP/2 by ALPN, with a `ConnectionInfo`
/// in every request. It runs until the task is dropped.
///
/// Not `axum::serve`: a TLS `Listener` for it would run each handshake inside `accept`, one
/// at a time, and its `ConnectInfo` is not the `ConnectionInfo` the origin checks read.
///
/// # Errors
///
/// Only at the start: the listener's local address cannot be read.
pub async fn serve(listener: TcpListener, tls: TlsAcceptor, app: Router) -> std::io::Result<()> {
    let local_addr = listener.local_addr()?;
    let mut http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // With a timer, hyper enforces its 30 s header-read timeout on HTTP/1.
    http.http1().timer(TokioTimer::new());
    loop {
        let (tcp, remote_addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, or a connection reset before it was accepted: the
                // listener itself is fine, so wait a little rather than spin or stop.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (tls, app, http) = (tls.clone(), app.clone(), http.clone());
        // The handshake runs in the connection's task, so a slow client delays no other.
        tokio::spawn(async move {
            let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await
            else {
                return;
            };
            // An ACME TLS-ALPN-01 validation must carry no HTTP (only with ACME, see README).
            if is_acme_tls_alpn(stream.get_ref().1) {
                return;
            }
            let info = ConnectionInfo {
                remote_addr,
                local_addr,
                tls: true,
                sni: stream.get_ref().1.server_name().map(Arc::from),
            };
            let service =
                hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(info.clone());
                    app.clone().oneshot(req)
                });
            // Its error concerns that client only.
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn home(Extension(me): Extension<Identity>) -> Response {
    page(&format!(
        "<h1>embed-axum</h1>\n<p id=\"who\">{}</p>\n\
         <p><a id=\"admin\" href=\"/admin\">admin page</a> | <a id=\"log-in\" href=\"{LOGIN_PAGE}\">log in</a></p>\n\
         <form method=\"post\" action=\"/logout\"><button id=\"logout\">log out</button></form>",
        escape(&who(&me))
    ))
}

async fn me(Extension(me): Extension<Identity>) -> Response {
    no_store(
        Json(json!({
            "user_id": &*me.user_id,
            "role": &*me.role,
            "allowed_roles": me.allowed_roles.iter().map(|r| &**r).collect::<Vec<_>>(),
            "authenticated": me.is_authenticated(),
        }))
        .into_response(),
    )
}

async fn admin(Extension(me): Extension<Identity>) -> Response {
    page(&format!(
        "<p id=\"welcome\">welcome, admin {}</p>\n<p><a href=\"/\">home</a></p>",
        escape(&me.user_id)
    ))
}

#[derive(Deserialize)]
struct Next {
    redirect_to: Option<String>,
}

async fn login_page(State(state): State<AppState>, req: Request) -> Response {
    let asked = Query::<Next>::try_from_uri(req.uri())
        .ok()
        .and_then(|q| q.0.redirect_to);
    let site = state.origins.site(req.headers(), req.extensions());
    let next = state.after_login(site, asked.as_deref());
    page(&format!(
        "<h1>log in</h1>\n<form method=\"post\" action=\"/login\">\n\
         <input type=\"hidden\" name=\"redirect_to\" value=\"{}\">\n\
         <label>user <input id=\"username\" name=\"username\" autocomplete=\"username\"></label>\n\
         <label>password <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\"></label>\n\
         <button id=\"login\">log in</button>\n</form>",
        escape(&next)
    ))
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
    redirect_to: Option<String>,
}

async fn login(
    State(state): State<AppState>,
    credential: Option<Extension<Credential>>,
    req: Request,
) -> Response {
    let site = state.origins.site(req.headers(), req.extensions());
    let form = is_form(req.headers());
    let read = if form {
        Form::<Credentials>::from_request(req, &())
            .await
            .map(|Form(c)| c)
            .map_err(IntoResponse::into_response)
    } else {
        Json::<Credentials>::from_request(req, &())
            .await
            .map(|Json(c)| c)
            .map_err(IntoResponse::into_response)
    };
    let asked = match read {
        Ok(asked) => asked,
        Err(refusal) => return refusal,
    };
    let user = USERS.iter().find(|u| {
        u.name == asked.username
            && constant_time_eq(u.password.as_bytes(), asked.password.as_bytes())
    });
    let Some(user) = user else {
        tracing::info!("login failed"); // never the name: people type passwords into it
        return no_store(json_rejection(
            StatusCode::UNAUTHORIZED,
            "invalid-credentials",
            "unknown user or wrong password",
        ));
    };
    // The session this client came with ends: a login never leaves an older one alive behind it.
    if let Err(e) = state.login.end(credential.as_ref().map(|c| &c.0)).await {
        tracing::error!(error = %e, "cannot end the previous session");
        return SESSION_STORE_UNAVAILABLE.response();
    }
    let new = NewSession {
        user_id: user.name.to_owned(),
        roles: user.roles.iter().map(|r| (*r).to_owned()).collect(),
        ttl: state.ttl,
        ..Default::default()
    };
    let issued = match state.login.issue(new).await {
        Ok(issued) => issued,
        Err(e) => {
            tracing::error!(error = %e, "cannot create a session");
            return SESSION_STORE_UNAVAILABLE.response();
        }
    };
    let mut res = if form {
        // A browser: the token travels only in the HttpOnly cookie, never in a page a script
        // could read.
        let next = state.after_login(site, asked.redirect_to.as_deref());
        let next = HeaderValue::try_from(next).unwrap_or(HeaderValue::from_static("/"));
        (StatusCode::SEE_OTHER, [(LOCATION, next)]).into_response()
    } else {
        let expires_at = issued
            .session
            .expires_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Json(json!({
            "user_id": issued.session.user_id,
            "roles": issued.session.roles,
            "token": issued.token.expose(),
            "expires_at": expires_at,
        }))
        .into_response()
    };
    res.headers_mut().append(SET_COOKIE, issued.set_cookie);
    no_store(res)
}

async fn logout(
    State(state): State<AppState>,
    credential: Option<Extension<Credential>>,
    headers: HeaderMap,
) -> Response {
    let clear = match state.login.end(credential.as_ref().map(|c| &c.0)).await {
        Ok(clear) => clear,
        Err(e) => {
            tracing::error!(error = %e, "cannot end the session");
            return SESSION_STORE_UNAVAILABLE.response();
        }
    };
    let mut res = if is_form(&headers) {
        (
            StatusCode::SEE_OTHER,
            [(LOCATION, HeaderValue::from_static(LOGIN_PAGE))],
        )
            .into_response()
    } else {
        Json(json!({ "logged_out": true })).into_response()
    };
    res.headers_mut().append(SET_COOKIE, clear);
    no_store(res)
}

impl AppState {
    /// `target` when its origin is the project's, by the rule CORS and the CSRF check use;
    /// otherwise `/`. A login never sends the browser to a foreign site (no open redirect).
    fn after_login(&self, site: RequestSite, target: Option<&str>) -> String {
        match target {
            Some(t) if url_origin(t).is_some_and(|o| self.origins.allows(o, site, &[])) => {
                t.to_owned()
            }
            _ => "/".to_owned(),
        }
    }
}

/// A browser's form post, as opposed to an API client's JSON.
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn who(me: &Identity) -> String {
    format!(
        "user {} with role {} (authenticated: {})",
        me.user_id,
        me.role,
        me.is_authenticated()
    )
}

fn page(body: &str) -> Response {
    let html =
        format!("<!doctype html>\n<meta charset=\"utf-8\">\n<title>embed-axum</title>\n{body}\n");
    no_store(Html(html).into_response())
}

/// Every answer of this app depends on who asks: no cache may keep one.
fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The HTML-escaped `text`, for element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
