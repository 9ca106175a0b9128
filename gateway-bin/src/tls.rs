//! HTTPS: certificates from files, a development CA or ACME, and the TLS listener. The plain
//! listener's duties when TLS is on (ACME HTTP-01 answers, the redirect to HTTPS) are layers
//! of cert-core and route-core, composed in [`crate::stack`].

use std::sync::Arc;

use cert_core::{
    Acceptor, AcmeConfig, AcmeManager, CertResolver, ChallengeResponder, DevCa, DirStore, FileCert,
    NameSet, TlsConfig,
};
use http::Request;
use hyper::body::Incoming;
use route_core::ConnectionInfo;
use tokio::net::TcpListener;
use tower::Service;

use crate::config::{Config, TlsMode};
use crate::server::{self, ConnSettings, MakeService};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// cert-core refused something.
    #[error("TLS: {0}")]
    Cert(#[from] cert_core::Error),
    /// A setting cannot be used.
    #[error("TLS: {0}")]
    Config(String),
    /// A file could not be read.
    #[error("TLS: cannot read {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The names that get certificates: every project domain (the apex) and every service's exact
/// host names. Wildcard services are covered by a wildcard certificate where the source can
/// make one (files, dev CA); ACME skips them (they need DNS-01).
pub fn certificate_names(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = config.domains.clone();
    for s in &config.services {
        for p in s.host_patterns(&config.domains) {
            if !names.contains(&p) {
                names.push(p);
            }
        }
    }
    names
}

/// The running TLS state.
pub struct TlsRuntime {
    /// The acceptor for the HTTPS listener. With ACME and TLS-ALPN-01 it also answers
    /// validations for orders another replica placed, from the shared certificate store.
    pub acceptor: Acceptor,
    /// The SNI resolver certificates are installed into.
    pub resolver: Arc<CertResolver>,
    /// HTTP-01 answers (ACME only).
    pub responder: Option<ChallengeResponder>,
    /// The ACME manager (ACME only).
    pub acme: Option<AcmeManager>,
    /// The names ACME may order for; replaced on reload.
    names: NameSet,
    dev_ca: Option<DevCa>,
    mode: TlsMode,
}

impl TlsRuntime {
    /// Builds the TLS state for `config`; `None` when TLS is off. Never waits for ACME: stored
    /// certificates are loaded from disk, and ordering runs in the background.
    pub async fn start(config: &Config) -> Result<Option<Arc<TlsRuntime>>, TlsError> {
        let mode = config.tls.mode.clone();
        if mode == TlsMode::Off {
            return Ok(None);
        }
        let resolver = Arc::new(CertResolver::new()?);
        let names = NameSet::new(Vec::<String>::new())?;
        let mut tls = TlsConfig::default();
        let mut rt = TlsRuntime {
            acceptor: Acceptor::new(Arc::new(cert_core::server_config(resolver.clone(), &tls)?)),
            resolver: resolver.clone(),
            responder: None,
            acme: None,
            names,
            dev_ca: None,
            mode: mode.clone(),
        };
        match &mode {
            TlsMode::Off => {}
            TlsMode::Files { .. } => rt.load_files(config)?,
            TlsMode::DevCa => {
                let ca = DevCa::load_or_create(config.tls.dir.join("dev-ca"))?;
                tracing::info!(ca = %ca.ca_cert_path().display(), "TLS from the development CA; {}", ca.trust_instructions());
                rt.dev_ca = Some(ca);
                rt.issue_dev(config)?;
            }
            TlsMode::Acme {
                directory,
                contact,
                ca_file,
                http01,
                tls_alpn01,
            } => {
                let roots = match ca_file {
                    Some(p) => {
                        Some(std::fs::read_to_string(p).map_err(|source| TlsError::Read {
                            path: p.clone(),
                            source,
                        })?)
                    }
                    None => None,
                };
                let acme_cfg = AcmeConfig {
                    directory_url: directory.clone(),
                    contact: contact.clone(),
                    http01: *http01,
                    tls_alpn01: *tls_alpn01,
                    directory_roots_pem: roots,
                    check_interval: config.tls.acme_check_interval,
                    ..AcmeConfig::default()
                };
                rt.names.replace(acme_names(config))?;
                let store: Arc<dyn cert_core::CertStore> = match config.tls.store {
                    crate::config::CertStoreKind::Dir => {
                        Arc::new(DirStore::open(config.tls.dir.join("acme"))?)
                    }
                    crate::config::CertStoreKind::Redis => redis_cert_store(config)?,
                };
                let manager = AcmeManager::builder(
                    acme_cfg,
                    store,
                    resolver.clone(),
                    Arc::new(rt.names.clone()),
                )
                .build()?;
                match manager.load_stored().await {
                    Ok(n) => tracing::info!(certificates = n, "stored ACME certificates loaded"),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot load stored certificates; ACME will order them")
                    }
                }
                manager.spawn();
                rt.responder = Some(manager.challenge_responder());
                tls.acme_tls_alpn = *tls_alpn01;
                // Any replica answers a TLS-ALPN-01 validation: the acceptor finds another
                // replica's challenge in the shared store.
                rt.acceptor = manager.acceptor(Arc::new(cert_core::server_config(resolver, &tls)?));
                rt.acme = Some(manager);
            }
        }
        Ok(Some(Arc::new(rt)))
    }

    fn load_files(&self, config: &Config) -> Result<(), TlsError> {
        if let TlsMode::Files { cert, key } = &config.tls.mode {
            let loaded = FileCert {
                cert_path: cert.clone(),
                key_path: key.clone(),
            }
            .load()?;
            self.resolver.insert_loaded(&loaded);
            // The configured certificate also answers handshakes without SNI.
            self.resolver.set_default(Some(loaded.key.clone()));
        }
        Ok(())
    }

    fn issue_dev(&self, config: &Config) -> Result<(), TlsError> {
        if let Some(ca) = &self.dev_ca {
            let loaded = ca.issue_loaded(&certificate_names(config))?;
            self.resolver.insert_loaded(&loaded);
            self.resolver.set_default(Some(loaded.key.clone()));
        }
        Ok(())
    }

    /// The certificate status of one host name, for the services API and the console:
    /// `{"source", "state", ...}` with issuer and dates when ACME manages it.
    pub fn certificate_status(&self, host: &str) -> serde_json::Value {
        let rfc = |t: Option<std::time::SystemTime>| {
            t.map(|t| humantime::format_rfc3339_seconds(t).to_string())
        };
        match (&self.mode, &self.acme) {
            (TlsMode::Acme { .. }, Some(m)) if !host.starts_with("*.") => match m.status(host) {
                Some(st) if st.not_after.is_some() => serde_json::json!({
                    "source": "acme",
                    "state": if st.failures > 0 { "renewing" } else { "valid" },
                    "issuer": st.issuer,
                    "not_after": rfc(st.not_after),
                    "next_renewal": rfc(st.next_renewal),
                    "last_error": st.last_error,
                }),
                Some(st) => serde_json::json!({
                    "source": "acme",
                    "state": if st.failures > 0 { "failing" } else { "pending" },
                    "last_error": st.last_error,
                }),
                None => serde_json::json!({ "source": "acme", "state": "pending" }),
            },
            (TlsMode::Acme { .. }, _) => serde_json::json!({
                "source": "acme",
                "state": "unsupported",
                "detail": "wildcard names need DNS-01",
            }),
            (mode, _) => {
                let source = match mode {
                    TlsMode::Files { .. } => "files",
                    TlsMode::DevCa => "dev-ca",
                    _ => "off",
                };
                let lookup = host
                    .strip_prefix("*.")
                    .map_or_else(|| host.to_owned(), |d| format!("x.{d}"));
                let state = if self.resolver.has_cert(&lookup) {
                    "installed"
                } else {
                    "default"
                };
                serde_json::json!({ "source": source, "state": state })
            }
        }
    }

    /// Follows a config change: new names get certificates (ACME orders, the dev CA issues),
    /// and PEM files are read again.
    pub fn on_config(&self, config: &Config) {
        let result = match &self.mode {
            TlsMode::Off => Ok(()),
            TlsMode::Files { .. } => self.load_files(config),
            TlsMode::DevCa => self.issue_dev(config),
            TlsMode::Acme { .. } => self
                .names
                .replace(acme_names(config))
                .map_err(TlsError::from)
                .map(|()| {
                    if let Some(m) = &self.acme {
                        m.names_changed();
                    }
                }),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "TLS did not follow the new config; the old certificates keep serving");
        }
    }
}

/// The shared certificate store: every replica serves the same certificates, answers any
/// replica's HTTP-01 and TLS-ALPN-01 challenges, and takes the per-name order lease there.
fn redis_cert_store(config: &Config) -> Result<Arc<dyn cert_core::CertStore>, TlsError> {
    let crate::config::StoreKind::Redis(r) = &config.sessions.store else {
        return Err(TlsError::Config(
            "tls.store = \"redis\" needs [sessions] store = \"redis\"".into(),
        ));
    };
    // The URL may carry a password: it is read from the environment and never logged.
    let url = std::env::var(&r.url_env).map_err(|_| {
        TlsError::Config(format!(
            "the environment variable {} (the Redis URL) is not set",
            r.url_env
        ))
    })?;
    // Any URL form (one server, Sentinel, Cluster), through the same connection layer as the
    // sessions: the certificate store follows a failover as they do.
    let conn = session_core::RedisTarget::parse(&url)
        .and_then(|target| session_core::RedisConn::open(&target, r.timeout))
        .map_err(|e| TlsError::Config(format!("tls.store = \"redis\": {e}")))?;
    Ok(Arc::new(cert_core::RedisCertStore::with_connection(
        conn, &r.prefix, r.timeout,
    )))
}

/// ACME can only prove control of exact names over HTTP-01 and TLS-ALPN-01.
fn acme_names(config: &Config) -> Vec<String> {
    certificate_names(config)
        .into_iter()
        .filter(|n| !n.starts_with("*."))
        .collect()
}

/// Accepts TLS connections until shutdown: a handshake timeout (which also bounds the
/// acceptor's store lookup for a TLS-ALPN-01 validation), SNI into [`ConnectionInfo`], and no
/// HTTP on an `acme-tls/1` validation connection (SECURITY-CASES 27).
pub async fn serve_tls<M>(
    listener: TcpListener,
    acceptor: Acceptor,
    make: M,
    settings: ConnSettings,
) where
    M: MakeService,
    <M::Service as Service<Request<Incoming>>>::Future: Send + 'static,
{
    let conn_settings = settings.clone();
    server::accept_loop(listener, &settings, move |stream, remote, local, permit| {
        let acceptor = acceptor.clone();
        let make = make.clone();
        let settings = conn_settings.clone();
        // The handshake and the connection's setup run in a boxed future of their own, freed
        // once they are done: the task then holds the connection's future alone, not the
        // handshake's state (a TLS stream of its own, 1.2 KB) beside hyper's for as long as
        // the connection lives (`bench/README.md`, "Idle memory per connection").
        let setup = Box::pin(async move {
            let handshake = tokio::time::timeout(
                settings.limits.tls_handshake_timeout,
                acceptor.accept(stream),
            )
            .await;
            let tls = match handshake {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    metrics::counter!("gateway_tls_handshake_failures_total").increment(1);
                    return None;
                }
                Err(_) => {
                    metrics::counter!("gateway_tls_handshake_timeouts_total").increment(1);
                    return None;
                }
            };
            let (_, conn) = tls.get_ref();
            if cert_core::is_acme_tls_alpn(conn) {
                // The validation is the handshake itself; nothing else is served here.
                return None;
            }
            let info = ConnectionInfo {
                remote_addr: remote,
                local_addr: local.unwrap_or(remote),
                tls: true,
                sni: conn.server_name().map(Arc::from),
            };
            let svc = make.make(&info);
            Some(server::serve_connection(tls, info, svc, &settings))
        });
        async move {
            let Some(conn) = setup.await else {
                return;
            };
            metrics::gauge!("gateway_active_connections").increment(1.0);
            conn.await;
            metrics::gauge!("gateway_active_connections").decrement(1.0);
            drop(permit);
        }
    })
    .await;
}

/// The `Strict-Transport-Security` value when `[tls] hsts` is absent and plain HTTP redirects to
/// HTTPS: one year, for this host only. Never `preload`: a preload listing commits every
/// subdomain to HTTPS for months and is slow to undo, so only an operator may ask for it.
pub const DEFAULT_HSTS: &str = "max-age=31536000";

/// Checks a `Strict-Transport-Security` value against RFC 6797 §6.1 and returns it as a header
/// value. Only `max-age=<seconds>` (required), `includeSubDomains` and `preload` are accepted,
/// each at most once: a browser ignores the whole header when a directive repeats, and an
/// unknown one in a config file is a typo, not an extension.
pub fn hsts_header(value: &str) -> Result<http::HeaderValue, String> {
    let value = value.trim();
    let (mut max_age, mut subdomains, mut preload) = (false, false, false);
    for directive in value.split(';') {
        let directive = directive.trim();
        let (name, arg) = match directive.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (directive, None),
        };
        let seen = if name.eq_ignore_ascii_case("max-age") {
            let seconds = arg.map(|a| {
                a.strip_prefix('"')
                    .and_then(|a| a.strip_suffix('"'))
                    .unwrap_or(a)
            });
            match seconds {
                Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {}
                _ => return Err("max-age needs a number of seconds (max-age=31536000)".into()),
            }
            &mut max_age
        } else if name.eq_ignore_ascii_case("includeSubDomains") {
            &mut subdomains
        } else if name.eq_ignore_ascii_case("preload") {
            &mut preload
        } else if name.is_empty() {
            return Err("an empty directive (a stray `;`)".into());
        } else {
            return Err(format!(
                "unknown directive `{name}`: only max-age, includeSubDomains and preload"
            ));
        };
        if *seen {
            return Err(format!(
                "`{name}` appears twice; browsers ignore such a header"
            ));
        }
        if arg.is_some() && !name.eq_ignore_ascii_case("max-age") {
            return Err(format!("`{name}` takes no value"));
        }
        *seen = true;
    }
    if !max_age {
        return Err("max-age is required (max-age=31536000)".into());
    }
    http::HeaderValue::from_str(value)
        .map_err(|_| "not a valid header value (visible ASCII only)".into())
}

#[cfg(test)]
mod tests {
    use super::hsts_header;

    #[test]
    fn hsts_values_follow_rfc_6797() {
        for ok in [
            "max-age=31536000",
            "max-age=0",
            "max-age=\"600\"",
            " max-age=63072000; includeSubDomains; preload ",
            "includesubdomains;MAX-AGE=10",
        ] {
            assert!(hsts_header(ok).is_ok(), "{ok}");
        }
        for bad in [
            "includeSubDomains",
            "max-age=",
            "max-age=-1",
            "max-age=1y",
            "max-age=1; max-age=2",
            "max-age=1; preload; preload",
            "max-age=1;; preload",
            "max-age=1; includeSubDomains=yes",
            "max-age=1; report-uri=x",
            "max-age=1; pre\nload",
            "max-age=1; \u{e9}",
        ] {
            assert!(hsts_header(bad).is_err(), "{bad}");
        }
    }
}
