//! [`WebhookConfig`]: where the auth webhook is, how it is called, and how long its answers
//! may be cached.

use std::time::Duration;

use http::{HeaderName, Uri};
use serde::Deserialize;

use crate::http_client::{check_url, HttpClientError};

/// How the webhook is called: Hasura GraphQL Engine's `HASURA_GRAPHQL_AUTH_HOOK_MODE`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum WebhookMode {
    /// `GET` with the client's headers (hop-by-hop ones removed) and the requested role as
    /// `X-Hasura-Role`. The default, as in Hasura.
    #[default]
    #[serde(rename = "GET", alias = "get")]
    Get,
    /// `POST` with `{"headers": {...}, "request": {"method": ..., "url": ...}}` as its body; the
    /// client's body is never sent.
    #[serde(rename = "POST", alias = "post")]
    Post,
}

/// The auth webhook's configuration: the `[webhook]` table.
///
/// Deserializes from the TOML table with `url` required and every other field defaulted;
/// durations are humantime strings (`"5s"`, `"10m"`). Call [`validate`](WebhookConfig::validate)
/// (or [`WebhookResolver::new`](super::WebhookResolver::new), which does) before use.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The webhook's URL: `https://`, or `http://` to a loopback host only. Required.
    pub url: String,
    /// `GET` (the default) or `POST`.
    #[serde(default)]
    pub mode: WebhookMode,
    /// How long one call may take, connection included, before the request gets 503 (fail
    /// closed). Default 5 s. Applies with a shared client too
    /// ([`WebhookResolver::with_client`](super::WebhookResolver::with_client)).
    #[serde(
        default = "default_timeout",
        deserialize_with = "humantime_duration::deserialize"
    )]
    pub timeout: Duration,
    /// The most answers kept in the cache (default 10,000); 0 caches nothing. When the cache is
    /// full, expired answers are dropped first, then all of them.
    #[serde(default = "default_cache_entries")]
    pub cache_entries: usize,
    /// The longest an answer is served from the cache, whatever its `Cache-Control: max-age` or
    /// `Expires` says (default 5 min). An answer without either is never cached.
    #[serde(
        default = "default_cache_max_ttl",
        deserialize_with = "humantime_duration::deserialize"
    )]
    pub cache_max_ttl: Duration,
    /// Request headers, besides every `Authorization` and `Cookie` value and the requested role,
    /// that are part of the cache key (say `X-Tenant` when the webhook's answer depends on it).
    /// Names are compared without case. Default none.
    #[serde(default)]
    pub cache_key_headers: Vec<String>,
}

/// Default [`WebhookConfig::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default [`WebhookConfig::cache_entries`].
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;
/// Default [`WebhookConfig::cache_max_ttl`].
pub const DEFAULT_CACHE_MAX_TTL: Duration = Duration::from_secs(300);

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

fn default_cache_entries() -> usize {
    DEFAULT_CACHE_ENTRIES
}

fn default_cache_max_ttl() -> Duration {
    DEFAULT_CACHE_MAX_TTL
}

impl WebhookConfig {
    /// A config for `url` with every other field at its default.
    pub fn new(url: impl Into<String>) -> Self {
        WebhookConfig {
            url: url.into(),
            mode: WebhookMode::default(),
            timeout: DEFAULT_TIMEOUT,
            cache_entries: DEFAULT_CACHE_ENTRIES,
            cache_max_ttl: DEFAULT_CACHE_MAX_TTL,
            cache_key_headers: Vec::new(),
        }
    }

    /// Checks every field; the error names the first one that cannot be used.
    pub fn validate(&self) -> Result<(), WebhookError> {
        self.checked().map(|_| ())
    }

    /// The parsed URL and cache key header names, once every field is checked.
    pub(super) fn checked(&self) -> Result<(Uri, Vec<HeaderName>), WebhookError> {
        let url: Uri = self
            .url
            .parse()
            .map_err(|e| WebhookError::config("url", format!("not a URL: {e}")))?;
        check_url(&url).map_err(|e| WebhookError::config("url", e.to_string()))?;
        if self.timeout.is_zero() {
            return Err(WebhookError::config("timeout", "must be longer than zero"));
        }
        if self.cache_entries > 0 && self.cache_max_ttl.is_zero() {
            return Err(WebhookError::config(
                "cache_max_ttl",
                "must be longer than zero (set cache_entries = 0 to turn the cache off)",
            ));
        }
        let mut names: Vec<HeaderName> = Vec::with_capacity(self.cache_key_headers.len());
        for raw in &self.cache_key_headers {
            // `HeaderName` lowercases, so `X-Tenant` and `x-tenant` are one name.
            let name = HeaderName::from_bytes(raw.as_bytes()).map_err(|_| {
                WebhookError::config("cache_key_headers", format!("{raw:?} is not a header name"))
            })?;
            if names.contains(&name) {
                return Err(WebhookError::config(
                    "cache_key_headers",
                    format!("{raw:?} is listed twice"),
                ));
            }
            names.push(name);
        }
        Ok((url, names))
    }
}

/// Why a [`WebhookResolver`](super::WebhookResolver) cannot be built.
#[non_exhaustive]
#[derive(thiserror::Error, Debug)]
pub enum WebhookError {
    /// A [`WebhookConfig`] field cannot be used; `field` is its name in the `[webhook]` table.
    #[error("{field}: {reason}")]
    Config {
        /// The field's name (`url`, `timeout`, `cache_max_ttl`, `cache_key_headers`).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built (its trust roots: `SSL_CERT_FILE`, the platform's).
    #[error("cannot build the webhook's HTTP client: {0}")]
    Client(#[source] HttpClientError),
}

impl WebhookError {
    fn config(field: &'static str, reason: impl Into<String>) -> Self {
        WebhookError::Config {
            field,
            reason: reason.into(),
        }
    }
}

/// Serde for humantime durations (`"5s"`, `"500ms"`, `"10m"`), as the rest of the config
/// writes them.
mod humantime_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "not a duration ({e}): write e.g. \"500ms\", \"30s\" or \"5m\""
            ))
        })
    }
}
