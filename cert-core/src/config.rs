//! The crate's typed configuration. Parsing files and the environment is the binary's job.

use std::path::PathBuf;

use crate::{AcmeConfig, FileCert, TlsConfig};

/// Everything cert-core needs to know, as typed values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// How TLS is served (versions, ALPN, resumption).
    pub tls: TlsConfig,
    /// Where certificates come from.
    pub source: CertSource,
}

/// Where certificates come from.
#[derive(Debug, Clone, PartialEq)]
pub enum CertSource {
    /// PEM files named in the config, re-read on reload ([`FileCert::load`]).
    Files(Vec<FileCert>),
    /// Issued and renewed over ACME ([`crate::AcmeManager`]).
    Acme(AcmeConfig),
    /// Issued by a local development CA kept in `dir` ([`crate::DevCa`]).
    DevCa {
        /// Directory for the CA's certificate and key (created 0700).
        dir: PathBuf,
    },
}

impl Default for CertSource {
    /// ACME against Let's Encrypt with default settings.
    fn default() -> Self {
        Self::Acme(AcmeConfig::default())
    }
}
