//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in cert-core.
///
/// Expected conditions on the TLS hot path (an unknown SNI, no pending challenge) are not
/// errors: the resolver falls back or refuses the handshake. These variants are for loading,
/// storing and issuing certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem operation failed. `op` says what was being done to `path`.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being attempted ("create", "rename", "read"...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying OS error.
        #[source]
        source: std::io::Error,
    },
    /// PEM or DER input held no usable certificate or private key, or the key does not match
    /// the certificate.
    #[error("invalid certificate or key: {0}")]
    InvalidCert(String),
    /// rustls refused a configuration or key.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// Generating a key, certificate or CSR with rcgen failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// The ACME server answered with an error, or talking to it failed.
    #[error("ACME: {0}")]
    Acme(#[from] instant_acme::Error),
    /// An ACME order reached a state that cannot yield a certificate (for example a failed
    /// validation). `detail` carries the server's explanation when it gave one.
    #[error("ACME order for {name} failed: {detail}")]
    OrderFailed {
        /// The name the order was for.
        name: String,
        /// What went wrong, in the server's words where available.
        detail: String,
    },
    /// The name is not in the configured set, so no order or storage write is made for it
    /// (security case 28).
    #[error("{0:?} is not a configured name")]
    NameNotAllowed(String),
    /// The string is not a DNS name this crate accepts (see [`crate::normalize_name`]).
    #[error("invalid DNS name {0:?}")]
    InvalidName(String),
    /// Another owner (replica) holds the order lease for this name; it is ordering now.
    #[error("another owner holds the order lease for {0}")]
    Leased(String),
    /// A storage backend failed (for backends that are not a plain directory, e.g. Redis).
    #[error("certificate store: {0}")]
    Store(String),
    /// Stored data could not be decoded.
    #[error("stored {what} is corrupt: {source}")]
    Corrupt {
        /// What was being decoded.
        what: &'static str,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// The configuration is inconsistent (for example no challenge type enabled).
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
