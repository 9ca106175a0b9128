//! The admin listener: the sessions API, Prometheus metrics and health checks.
//!
//! Every `/v1/*` endpoint requires `Authorization: Bearer <admin secret>` (and `/metrics` too
//! with `[admin] metrics_require_secret`). The secret is compared in constant time (both sides
//! are hashed first, so not even its length leaks), and every failure is counted in
//! `gateway_admin_auth_failures_total`.
//!
//! The listener runs on the public listeners' connection machinery (header size, count and
//! read timeout, idle timeout, a connection cap of its own), and [`AdminGuard`] checks every
//! request before a handler sees it: the `Host` must be an IP literal, `localhost`, or a
//! `[listen] admin_hosts` name, else 421. A web page that rebinds its own DNS name to the
//! admin address (DNS rebinding) sends its own name as `Host`, so it cannot read the API.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::{Body as AxumBody, Bytes};
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use http_body_util::{BodyExt, Limited};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::json;
use session_core::{
    NewSession, Session, SessionConfig, SessionStore, SessionValidationError, StoreError, Token,
    Variables,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use route_core::{normalize_host, request_host, HostError, Rejection};

use crate::reject;

/// A secret that never prints.
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret; surrounding whitespace (a trailing newline in a file) is dropped.
    pub fn new(s: &str) -> Option<Secret> {
        let s = s.trim();
        (!s.is_empty()).then(|| Secret(Arc::from(s)))
    }

    /// The secret itself, for a client that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let a = Sha256::digest(self.0.as_bytes());
        let b = Sha256::digest(candidate);
        a.ct_eq(&b).into()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// What the admin API works with.
#[derive(Clone)]
pub struct AdminState {
    /// The session store.
    pub store: Arc<dyn SessionStore>,
    /// The admin secret; `None` disables the `/v1` API.
    pub secret: Option<Secret>,
    /// The default session lifetime.
    pub default_ttl: Duration,
    /// The session layer's settings: the variables of a session created here must fit its
    /// identity headers ([`NewSession::validate_for`]).
    pub session: SessionConfig,
    /// The Prometheus renderer.
    pub metrics: Option<PrometheusHandle>,
    /// Set once every listener is bound.
    pub ready: Arc<AtomicBool>,
    /// Extra routes (services API, console) merged in by later parts of the gateway.
    pub extra: Option<axum::Router>,
    /// The ACME manager, for `GET /v1/certs` and `POST /v1/certs/{name}/renew`.
    pub acme: Option<cert_core::AcmeManager>,
    /// An extra readiness check (the Redis session store): `/readyz` answers 503 with the
    /// reason while it fails.
    pub readiness: Option<Readiness>,
    /// Whether `/metrics` requires the admin secret.
    pub metrics_require_secret: bool,
    /// The checks every request passes first.
    pub guard: AdminGuard,
    /// The live route table, for `POST /v1/explain`; `None` answers 404 there.
    pub routes: Option<route_core::SharedRouteTable<crate::stack::RouteService>>,
}

/// What every admin request is checked for before a handler runs.
#[derive(Clone, Debug, Default)]
pub struct AdminGuard {
    /// Host names served besides IP literals and `localhost`, normalised (lowercase, no port,
    /// no trailing dot).
    pub hosts: Arc<[String]>,
    /// The largest request body (413 above it).
    pub max_body_bytes: u64,
}

impl AdminGuard {
    /// Whether a `Host` value or URI authority names this listener: an IP literal,
    /// `localhost`, or a listed name, in any case, with any port and one trailing dot.
    fn serves(&self, raw: &str) -> bool {
        match normalize_host(raw) {
            Ok(name) => name == "localhost" || self.hosts.iter().any(|h| *h == name),
            Err(HostError::IpLiteral) => true,
            Err(_) => false,
        }
    }

    /// `Err` with the answer when the request's host is not served here.
    fn check_host<B>(&self, req: &http::Request<B>) -> Result<(), Box<Response>> {
        let header = req.headers().get(http::header::HOST);
        let authority = req.uri().authority().map(|a| a.as_str());
        if header.is_none() && authority.is_none() && req.version() <= http::Version::HTTP_10 {
            // HTTP/1.0 needs no Host (old health checkers send none); a browser, the DNS
            // rebinding threat, always sends one.
            return Ok(());
        }
        match request_host(req) {
            // Two Hosts, a Host that the authority contradicts, userinfo, no host at all.
            Err(e) if e != HostError::IpLiteral => return Err(Box::new(e.rejection().response())),
            _ => {}
        }
        // `request_host` stops at an IP literal Host, so each name given is checked here.
        let given = header
            .and_then(|h| h.to_str().ok())
            .into_iter()
            .chain(authority);
        for raw in given {
            if !self.serves(raw) {
                metrics::counter!("gateway_admin_misdirected_total").increment(1);
                // The listener serves IP addresses, localhost and listen.admin_hosts only.
                return Err(Box::new(reject::response(reject::Rejection::IP_HOST)));
            }
        }
        Ok(())
    }
}

/// The admin listener's guard: the host check, then the body read under the body limit (admin
/// bodies are small JSON documents; every handler reads them whole anyway).
async fn guard(State(g): State<AdminGuard>, req: Request, next: Next) -> Response {
    if let Err(res) = g.check_host(&req) {
        return *res;
    }
    let too_large = || Rejection::BODY_TOO_LARGE.response::<AxumBody>();
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > g.max_body_bytes) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    let limit = usize::try_from(g.max_body_bytes).unwrap_or(usize::MAX);
    let body = match Limited::new(body, limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(_) => return Rejection::INVALID_BODY.response(),
    };
    next.run(Request::from_parts(parts, AxumBody::from(body)))
        .await
}

/// A readiness check: `Err(reason)` while a dependency is unreachable.
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// The admin router.
pub fn router(state: AdminState) -> axum::Router {
    let extra = state.extra.clone();
    let guard_state = state.guard.clone();
    let r = axum::Router::new()
        .route("/v1/sessions", post(create_session))
        .route("/v1/sessions/current", delete(revoke_current))
        .route(
            "/v1/users/{id}/sessions",
            get(list_sessions).delete(revoke_user),
        )
        .route("/v1/explain", post(explain))
        .route("/v1/certs", get(list_certs))
        .route("/v1/certs/{name}/renew", post(renew_cert))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .fallback(|| async { reject::response(reject::NOT_FOUND) })
        .with_state(state);
    let r = match extra {
        Some(e) => r.merge(e),
        None => r,
    };
    r.layer(axum::middleware::from_fn_with_state(guard_state, guard))
}

/// `POST /v1/explain` (see [`crate::explain`]).
async fn explain(_: AdminAuth, State(state): State<AdminState>, body: Bytes) -> Response {
    match &state.routes {
        Some(table) => {
            crate::explain::explain(table.clone(), &state.session.role_header, &body).await
        }
        None => reject::response(reject::NOT_FOUND),
    }
}

/// Proof that the request carried the admin secret.
pub struct AdminAuth;

impl FromRequestParts<AdminState> for AdminAuth {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self, Response> {
        check_admin(&parts.headers, state.secret.as_ref()).map_err(|r| *r)
    }
}

/// Checks the admin bearer secret in `headers`.
pub fn check_admin(
    headers: &HeaderMap,
    secret: Option<&Secret>,
) -> Result<AdminAuth, Box<Response>> {
    let Some(secret) = secret else {
        metrics::counter!("gateway_admin_auth_failures_total").increment(1);
        return Err(Box::new(reject::response(reject::ADMIN_DISABLED)));
    };
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    match presented {
        Some(p) if secret.matches(p.as_bytes()) => Ok(AdminAuth),
        _ => {
            metrics::counter!("gateway_admin_auth_failures_total").increment(1);
            tracing::warn!("admin API request with a missing or wrong admin secret");
            let mut res = reject::response(reject::ADMIN_UNAUTHORIZED);
            res.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
            Err(Box::new(res))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSession {
    user_id: String,
    roles: Vec<String>,
    default_role: Option<String>,
    ttl_seconds: Option<u64>,
    #[serde(default)]
    variables: Variables,
}

fn unprocessable(field: &str, message: &str) -> Response {
    reject::with_detail(
        reject::INVALID_FIELD,
        message,
        &[("field", serde_json::Value::from(field))],
    )
}

/// The request field a validation error is about.
fn field_of(e: &SessionValidationError) -> &'static str {
    use SessionValidationError as E;
    match e {
        E::EmptyUserId | E::UserIdTooLong | E::InvalidUserId(_) => "user_id",
        E::NoRoles
        | E::TooManyRoles
        | E::EmptyRole
        | E::RoleTooLong
        | E::InvalidRole(_)
        | E::DuplicateRole => "roles",
        E::DefaultRoleNotInRoles => "default_role",
        E::InvalidTtl => "ttl_seconds",
        E::TooManyVariables
        | E::InvalidVariableName
        | E::VariableNameNotAllowed
        | E::EmptyVariableValue
        | E::VariableValueTooLong
        | E::InvalidVariableValue(_) => "variables",
        _ => "body",
    }
}

fn store_error(e: &StoreError) -> Response {
    tracing::error!(error = %e, "session store error in the admin API");
    reject::store_unavailable()
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

async fn create_session(_: AdminAuth, State(state): State<AdminState>, body: Bytes) -> Response {
    let req: CreateSession = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return reject::with_detail(
                reject::INVALID_JSON,
                &format!(
                    "expected {{\"user_id\", \"roles\", \"default_role\"?, \"ttl_seconds\"?, \"variables\"?}}: {e}"
                ),
                &[],
            )
        }
    };
    let ttl = match req.ttl_seconds {
        None => state.default_ttl,
        Some(0) => return unprocessable("ttl_seconds", "must be a positive number of seconds"),
        Some(s) => Duration::from_secs(s),
    };
    let new = NewSession {
        user_id: req.user_id,
        roles: req.roles,
        default_role: req.default_role,
        ttl,
        variables: req.variables,
    };
    if let Err(e) = new.validate_for(&state.session) {
        return unprocessable(field_of(&e), &e.to_string());
    }
    match state.store.create(new).await {
        Ok((token, session)) => {
            metrics::counter!("gateway_sessions_created_total", "via" => "admin").increment(1);
            tracing::info!(user_id = %session.user_id, "session created through the admin API");
            let body = json!({
                "token": token.expose(),
                "expires_at": rfc3339(session.expires_at),
                "user_id": session.user_id,
                "roles": session.roles,
                "default_role": session.default_role,
                "variables": session.variables,
            });
            (StatusCode::CREATED, axum::Json(body)).into_response()
        }
        Err(StoreError::Invalid(e)) => unprocessable(field_of(&e), &e.to_string()),
        Err(e) => store_error(&e),
    }
}

fn session_json(s: &Session) -> serde_json::Value {
    json!({
        "id": s.id.to_hex(),
        "user_id": s.user_id,
        "roles": s.roles,
        "default_role": s.default_role,
        "variables": s.variables,
        "created_at": rfc3339(s.created_at),
        "expires_at": rfc3339(s.expires_at),
    })
}

async fn list_sessions(
    _: AdminAuth,
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Response {
    match state.store.list_user(&id).await {
        Ok(list) => {
            let sessions: Vec<_> = list.iter().map(session_json).collect();
            axum::Json(json!({ "user_id": id, "sessions": sessions })).into_response()
        }
        Err(e) => store_error(&e),
    }
}

async fn revoke_user(
    _: AdminAuth,
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Response {
    match state.store.revoke_user(&id).await {
        Ok(n) => {
            metrics::counter!("gateway_sessions_revoked_total").increment(n as u64);
            tracing::info!(user_id = %id, revoked = n, "user sessions revoked through the admin API");
            axum::Json(json!({ "user_id": id, "revoked": n })).into_response()
        }
        Err(e) => store_error(&e),
    }
}

#[derive(Deserialize)]
struct CurrentToken {
    token: String,
}

async fn revoke_current(
    _: AdminAuth,
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = headers
        .get(session_core::issuer::H_TOKEN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            serde_json::from_slice::<CurrentToken>(&body)
                .ok()
                .map(|t| t.token)
        });
    let Some(raw) = raw else {
        return reject::response(reject::MISSING_TOKEN);
    };
    let Ok(token) = Token::parse(raw.trim()) else {
        return reject::response(reject::UNKNOWN_SESSION);
    };
    match state.store.revoke(&token.hash()).await {
        Ok(true) => {
            metrics::counter!("gateway_sessions_revoked_total").increment(1);
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => reject::response(reject::UNKNOWN_SESSION),
        Err(e) => store_error(&e),
    }
}

fn cert_json(c: &cert_core::CertStatus) -> serde_json::Value {
    json!({
        "name": c.name,
        "issuer": c.issuer,
        "not_after": c.not_after.map(rfc3339),
        "next_renewal": c.next_renewal.map(rfc3339),
        "failures": c.failures,
        "last_error": c.last_error,
        "next_attempt": c.next_attempt.map(rfc3339),
    })
}

async fn list_certs(_: AdminAuth, State(state): State<AdminState>) -> Response {
    match &state.acme {
        Some(m) => {
            let certs: Vec<_> = m.list().iter().map(cert_json).collect();
            axum::Json(json!({ "certificates": certs })).into_response()
        }
        None => reject::response(reject::ACME_DISABLED),
    }
}

async fn renew_cert(
    _: AdminAuth,
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Response {
    let Some(m) = &state.acme else {
        return reject::response(reject::ACME_DISABLED);
    };
    match m.request_renewal(&name) {
        Ok(()) => {
            tracing::info!(name = %name, "certificate renewal requested through the admin API");
            let status = m.status(&name).map(|s| cert_json(&s));
            (
                StatusCode::ACCEPTED,
                axum::Json(json!({ "renewal": "requested", "status": status })),
            )
                .into_response()
        }
        Err(e) => reject::with_detail(reject::NAME_NOT_MANAGED, &e.to_string(), &[]),
    }
}

async fn metrics(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    if state.metrics_require_secret {
        if let Err(res) = check_admin(&headers, state.secret.as_ref()) {
            return *res;
        }
    }
    match &state.metrics {
        Some(h) => (
            [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            h.render(),
        )
            .into_response(),
        None => reject::response(reject::METRICS_DISABLED),
    }
}

async fn readyz(State(state): State<AdminState>) -> Response {
    if !state.ready.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response();
    }
    match state.readiness.as_ref().map(|check| check()) {
        Some(Err(reason)) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response()
        }
        _ => (StatusCode::OK, "ready\n").into_response(),
    }
}
