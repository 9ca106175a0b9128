//! Reading the webhook's `200` answer: the identity it gives, and how long it may be cached.

use std::time::{Duration, SystemTime};

use http::header::{CACHE_CONTROL, EXPIRES};
use http::HeaderMap;
use serde_json::{Map, Value};

use crate::http_client::{expires_in, CacheDirectives};
use crate::identity::Identity;
use crate::session::Variables;

/// The user id of an answer without `X-Hasura-User-Id`.
pub(super) const DEFAULT_USER_ID: &str = "0";

/// Why a `200` answer gives no identity. Each is logged as it reads; none holds a value from
/// the answer (they may be secrets), only names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum BadAnswer {
    #[error("the answer is not a JSON object")]
    NotAnObject,
    #[error("the answer has no X-Hasura-Role")]
    NoRole,
    #[error("{0} appears twice (names are compared without case)")]
    Duplicate(String),
    #[error("{0} is not a string, number or boolean")]
    NotText(String),
    #[error("X-Hasura-Allowed-Roles is not a list of strings or a comma-separated string")]
    AllowedRoles,
    #[error("X-Hasura-Role is not one of X-Hasura-Allowed-Roles")]
    RoleNotAllowed,
    #[error("invalid identity: {0}")]
    Invalid(String),
}

/// The identity a `200` answer's body gives (keys compared without case):
///
/// - `X-Hasura-Role` (required) is the role, and the only allowed role unless
///   `X-Hasura-Allowed-Roles` (a list, or a comma-separated string) names others, which must
///   include it;
/// - `X-Hasura-User-Id` is the user id, `"0"` when absent;
/// - every other `X-Hasura-*` key is a variable (name lowercased; numbers and booleans as
///   their JSON text).
///
/// Other keys (`Cache-Control`, `Expires`, anything else) are not part of the identity.
pub(super) fn identity(body: &Map<String, Value>) -> Result<Identity, BadAnswer> {
    let mut role = None;
    let mut user_id = None;
    let mut allowed = None;
    let mut variables = Variables::new();
    let mut seen: Vec<String> = Vec::with_capacity(body.len());
    for (key, value) in body {
        let name = key.to_ascii_lowercase();
        if !name.starts_with("x-hasura-") {
            continue;
        }
        if seen.contains(&name) {
            return Err(BadAnswer::Duplicate(key.clone()));
        }
        seen.push(name.clone());
        match name.as_str() {
            "x-hasura-role" => role = Some(text(key, value)?),
            "x-hasura-user-id" => user_id = Some(text(key, value)?),
            "x-hasura-allowed-roles" => allowed = Some(roles(value)?),
            _ => {
                variables.insert(name, text(key, value)?);
            }
        }
    }
    let role = role.ok_or(BadAnswer::NoRole)?;
    let allowed = match allowed {
        Some(list) if !list.contains(&role) => return Err(BadAnswer::RoleNotAllowed),
        Some(list) => list,
        None => vec![role.clone()],
    };
    let user_id = user_id.unwrap_or_else(|| DEFAULT_USER_ID.to_owned());
    let identity = Identity::try_new(user_id, role, allowed)
        .and_then(|i| i.with_variables(&variables))
        .map_err(|e| BadAnswer::Invalid(e.to_string()))?;
    Ok(identity.without_session())
}

/// A variable's value: strings as they are, numbers and booleans as their JSON text.
fn text(key: &str, value: &Value) -> Result<String, BadAnswer> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(BadAnswer::NotText(key.to_owned())),
    }
}

/// `X-Hasura-Allowed-Roles`: `["user", "admin"]` or `"user, admin"`; blanks dropped,
/// duplicates kept once, at least one role.
fn roles(value: &Value) -> Result<Vec<String>, BadAnswer> {
    let raw: Vec<&str> = match value {
        Value::String(s) => s.split(',').collect(),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().ok_or(BadAnswer::AllowedRoles))
            .collect::<Result<_, _>>()?,
        _ => return Err(BadAnswer::AllowedRoles),
    };
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for role in raw.into_iter().map(str::trim).filter(|r| !r.is_empty()) {
        if !out.iter().any(|r| r == role) {
            out.push(role.to_owned());
        }
    }
    if out.is_empty() {
        return Err(BadAnswer::AllowedRoles);
    }
    Ok(out)
}

/// How long an answer may be served from the cache, as Hasura reads it: `Cache-Control:
/// max-age` or `Expires` from the body's fields (keys compared without case), else from the
/// response's headers; within each, `Cache-Control` wins over `Expires` (as in HTTP).
/// `no-store`, `no-cache`, `max-age=0`, an `Expires` in the past, or neither field: `None`,
/// not cached. Unreadable values count as absent (a debug log says which).
pub(super) fn lifetime(
    body: &Map<String, Value>,
    headers: &HeaderMap,
    now: SystemTime,
) -> Option<Duration> {
    let field = |name: &str| {
        body.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
    };
    let header = |name| {
        let mut all = headers.get_all(name).iter();
        all.next().and_then(|v| v.to_str().ok())
    };
    let from = |cache_control: Option<&str>, expires: Option<&str>| {
        if let Some(cc) = cache_control {
            return Some(max_age(cc));
        }
        expires.map(|e| until(e, now))
    };
    from(field("cache-control"), field("expires"))
        .or_else(|| from(header(CACHE_CONTROL), header(EXPIRES)))
        .flatten()
        .filter(|d| !d.is_zero())
}

/// `max-age` from a `Cache-Control` value; `None` for `no-store`/`no-cache`, an unreadable
/// `max-age`, or none at all.
fn max_age(value: &str) -> Option<Duration> {
    let cc = CacheDirectives::parse([value]);
    if cc.bad_max_age {
        tracing::debug!("auth webhook: unreadable Cache-Control max-age; not cached");
    }
    if cc.no_cache || cc.bad_max_age {
        return None;
    }
    cc.max_age.map(Duration::from_secs)
}

/// The time left until an `Expires` HTTP date; `None` when unreadable or past.
fn until(value: &str, now: SystemTime) -> Option<Duration> {
    let left = expires_in(value, now);
    if left.is_none() {
        tracing::debug!("auth webhook: unreadable Expires; not cached");
    }
    left.filter(|d| !d.is_zero())
}
