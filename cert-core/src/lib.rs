//! Certificates for the gateway: SNI resolution, TLS server configuration, and certificates
//! from PEM files, a local development CA, or ACME (HTTP-01 and TLS-ALPN-01).
//!
//! # Pieces
//!
//! - [`CertResolver`]: rustls `ResolvesServerCert`; SNI → prebuilt `Arc<CertifiedKey>`,
//!   swapped atomically on issue/renew; wildcard fallback, then a self-signed placeholder;
//!   serves TLS-ALPN-01 challenge certificates to `acme-tls/1` handshakes.
//! - [`server_config`] + [`TlsConfig`]: TLS 1.2/1.3, ALPN, session cache and tickets, ring.
//! - [`is_acme_tls_alpn`]: the listener closes such connections after the handshake.
//! - [`ChallengeResponder`]: HTTP-01 answers for the plain listener; [`Http01Layer`] puts
//!   them in front of its service.
//! - [`AcmeManager`]: background ordering and renewal over ACME (instant-acme).
//! - [`CertStore`] ([`DirStore`], [`MemoryStore`]): certificates, keys, ACME accounts,
//!   pending challenges and order leases.
//! - [`FileCert`] and [`DevCa`]: the `files` and `dev-ca` sources.
//!
//! # Wiring it into listeners
//!
//! ```text
//! TLS listener:   acceptor = TlsAcceptor::from(Arc::new(server_config(resolver, &tls)?))
//!                 after the handshake: if is_acme_tls_alpn(stream.get_ref().1) { close }
//!                 else serve HTTP (h2 or http/1.1 by negotiated ALPN)
//! plain listener: Http01Layer::new(responder).layer(service): GET/HEAD
//!                   /.well-known/acme-challenge/{token} answered from the responder (200
//!                   text/plain, or 404 unknown-challenge); anything else → service (the routes,
//!                   or route-core's HttpsRedirectLayer)
//! ACME:           AcmeManager::builder(acme_cfg, store, resolver, names).build()?.spawn()
//! ```
//!
//! # Example
//!
//! A development CA issues a certificate that the resolver then serves:
//!
//! ```
//! use std::sync::Arc;
//! use cert_core::{server_config, CertResolver, DevCa, TlsConfig};
//!
//! # fn main() -> Result<(), cert_core::Error> {
//! # let tmp = tempfile::tempdir().map_err(|e| cert_core::Error::Config(e.to_string()))?;
//! let ca = DevCa::load_or_create(tmp.path().join("dev-ca"))?;
//! let resolver = Arc::new(CertResolver::new()?);
//! resolver.insert_loaded(&ca.issue_loaded(&["app.localhost".to_owned()])?);
//! assert!(resolver.has_cert("app.localhost"));
//!
//! let config = server_config(resolver.clone(), &TlsConfig::default())?;
//! let _acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
//! println!("{}", ca.trust_instructions());
//! # Ok(())
//! # }
//! ```
//!
//! And with ACME, in the binary (names come from the route table):
//!
//! ```no_run
//! use std::sync::Arc;
//! use cert_core::{server_config, AcmeConfig, AcmeManager, CertResolver, DirStore, NameSet, TlsConfig};
//!
//! # async fn run() -> Result<(), cert_core::Error> {
//! let store = Arc::new(DirStore::open("/var/lib/gateway/certs")?);
//! let resolver = Arc::new(CertResolver::new()?);
//! let names = NameSet::new(["example.com", "api.example.com"])?;
//! let manager = AcmeManager::builder(AcmeConfig::default(), store, resolver.clone(), Arc::new(names.clone()))
//!     .build()?;
//! manager.load_stored().await?; // local disk only: serve stored certificates at once
//! let _task = manager.spawn();  // never blocks startup
//! let responder = manager.challenge_responder(); // give to the plain listener
//! let tls = TlsConfig { acme_tls_alpn: true, ..TlsConfig::default() };
//! let _config = server_config(resolver, &tls)?;
//! # let _ = responder; Ok(())
//! # }
//! ```

#![deny(rust_2018_idioms)]
#![forbid(unsafe_code)]

mod acme;
mod certs;
mod challenge;
mod clock;
mod config;
mod dev_ca;
mod error;
mod files;
mod http01;
mod names;
mod resolver;
mod store;
mod tls;

pub use acme::{
    list_stored, AcmeConfig, AcmeManager, AcmeManagerBuilder, CertStatus, LETS_ENCRYPT_DIRECTORY,
};
pub use certs::{
    certified_key_from_der, certified_key_from_pem, parse_chain, parse_key, self_signed, CertInfo,
    LoadedCert,
};
pub use challenge::{ChallengeResponder, HTTP01_PATH_PREFIX};
pub use clock::{Clock, SystemClock};
pub use config::{CertSource, Config};
pub use dev_ca::DevCa;
pub use error::Error;
pub use files::FileCert;
pub use http01::{Http01, Http01Future, Http01Layer, REJECTIONS};
pub use names::{normalize_name, ManagedNames, NameSet};
pub use resolver::CertResolver;
#[cfg(feature = "redis")]
pub use store::RedisCertStore;
pub use store::{BoxFuture, CertStore, DirStore, MemoryStore, StoredCert, DIR_MODE, FILE_MODE};
pub use tls::{crypto_provider, is_acme_tls_alpn, server_config, TlsConfig, ACME_TLS_ALPN};

/// Re-exported so callers name the same rustls types this crate uses.
pub use rustls;
