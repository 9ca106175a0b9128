//! The TOML file as written: serde structs that mirror the file, with spans kept on the
//! values that semantic validation may need to point at.

use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// A duration written as a human string (`"30s"`, `"500ms"`, `"2m"`), kept with its span.
pub(crate) type SpannedDuration = Spanned<String>;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) project: RawProject,
    #[serde(default)]
    pub(crate) listen: RawListen,
    #[serde(default)]
    pub(crate) limits: RawLimits,
    #[serde(default)]
    pub(crate) sessions: RawSessions,
    #[serde(default)]
    pub(crate) admin: RawAdmin,
    #[serde(default)]
    pub(crate) tls: RawTls,
    #[serde(default)]
    pub(crate) proxy: RawProxy,
    #[serde(default)]
    pub(crate) log: RawLog,
    #[serde(default)]
    pub(crate) csrf: RawCsrf,
    #[serde(default)]
    pub(crate) auth: RawAuth,
    #[serde(default)]
    pub(crate) telemetry: RawTelemetry,
    #[serde(default)]
    pub(crate) services: Vec<RawService>,
}

/// `[telemetry]`: the OTLP span export.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTelemetry {
    pub(crate) otlp_endpoint: Option<Spanned<String>>,
    pub(crate) service_name: Option<Spanned<String>>,
    pub(crate) otlp_timeout: Option<SpannedDuration>,
}

/// `[auth]`: kept as TOML values, deserialised into session-core's own config structs (so the
/// file takes exactly the keys an embedder's code does).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    pub(crate) jwt: Option<Vec<Spanned<toml::Value>>>,
    pub(crate) jwt_secret: Option<Spanned<String>>,
    pub(crate) jwt_secret_env: Option<Spanned<String>>,
    pub(crate) webhook: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProject {
    pub(crate) domains: Spanned<Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListen {
    pub(crate) http: Option<Spanned<String>>,
    pub(crate) https: Option<Spanned<String>>,
    pub(crate) admin: Option<Spanned<String>>,
    pub(crate) redirect_http_to_https: Option<bool>,
    pub(crate) admin_hosts: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub(crate) header_read_timeout: Option<SpannedDuration>,
    pub(crate) idle_timeout: Option<SpannedDuration>,
    pub(crate) tls_handshake_timeout: Option<SpannedDuration>,
    pub(crate) max_header_bytes: Option<Spanned<u64>>,
    pub(crate) max_headers: Option<Spanned<u64>>,
    pub(crate) max_body_bytes: Option<Spanned<u64>>,
    pub(crate) max_connections: Option<Spanned<u64>>,
    pub(crate) h2_max_concurrent_streams: Option<Spanned<u64>>,
    pub(crate) h2_max_control_frames_per_second: Option<Spanned<u64>>,
    pub(crate) shutdown_grace: Option<SpannedDuration>,
    pub(crate) tunnel_idle_timeout: Option<SpannedDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSessions {
    pub(crate) store: Option<Spanned<String>>,
    pub(crate) ttl: Option<SpannedDuration>,
    pub(crate) sliding_expiry: Option<bool>,
    pub(crate) cookie_name: Option<Spanned<String>>,
    pub(crate) cookie_domain: Option<Spanned<String>>,
    pub(crate) cookie_secure: Option<bool>,
    pub(crate) same_site: Option<Spanned<String>>,
    pub(crate) identity_prefix: Option<Spanned<String>>,
    pub(crate) user_id_header: Option<Spanned<String>>,
    pub(crate) role_header: Option<Spanned<String>>,
    pub(crate) allowed_roles_header: Option<Spanned<String>>,
    pub(crate) anonymous_user_id: Option<Spanned<String>>,
    pub(crate) anonymous_role: Option<Spanned<String>>,
    pub(crate) forbid_authenticated_without_role: Option<bool>,
    pub(crate) max_per_user: Option<Spanned<u64>>,
    pub(crate) redis_url_env: Option<Spanned<String>>,
    pub(crate) redis_prefix: Option<Spanned<String>>,
    pub(crate) redis_timeout: Option<SpannedDuration>,
    pub(crate) redis_wait_replicas: Option<Spanned<u64>>,
    pub(crate) redis_wait_timeout: Option<SpannedDuration>,
    pub(crate) cache_ttl: Option<SpannedDuration>,
    pub(crate) cache_capacity: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub(crate) secret_env: Option<Spanned<String>>,
    pub(crate) secret_file: Option<Spanned<String>>,
    pub(crate) secret_credential: Option<Spanned<String>>,
    pub(crate) services_file: Option<Spanned<String>>,
    pub(crate) metrics_require_secret: Option<bool>,
    /// Only present so that a secret written into the file gets a precise error, never used.
    #[serde(default, deserialize_with = "present")]
    pub(crate) secret: Option<Spanned<()>>,
}

/// Records that a key was present (with its span) without keeping its value, so a secret
/// pasted into the TOML is never held in memory longer than parsing takes.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Spanned<()>>, D::Error> {
    let v = Spanned::<toml::Value>::deserialize(d)?;
    let span = v.span();
    Ok(Some(Spanned::new(span, ())))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub(crate) mode: Option<Spanned<String>>,
    pub(crate) cert_file: Option<Spanned<String>>,
    pub(crate) key_file: Option<Spanned<String>>,
    pub(crate) dir: Option<Spanned<String>>,
    pub(crate) acme_directory: Option<Spanned<String>>,
    pub(crate) acme_contact: Option<Vec<String>>,
    pub(crate) acme_ca_file: Option<Spanned<String>>,
    pub(crate) http01: Option<bool>,
    pub(crate) tls_alpn01: Option<bool>,
    pub(crate) store: Option<Spanned<String>>,
    pub(crate) acme_check_interval: Option<SpannedDuration>,
    pub(crate) hsts: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProxy {
    pub(crate) trusted_proxies: Option<Vec<Spanned<String>>>,
    pub(crate) pool_idle_timeout: Option<SpannedDuration>,
    pub(crate) pool_max_idle_per_host: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCsrf {
    pub(crate) trusted_origins: Option<Vec<Spanned<String>>>,
    pub(crate) allow_missing_origin: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub(crate) format: Option<Spanned<String>>,
    pub(crate) level: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawService {
    pub(crate) name: Spanned<String>,
    pub(crate) subdomain: Option<Spanned<String>>,
    pub(crate) path_prefix: Option<Spanned<String>>,
    pub(crate) upstreams: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(crate) allowed_roles: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) forward_credentials: Option<bool>,
    pub(crate) session_issuer: Option<bool>,
    pub(crate) websocket: Option<bool>,
    pub(crate) http2: Option<bool>,
    pub(crate) connect_timeout: Option<SpannedDuration>,
    pub(crate) response_timeout: Option<SpannedDuration>,
    pub(crate) max_body_bytes: Option<Spanned<u64>>,
    pub(crate) cors: Option<bool>,
    pub(crate) cors_allowed_origins: Option<Vec<Spanned<String>>>,
    pub(crate) cors_allowed_methods: Option<Vec<Spanned<String>>>,
    pub(crate) cors_allowed_headers: Option<Vec<Spanned<String>>>,
    pub(crate) no_session_redirect: Option<Spanned<String>>,
    pub(crate) no_access_redirect: Option<Spanned<String>>,
}
