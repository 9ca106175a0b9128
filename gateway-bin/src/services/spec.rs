//! A service as the API reads and writes it: JSON in, a validated [`Service`] out, with the
//! config file's rules, and every problem named by its field.

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::config::{is_dns_label, is_role_token, parse_upstream, Origin, Service};

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

/// Defaults a service takes from the config it joins.
#[derive(Clone, Debug)]
pub(crate) struct Defaults<'a> {
    /// The project's domains: every host name `<subdomain>.<domain>` must be a valid name.
    pub(crate) domains: &'a [String],
    /// The request body limit when the service names none.
    pub(crate) max_body_bytes: u64,
}

fn string(map: &Map<String, Value>, key: &str) -> Result<Option<String>, FieldError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(FieldError::new(key, "must be a string")),
    }
}

fn boolean(map: &Map<String, Value>, key: &str, default: bool) -> Result<bool, FieldError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
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

fn duration(
    map: &Map<String, Value>,
    key: &str,
    default: Duration,
) -> Result<Duration, FieldError> {
    let Some(text) = string(map, key)? else {
        return Ok(default);
    };
    match humantime::parse_duration(&text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(FieldError::new(key, "must be longer than zero")),
        Err(e) => Err(FieldError::new(
            key,
            format!("not a duration ({e}); write e.g. \"500ms\", \"30s\" or \"5m\""),
        )),
    }
}

/// Checks a subdomain as the config file does: a DNS label (or dotted labels), `@` for the
/// apex, `*` for every other name; lowercased.
fn subdomain(raw: &str, domains: &[String]) -> Result<String, FieldError> {
    let sub = raw.to_ascii_lowercase();
    if sub == "@" || sub == "*" {
        return Ok(sub);
    }
    if !sub.split('.').all(is_dns_label) {
        return Err(FieldError::new(
            "subdomain",
            format!(
                "`{raw}` is not a valid subdomain: use a DNS label such as \"data\" (lowercase \
                 letters, digits and '-'), \"@\" for the apex or \"*\" for every other name"
            ),
        ));
    }
    if let Some(d) = domains.iter().find(|d| sub.len() + 1 + d.len() > 253) {
        return Err(FieldError::new(
            "subdomain",
            format!("`{sub}.{d}` is longer than a DNS name may be (253 characters)"),
        ));
    }
    Ok(sub)
}

fn path_prefix(raw: &str) -> Result<String, FieldError> {
    if !raw.starts_with('/')
        || raw.contains("..")
        || raw.contains("//")
        || raw.contains('%')
        || raw.contains('?')
    {
        return Err(FieldError::new(
            "path_prefix",
            "must be a normalised absolute path such as \"/api\"",
        ));
    }
    let trimmed = raw.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    })
}

/// Validates one service written as JSON, with the rules of the config file. The result is
/// marked [`Origin::Api`].
pub(crate) fn parse(value: &Value, defaults: &Defaults<'_>) -> Result<Service, FieldError> {
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
    if !is_dns_label(&name) {
        return Err(FieldError::new(
            "name",
            format!("`{name}` is not a valid name: use 1-63 lowercase letters, digits and '-'"),
        ));
    }
    let subdomain = match string(map, "subdomain")? {
        Some(s) if !s.is_empty() => subdomain(&s, defaults.domains)?,
        _ => subdomain(&name, defaults.domains)?,
    };
    let path_prefix = match string(map, "path_prefix")? {
        Some(p) if !p.is_empty() => Some(path_prefix(&p)?),
        _ => None,
    };
    let raw_upstreams = strings(map, "upstreams")?;
    if raw_upstreams.is_empty() {
        return Err(FieldError::new(
            "upstreams",
            "at least one upstream URL is required, e.g. \"http://127.0.0.1:3000\"",
        ));
    }
    let mut upstreams = Vec::with_capacity(raw_upstreams.len());
    for (i, u) in raw_upstreams.iter().enumerate() {
        upstreams.push(
            parse_upstream(u.trim()).map_err(|m| FieldError::new(format!("upstreams[{i}]"), m))?,
        );
    }
    let mut allowed_roles: Vec<String> = Vec::new();
    for (i, r) in strings(map, "allowed_roles")?.into_iter().enumerate() {
        if !is_role_token(&r) {
            return Err(FieldError::new(
                format!("allowed_roles[{i}]"),
                format!(
                    "`{r}` is not a valid role: roles are 1-128 visible ASCII characters \
                     without spaces or commas"
                ),
            ));
        }
        if !allowed_roles.contains(&r) {
            allowed_roles.push(r);
        }
    }
    let max_body_bytes = match map.get("max_body_bytes") {
        None | Some(Value::Null) => defaults.max_body_bytes,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| FieldError::new("max_body_bytes", "must be a whole number of bytes"))?,
    };
    let redirect = |key: &str| -> Result<Option<String>, FieldError> {
        match string(map, key)? {
            Some(url) if !url.is_empty() => parse_upstream(&url)
                .map(|_| Some(url))
                .map_err(|_| FieldError::new(key, "must be an absolute http(s) URL")),
            _ => Ok(None),
        }
    };
    Ok(Service {
        name,
        subdomain,
        path_prefix,
        upstreams,
        allowed_roles,
        forward_credentials: boolean(map, "forward_credentials", false)?,
        session_issuer: boolean(map, "session_issuer", false)?,
        websocket: boolean(map, "websocket", true)?,
        http2: boolean(map, "http2", false)?,
        connect_timeout: duration(map, "connect_timeout", Duration::from_secs(5))?,
        response_timeout: duration(map, "response_timeout", Duration::from_secs(30))?,
        max_body_bytes,
        origin: Origin::Api,
        cors: boolean(map, "cors", true)?,
        cors_allowed_origins: Vec::new(),
        cors_allowed_methods: Vec::new(),
        cors_allowed_headers: Vec::new(),
        no_session_redirect: redirect("no_session_redirect")?,
        no_access_redirect: redirect("no_access_redirect")?,
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
