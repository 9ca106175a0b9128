//! A service as the API reads and writes it: JSON in, a validated [`Service`] out, and every
//! problem named by its field.
//!
//! Only the JSON's shape is read here (types, unknown fields, the required name); what the
//! values may be is decided by the config file's own service validator
//! ([`crate::config::validate_service`]), so the API and the file accept the same services
//! and refuse the others with the same words.

use serde_json::{json, Map, Value};
use toml::Spanned;

use crate::config::{validate_service, Origin, RawService, Service};

pub(crate) use crate::config::ServiceDefaults as Defaults;

/// The fields a client may send. Anything else is refused, except [`READ_ONLY`] fields, which
/// `GET` returns and a client may send back unchanged (they are ignored).
const WRITABLE: &[&str] = &[
    "name",
    "subdomain",
    "path_prefix",
    "upstreams",
    "allowed_roles",
    "websocket",
    "forward_credentials",
    "session_issuer",
    "http2",
    "cors",
    "connect_timeout",
    "response_timeout",
    "max_body_bytes",
    "no_session_redirect",
    "no_access_redirect",
];

/// Fields that `GET` adds and a write ignores.
const READ_ONLY: &[&str] = &["origin", "hosts", "active", "certificate"];

/// A problem with one field of a request (or of one entry of the state file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FieldError {
    /// The field, e.g. `upstreams[0]`.
    pub(crate) field: String,
    /// What is wrong.
    pub(crate) message: String,
}

impl FieldError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A JSON value has no place in a file: its issues are named by field, never by line.
fn unplaced<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}

fn string(map: &Map<String, Value>, key: &str) -> Result<Option<String>, FieldError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(FieldError::new(key, "must be a string")),
    }
}

/// A string field where `""` means "not set", as `null` does: a JSON client clears a field
/// either way, while the file can only leave the key out (and so refuses `""`).
fn optional(map: &Map<String, Value>, key: &str) -> Result<Option<Spanned<String>>, FieldError> {
    Ok(string(map, key)?.filter(|s| !s.is_empty()).map(unplaced))
}

fn boolean(map: &Map<String, Value>, key: &str) -> Result<Option<bool>, FieldError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(FieldError::new(key, "must be true or false")),
    }
}

fn strings(map: &Map<String, Value>, key: &str) -> Result<Vec<String>, FieldError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(FieldError::new(format!("{key}[{i}]"), "must be a string")),
            })
            .collect(),
        Some(_) => Err(FieldError::new(key, "must be a list of strings")),
    }
}

/// Reads a JSON service into the fields of a `[[services]]` table, checking only what TOML
/// parsing checks for the file: the shape.
fn fields(value: &Value) -> Result<RawService, FieldError> {
    let Value::Object(map) = value else {
        return Err(FieldError::new("body", "must be a JSON object"));
    };
    if let Some(unknown) = map
        .keys()
        .find(|k| !WRITABLE.contains(&k.as_str()) && !READ_ONLY.contains(&k.as_str()))
    {
        return Err(FieldError::new(
            unknown.as_str(),
            format!("unknown field; the fields are {}", WRITABLE.join(", ")),
        ));
    }
    let name = string(map, "name")?.ok_or_else(|| FieldError::new("name", "is required"))?;
    let max_body_bytes = match map.get("max_body_bytes") {
        None | Some(Value::Null) => None,
        Some(v) => Some(unplaced(v.as_u64().ok_or_else(|| {
            FieldError::new("max_body_bytes", "must be a whole number of bytes")
        })?)),
    };
    // Pasted URLs often carry a stray space; the API has always forgiven it.
    let upstreams = strings(map, "upstreams")?
        .into_iter()
        .map(|u| unplaced(u.trim().to_owned()))
        .collect();
    let allowed_roles = strings(map, "allowed_roles")?
        .into_iter()
        .map(unplaced)
        .collect();
    Ok(RawService {
        name: unplaced(name),
        subdomain: optional(map, "subdomain")?,
        path_prefix: optional(map, "path_prefix")?,
        upstreams: unplaced(upstreams),
        allowed_roles: Some(unplaced(allowed_roles)),
        forward_credentials: boolean(map, "forward_credentials")?,
        session_issuer: boolean(map, "session_issuer")?,
        websocket: boolean(map, "websocket")?,
        http2: boolean(map, "http2")?,
        connect_timeout: string(map, "connect_timeout")?.map(unplaced),
        response_timeout: string(map, "response_timeout")?.map(unplaced),
        max_body_bytes,
        cors: boolean(map, "cors")?,
        cors_allowed_origins: None,
        cors_allowed_methods: None,
        cors_allowed_headers: None,
        no_session_redirect: optional(map, "no_session_redirect")?,
        no_access_redirect: optional(map, "no_access_redirect")?,
    })
}

/// Validates one service written as JSON with the config file's validator. The result is
/// marked [`Origin::Api`]. Of several problems, the first in the file's order is answered.
pub(crate) fn parse(value: &Value, defaults: &Defaults<'_>) -> Result<Service, FieldError> {
    validate_service(fields(value)?, defaults, Origin::Api).map_err(|issues| {
        match issues.into_iter().next() {
            Some(first) => FieldError::new(first.key.clone(), first.explained()),
            // `validate_service` never fails without an issue; answer something true anyway.
            None => FieldError::new("body", "is not a valid service"),
        }
    })
}

/// A service's writable fields as JSON: what the state file stores, and what [`parse`] reads
/// back into the same service.
pub(crate) fn to_json(s: &Service) -> Value {
    json!({
        "name": s.name,
        "subdomain": s.subdomain,
        "path_prefix": s.path_prefix,
        "upstreams": s.upstreams.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "allowed_roles": s.allowed_roles,
        "websocket": s.websocket,
        "forward_credentials": s.forward_credentials,
        "session_issuer": s.session_issuer,
        "http2": s.http2,
        "cors": s.cors,
        "connect_timeout": humantime::format_duration(s.connect_timeout).to_string(),
        "response_timeout": humantime::format_duration(s.response_timeout).to_string(),
        "max_body_bytes": s.max_body_bytes,
        "no_session_redirect": s.no_session_redirect,
        "no_access_redirect": s.no_access_redirect,
    })
}

/// A service as `GET /v1/services` shows it: [`to_json`] plus where it came from, its host
/// names, whether it is in force, and its certificate status.
pub(crate) fn to_listing(s: &Service, domains: &[String], active: bool) -> Value {
    let mut v = to_json(s);
    if let Value::Object(map) = &mut v {
        map.insert(
            "origin".into(),
            json!(match s.origin {
                Origin::File => "file",
                Origin::Api => "api",
            }),
        );
        map.insert("hosts".into(), json!(s.host_patterns(domains)));
        map.insert("active".into(), json!(active));
        // Filled in by the TLS integration; `null` means "not known here".
        map.insert("certificate".into(), Value::Null);
    }
    v
}
