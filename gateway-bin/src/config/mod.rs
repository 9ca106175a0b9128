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

mod raw;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, Uri};
use ipnet::IpNet;
use toml::Spanned;

use raw::RawConfig;

/// Where a configured value came from, for `GET /v1/services`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The config file.
    File,
    /// The services admin API.
    Api,
}

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
    /// The services, in file order.
    pub services: Vec<Service>,
}

/// The listeners. Each is optional; at least one of `http` and `https` is required.
#[derive(Clone, Debug)]
pub struct Listen {
    /// The plain HTTP listener.
    pub http: Option<SocketAddr>,
    /// The HTTPS listener.
    pub https: Option<SocketAddr>,
    /// The admin listener (sessions API, metrics, health).
    pub admin: Option<SocketAddr>,
    /// Whether plain HTTP redirects to HTTPS (ACME challenges are always answered).
    pub redirect_http_to_https: bool,
    /// Host names the admin listener serves besides IP literals and `localhost` (normalised:
    /// lowercase, no port, no trailing dot). Any other `Host` gets 421: a web page that rebinds
    /// its own DNS name to the admin address cannot read the admin API.
    pub admin_hosts: Vec<String>,
}

/// Connection and request limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// How long a client may take to send a request head (also the HTTP/1 keep-alive wait).
    pub header_read_timeout: Duration,
    /// A connection with no bytes moving in either direction for this long is closed.
    pub idle_timeout: Duration,
    /// How long a TLS handshake may take.
    pub tls_handshake_timeout: Duration,
    /// The largest request head, in bytes (431 above it).
    pub max_header_bytes: usize,
    /// The most request headers (431 above it).
    pub max_headers: usize,
    /// The default request body limit (413 above it); a service may override it.
    pub max_body_bytes: u64,
    /// The most open client connections; more are refused at once.
    pub max_connections: usize,
    /// The most concurrent HTTP/2 streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// The most PING, SETTINGS, PRIORITY and RST_STREAM frames an HTTP/2 client may send in
    /// one second; past it the connection is closed (floods, SECURITY-CASES 25).
    pub h2_max_control_frames_per_second: u32,
    /// How long in-flight requests get to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// A WebSocket tunnel with no bytes moving in either direction for this long is closed.
    pub tunnel_idle_timeout: Duration,
}

/// Which session store backs the gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// Sessions live in this process.
    Memory,
    /// Sessions live in Redis, shared by every replica.
    Redis(RedisSettings),
}

/// Redis settings for `store = "redis"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisSettings {
    /// The environment variable that holds the Redis URL (`redis://`, `rediss://`). A URL may
    /// carry a password, so it is never written in the TOML.
    pub url_env: String,
    /// The key prefix (`<prefix>:session:<sha256 hex>`).
    pub prefix: String,
    /// The timeout of one Redis command.
    pub timeout: Duration,
    /// How long a replica caches a resolved session locally (revocations clear it at once).
    pub cache_ttl: Duration,
    /// The most sessions a replica caches.
    pub cache_capacity: usize,
}

/// The largest `sessions.max_per_user`: in effect no bound (what a deployment had before the
/// bound existed), while a typo such as a negative number is still an error.
const MAX_SESSIONS_PER_USER: u64 = 1_000_000_000;

/// Session settings.
#[derive(Clone, Debug)]
pub struct Sessions {
    /// The store.
    pub store: StoreKind,
    /// The lifetime of a new session when the creator names none.
    pub ttl: Duration,
    /// Whether each use extends a session by `ttl`.
    pub sliding_expiry: bool,
    /// The session cookie's name.
    pub cookie_name: String,
    /// The session cookie's `Domain` (the primary project domain by default).
    pub cookie_domain: String,
    /// Whether the cookie carries `Secure`.
    pub cookie_secure: bool,
    /// The cookie's `SameSite`.
    pub same_site: session_core::SameSite,
    /// The reserved identity header prefix, lowercase.
    pub identity_prefix: String,
    /// The user id header.
    pub user_id_header: HeaderName,
    /// The role header.
    pub role_header: HeaderName,
    /// The allowed roles header.
    pub allowed_roles_header: HeaderName,
    /// The anonymous user id.
    pub anonymous_user_id: String,
    /// The anonymous role.
    pub anonymous_role: String,
    /// Answer 403 (not 401) to a valid session that lacks a service's role.
    pub forbid_authenticated_without_role: bool,
    /// The most live sessions one user holds; one more revokes the oldest (default 100).
    pub max_per_user: NonZeroUsize,
}

/// Where the admin secret is read from. The secret itself is never written in the TOML.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminSecretSource {
    /// An environment variable, by name.
    Env(String),
    /// A file whose first line is the secret.
    File(PathBuf),
}

/// TLS modes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// No HTTPS listener.
    Off,
    /// A certificate chain and key from PEM files.
    Files {
        /// The chain.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
    },
    /// Certificates from an ACME server.
    Acme {
        /// The directory URL.
        directory: String,
        /// Contact URLs (`mailto:`).
        contact: Vec<String>,
        /// An extra root CA (PEM) to trust for the ACME server itself (Pebble).
        ca_file: Option<PathBuf>,
        /// Whether HTTP-01 is offered.
        http01: bool,
        /// Whether TLS-ALPN-01 is offered.
        tls_alpn01: bool,
    },
    /// A local development CA, created once on disk.
    DevCa,
}

/// TLS settings.
#[derive(Clone, Debug)]
pub struct Tls {
    /// The mode.
    pub mode: TlsMode,
    /// Where certificates, keys and ACME accounts are stored on disk.
    pub dir: PathBuf,
    /// Where ACME keeps certificates, accounts, challenges and order leases.
    pub store: CertStoreKind,
    /// The longest the ACME manager waits between looks at its names; also the bound on how
    /// long a certificate renewed by another replica takes to be served here.
    pub acme_check_interval: Duration,
    /// The `Strict-Transport-Security` value set on every response served over TLS, never
    /// over plain HTTP; `None` sets none. Defaults to `max-age=31536000` when plain HTTP
    /// redirects to HTTPS, and to none otherwise.
    pub hsts: Option<http::HeaderValue>,
}

/// Where ACME state lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertStoreKind {
    /// Files under `tls.dir` (0600 files in 0700 directories).
    Dir,
    /// Redis, shared by every replica (the `[sessions]` Redis settings).
    Redis,
}

/// Upstream proxy settings shared by every service.
#[derive(Clone, Debug)]
pub struct ProxySettings {
    /// Front proxies whose `X-Forwarded-For` is trusted.
    pub trusted_proxies: Vec<IpNet>,
    /// How long an idle upstream connection is kept.
    pub pool_idle_timeout: Duration,
    /// How many idle connections are kept per upstream.
    pub pool_max_idle_per_host: usize,
}

/// Log output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Clone, Debug)]
pub struct LogSettings {
    /// The format.
    pub format: LogFormat,
    /// The default filter directive (`RUST_LOG` overrides it).
    pub level: String,
}

/// One service: a subdomain of every project domain, proxied to its upstreams.
#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    /// The service's unique name.
    pub name: String,
    /// The label under the project domains: `data`, `@` for the apex, `*` for every other name.
    pub subdomain: String,
    /// An optional path prefix within the subdomain (longest prefix wins). A path that another
    /// common reading (`;` parameters dropped, case folded, decoded first) would send to a
    /// service of the same subdomain with other `allowed_roles` gets 400 `ambiguous-path`.
    pub path_prefix: Option<String>,
    /// The upstream base URLs, balanced round-robin.
    pub upstreams: Vec<Uri>,
    /// The roles allowed to reach it; empty means every role, anonymous included.
    pub allowed_roles: Vec<String>,
    /// Keep the gateway's bearer token and session cookie on requests to this service.
    pub forward_credentials: bool,
    /// This service may ask the gateway to create and end sessions.
    pub session_issuer: bool,
    /// WebSocket upgrades are tunnelled.
    pub websocket: bool,
    /// Upstreams speak HTTP/2 (prior knowledge).
    pub http2: bool,
    /// The upstream connect timeout.
    pub connect_timeout: Duration,
    /// The upstream response-header timeout.
    pub response_timeout: Duration,
    /// The request body limit.
    pub max_body_bytes: u64,
    /// Where the service was defined.
    pub origin: Origin,
    /// CORS: answer preflights and add CORS headers for the project's own origins.
    pub cors: bool,
    /// CORS: extra allowed origins, besides the project's domains and subdomains.
    pub cors_allowed_origins: Vec<String>,
    /// CORS: allowed methods (a default set when empty).
    pub cors_allowed_methods: Vec<String>,
    /// CORS: allowed request headers (a default set when empty).
    pub cors_allowed_headers: Vec<String>,
    /// Where a browser navigation without a session is redirected instead of getting 401.
    pub no_session_redirect: Option<String>,
    /// Where a browser navigation whose session lacks the role is redirected.
    pub no_access_redirect: Option<String>,
}

impl Service {
    /// The host patterns this service answers, one per project domain.
    pub fn host_patterns(&self, domains: &[String]) -> Vec<String> {
        domains
            .iter()
            .map(|d| match self.subdomain.as_str() {
                "@" => d.clone(),
                "*" => format!("*.{d}"),
                sub => format!("{sub}.{d}"),
            })
            .collect()
    }
}

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The dotted key, e.g. `services[1].upstreams[0]`.
    pub key: String,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "`{}`: ", self.key)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file has problems; every one is listed.
    #[error("{}", render_issues(.0))]
    Invalid(Vec<ConfigIssue>),
}

fn render_issues(issues: &[ConfigIssue]) -> String {
    let mut out = format!("{} problem(s) in the config:", issues.len());
    for i in issues {
        out.push_str("\n  - ");
        out.push_str(&i.to_string());
    }
    out
}

impl ConfigError {
    /// The issues, when the file was read but is invalid.
    pub fn issues(&self) -> &[ConfigIssue] {
        match self {
            ConfigError::Invalid(v) => v,
            ConfigError::Read { .. } => &[],
        }
    }
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
                hint: hint_for_parse_error(e.message()),
            }])
        })?;
        let mut v = Validator {
            lines: &lines,
            issues: Vec::new(),
        };
        let config = v.config(raw, base);
        if v.issues.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(v.issues))
        }
    }

    /// The service names in use.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }
}

fn hint_for_parse_error(message: &str) -> Option<String> {
    if message.contains("unknown field") {
        Some("check the key's spelling against the README's config reference".into())
    } else if message.contains("missing field `project`") {
        Some("add a [project] table with domains = [\"example.com\"]".into())
    } else if message.contains("invalid type") {
        Some("check the value's type (strings are quoted, lists use [ ])".into())
    } else {
        None
    }
}

/// Maps byte offsets to 1-based line numbers.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    fn line(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

struct Validator<'a> {
    lines: &'a LineIndex,
    issues: Vec<ConfigIssue>,
}

impl Validator<'_> {
    fn issue<T>(
        &mut self,
        key: impl Into<String>,
        at: &Spanned<T>,
        message: impl Into<String>,
        hint: Option<&str>,
    ) {
        self.issues.push(ConfigIssue {
            key: key.into(),
            line: Some(self.lines.line(at.span().start)),
            message: message.into(),
            hint: hint.map(str::to_owned),
        });
    }

    fn duration(&mut self, key: &str, v: Option<Spanned<String>>, default: Duration) -> Duration {
        let Some(v) = v else { return default };
        match humantime::parse_duration(v.get_ref()) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.issue(
                    key,
                    &v,
                    "must be longer than zero",
                    Some("write e.g. \"30s\""),
                );
                default
            }
            Err(e) => {
                self.issue(
                    key,
                    &v,
                    format!("not a duration: {e}"),
                    Some("write e.g. \"500ms\", \"30s\" or \"5m\""),
                );
                default
            }
        }
    }

    fn number(
        &mut self,
        key: &str,
        v: Option<Spanned<u64>>,
        default: u64,
        min: u64,
        max: u64,
    ) -> u64 {
        let Some(v) = v else { return default };
        let n = *v.get_ref();
        if n < min || n > max {
            self.issue(
                key,
                &v,
                format!("must be between {min} and {max}, got {n}"),
                None,
            );
            return default;
        }
        n
    }

    fn addr(&mut self, key: &str, v: Option<Spanned<String>>) -> Option<SocketAddr> {
        let v = v?;
        if v.get_ref().is_empty() {
            return None;
        }
        match v.get_ref().parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.issue(
                    key,
                    &v,
                    format!("`{}` is not an address", v.get_ref()),
                    Some("write ip:port, e.g. \"127.0.0.1:8080\""),
                );
                None
            }
        }
    }

    fn header_name(
        &mut self,
        key: &str,
        v: Option<Spanned<String>>,
        default: &'static str,
    ) -> HeaderName {
        let Some(v) = v else {
            return HeaderName::from_static(default);
        };
        match HeaderName::from_bytes(v.get_ref().as_bytes()) {
            Ok(h) => h,
            Err(_) => {
                self.issue(
                    key,
                    &v,
                    "not a valid header name",
                    Some("use letters, digits and '-'"),
                );
                HeaderName::from_static(default)
            }
        }
    }

    fn config(&mut self, raw: RawConfig, base: &Path) -> Config {
        let domains = self.domains(&raw.project.domains);
        let listen = Listen {
            http: self.addr("listen.http", raw.listen.http),
            https: self.addr("listen.https", raw.listen.https),
            admin: self.addr("listen.admin", raw.listen.admin),
            redirect_http_to_https: raw.listen.redirect_http_to_https.unwrap_or(false),
            admin_hosts: self.admin_hosts(raw.listen.admin_hosts.unwrap_or_default()),
        };
        if listen.http.is_none() && listen.https.is_none() {
            self.issues.push(ConfigIssue {
                key: "listen".into(),
                line: None,
                message: "no listener: set listen.http or listen.https".into(),
                hint: Some("add http = \"0.0.0.0:8080\" under [listen]".into()),
            });
        }
        let l = raw.limits;
        let limits = Limits {
            header_read_timeout: self.duration(
                "limits.header_read_timeout",
                l.header_read_timeout,
                Duration::from_secs(10),
            ),
            idle_timeout: self.duration(
                "limits.idle_timeout",
                l.idle_timeout,
                Duration::from_secs(60),
            ),
            tls_handshake_timeout: self.duration(
                "limits.tls_handshake_timeout",
                l.tls_handshake_timeout,
                Duration::from_secs(10),
            ),
            max_header_bytes: self.number(
                "limits.max_header_bytes",
                l.max_header_bytes,
                16 * 1024,
                8192,
                1024 * 1024,
            ) as usize,
            max_headers: self.number("limits.max_headers", l.max_headers, 100, 8, 1000) as usize,
            max_body_bytes: self.number(
                "limits.max_body_bytes",
                l.max_body_bytes,
                10 * 1024 * 1024,
                0,
                u64::MAX,
            ),
            max_connections: self.number(
                "limits.max_connections",
                l.max_connections,
                10_000,
                1,
                10_000_000,
            ) as usize,
            h2_max_concurrent_streams: self.number(
                "limits.h2_max_concurrent_streams",
                l.h2_max_concurrent_streams,
                100,
                1,
                10_000,
            ) as u32,
            h2_max_control_frames_per_second: self.number(
                "limits.h2_max_control_frames_per_second",
                l.h2_max_control_frames_per_second,
                1000,
                10,
                1_000_000,
            ) as u32,
            shutdown_grace: self.duration(
                "limits.shutdown_grace",
                l.shutdown_grace,
                Duration::from_secs(30),
            ),
            tunnel_idle_timeout: self.duration(
                "limits.tunnel_idle_timeout",
                l.tunnel_idle_timeout,
                Duration::from_secs(300),
            ),
        };
        let sessions = self.sessions(raw.sessions, &domains);
        let metrics_require_secret = raw.admin.metrics_require_secret.unwrap_or(false);
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
        let services = self.services(raw.services, limits.max_body_bytes);
        Config {
            domains,
            listen,
            limits,
            sessions,
            admin,
            metrics_require_secret,
            tls,
            proxy,
            log,
            csrf_trusted_origins,
            csrf_allow_missing_origin,
            services,
        }
    }

    fn admin_hosts(&mut self, raw: Vec<Spanned<String>>) -> Vec<String> {
        let mut out = Vec::new();
        for (i, h) in raw.iter().enumerate() {
            let key = format!("listen.admin_hosts[{i}]");
            match route_core::normalize_host(h.get_ref()) {
                Ok(n) => out.push(n.into_owned()),
                Err(route_core::HostError::IpLiteral) => self.issue(
                    key,
                    h,
                    "IP literals are always served; list names only",
                    Some("remove it"),
                ),
                _ => self.issue(
                    key,
                    h,
                    format!("`{}` is not a host name", h.get_ref()),
                    Some("write a DNS name such as \"gateway-admin.internal\""),
                ),
            }
        }
        out
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

    fn sessions(&mut self, s: raw::RawSessions, domains: &[String]) -> Sessions {
        let store = match s.store {
            None => StoreKind::Memory,
            Some(v) if v.get_ref() == "memory" => StoreKind::Memory,
            Some(v) if v.get_ref() == "redis" => StoreKind::Redis(RedisSettings {
                url_env: s
                    .redis_url_env
                    .map(Spanned::into_inner)
                    .unwrap_or_else(|| "GATEWAY_REDIS_URL".into()),
                prefix: match s.redis_prefix {
                    None => "gateway".into(),
                    Some(p) => {
                        if p.get_ref().is_empty() || p.get_ref().contains(char::is_whitespace) {
                            self.issue(
                                "sessions.redis_prefix",
                                &p,
                                "must be non-empty without spaces",
                                None,
                            );
                        }
                        p.into_inner()
                    }
                },
                timeout: self.duration(
                    "sessions.redis_timeout",
                    s.redis_timeout,
                    Duration::from_millis(500),
                ),
                cache_ttl: self.duration("sessions.cache_ttl", s.cache_ttl, Duration::from_secs(5)),
                cache_capacity: self.number(
                    "sessions.cache_capacity",
                    s.cache_capacity,
                    100_000,
                    0,
                    100_000_000,
                ) as usize,
            }),
            Some(v) => {
                self.issue(
                    "sessions.store",
                    &v,
                    format!("unknown store `{}`", v.get_ref()),
                    Some("use \"memory\" or \"redis\""),
                );
                StoreKind::Memory
            }
        };
        let cookie_name = match s.cookie_name {
            None => "gateway_session".to_owned(),
            Some(v) => {
                let ok = !v.get_ref().is_empty()
                    && v.get_ref()
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
                if !ok {
                    self.issue(
                        "sessions.cookie_name",
                        &v,
                        "a cookie name uses letters, digits, '_', '-' and '.' only",
                        None,
                    );
                }
                v.into_inner()
            }
        };
        let cookie_domain = match s.cookie_domain {
            None => domains.first().cloned().unwrap_or_default(),
            Some(v) => match normalize_domain(v.get_ref()) {
                Some(d)
                    if domains
                        .iter()
                        .any(|p| *p == d || p.ends_with(&format!(".{d}"))) =>
                {
                    d
                }
                Some(_) => {
                    self.issue(
                        "sessions.cookie_domain",
                        &v,
                        "must be a project domain or a parent of one",
                        Some("leave it out to use the first project domain"),
                    );
                    String::new()
                }
                None => {
                    self.issue("sessions.cookie_domain", &v, "not a domain name", None);
                    String::new()
                }
            },
        };
        let same_site = match s
            .same_site
            .as_ref()
            .map(|v| v.get_ref().to_ascii_lowercase())
        {
            None => session_core::SameSite::Lax,
            Some(x) if x == "lax" => session_core::SameSite::Lax,
            Some(x) if x == "strict" => session_core::SameSite::Strict,
            Some(x) if x == "none" => session_core::SameSite::None,
            Some(_) => {
                if let Some(v) = &s.same_site {
                    self.issue(
                        "sessions.same_site",
                        v,
                        "must be \"lax\", \"strict\" or \"none\"",
                        None,
                    );
                }
                session_core::SameSite::Lax
            }
        };
        let identity_prefix = match s.identity_prefix {
            None => "x-hasura-".to_owned(),
            Some(v) => {
                let p = v.get_ref().to_ascii_lowercase();
                if p.len() < 3 || HeaderName::from_bytes(p.as_bytes()).is_err() {
                    self.issue(
                        "sessions.identity_prefix",
                        &v,
                        "must be a header-name prefix of 3 or more characters",
                        Some("the default is \"x-hasura-\""),
                    );
                }
                p
            }
        };
        let user_id_header = self.header_name(
            "sessions.user_id_header",
            s.user_id_header,
            "x-hasura-user-id",
        );
        let role_header = self.header_name("sessions.role_header", s.role_header, "x-hasura-role");
        let allowed_roles_header = self.header_name(
            "sessions.allowed_roles_header",
            s.allowed_roles_header,
            "x-hasura-allowed-roles",
        );
        for (key, h) in [
            ("sessions.user_id_header", &user_id_header),
            ("sessions.role_header", &role_header),
            ("sessions.allowed_roles_header", &allowed_roles_header),
        ] {
            if !h.as_str().starts_with(&identity_prefix) {
                self.issues.push(ConfigIssue {
                    key: key.into(),
                    line: None,
                    message: format!("`{h}` does not start with the identity prefix `{identity_prefix}`, so a client could send it"),
                    hint: Some("keep identity headers under sessions.identity_prefix".into()),
                });
            }
        }
        let anonymous_user_id =
            self.identity_value("sessions.anonymous_user_id", s.anonymous_user_id, "0");
        let anonymous_role =
            self.identity_value("sessions.anonymous_role", s.anonymous_role, "anonymous");
        Sessions {
            store,
            ttl: self.duration("sessions.ttl", s.ttl, Duration::from_secs(24 * 3600)),
            sliding_expiry: s.sliding_expiry.unwrap_or(false),
            cookie_name,
            cookie_domain,
            cookie_secure: s.cookie_secure.unwrap_or(true),
            same_site,
            identity_prefix,
            user_id_header,
            role_header,
            allowed_roles_header,
            anonymous_user_id,
            anonymous_role,
            forbid_authenticated_without_role: s.forbid_authenticated_without_role.unwrap_or(false),
            max_per_user: self.max_per_user(s.max_per_user),
        }
    }

    /// `sessions.max_per_user`: 1 to [`MAX_SESSIONS_PER_USER`], default 100.
    fn max_per_user(&mut self, v: Option<Spanned<u64>>) -> NonZeroUsize {
        let default = session_core::DEFAULT_MAX_PER_USER;
        let n = self.number(
            "sessions.max_per_user",
            v,
            default.get() as u64,
            1,
            MAX_SESSIONS_PER_USER,
        );
        usize::try_from(n)
            .ok()
            .and_then(NonZeroUsize::new)
            .unwrap_or(default)
    }

    fn identity_value(&mut self, key: &str, v: Option<Spanned<String>>, default: &str) -> String {
        let Some(v) = v else {
            return default.to_owned();
        };
        if !is_role_token(v.get_ref()) {
            self.issue(
                key,
                &v,
                "must be 1-128 visible ASCII characters without spaces or commas",
                None,
            );
        }
        v.into_inner()
    }

    fn admin(&mut self, a: raw::RawAdmin) -> AdminSecretSource {
        if let Some(s) = &a.secret {
            self.issue("admin.secret", s, "the admin secret is never written in the config file", Some("set secret_env = \"GATEWAY_ADMIN_SECRET\" or secret_file = \"/run/secrets/gateway-admin\""));
        }
        match (a.secret_env, a.secret_file) {
            (Some(e), Some(_)) => {
                self.issue(
                    "admin.secret_file",
                    &e,
                    "set secret_env or secret_file, not both",
                    None,
                );
                AdminSecretSource::Env(e.into_inner())
            }
            (Some(e), None) => AdminSecretSource::Env(e.into_inner()),
            (None, Some(f)) => AdminSecretSource::File(PathBuf::from(f.into_inner())),
            (None, None) => AdminSecretSource::Env("GATEWAY_ADMIN_SECRET".into()),
        }
    }

    fn tls(&mut self, t: raw::RawTls, base: &Path, listen: &Listen, sessions: &Sessions) -> Tls {
        let store = match &t.store {
            None => CertStoreKind::Dir,
            Some(v) if v.get_ref() == "dir" => CertStoreKind::Dir,
            Some(v) if v.get_ref() == "redis" => {
                if !matches!(sessions.store, StoreKind::Redis(_)) {
                    self.issue(
                        "tls.store",
                        v,
                        "the Redis certificate store uses the [sessions] Redis settings",
                        Some("set [sessions] store = \"redis\" too, or use store = \"dir\""),
                    );
                }
                CertStoreKind::Redis
            }
            Some(v) => {
                self.issue("tls.store", v, "must be \"dir\" or \"redis\"", None);
                CertStoreKind::Dir
            }
        };
        let acme_check_interval = self.duration(
            "tls.acme_check_interval",
            t.acme_check_interval,
            Duration::from_secs(3600),
        );
        let dir = t
            .dir
            .map(|d| base.join(d.into_inner()))
            .unwrap_or_else(|| base.join("gateway-data"));
        let mode = match t.mode.as_ref().map(|m| m.get_ref().as_str()) {
            None | Some("off") => TlsMode::Off,
            Some("files") => match (t.cert_file, t.key_file) {
                (Some(c), Some(k)) => TlsMode::Files {
                    cert: base.join(c.into_inner()),
                    key: base.join(k.into_inner()),
                },
                _ => {
                    if let Some(m) = &t.mode {
                        self.issue("tls.mode", m, "mode \"files\" needs cert_file and key_file", Some("add cert_file = \"cert.pem\" and key_file = \"key.pem\" under [tls]"));
                    }
                    TlsMode::Off
                }
            },
            Some("acme") => {
                let directory = match t.acme_directory {
                    Some(d) => {
                        if !d.get_ref().starts_with("https://") {
                            self.issue(
                                "tls.acme_directory",
                                &d,
                                "the ACME directory must be an https:// URL",
                                None,
                            );
                        }
                        d.into_inner()
                    }
                    None => "https://acme-v02.api.letsencrypt.org/directory".to_owned(),
                };
                TlsMode::Acme {
                    directory,
                    contact: t.acme_contact.unwrap_or_default(),
                    ca_file: t.acme_ca_file.map(|f| base.join(f.into_inner())),
                    http01: t.http01.unwrap_or(true),
                    tls_alpn01: t.tls_alpn01.unwrap_or(true),
                }
            }
            Some("dev-ca") => TlsMode::DevCa,
            Some(other) => {
                let other = other.to_owned();
                if let Some(m) = &t.mode {
                    self.issue(
                        "tls.mode",
                        m,
                        format!("unknown mode `{other}`"),
                        Some("use \"off\", \"files\", \"acme\" or \"dev-ca\""),
                    );
                }
                TlsMode::Off
            }
        };
        if mode != TlsMode::Off && listen.https.is_none() {
            self.issues.push(ConfigIssue {
                key: "listen.https".into(),
                line: None,
                message: "TLS is on but there is no HTTPS listener".into(),
                hint: Some("add https = \"0.0.0.0:8443\" under [listen]".into()),
            });
        }
        let hsts = match t.hsts {
            // A gateway that sends every plain request to HTTPS has committed to HTTPS, so
            // browsers are told to skip the plain hop; one that serves plain HTTP has not.
            None => listen
                .redirect_http_to_https
                .then(|| http::HeaderValue::from_static(crate::tls::DEFAULT_HSTS)),
            Some(v) if v.get_ref().trim().is_empty() => None,
            Some(v) => match crate::tls::hsts_header(v.get_ref()) {
                Ok(h) => Some(h),
                Err(e) => {
                    let hint =
                        "write e.g. \"max-age=31536000; includeSubDomains\", or \"\" for none";
                    self.issue("tls.hsts", &v, e, Some(hint));
                    None
                }
            },
        };
        Tls {
            mode,
            dir,
            store,
            acme_check_interval,
            hsts,
        }
    }

    fn proxy(&mut self, p: raw::RawProxy) -> ProxySettings {
        let mut trusted = Vec::new();
        for (i, c) in p
            .trusted_proxies
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let parsed = c
                .get_ref()
                .parse::<IpNet>()
                .or_else(|_| c.get_ref().parse::<std::net::IpAddr>().map(IpNet::from));
            match parsed {
                Ok(n) => trusted.push(n),
                Err(_) => self.issue(
                    format!("proxy.trusted_proxies[{i}]"),
                    &c,
                    "not a CIDR or IP address",
                    Some("write e.g. \"10.0.0.0/8\""),
                ),
            }
        }
        ProxySettings {
            trusted_proxies: trusted,
            pool_idle_timeout: self.duration(
                "proxy.pool_idle_timeout",
                p.pool_idle_timeout,
                Duration::from_secs(90),
            ),
            pool_max_idle_per_host: self.number(
                "proxy.pool_max_idle_per_host",
                p.pool_max_idle_per_host,
                256,
                0,
                100_000,
            ) as usize,
        }
    }

    fn log(&mut self, l: raw::RawLog) -> LogSettings {
        let format = match l.format.as_ref().map(|f| f.get_ref().as_str()) {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(_) => {
                if let Some(f) = &l.format {
                    self.issue("log.format", f, "must be \"pretty\" or \"json\"", None);
                }
                LogFormat::Pretty
            }
        };
        let level = match l.level {
            None => "info".into(),
            Some(v) => {
                // The same parser `init_tracing` uses: a level or `tracing` filter directives.
                // It would otherwise skip a bad directive silently at start. A lone word is a
                // level: the parser would take a misspelt one ("warning") for a target name.
                let text = v.get_ref().trim();
                const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
                let problem = if !text.contains([',', '=', ':', '[']) {
                    (!LEVELS.iter().any(|l| l.eq_ignore_ascii_case(text)))
                        .then(|| format!("\"{text}\" is not a level"))
                } else {
                    tracing_subscriber::EnvFilter::builder()
                        .parse(text)
                        .err()
                        .map(|e| format!("is not a log filter: {e}"))
                };
                if let Some(message) = problem {
                    self.issue(
                        "log.level",
                        &v,
                        message,
                        Some("write a level (trace, debug, info, warn, error, off) or directives like \"info,access=off\""),
                    );
                }
                v.into_inner()
            }
        };
        LogSettings { format, level }
    }

    fn services(&mut self, raw: Vec<raw::RawService>, default_body: u64) -> Vec<Service> {
        let mut out: Vec<Service> = Vec::new();
        for (i, s) in raw.into_iter().enumerate() {
            let k = |f: &str| format!("services[{i}].{f}");
            let name = s.name.get_ref().clone();
            if !is_dns_label(&name) {
                self.issue(
                    k("name"),
                    &s.name,
                    format!("`{name}` is not a valid name"),
                    Some("use lowercase letters, digits and '-', e.g. \"data\""),
                );
            } else if out.iter().any(|o| o.name == name) {
                self.issue(
                    k("name"),
                    &s.name,
                    format!("service `{name}` is defined twice"),
                    Some("service names are unique"),
                );
            }
            let subdomain = match s.subdomain {
                None => name.clone(),
                Some(v) => {
                    let sub = v.get_ref().to_ascii_lowercase();
                    let ok = sub == "@" || sub == "*" || sub.split('.').all(is_dns_label);
                    if !ok {
                        self.issue(k("subdomain"), &v, format!("`{sub}` is not a valid subdomain"), Some("use a DNS label such as \"data\", \"@\" for the apex or \"*\" for every other name"));
                    }
                    sub
                }
            };
            let path_prefix = match s.path_prefix {
                None => None,
                Some(p) => {
                    let v = p.get_ref();
                    // Exactly what the route table accepts: normalised (no dot segments,
                    // `//`, backslashes or control bytes), and no escapes or query.
                    let normalised =
                        matches!(route_core::try_normalize_path(v), Ok(n) if n == v.as_str());
                    if !v.starts_with('/')
                        || !normalised
                        || v.contains("..")
                        || v.contains('%')
                        || v.contains('?')
                    {
                        self.issue(
                            k("path_prefix"),
                            &p,
                            "must be a normalised absolute path such as \"/api\"",
                            None,
                        );
                    }
                    let trimmed = v.trim_end_matches('/');
                    Some(if trimmed.is_empty() {
                        "/".to_owned()
                    } else {
                        trimmed.to_owned()
                    })
                }
            };
            if let Some(other) = out
                .iter()
                .find(|o| o.subdomain == subdomain && o.path_prefix == path_prefix)
            {
                let msg = format!(
                    "service `{}` already serves this subdomain and path",
                    other.name
                );
                self.issue(
                    k("subdomain"),
                    &s.name,
                    msg,
                    Some("give each service its own subdomain or path_prefix"),
                );
            }
            let mut upstreams = Vec::new();
            if s.upstreams.get_ref().is_empty() {
                self.issue(
                    k("upstreams"),
                    &s.upstreams,
                    "at least one upstream URL is required",
                    Some("upstreams = [\"http://127.0.0.1:3000\"]"),
                );
            }
            for (j, u) in s.upstreams.get_ref().iter().enumerate() {
                match parse_upstream(u.get_ref()) {
                    Ok(uri) => upstreams.push(uri),
                    Err(msg) => self.issue(format!("services[{i}].upstreams[{j}]"), u, msg, Some("write an http:// or https:// URL with a host, e.g. \"http://127.0.0.1:3000\"")),
                }
            }
            let mut allowed_roles = Vec::new();
            if let Some(roles) = &s.allowed_roles {
                for (j, r) in roles.get_ref().iter().enumerate() {
                    if !is_role_token(r.get_ref()) {
                        self.issue(
                            format!("services[{i}].allowed_roles[{j}]"),
                            r,
                            format!("`{}` is not a valid role", r.get_ref()),
                            Some(
                                "roles are 1-128 visible ASCII characters without spaces or commas",
                            ),
                        );
                    } else if !allowed_roles.contains(r.get_ref()) {
                        allowed_roles.push(r.get_ref().clone());
                    }
                }
            }
            let mut cors_allowed_origins = Vec::new();
            for (j, o) in s
                .cors_allowed_origins
                .unwrap_or_default()
                .into_iter()
                .enumerate()
            {
                match parse_origin(o.get_ref()) {
                    Some(origin) => cors_allowed_origins.push(origin),
                    None => self.issue(
                        format!("services[{i}].cors_allowed_origins[{j}]"),
                        &o,
                        "not an origin (never \"*\": credentialed CORS needs exact origins)",
                        Some("write scheme://host[:port]"),
                    ),
                }
            }
            let mut cors_allowed_methods = Vec::new();
            for (j, m) in s
                .cors_allowed_methods
                .unwrap_or_default()
                .into_iter()
                .enumerate()
            {
                match http::Method::from_bytes(m.get_ref().to_ascii_uppercase().as_bytes()) {
                    Ok(method) => cors_allowed_methods.push(method.to_string()),
                    Err(_) => self.issue(
                        format!("services[{i}].cors_allowed_methods[{j}]"),
                        &m,
                        "not an HTTP method",
                        None,
                    ),
                }
            }
            let mut cors_allowed_headers = Vec::new();
            for (j, h) in s
                .cors_allowed_headers
                .unwrap_or_default()
                .into_iter()
                .enumerate()
            {
                match HeaderName::from_bytes(h.get_ref().as_bytes()) {
                    Ok(name) => cors_allowed_headers.push(name.to_string()),
                    Err(_) => self.issue(
                        format!("services[{i}].cors_allowed_headers[{j}]"),
                        &h,
                        "not a header name",
                        None,
                    ),
                }
            }
            let mut redirect = |key: &str, v: Option<Spanned<String>>| -> Option<String> {
                let v = v?;
                match parse_upstream(v.get_ref()) {
                    Ok(_) => Some(v.into_inner()),
                    Err(_) => {
                        self.issue(
                            format!("services[{i}].{key}"),
                            &v,
                            "must be an absolute http(s) URL",
                            Some("e.g. \"https://auth.example.com/login\""),
                        );
                        None
                    }
                }
            };
            let no_session_redirect = redirect("no_session_redirect", s.no_session_redirect);
            let no_access_redirect = redirect("no_access_redirect", s.no_access_redirect);
            let service = Service {
                name,
                subdomain,
                path_prefix,
                upstreams,
                allowed_roles,
                forward_credentials: s.forward_credentials.unwrap_or(false),
                session_issuer: s.session_issuer.unwrap_or(false),
                websocket: s.websocket.unwrap_or(true),
                http2: s.http2.unwrap_or(false),
                connect_timeout: self.duration(
                    &k("connect_timeout"),
                    s.connect_timeout,
                    Duration::from_secs(5),
                ),
                response_timeout: self.duration(
                    &k("response_timeout"),
                    s.response_timeout,
                    Duration::from_secs(30),
                ),
                max_body_bytes: self.number(
                    &k("max_body_bytes"),
                    s.max_body_bytes,
                    default_body,
                    0,
                    u64::MAX,
                ),
                origin: Origin::File,
                cors: s.cors.unwrap_or(true),
                cors_allowed_origins,
                cors_allowed_methods,
                cors_allowed_headers,
                no_session_redirect,
                no_access_redirect,
            };
            out.push(service);
        }
        out
    }
}

/// Lowercases a domain and removes one trailing dot; `None` if it is not a DNS name.
pub fn normalize_domain(raw: &str) -> Option<String> {
    let d = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    if d.is_empty() || d.len() > 253 || d.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    // The route table reads hosts with route-core's rules, which also refuse a numeric (or
    // `0x` hex) last label as an IP literal: a domain it would refuse must fail here, with
    // the config's line, not later when the routes are built.
    let routable = matches!(route_core::normalize_host(&d), Ok(h) if h == d.as_str());
    (routable && d.split('.').all(is_dns_label)).then_some(d)
}

/// A DNS label: 1-63 of `a-z`, `0-9` and `-`, not starting or ending with `-`.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A role or user id as the config accepts it: visible ASCII without spaces or commas.
pub fn is_role_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic() && b != b',')
}

/// Parses an origin (`scheme://host[:port]`, lowercase), as browsers send it in `Origin`.
pub fn parse_origin(s: &str) -> Option<String> {
    let uri: Uri = s.parse().ok()?;
    let scheme = uri.scheme_str()?;
    if !(scheme == "http" || scheme == "https") || uri.host().is_none() {
        return None;
    }
    if uri
        .path_and_query()
        .is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty())
    {
        return None;
    }
    let authority = uri.authority()?.as_str().to_ascii_lowercase();
    if authority.contains('@') {
        return None;
    }
    Some(format!("{scheme}://{authority}"))
}

/// Parses an upstream base URL: http(s) with a host, and no query or fragment.
pub fn parse_upstream(s: &str) -> Result<Uri, String> {
    let uri: Uri = s.parse().map_err(|_| format!("`{s}` is not a URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(format!("`{s}` must start with http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{s}` has no host"));
    }
    if uri.query().is_some() {
        return Err(format!("`{s}` must not have a query"));
    }
    Ok(uri)
}
