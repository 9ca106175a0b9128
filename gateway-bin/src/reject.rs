//! The gateway binary's own refusals (the admin and services APIs): one table ([`ALL`]) of
//! route-core's [`Rejection`]s, the workspace's one error vocabulary. Refusals of the request
//! path come from the core crates' tables; a code is never declared twice (a test of this crate
//! collects every table and checks that each code has one status and one message).
//!
//! A refusal about one request in particular (which field, which service, what the JSON parser
//! said) keeps the code's fixed message in `error` and says the rest in `detail`, plus the
//! fields a client acts on (`field`, `current_version`): [`with_detail`].

use axum::body::Body as AxumBody;
use axum::response::Response;
use bytes::Bytes;
use http::header::RETRY_AFTER;
use http::HeaderValue;
pub use route_core::Rejection;
use serde_json::{Map, Value};

route_core::rejections! {
    /// A path the admin listener does not serve.
    NOT_FOUND = (NOT_FOUND, "not-found", "no such admin endpoint");
    /// No admin secret is configured: `/v1` refuses everything.
    ADMIN_DISABLED = (UNAUTHORIZED, "admin-disabled", "the admin API is disabled: no admin secret is configured");
    /// A missing or wrong admin secret.
    ADMIN_UNAUTHORIZED = (UNAUTHORIZED, "admin-unauthorized", "a valid admin secret is required");
    /// A body that is not the JSON the endpoint expects.
    INVALID_JSON = (BAD_REQUEST, "invalid-json", "the request body is not the JSON this endpoint expects");
    /// A well-formed body with a value that cannot be used (`field` says which).
    INVALID_FIELD = (UNPROCESSABLE_ENTITY, "invalid-field", "a field of the request has a value that cannot be used");
    /// A session revocation without a token.
    MISSING_TOKEN = (BAD_REQUEST, "missing-token", "send the session token in X-Gateway-Session-Token or as the token field of a JSON body");
    /// No session with that token.
    UNKNOWN_SESSION = (NOT_FOUND, "unknown-session", "no such session");
    /// Certificate endpoints when TLS does not use ACME.
    ACME_DISABLED = (NOT_FOUND, "acme-disabled", "certificates are not managed by ACME here (tls.mode is not acme)");
    /// A renewal asked for a name no certificate covers.
    NAME_NOT_MANAGED = (UNPROCESSABLE_ENTITY, "name-not-managed", "no managed certificate covers this name");
    /// Metrics were not recorded in this process.
    METRICS_DISABLED = (NOT_FOUND, "metrics-disabled", "metrics are not recorded in this process");
    /// No service of that name (in the API's services).
    UNKNOWN_SERVICE = (NOT_FOUND, "unknown-service", "no service with this name");
    /// A service of the config file cannot be changed through the API.
    SERVICE_IN_CONFIG_FILE = (CONFLICT, "service-in-config-file", "the service is defined in the config file; change or remove it there (only services added through this API can be changed here)");
    /// Adding a service whose name is taken.
    SERVICE_EXISTS = (CONFLICT, "service-exists", "a service with this name already exists; replace it with PUT");
    /// A change without `If-Match`.
    IF_MATCH_REQUIRED = (PRECONDITION_REQUIRED, "if-match-required", "send If-Match with the ETag of GET /v1/services (or `*` to skip the check)");
    /// A change made against an older version of the services.
    VERSION_MISMATCH = (PRECONDITION_FAILED, "version-mismatch", "the services changed; read them again and retry");
    /// The services' state file could not be written: nothing was applied.
    STATE_WRITE_FAILED = (INTERNAL_SERVER_ERROR, "state-write-failed", "the change could not be saved, so it was not applied; see the gateway's log");
    /// `POST /v1/explain` with a request that cannot be explained (a bad URL, method or header).
    INVALID_EXPLAIN_REQUEST = (BAD_REQUEST, "invalid-explain-request", "the request to explain is not usable (method, url and headers must make a valid HTTP request)");
    /// The routes could not be rebuilt with the change.
    APPLY_FAILED = (INTERNAL_SERVER_ERROR, "apply-failed", "the change could not be applied");
}

/// `rejection` as an axum response.
pub fn response(rejection: Rejection) -> Response {
    rejection.response::<AxumBody>()
}

/// `rejection` with `detail` (what went wrong with this request) and `extra` fields.
pub fn with_detail(rejection: Rejection, detail: &str, extra: &[(&str, Value)]) -> Response {
    let mut body = Map::new();
    body.insert("error".into(), Value::from(rejection.message));
    body.insert("code".into(), Value::from(rejection.code));
    if !detail.is_empty() {
        body.insert("detail".into(), Value::from(detail));
    }
    for (k, v) in extra {
        body.insert((*k).to_owned(), v.clone());
    }
    let mut res = rejection.response::<AxumBody>();
    *res.body_mut() = AxumBody::from(Bytes::from(Value::Object(body).to_string()));
    res
}

/// The 503 for a session store that cannot answer, with `Retry-After`.
pub fn store_unavailable() -> Response {
    let mut res = response(session_core::rejection::SESSION_STORE_UNAVAILABLE);
    res.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    res
}
