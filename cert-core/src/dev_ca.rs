//! The `dev-ca` certificate source: a local CA for the quickstart.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::{Duration as TimeDuration, OffsetDateTime};

use crate::certs::{generate_key, LoadedCert};
use crate::store::dir::{ensure_private_dir, write_private_file};
use crate::store::StoredCert;
use crate::Error;

const CA_CERT_FILE: &str = "dev-ca.pem";
const CA_KEY_FILE: &str = "dev-ca.key.pem";

/// A local certificate authority, created once and kept on disk, that issues leaf
/// certificates for development names (the quickstart's `*.localhost` hosts, say).
///
/// Its key is stored 0600 in a 0700 directory, written atomically. It is a real CA: anyone
/// with its key can mint certificates your machine trusts once you install it, so keep the
/// directory private and never use it in production.
pub struct DevCa {
    dir: PathBuf,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa").field("dir", &self.dir).finish()
    }
}

fn random_serial() -> SerialNumber {
    // 16 random bytes, top bit cleared so the DER INTEGER stays positive.
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

impl DevCa {
    /// Loads the CA from `dir`, or creates it there (CA valid 10 years). Blocking I/O.
    pub fn load_or_create(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let dir = dir.into();
        ensure_private_dir(&dir)?;
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        match (
            fs::read_to_string(&cert_path),
            fs::read_to_string(&key_path),
        ) {
            (Ok(cert_pem), Ok(key_pem)) => {
                let key = KeyPair::from_pem(&key_pem)?;
                let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
                Ok(Self {
                    dir,
                    cert_pem,
                    issuer,
                })
            }
            (Err(e), _) | (_, Err(e)) if e.kind() != ErrorKind::NotFound => {
                Err(Error::io("read", &dir, e))
            }
            _ => Self::create(dir, &cert_path, &key_path),
        }
    }

    fn create(dir: PathBuf, cert_path: &Path, key_path: &Path) -> Result<Self, Error> {
        let key = generate_key()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "gateway development CA");
        dn.push(DnType::OrganizationName, "gateway dev-ca (local only)");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - TimeDuration::hours(1);
        params.not_after = now + TimeDuration::days(3650);
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key)?;
        // Key first: a crash in between leaves no certificate, so the next start recreates
        // both instead of loading a certificate without its key.
        write_private_file(key_path, key.serialize_pem().as_bytes())?;
        write_private_file(cert_path, cert.pem().as_bytes())?;
        Ok(Self {
            dir,
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM (public; this is what to trust).
    pub fn ca_cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Where the CA certificate is stored.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join(CA_CERT_FILE)
    }

    /// Issues a leaf certificate (P-256, valid 365 days, serverAuth) for `names`. Nothing is
    /// written to disk; store it with a [`crate::CertStore`] if it should persist.
    pub fn issue(&self, names: &[String]) -> Result<StoredCert, Error> {
        let mut params = CertificateParams::new(names.to_vec())?;
        let mut dn = DistinguishedName::new();
        if let Some(first) = names.first() {
            dn.push(DnType::CommonName, first.as_str());
        }
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - TimeDuration::hours(1);
        // Under 398 days, which some clients require even of private CAs' leaves.
        params.not_after = now + TimeDuration::days(365);
        params.serial_number = Some(random_serial());
        let key = generate_key()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(StoredCert {
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// [`issue`](Self::issue), parsed and ready to serve.
    pub fn issue_loaded(&self, names: &[String]) -> Result<LoadedCert, Error> {
        LoadedCert::from_stored(&self.issue(names)?)
    }

    /// Human instructions to trust this CA (printed by the quickstart).
    pub fn trust_instructions(&self) -> String {
        let path = self.ca_cert_path();
        let p = path.display();
        format!(
            "The gateway serves certificates from a local development CA.\n\
             Its certificate is {p}\n\
             To trust it (development machines only; remove it when done):\n\
             \x20 curl:            curl --cacert {p} https://<host>/\n\
             \x20 Debian/Ubuntu:   sudo cp {p} /usr/local/share/ca-certificates/gateway-dev-ca.crt && sudo update-ca-certificates\n\
             \x20 Fedora/RHEL:     sudo cp {p} /etc/pki/ca-trust/source/anchors/gateway-dev-ca.pem && sudo update-ca-trust\n\
             \x20 macOS:           sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {p}\n\
             \x20 Windows:         certutil -addstore -f ROOT {p}\n\
             \x20 Firefox:         Settings > Privacy & Security > Certificates > View Certificates > Authorities > Import\n\
             Anyone holding the CA key (next to that file) can impersonate any site to this machine once trusted.\n"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use std::os::unix::fs::MetadataExt;
    use std::sync::Arc;

    #[test]
    fn created_once_and_issues() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        let ca = DevCa::load_or_create(&dir).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(CA_KEY_FILE)), 0o600);
        let again = DevCa::load_or_create(&dir).unwrap();
        assert_eq!(ca.ca_cert_pem(), again.ca_cert_pem());

        let leaf = again
            .issue_loaded(&["app.localhost".to_owned(), "*.app.localhost".to_owned()])
            .unwrap();
        assert_eq!(leaf.info.names, vec!["app.localhost", "*.app.localhost"]);
        assert!(leaf.info.issuer.contains("gateway development CA"));

        // The leaf verifies against the CA with a real verifier.
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(
                crate::certs::parse_chain(ca.ca_cert_pem())
                    .unwrap()
                    .remove(0),
            )
            .unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            crate::tls::crypto_provider(),
        )
        .build()
        .unwrap();
        let name = rustls::pki_types::ServerName::try_from("x.app.localhost").unwrap();
        verifier
            .verify_server_cert(
                &leaf.key.cert[0],
                &[],
                &name,
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .unwrap();
        assert!(ca.trust_instructions().contains("dev-ca.pem"));
    }
}
