//! `[tls]`: the certificate source, where ACME keeps its state, and HSTS.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::listen::Listen;
use super::raw;
use super::sessions::{Sessions, StoreKind};
use super::validate::{ConfigIssue, Validator};

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

impl Validator<'_> {
    pub(super) fn tls(
        &mut self,
        t: raw::RawTls,
        base: &Path,
        listen: &Listen,
        sessions: &Sessions,
    ) -> Tls {
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
}
