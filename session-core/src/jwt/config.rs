//! [`JwtConfig`]: Hasura GraphQL Engine's JWT config (`HASURA_GRAPHQL_JWT_SECRET`), plus the
//! gateway's own keys (verified-token cache, JWKS refresh), all with defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::claims::{ClaimsRules, JsonPath};
use super::keys::{JwtAlgorithm, StaticKey};

/// The namespace Hasura reads its claims from when none is configured.
pub const DEFAULT_CLAIMS_NAMESPACE: &str = "https://hasura.io/jwt/claims";
/// Default [`JwtConfig::cache_ttl`].
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
/// Default [`JwtConfig::cache_entries`].
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;
/// Default [`JwtConfig::jwks_refresh_min`].
pub const DEFAULT_JWKS_REFRESH_MIN: Duration = Duration::from_secs(60);
/// Default [`JwtConfig::jwks_refresh_max`].
pub const DEFAULT_JWKS_REFRESH_MAX: Duration = Duration::from_secs(3600);
/// Default [`JwtConfig::jwks_refetch_interval`].
pub const DEFAULT_JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Default [`JwtConfig::http_timeout`].
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// One JWT issuer's configuration, in Hasura GraphQL Engine's format (the JSON of
/// `HASURA_GRAPHQL_JWT_SECRET`, or the same keys in a TOML table), plus the gateway's own keys,
/// which all have defaults.
///
/// Exactly one of `key` (with `type`) and `jwk_url` is set; at most one of `claims_namespace`
/// and `claims_namespace_path`; `claims_map`, when set, replaces the namespace (its paths read
/// the whole payload), as in Hasura. Unknown keys are refused, so a typo is an error rather
/// than a silently ignored setting. Call [`validate`](JwtConfig::validate) (the
/// [`JwtResolver`](super::JwtResolver) does) before use.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// `type`: the one algorithm tokens must be signed with when `key` is set (`HS256`,
    /// `HS384`, `HS512`, `RS256`, `RS384`, `RS512`, `PS256`, `PS384`, `PS512`, `ES256`, `ES384`,
    /// `ES512`, `Ed25519` / `EdDSA`).
    #[serde(rename = "type", default)]
    pub algorithm: Option<JwtAlgorithm>,
    /// The key: the raw shared secret for `HS*` (its UTF-8 bytes, as Hasura uses them), else a
    /// PEM public key (`PUBLIC KEY`, or `RSA PUBLIC KEY` for RSA) or an X.509 `CERTIFICATE`.
    #[serde(default)]
    pub key: Option<String>,
    /// A JWKS URL (`https://`, or `http://` to a loopback address only) to fetch the keys from.
    #[serde(default)]
    pub jwk_url: Option<String>,
    /// The top-level claim holding the `x-hasura-*` claims (default
    /// [`DEFAULT_CLAIMS_NAMESPACE`]).
    #[serde(default)]
    pub claims_namespace: Option<String>,
    /// A JSON path (`$`, `$.a.b`, `$.a['b.c']`, `$.a[0]`) to the `x-hasura-*` claims object,
    /// instead of `claims_namespace`.
    #[serde(default)]
    pub claims_namespace_path: Option<String>,
    /// Whether the namespace holds a JSON object (`json`, the default) or a string holding one
    /// (`stringified_json`).
    #[serde(default)]
    pub claims_format: ClaimsFormat,
    /// Session variable name → where to read it in the payload (or a literal value). Must map
    /// `x-hasura-allowed-roles` and `x-hasura-default-role`.
    #[serde(default)]
    pub claims_map: Option<BTreeMap<String, ClaimsMapValue>>,
    /// The token's `aud` must hold one of these (checked only when set).
    #[serde(default)]
    pub audience: Option<Audience>,
    /// The token's `iss` must equal this (checked only when set). It also picks the config for
    /// a token when several are listed.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Leeway for `exp` and `nbf` (Hasura: seconds; here also `"30s"`). Default 0.
    #[serde(default, deserialize_with = "de_duration")]
    pub allowed_skew: Duration,
    /// Where the token is read: `{"type": "Authorization"}` (a Bearer token, the default) or
    /// `{"type": "Cookie", "name": "..."}`.
    #[serde(default)]
    pub header: JwtHeader,
    /// How long a verified token's identity is cached (at most until its `exp`). Default
    /// [`DEFAULT_CACHE_TTL`]; zero disables the cache.
    #[serde(default = "d_cache_ttl", deserialize_with = "de_duration")]
    pub cache_ttl: Duration,
    /// How many verified tokens the cache holds. Default [`DEFAULT_CACHE_ENTRIES`]; zero
    /// disables the cache.
    #[serde(default = "d_cache_entries")]
    pub cache_entries: usize,
    /// The JWKS is refreshed as its `Cache-Control: max-age` / `Expires` say, but never sooner
    /// than this. Default [`DEFAULT_JWKS_REFRESH_MIN`].
    #[serde(default = "d_refresh_min", deserialize_with = "de_duration")]
    pub jwks_refresh_min: Duration,
    /// … and never later than this (also the period when the response says nothing). Default
    /// [`DEFAULT_JWKS_REFRESH_MAX`].
    #[serde(default = "d_refresh_max", deserialize_with = "de_duration")]
    pub jwks_refresh_max: Duration,
    /// A token with an unknown `kid` (or a request while no key set is held) makes the JWKS be
    /// fetched at once, but at most once per this interval; also the retry delay after a failed
    /// fetch. Default [`DEFAULT_JWKS_REFETCH_INTERVAL`].
    #[serde(default = "d_refetch", deserialize_with = "de_duration")]
    pub jwks_refetch_interval: Duration,
    /// The whole JWKS fetch (connect, TLS, body) must finish within this. Default
    /// [`DEFAULT_HTTP_TIMEOUT`].
    #[serde(default = "d_http_timeout", deserialize_with = "de_duration")]
    pub http_timeout: Duration,
}

fn d_cache_ttl() -> Duration {
    DEFAULT_CACHE_TTL
}
fn d_cache_entries() -> usize {
    DEFAULT_CACHE_ENTRIES
}
fn d_refresh_min() -> Duration {
    DEFAULT_JWKS_REFRESH_MIN
}
fn d_refresh_max() -> Duration {
    DEFAULT_JWKS_REFRESH_MAX
}
fn d_refetch() -> Duration {
    DEFAULT_JWKS_REFETCH_INTERVAL
}
fn d_http_timeout() -> Duration {
    DEFAULT_HTTP_TIMEOUT
}

impl Default for JwtConfig {
    /// No key (so not valid as is); every other field at its default.
    fn default() -> Self {
        JwtConfig {
            algorithm: None,
            key: None,
            jwk_url: None,
            claims_namespace: None,
            claims_namespace_path: None,
            claims_format: ClaimsFormat::Json,
            claims_map: None,
            audience: None,
            issuer: None,
            allowed_skew: Duration::ZERO,
            header: JwtHeader::Authorization,
            cache_ttl: DEFAULT_CACHE_TTL,
            cache_entries: DEFAULT_CACHE_ENTRIES,
            jwks_refresh_min: DEFAULT_JWKS_REFRESH_MIN,
            jwks_refresh_max: DEFAULT_JWKS_REFRESH_MAX,
            jwks_refetch_interval: DEFAULT_JWKS_REFETCH_INTERVAL,
            http_timeout: DEFAULT_HTTP_TIMEOUT,
        }
    }
}

impl fmt::Debug for JwtConfig {
    /// Redacts `key` (an HMAC secret must never reach a log).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtConfig")
            .field("type", &self.algorithm)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("jwk_url", &self.jwk_url)
            .field("claims_namespace", &self.claims_namespace)
            .field("claims_namespace_path", &self.claims_namespace_path)
            .field("claims_format", &self.claims_format)
            .field("claims_map", &self.claims_map)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("allowed_skew", &self.allowed_skew)
            .field("header", &self.header)
            .field("cache_ttl", &self.cache_ttl)
            .field("cache_entries", &self.cache_entries)
            .field("jwks_refresh_min", &self.jwks_refresh_min)
            .field("jwks_refresh_max", &self.jwks_refresh_max)
            .field("jwks_refetch_interval", &self.jwks_refetch_interval)
            .field("http_timeout", &self.http_timeout)
            .finish()
    }
}

/// `claims_format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimsFormat {
    /// The namespace holds a JSON object.
    #[default]
    Json,
    /// The namespace holds a string whose content is a JSON object.
    StringifiedJson,
}

/// `audience`: one string or a list.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// One audience.
    One(String),
    /// Any of these.
    Many(Vec<String>),
}

impl Audience {
    /// The audiences as a list.
    pub fn as_slice(&self) -> &[String] {
        match self {
            Audience::One(a) => std::slice::from_ref(a),
            Audience::Many(v) => v,
        }
    }
}

/// `header`: where the token is read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawHeader")]
pub enum JwtHeader {
    /// `Authorization: Bearer <jwt>` (`{"type": "Authorization"}`).
    #[default]
    Authorization,
    /// The cookie `name` (`{"type": "Cookie", "name": "..."}`).
    Cookie {
        /// The cookie's name (case-sensitive).
        name: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
}

impl TryFrom<RawHeader> for JwtHeader {
    type Error = String;
    fn try_from(raw: RawHeader) -> Result<Self, String> {
        // Hasura compares the type case-insensitively.
        if raw.kind.eq_ignore_ascii_case("authorization") {
            if raw.name.is_some() {
                return Err("header: `name` is only for {\"type\": \"Cookie\"}".into());
            }
            Ok(JwtHeader::Authorization)
        } else if raw.kind.eq_ignore_ascii_case("cookie") {
            match raw.name {
                Some(name) => Ok(JwtHeader::Cookie { name }),
                None => Err("header: {\"type\": \"Cookie\"} needs a `name`".into()),
            }
        } else {
            Err(format!(
                "header: type must be \"Authorization\" or \"Cookie\", not {:?}",
                raw.kind
            ))
        }
    }
}

/// One `claims_map` entry: `{"path": "$.x", "default": ...}` or a literal value.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ClaimsMapValue {
    /// Read the value at `path` (a JSON path into the whole payload); `default` when absent.
    Path {
        /// The JSON path.
        path: String,
        /// The value when nothing is at `path` (else the token is invalid).
        #[serde(default)]
        default: Option<serde_json::Value>,
    },
    /// This value for every token (a string; a list of strings for `x-hasura-allowed-roles`).
    Literal(serde_json::Value),
}

/// A config field that does not hold: [`JwtConfig::validate`]'s error. Its message names the
/// field and never echoes a key.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct JwtConfigError {
    /// The field, as spelled in the config (`key`, `claims_map.x-hasura-org-id`, …).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

pub(crate) fn config_err(field: impl Into<String>, message: impl Into<String>) -> JwtConfigError {
    JwtConfigError {
        field: field.into(),
        message: message.into(),
    }
}

/// Where the keys come from, once validated.
pub(crate) enum KeySource {
    Static(StaticKey),
    Jwks(http::Uri),
}

/// A validated config, ready to use.
pub(crate) struct Checked {
    pub(crate) keys: KeySource,
    pub(crate) claims: ClaimsRules,
}

impl JwtConfig {
    /// Parses Hasura's `HASURA_GRAPHQL_JWT_SECRET` JSON (the same keys as the TOML table).
    /// This only parses; call [`validate`](JwtConfig::validate) too.
    pub fn from_json(json: &str) -> Result<JwtConfig, JwtConfigError> {
        serde_json::from_str(json).map_err(|e| config_err("jwt config", e.to_string()))
    }

    /// Checks every field: one key source, a usable key of the configured type, a JWKS URL the
    /// HTTP client accepts, the claims location and map, and the gateway's own limits. The
    /// error names the first field that fails.
    pub fn validate(&self) -> Result<(), JwtConfigError> {
        self.check().map(|_| ())
    }

    pub(crate) fn check(&self) -> Result<Checked, JwtConfigError> {
        let keys = match (&self.key, &self.jwk_url) {
            (Some(_), Some(_)) => {
                return Err(config_err("key", "set `key` or `jwk_url`, not both"))
            }
            (None, None) => return Err(config_err("key", "set `key` (with `type`) or `jwk_url`")),
            (Some(key), None) => {
                let Some(alg) = self.algorithm else {
                    return Err(config_err("type", "`key` needs `type` (HS256, RS256, …)"));
                };
                KeySource::Static(StaticKey::parse(alg, key).map_err(|m| config_err("key", m))?)
            }
            (None, Some(url)) => {
                // Hasura's configs often carry `type` beside `jwk_url` (it ignores it there);
                // here it narrows the set's keys to that one algorithm, which is only stricter.
                if matches!(
                    self.algorithm,
                    Some(JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512)
                ) {
                    return Err(config_err(
                        "type",
                        "an HMAC `type` needs `key`: a JWKS holds public keys",
                    ));
                }
                let uri: http::Uri = url
                    .parse()
                    .map_err(|e| config_err("jwk_url", format!("not a URL: {e}")))?;
                crate::http_client::check_url(&uri)
                    .map_err(|e| config_err("jwk_url", e.to_string()))?;
                KeySource::Jwks(uri)
            }
        };
        let claims = self.claims_rules()?;
        if let Some(aud) = &self.audience {
            if aud.as_slice().is_empty() || aud.as_slice().iter().any(String::is_empty) {
                return Err(config_err("audience", "an audience is empty"));
            }
        }
        if self.issuer.as_deref() == Some("") {
            return Err(config_err("issuer", "is empty"));
        }
        if let JwtHeader::Cookie { name } = &self.header {
            let ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
            if !ok {
                return Err(config_err("header.name", "not a valid cookie name"));
            }
        }
        if self.jwks_refresh_min.is_zero() {
            return Err(config_err("jwks_refresh_min", "must be more than zero"));
        }
        if self.jwks_refresh_max < self.jwks_refresh_min {
            return Err(config_err(
                "jwks_refresh_max",
                "must be at least jwks_refresh_min",
            ));
        }
        if self.jwks_refetch_interval.is_zero() {
            return Err(config_err(
                "jwks_refetch_interval",
                "must be more than zero",
            ));
        }
        if self.http_timeout.is_zero() {
            return Err(config_err("http_timeout", "must be more than zero"));
        }
        Ok(Checked { keys, claims })
    }

    fn claims_rules(&self) -> Result<ClaimsRules, JwtConfigError> {
        let format = self.claims_format;
        if let Some(map) = &self.claims_map {
            if self.claims_namespace.is_some() || self.claims_namespace_path.is_some() {
                // Hasura ignores the namespace when a map is given; say so rather than guess.
                return Err(config_err(
                    "claims_map",
                    "replaces claims_namespace / claims_namespace_path: set only one",
                ));
            }
            return ClaimsRules::from_map(map);
        }
        match (&self.claims_namespace, &self.claims_namespace_path) {
            (Some(_), Some(_)) => Err(config_err(
                "claims_namespace_path",
                "set claims_namespace or claims_namespace_path, not both",
            )),
            (Some(ns), None) => Ok(ClaimsRules::namespace(ns.clone(), format)),
            (None, Some(path)) => {
                let path =
                    JsonPath::parse(path).map_err(|m| config_err("claims_namespace_path", m))?;
                Ok(ClaimsRules::namespace_path(path, format))
            }
            (None, None) => Ok(ClaimsRules::namespace(
                DEFAULT_CLAIMS_NAMESPACE.to_owned(),
                format,
            )),
        }
    }
}

/// A duration as whole seconds (Hasura's `allowed_skew`) or a humantime string (`"30s"`).
fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Secs(s) => Ok(Duration::from_secs(s)),
        Raw::Text(t) => humantime::parse_duration(&t).map_err(|e| {
            serde::de::Error::custom(format!("expected seconds or a duration like \"30s\": {e}"))
        }),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
