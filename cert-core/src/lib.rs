//! Certificates for the gateway: SNI resolution, TLS server configuration, and certificates
//! from PEM files, a local development CA, or ACME (HTTP-01 and TLS-ALPN-01).
//!
//! # In the request path, in order
//!
//! Before any HTTP: the HTTPS listener's [`Acceptor`] (the certificate for the SNI name, and
//! TLS-ALPN-01 validations closed after their handshake). First in the plain listener's stack:
//! [`Http01Layer`] (ACME HTTP-01 answers), then the routes or route-core's redirect to HTTPS.
//! The rest of the stack (sessions, routes, proxy) is session-core's and route-core's.
//!
//! ```text
//! TLS listener:   acceptor = manager.acceptor(Arc::new(server_config(resolver, &tls)?))
//!                 (Acceptor::new(config) without ACME)
//!                 tls = timeout(handshake_timeout, acceptor.accept(tcp))
//!                 after the handshake: if is_acme_tls_alpn(tls.get_ref().1) { close }
//!                 else serve HTTP (h2 or http/1.1 by negotiated ALPN)
//! plain listener: Http01Layer::new(responder).layer(service): GET/HEAD
//!                   /.well-known/acme-challenge/{token} answered from the responder (200
//!                   text/plain, or 404 unknown-challenge); anything else → service (the routes,
//!                   or route-core's HttpsRedirectLayer)
//! ACME:           AcmeManager::builder(acme_cfg, store, resolver, names).build()?.spawn()
//! ```
//!
//! # Pieces
//!
//! - [`CertResolver`]: rustls `ResolvesServerCert`; SNI → prebuilt `Arc<CertifiedKey>`,
//!   swapped atomically on issue/renew; wildcard fallback, then a self-signed placeholder;
//!   serves this process's TLS-ALPN-01 challenge certificates to `acme-tls/1` handshakes.
//! - [`server_config`] + [`TlsConfig`]: TLS 1.2/1.3, ALPN, session cache and tickets, ring.
//! - [`Acceptor`]: the HTTPS listener's acceptor (in place of `tokio_rustls::TlsAcceptor`);
//!   with a shared store it also answers TLS-ALPN-01 validations for orders another replica
//!   placed ([`AcmeManager::acceptor`]).
//! - [`is_acme_tls_alpn`]: the listener closes such connections after the handshake.
//! - [`ChallengeResponder`]: HTTP-01 answers for the plain listener; [`Http01Layer`] puts
//!   them in front of its service.
//! - [`AcmeManager`]: background ordering and renewal over ACME (instant-acme).
//! - [`CertStore`] ([`DirStore`], [`MemoryStore`], `RedisCertStore` with the `redis`
//!   feature): certificates, keys, ACME accounts, pending challenges and order leases.
//! - [`FileCert`] and [`DevCa`]: the `files` and `dev-ca` sources.
//!
//! # Several replicas
//!
//! Replicas that share one store (`RedisCertStore`) act as one: the order lease lets one of
//! them order a name, the others install its certificate from the store, and any of them
//! answers the validation, whichever the CA reaches. For HTTP-01 the ordering replica
//! publishes the key authorization in the store and every plain listener's
//! [`ChallengeResponder`] looks it up. For TLS-ALPN-01 it publishes the challenge certificate
//! (and its throwaway key) in the store for the order's duration, and every HTTPS listener's
//! [`Acceptor`] serves it to a validation handshake (ALPN exactly `acme-tls/1`, RFC 8737) for
//! a managed name. Only those handshakes reach the store, at most one lookup per name per
//! [`DEFAULT_LOOKUP_INTERVAL`]; every other handshake is untouched. Both answers are removed
//! when the order ends and expire with the order timeout.
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
//! let _acceptor = cert_core::Acceptor::new(Arc::new(config));
//! println!("{}", ca.trust_instructions());
//! # Ok(())
//! # }
//! ```
//!
//! And with ACME, in the binary (names come from the route table). The HTTPS listener's
//! acceptor comes from the manager, so the replica answers TLS-ALPN-01 validations for
//! orders other replicas placed in the same store:
//!
//! ```no_run
//! use std::sync::Arc;
//! use cert_core::{server_config, AcmeConfig, AcmeManager, CertResolver, DirStore, NameSet, TlsConfig};
//!
//! # async fn run(listener: tokio::net::TcpListener) -> Result<(), cert_core::Error> {
//! let store = Arc::new(DirStore::open("/var/lib/gateway/certs")?); // or a RedisCertStore
//! let resolver = Arc::new(CertResolver::new()?);
//! let names = NameSet::new(["example.com", "api.example.com"])?;
//! let manager = AcmeManager::builder(AcmeConfig::default(), store, resolver.clone(), Arc::new(names.clone()))
//!     .build()?;
//! manager.load_stored().await?; // local disk only: serve stored certificates at once
//! let _task = manager.spawn();  // never blocks startup
//! let responder = manager.challenge_responder(); // give to the plain listener
//! let tls = TlsConfig { acme_tls_alpn: true, ..TlsConfig::default() };
//! let acceptor = manager.acceptor(Arc::new(server_config(resolver, &tls)?));
//!
//! let (tcp, _) = listener.accept().await.map_err(|e| cert_core::Error::Config(e.to_string()))?;
//! let handshake = tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp));
//! if let Ok(Ok(stream)) = handshake.await {
//!     if cert_core::is_acme_tls_alpn(stream.get_ref().1) {
//!         return Ok(()); // a validation: the handshake was the answer; no HTTP
//!     }
//!     // serve HTTP on `stream`
//! }
//! # let _ = responder; Ok(())
//! # }
//! ```

#![deny(rust_2018_idioms)]
#![forbid(unsafe_code)]

mod acceptor;
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

pub use acceptor::{Acceptor, DEFAULT_LOOKUP_INTERVAL, DEFAULT_LOOKUP_TIMEOUT};
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
