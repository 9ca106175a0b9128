//! The gateway's configuration: one TOML file, validated into typed values.
//!
//! Parsing and validation happen here and only here; the library crates take the typed values.
//! Every problem is reported with the key, the line and, where one is obvious, the fix, and
//! all problems are reported at once so that a user fixes the file in one pass.
//!
//! ```toml
//! [project]
//! domains = ["example.com"]
//!
//! [listen]
//! http = "0.0.0.0:8080"
//! admin = "127.0.0.1:9090"
//!
//! [[services]]
//! name = "data"                       # served at data.example.com
//! upstreams = ["http://127.0.0.1:3000"]
//! allowed_roles = ["user", "admin"]   # absent or empty: every role, anonymous included
//! ```

mod admin;
mod auth;
mod limits;
mod listen;
mod log;
mod proxy;
mod raw;
mod service;
mod sessions;
mod telemetry;
#[cfg(test)]
mod tests;
mod tls;
mod validate;

use std::path::{Path, PathBuf};

use toml::Spanned;

use raw::RawConfig;
use validate::{LineIndex, Validator};

pub use admin::AdminSecretSource;
pub use auth::Auth;
pub use limits::Limits;
pub use listen::Listen;
pub use log::{LogFormat, LogSettings};
pub use proxy::ProxySettings;
pub(crate) use raw::RawService;
pub(crate) use service::{validate_service, ServiceDefaults};
pub use service::{Origin, Service};
pub use sessions::{RedisSettings, Sessions, StoreKind};
pub use telemetry::{OtlpSettings, Telemetry};
pub use tls::{CertStoreKind, Tls, TlsMode};
pub use validate::{
    is_dns_label, is_role_token, normalize_domain, parse_origin, parse_upstream, ConfigError,
    ConfigIssue,
};

/// A validated gateway configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The project's domains, lowercase, without trailing dot. The first is the primary one:
    /// it is the default cookie domain.
    pub domains: Vec<String>,
    /// The listeners.
    pub listen: Listen,
    /// Connection and request limits.
    pub limits: Limits,
    /// Session settings.
    pub sessions: Sessions,
    /// Where the admin secret comes from.
    pub admin: AdminSecretSource,
    /// Where the services added through the admin API are kept (`[admin] services_file`);
    /// `None`: `gateway-services.json` next to the config file.
    pub services_file: Option<PathBuf>,
    /// Whether the admin listener's `/metrics` requires the admin secret (`[admin]
    /// metrics_require_secret`).
    pub metrics_require_secret: bool,
    /// TLS settings.
    pub tls: Tls,
    /// Upstream proxy settings shared by every service.
    pub proxy: ProxySettings,
    /// Logging.
    pub log: LogSettings,
    /// Extra origins trusted for cookie-authenticated state-changing requests, besides the
    /// project's domains and their subdomains (`https://partner.example.org`).
    pub csrf_trusted_origins: Vec<String>,
    /// Whether a cookie-authenticated state-changing request with none of `Origin`,
    /// `Sec-Fetch-Site` and `Referer` is let through (default: refused with 403).
    pub csrf_allow_missing_origin: bool,
    /// JWT and webhook resolvers (`[auth]`; changes need a restart).
    pub auth: Auth,
    /// The OTLP span export (`[telemetry]`; changes need a restart).
    pub telemetry: Telemetry,
    /// The services, in file order.
    pub services: Vec<Service>,
}

/// The embedded quickstart configuration (see the README).
pub const QUICKSTART_TOML: &str = include_str!("quickstart.toml");

impl Config {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Config::parse(&text, base)
    }

    /// Parses and validates TOML text. Relative paths are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let lines = LineIndex::new(text);
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            ConfigError::Invalid(vec![ConfigIssue {
                key: String::new(),
                line: e.span().map(|s| lines.line(s.start)),
                message: e.message().trim().to_owned(),
                hint: validate::hint_for_parse_error(e.message()),
            }])
        })?;
        let mut v = Validator::new(Some(&lines));
        let config = v.config(raw, base);
        v.finish(config).map_err(ConfigError::Invalid)
    }

    /// The service names in use.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }
}

impl Validator<'_> {
    fn config(&mut self, raw: RawConfig, base: &Path) -> Config {
        let domains = self.domains(&raw.project.domains);
        let listen = self.listen(raw.listen);
        let limits = self.limits(raw.limits);
        let sessions = self.sessions(raw.sessions, &domains);
        let metrics_require_secret = raw.admin.metrics_require_secret.unwrap_or(false);
        let services_file = self.services_file(raw.admin.services_file.clone(), base);
        let admin = self.admin(raw.admin);
        let tls = self.tls(raw.tls, base, &listen, &sessions);
        let proxy = self.proxy(raw.proxy);
        let log = self.log(raw.log);
        let mut csrf_trusted_origins = Vec::new();
        let csrf_allow_missing_origin = raw.csrf.allow_missing_origin.unwrap_or(false);
        for (i, o) in raw
            .csrf
            .trusted_origins
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            match parse_origin(o.get_ref()) {
                Some(origin) => csrf_trusted_origins.push(origin),
                None => self.issue(
                    format!("csrf.trusted_origins[{i}]"),
                    &o,
                    "not an origin",
                    Some("write scheme://host[:port], e.g. \"https://partner.example.org\""),
                ),
            }
        }
        let defaults = ServiceDefaults {
            domains: &domains,
            max_body_bytes: limits.max_body_bytes,
        };
        let services = self.services(raw.services, &defaults);
        let auth = self.auth(raw.auth);
        let telemetry = self.telemetry(raw.telemetry);
        Config {
            domains,
            listen,
            limits,
            sessions,
            admin,
            services_file,
            metrics_require_secret,
            tls,
            proxy,
            log,
            csrf_trusted_origins,
            csrf_allow_missing_origin,
            auth,
            telemetry,
            services,
        }
    }

    fn domains(&mut self, raw: &Spanned<Vec<Spanned<String>>>) -> Vec<String> {
        if raw.get_ref().is_empty() {
            self.issue(
                "project.domains",
                raw,
                "at least one domain is required",
                Some("domains = [\"example.com\"]"),
            );
        }
        let mut out = Vec::new();
        for (i, d) in raw.get_ref().iter().enumerate() {
            let key = format!("project.domains[{i}]");
            match normalize_domain(d.get_ref()) {
                Some(n) if !out.contains(&n) => out.push(n),
                Some(_) => self.issue(key, d, "listed twice", Some("remove the duplicate")),
                None => self.issue(
                    key,
                    d,
                    format!("`{}` is not a domain name", d.get_ref()),
                    Some("write a DNS name such as \"example.com\", without scheme, port or path"),
                ),
            }
        }
        out
    }
}
