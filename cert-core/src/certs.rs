//! Parsing and generating certificates: PEM → [`CertifiedKey`], validity dates, self-signed
//! and TLS-ALPN-01 challenge certificates.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{CertificateParams, CustomExtension, DistinguishedName, DnType, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

use crate::store::StoredCert;
use crate::Error;

/// What [`CertInfo`] reads from a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// DNS names from the subjectAltName extension, lowercase.
    pub names: Vec<String>,
    /// The issuer's distinguished name, as text (e.g. `CN=Pebble Intermediate CA 1a2b3c`).
    pub issuer: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// Serial number, lowercase hex.
    pub serial: String,
}

impl CertInfo {
    /// Parses the leaf (first certificate) of a PEM chain.
    pub fn from_pem(chain_pem: &str) -> Result<Self, Error> {
        let chain = parse_chain(chain_pem)?;
        let leaf = chain
            .first()
            .ok_or_else(|| Error::InvalidCert("no certificate in PEM".into()))?;
        Self::from_der(leaf)
    }

    /// Parses one DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| Error::InvalidCert(format!("x509: {e}")))?;
        let validity = cert.validity();
        let names = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::DNSName(d) => {
                            Some(d.to_ascii_lowercase())
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            names,
            issuer: cert.issuer().to_string(),
            not_before: to_system_time(validity.not_before.timestamp()),
            not_after: to_system_time(validity.not_after.timestamp()),
            serial: cert.raw_serial_as_string().replace(':', ""),
        })
    }

    /// The total validity period.
    pub fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or_default()
    }

    /// When to renew: when `remaining_fraction` of the lifetime is left (one third by
    /// default, so a 90-day certificate renews 30 days before expiry and a 6-day one 2 days
    /// before).
    pub fn renew_at(&self, remaining_fraction: f64) -> SystemTime {
        let fraction = remaining_fraction.clamp(0.0, 1.0);
        self.not_after - self.lifetime().mul_f64(fraction)
    }

    /// Days from `now` until expiry; negative once expired.
    pub fn days_to_expiry(&self, now: SystemTime) -> f64 {
        match self.not_after.duration_since(now) {
            Ok(left) => left.as_secs_f64() / 86_400.0,
            Err(past) => -past.duration().as_secs_f64() / 86_400.0,
        }
    }
}

fn to_system_time(unix: i64) -> SystemTime {
    if unix >= 0 {
        UNIX_EPOCH + Duration::from_secs(unix.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs())
    }
}

/// Parses every certificate in a PEM string.
pub fn parse_chain(chain_pem: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let chain = rustls_pemfile::certs(&mut chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::InvalidCert(format!("PEM: {e}")))?;
    if chain.is_empty() {
        return Err(Error::InvalidCert("no certificate in PEM".into()));
    }
    Ok(chain)
}

/// Parses the first private key in a PEM string.
pub fn parse_key(key_pem: &str) -> Result<PrivateKeyDer<'static>, Error> {
    rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|e| Error::InvalidCert(format!("PEM: {e}")))?
        .ok_or_else(|| Error::InvalidCert("no private key in PEM".into()))
}

/// Builds a rustls [`CertifiedKey`] from DER parts, checking that the key matches the leaf.
pub fn certified_key_from_der(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, Error> {
    let provider = crate::tls::crypto_provider();
    let ck = CertifiedKey::from_der(chain, key, &provider)?;
    Ok(Arc::new(ck))
}

/// Builds a [`CertifiedKey`] from PEM chain and key, checking that they match.
pub fn certified_key_from_pem(chain_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, Error> {
    certified_key_from_der(parse_chain(chain_pem)?, parse_key(key_pem)?)
}

/// A certificate ready to serve, with what was read from it.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    /// The prebuilt rustls key and chain.
    pub key: Arc<CertifiedKey>,
    /// Names, issuer and validity of the leaf.
    pub info: CertInfo,
}

impl LoadedCert {
    /// Parses and checks a stored chain and key.
    pub fn from_stored(stored: &StoredCert) -> Result<Self, Error> {
        Ok(Self {
            key: certified_key_from_pem(&stored.chain_pem, &stored.key_pem)?,
            info: CertInfo::from_pem(&stored.chain_pem)?,
        })
    }
}

/// Generates an ECDSA P-256 key pair (the crate's default key type).
pub(crate) fn generate_key() -> Result<KeyPair, Error> {
    Ok(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?)
}

fn key_der(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
}

/// A self-signed certificate for `names` (P-256), for the placeholder served to unknown
/// names. Clients will not trust it, which is the point: nothing real is served.
pub fn self_signed(names: &[String]) -> Result<Arc<CertifiedKey>, Error> {
    let mut params = CertificateParams::new(names.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "cert-core placeholder");
    params.distinguished_name = dn;
    let key = generate_key()?;
    let cert = params.self_signed(&key)?;
    certified_key_from_der(vec![cert.der().clone()], key_der(&key))
}

/// id-pe-acmeIdentifier (RFC 8737 §6.1): the extension every TLS-ALPN-01 challenge
/// certificate carries, and no other certificate does.
const ACME_IDENTIFIER_OID: &str = "1.3.6.1.5.5.7.1.31";

/// The TLS-ALPN-01 challenge certificate (RFC 8737 §3): self-signed, SAN = `name`, with the
/// critical acmeIdentifier extension holding SHA-256(key authorization). Returns it ready to
/// serve, and as PEM for the shared store (so other replicas can serve it too).
pub(crate) fn tls_alpn_challenge(
    name: &str,
    key_authorization_digest: &[u8],
) -> Result<(Arc<CertifiedKey>, StoredCert), Error> {
    let mut params = CertificateParams::new(vec![name.to_owned()])?;
    params.distinguished_name = DistinguishedName::new();
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(
        key_authorization_digest,
    )];
    let key = generate_key()?;
    let cert = params.self_signed(&key)?;
    // Not `CertifiedKey::from_der`: its key/certificate consistency check parses the
    // certificate with webpki, which rejects the critical acmeIdentifier extension. The key
    // was generated just above for this certificate, so they match by construction.
    let signing_key = crate::tls::crypto_provider()
        .key_provider
        .load_private_key(key_der(&key))?;
    let stored = StoredCert {
        chain_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    };
    Ok((
        Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing_key)),
        stored,
    ))
}

/// Rebuilds a challenge certificate that another replica stored for `name`, refusing anything
/// that is not one: a single certificate whose only DNS name is `name`, with the
/// acmeIdentifier extension, signed by the key stored with it. A real certificate (or one for
/// another name) in the challenge slot is never served on an `acme-tls/1` connection.
pub(crate) fn tls_alpn_challenge_from_stored(
    name: &str,
    stored: &StoredCert,
) -> Result<Arc<CertifiedKey>, Error> {
    let chain = parse_chain(&stored.chain_pem)?;
    let [leaf] = chain.as_slice() else {
        return Err(Error::InvalidCert(
            "a challenge certificate is a single certificate".into(),
        ));
    };
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| Error::InvalidCert(format!("x509: {e}")))?;
    if !cert
        .extensions()
        .iter()
        .any(|e| e.critical && e.oid.to_id_string() == ACME_IDENTIFIER_OID)
    {
        return Err(Error::InvalidCert(
            "no acmeIdentifier extension in the challenge certificate".into(),
        ));
    }
    let info = CertInfo::from_der(leaf)?;
    if info.names != [name] {
        return Err(Error::InvalidCert(format!(
            "the challenge certificate for {name} names {:?}",
            info.names
        )));
    }
    // The consistency check `CertifiedKey::from_der` would make, without webpki (which
    // rejects the critical extension): the stored key's public half is the certificate's.
    let signing_key = crate::tls::crypto_provider()
        .key_provider
        .load_private_key(parse_key(&stored.key_pem)?)?;
    let matches = signing_key
        .public_key()
        .is_some_and(|spki| spki.as_ref() == cert.tbs_certificate.subject_pki.raw);
    if !matches {
        return Err(Error::InvalidCert(
            "the challenge key does not match its certificate".into(),
        ));
    }
    Ok(Arc::new(CertifiedKey::new(chain, signing_key)))
}

/// A CSR for `name` with a fresh P-256 key; returns (CSR DER, key PEM).
pub(crate) fn csr_for(name: &str) -> Result<(Vec<u8>, String), Error> {
    let mut params = CertificateParams::new(vec![name.to_owned()])?;
    params.distinguished_name = DistinguishedName::new();
    let key = generate_key()?;
    let csr = params.serialize_request(&key)?;
    Ok((csr.der().to_vec(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_round_trip() {
        let key = generate_key().unwrap();
        let params = CertificateParams::new(vec!["A.example.com".to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let stored = StoredCert {
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        let loaded = LoadedCert::from_stored(&stored).unwrap();
        assert_eq!(loaded.info.names, vec!["a.example.com".to_owned()]);
        assert!(loaded.info.not_after > loaded.info.not_before);

        // A key that does not match the certificate is refused.
        let other = generate_key().unwrap();
        assert!(certified_key_from_pem(&stored.chain_pem, &other.serialize_pem()).is_err());
    }

    #[test]
    fn challenge_round_trip_and_refusals() {
        let name = "a.example.com";
        let (key, stored) = tls_alpn_challenge(name, &[9u8; 32]).unwrap();
        let back = tls_alpn_challenge_from_stored(name, &stored).unwrap();
        assert_eq!(back.cert, key.cert);
        // Another name's challenge is not served for this one.
        assert!(tls_alpn_challenge_from_stored("b.example.com", &stored).is_err());
        // A key that is not the certificate's.
        let (_, other) = tls_alpn_challenge(name, &[9u8; 32]).unwrap();
        let mixed = StoredCert {
            chain_pem: stored.chain_pem.clone(),
            key_pem: other.key_pem,
        };
        assert!(tls_alpn_challenge_from_stored(name, &mixed).is_err());
        // A real certificate (no acmeIdentifier) in the challenge slot.
        let key = generate_key().unwrap();
        let cert = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let real = StoredCert {
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        assert!(tls_alpn_challenge_from_stored(name, &real).is_err());
    }

    #[test]
    fn renew_at_a_third() {
        let start = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let info = CertInfo {
            names: vec![],
            issuer: String::new(),
            not_before: start,
            not_after: start + Duration::from_secs(6 * 86_400),
            serial: String::new(),
        };
        assert_eq!(
            info.renew_at(1.0 / 3.0),
            start + Duration::from_secs(4 * 86_400)
        );
        assert!((info.days_to_expiry(start) - 6.0).abs() < 1e-9);
    }
}
