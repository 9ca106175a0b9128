//! From a verified payload to an [`Identity`], as Hasura GraphQL Engine reads its claims.
//!
//! - With a namespace (`claims_namespace`, default `https://hasura.io/jwt/claims`, or
//!   `claims_namespace_path`): the object there (or, with `stringified_json`, the object in the
//!   string there) holds `x-hasura-*` claims, names compared case-insensitively; other keys are
//!   ignored.
//! - With `claims_map`: each session variable is read at its JSON path in the whole payload, or
//!   takes its default or literal value.
//! - `x-hasura-allowed-roles` is a list of roles, `x-hasura-default-role` one of them.
//!   `x-hasura-user-id` is the user id; a token without one gets user id `"0"` (the anonymous
//!   user id: Hasura does not require the claim, and our identities always carry one).
//! - Every other `x-hasura-*` claim (except `x-hasura-role`, which the request chooses) is a
//!   session variable, its name lowercased: a string as is, a number or boolean as its JSON
//!   text, a list of strings as a Postgres array literal (`{a,b}`, as Hasura passes arrays);
//!   anything else makes the token invalid, as does a value the identity rules refuse.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::Value;

use super::config::{config_err, ClaimsFormat, ClaimsMapValue, JwtConfigError};
use crate::{Identity, Variables};

const ALLOWED_ROLES: &str = "x-hasura-allowed-roles";
const DEFAULT_ROLE: &str = "x-hasura-default-role";
const USER_ID: &str = "x-hasura-user-id";
const ROLE: &str = "x-hasura-role";
const PREFIX: &str = "x-hasura-";
/// The user id of a token without `x-hasura-user-id`.
pub const USER_ID_WHEN_ABSENT: &str = "0";

/// A JSON path, the subset Hasura accepts: `$`, then `.name`, `['name']`, `["name"]` or `[0]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JsonPath(Vec<Step>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

impl JsonPath {
    pub(crate) fn parse(text: &str) -> Result<JsonPath, String> {
        let rest = text
            .strip_prefix('$')
            .ok_or_else(|| "a JSON path starts with `$`".to_owned())?;
        let mut steps = Vec::new();
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '.' => {
                    let mut name = String::new();
                    while let Some(&(_, c)) = chars.peek() {
                        if c == '.' || c == '[' {
                            break;
                        }
                        name.push(c);
                        chars.next();
                    }
                    if name.is_empty() {
                        return Err(format!("empty name after `.` at {}", i + 1));
                    }
                    steps.push(Step::Key(name));
                }
                '[' => {
                    let close = rest[i..]
                        .find(']')
                        .map(|j| i + j)
                        .ok_or_else(|| format!("unclosed `[` at {}", i + 1))?;
                    let inner = &rest[i + 1..close];
                    let quoted = |q: char| {
                        inner
                            .strip_prefix(q)
                            .and_then(|s| s.strip_suffix(q))
                            .filter(|s| !s.contains(q))
                    };
                    if let Some(name) = quoted('\'').or_else(|| quoted('"')) {
                        steps.push(Step::Key(name.to_owned()));
                    } else if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
                        let n = inner
                            .parse()
                            .map_err(|_| format!("index too large at {}", i + 1))?;
                        steps.push(Step::Index(n));
                    } else {
                        return Err(format!(
                            "expected ['name'] or [index] at {} (a name holding `]` is not supported)",
                            i + 1
                        ));
                    }
                    while chars.peek().is_some_and(|&(j, _)| j <= close) {
                        chars.next();
                    }
                }
                other => return Err(format!("unexpected {other:?} at {}", i + 1)),
            }
        }
        Ok(JsonPath(steps))
    }

    fn get<'v>(&self, mut v: &'v Value) -> Option<&'v Value> {
        for step in &self.0 {
            v = match step {
                Step::Key(k) => v.as_object()?.get(k)?,
                Step::Index(i) => v.as_array()?.get(*i)?,
            };
        }
        Some(v)
    }
}

/// How a config reads its claims.
pub(crate) enum ClaimsRules {
    Namespace {
        at: Namespace,
        format: ClaimsFormat,
    },
    Map {
        allowed_roles: MapEntry,
        default_role: MapEntry,
        /// Lowercased variable name → entry (user id included).
        others: Vec<(String, MapEntry)>,
    },
}

pub(crate) enum Namespace {
    Key(String),
    Path(JsonPath),
}

pub(crate) enum MapEntry {
    Path(JsonPath, Option<Value>),
    Literal(Value),
}

impl MapEntry {
    fn get<'v>(&'v self, payload: &'v Value) -> Option<&'v Value> {
        match self {
            MapEntry::Path(p, default) => p.get(payload).or(default.as_ref()),
            MapEntry::Literal(v) => Some(v),
        }
    }
}

impl ClaimsRules {
    pub(crate) fn namespace(key: String, format: ClaimsFormat) -> ClaimsRules {
        ClaimsRules::Namespace {
            at: Namespace::Key(key),
            format,
        }
    }

    pub(crate) fn namespace_path(path: JsonPath, format: ClaimsFormat) -> ClaimsRules {
        ClaimsRules::Namespace {
            at: Namespace::Path(path),
            format,
        }
    }

    pub(crate) fn from_map(
        map: &BTreeMap<String, ClaimsMapValue>,
    ) -> Result<ClaimsRules, JwtConfigError> {
        let mut allowed = None;
        let mut default = None;
        let mut others = Vec::new();
        for (name, value) in map {
            let field = format!("claims_map.{name}");
            let lower = name.to_ascii_lowercase();
            if !lower.starts_with(PREFIX) {
                return Err(config_err(
                    field,
                    "a session variable starts with x-hasura-",
                ));
            }
            let entry = match value {
                ClaimsMapValue::Path { path, default } => MapEntry::Path(
                    JsonPath::parse(path).map_err(|m| config_err(&field, m))?,
                    default.clone(),
                ),
                ClaimsMapValue::Literal(v) => MapEntry::Literal(v.clone()),
            };
            // Literals and defaults are checked now, so a bad one is a config error rather than
            // every token being invalid.
            let fixed = match &entry {
                MapEntry::Literal(v) | MapEntry::Path(_, Some(v)) => Some(v),
                MapEntry::Path(_, None) => None,
            };
            match lower.as_str() {
                ALLOWED_ROLES => {
                    if let Some(v) = fixed {
                        roles(v).map_err(|m| config_err(&field, m))?;
                    }
                    allowed = Some(entry);
                }
                DEFAULT_ROLE => {
                    if fixed.is_some_and(|v| !v.is_string()) {
                        return Err(config_err(field, "the default role is a string"));
                    }
                    default = Some(entry);
                }
                ROLE => {
                    return Err(config_err(field, "x-hasura-role is chosen by the request"));
                }
                _ => {
                    if let Some(v) = fixed {
                        variable_value(v).map_err(|m| config_err(&field, m))?;
                    }
                    if others.iter().any(|(n, _)| *n == lower) {
                        return Err(config_err(field, "listed twice (names ignore case)"));
                    }
                    others.push((lower, entry));
                }
            }
        }
        let allowed_roles =
            allowed.ok_or_else(|| config_err("claims_map", "must map x-hasura-allowed-roles"))?;
        let default_role =
            default.ok_or_else(|| config_err("claims_map", "must map x-hasura-default-role"))?;
        Ok(ClaimsRules::Map {
            allowed_roles,
            default_role,
            others,
        })
    }

    /// The identity a verified `payload` gives, expiring at `exp`; `Err(reason)` when its
    /// claims do not make one (the token is then invalid). The reason never holds a claim's
    /// value.
    pub(crate) fn identity(
        &self,
        payload: &Value,
        exp: Option<SystemTime>,
    ) -> Result<Identity, String> {
        let mut user_id = None;
        let mut variables = Variables::new();
        let parsed: Value;
        let (allowed, default) = match self {
            ClaimsRules::Namespace { at, format } => {
                let found = match at {
                    Namespace::Key(k) => payload.get(k),
                    Namespace::Path(p) => p.get(payload),
                }
                .ok_or("no claims at the claims namespace")?;
                let object = match (format, found) {
                    (ClaimsFormat::Json, Value::Object(o)) => o,
                    (ClaimsFormat::StringifiedJson, Value::String(s)) => {
                        parsed = serde_json::from_str::<Value>(s)
                            .map_err(|_| "the stringified claims are not JSON")?;
                        parsed
                            .as_object()
                            .ok_or("the stringified claims are not a JSON object")?
                    }
                    (ClaimsFormat::Json, _) => return Err("the claims are not an object".into()),
                    (ClaimsFormat::StringifiedJson, _) => {
                        return Err("the claims are not a string (stringified_json)".into())
                    }
                };
                let mut allowed = None;
                let mut default = None;
                for (name, value) in object {
                    let lower = name.to_ascii_lowercase();
                    if !lower.starts_with(PREFIX) {
                        continue;
                    }
                    match lower.as_str() {
                        ALLOWED_ROLES => allowed = Some(value),
                        DEFAULT_ROLE => default = Some(value),
                        _ => self.take(&lower, value, &mut user_id, &mut variables)?,
                    }
                }
                (
                    allowed.ok_or("no x-hasura-allowed-roles claim")?,
                    default.ok_or("no x-hasura-default-role claim")?,
                )
            }
            ClaimsRules::Map {
                allowed_roles,
                default_role,
                others,
            } => {
                for (name, entry) in others {
                    let value = entry
                        .get(payload)
                        .ok_or_else(|| format!("claims_map: nothing at the path for {name}"))?;
                    self.take(name, value, &mut user_id, &mut variables)?;
                }
                (
                    allowed_roles
                        .get(payload)
                        .ok_or("claims_map: no x-hasura-allowed-roles")?,
                    default_role
                        .get(payload)
                        .ok_or("claims_map: no x-hasura-default-role")?,
                )
            }
        };
        let allowed = roles(allowed)?;
        let default = default
            .as_str()
            .ok_or("x-hasura-default-role is not a string")?;
        if !allowed.iter().any(|r| r == default) {
            return Err("the default role is not in the allowed roles".into());
        }
        let user_id = user_id.unwrap_or_else(|| USER_ID_WHEN_ABSENT.to_owned());
        let mut identity = Identity::try_new(user_id, default, allowed)
            .map_err(|e| format!("claims refused: {e}"))?;
        if !variables.is_empty() {
            identity = identity
                .with_variables(&variables)
                .map_err(|e| format!("claims refused: {e}"))?;
        }
        if let Some(at) = exp {
            identity = identity.with_expiry(at);
        }
        Ok(identity)
    }

    /// Files one `x-hasura-*` claim (name already lowercased) as the user id or a variable.
    fn take(
        &self,
        name: &str,
        value: &Value,
        user_id: &mut Option<String>,
        variables: &mut Variables,
    ) -> Result<(), String> {
        if name == ROLE {
            return Ok(());
        }
        let text = variable_value(value).map_err(|m| format!("{name}: {m}"))?;
        if name == USER_ID {
            *user_id = Some(text);
        } else if variables.insert(name.to_owned(), text).is_some() {
            // `X-Hasura-Org-Id` and `x-hasura-org-id` in one token: ambiguous.
            return Err(format!("{name} appears twice (names ignore case)"));
        }
        Ok(())
    }
}

fn roles(v: &Value) -> Result<Vec<String>, String> {
    let list = v.as_array().ok_or("x-hasura-allowed-roles is not a list")?;
    list.iter()
        .map(|r| {
            r.as_str()
                .map(str::to_owned)
                .ok_or_else(|| "x-hasura-allowed-roles holds a non-string".to_owned())
        })
        .collect()
}

/// A claim's value as a session variable's text.
fn variable_value(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Array(items) => {
            let mut out = String::from("{");
            for (i, item) in items.iter().enumerate() {
                let s = item
                    .as_str()
                    .ok_or("a list value holds something other than strings")?;
                if i > 0 {
                    out.push(',');
                }
                pg_array_element(&mut out, s);
            }
            out.push('}');
            Ok(out)
        }
        Value::Null | Value::Object(_) => Err("not a string, number, boolean or list".into()),
    }
}

/// One element of a Postgres array literal: quoted when Postgres would misread it bare.
fn pg_array_element(out: &mut String, s: &str) {
    let needs_quotes = s.is_empty()
        || s.eq_ignore_ascii_case("null")
        || s.chars()
            .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_whitespace());
    if !needs_quotes {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_paths() {
        let v = json!({"a": {"b.c": [1, {"d": "x"}]}, "e": "f"});
        let get = |p: &str| JsonPath::parse(p).unwrap().get(&v).cloned();
        assert_eq!(get("$"), Some(v.clone()));
        assert_eq!(get("$.e"), Some(json!("f")));
        assert_eq!(get("$.a['b.c'][1].d"), Some(json!("x")));
        assert_eq!(get("$.a[\"b.c\"][0]"), Some(json!(1)));
        assert_eq!(get("$.a.b"), None);
        for bad in ["", "a.b", "$.", "$..a", "$[", "$[x]", "$a", "$['a]"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_become_text() {
        assert_eq!(variable_value(&json!("a b")).unwrap(), "a b");
        assert_eq!(variable_value(&json!(42)).unwrap(), "42");
        assert_eq!(variable_value(&json!(true)).unwrap(), "true");
        assert_eq!(variable_value(&json!(["a", "b"])).unwrap(), "{a,b}");
        assert_eq!(
            variable_value(&json!(["a,b", "", "q\"", "NULL"])).unwrap(),
            r#"{"a,b","","q\"","NULL"}"#
        );
        assert_eq!(variable_value(&json!([])).unwrap(), "{}");
        assert!(variable_value(&json!([1])).is_err());
        assert!(variable_value(&json!({"a": 1})).is_err());
        assert!(variable_value(&json!(null)).is_err());
    }

    fn ns() -> ClaimsRules {
        ClaimsRules::namespace("ns".into(), ClaimsFormat::Json)
    }

    #[test]
    fn namespace_claims() {
        let payload = json!({"ns": {
            "X-Hasura-Allowed-Roles": ["user", "editor"],
            "x-hasura-default-role": "user",
            "x-hasura-user-id": 7,
            "X-Hasura-Org-Id": "42",
            "x-hasura-role": "editor",
            "other": "ignored",
        }});
        let id = ns().identity(&payload, None).unwrap();
        assert_eq!(&*id.user_id, "7");
        assert_eq!(&*id.role, "user");
        let vars: Vec<_> = id
            .variables()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect();
        assert_eq!(vars, [("x-hasura-org-id".to_owned(), "42".to_owned())]);

        let no_user =
            json!({"ns": {"x-hasura-allowed-roles": ["u"], "x-hasura-default-role": "u"}});
        assert_eq!(&*ns().identity(&no_user, None).unwrap().user_id, "0");
    }

    #[test]
    fn invalid_claims() {
        let bad = [
            json!({}),
            json!({"ns": "{}"}),
            json!({"ns": {"x-hasura-default-role": "u"}}),
            json!({"ns": {"x-hasura-allowed-roles": ["u"]}}),
            json!({"ns": {"x-hasura-allowed-roles": "u", "x-hasura-default-role": "u"}}),
            json!({"ns": {"x-hasura-allowed-roles": ["u"], "x-hasura-default-role": "admin"}}),
            json!({"ns": {"x-hasura-allowed-roles": ["u"], "x-hasura-default-role": "u",
                          "x-hasura-x": {"a": 1}}}),
            json!({"ns": {"x-hasura-allowed-roles": ["u"], "x-hasura-default-role": "u",
                          "x-hasura-a": "1", "X-Hasura-A": "2"}}),
            json!({"ns": {"x-hasura-allowed-roles": ["u"], "x-hasura-default-role": "u",
                          "x-hasura-bad_name": "1"}}),
        ];
        for p in bad {
            assert!(ns().identity(&p, None).is_err(), "{p}");
        }
    }
}
