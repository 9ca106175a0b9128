//! The `files` certificate source: PEM files named in the config.

use std::fs;
use std::path::PathBuf;

use crate::certs::{certified_key_from_pem, CertInfo, LoadedCert};
use crate::Error;

/// A certificate chain and key read from PEM files.
///
/// [`load`](Self::load) reads the files every time it is called, so calling it again on a
/// config reload (SIGHUP) picks up rotated files; publish the result with
/// [`crate::CertResolver::insert_loaded`]. A failed reload leaves whatever the resolver
/// already serves untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCert {
    /// PEM file with the certificate chain, leaf first.
    pub cert_path: PathBuf,
    /// PEM file with the private key (PKCS#8, SEC1 or PKCS#1).
    pub key_path: PathBuf,
}

impl FileCert {
    /// Reads and checks the files (blocking I/O; small files).
    pub fn load(&self) -> Result<LoadedCert, Error> {
        let chain = fs::read_to_string(&self.cert_path)
            .map_err(|e| Error::io("read", &self.cert_path, e))?;
        let key =
            fs::read_to_string(&self.key_path).map_err(|e| Error::io("read", &self.key_path, e))?;
        Ok(LoadedCert {
            key: certified_key_from_pem(&chain, &key)?,
            info: CertInfo::from_pem(&chain)?,
        })
    }
}
