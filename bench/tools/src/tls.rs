//! The benchmark certificate and the TLS client configuration.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Resumption, Tls12ClientSessionValue,
    Tls13ClientSessionValue,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::NamedGroup;
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::Res;

/// Writes `cert.pem` (self-signed, ECDSA P-256) and `key.pem` (PKCS#8) into `out`. Both
/// proxies serve this same pair.
pub(crate) fn write_cert(names: &[String], out: &Path) -> Res<()> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let params = rcgen::CertificateParams::new(names.to_vec())?;
    let cert = params.self_signed(&key)?;
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("cert.pem"), cert.pem())?;
    std::fs::write(out.join("key.pem"), key.serialize_pem())?;
    Ok(())
}

/// Accepts exactly one certificate and checks no signature.
///
/// The figure that matters is the server's CPU per handshake; on two cores the client shares
/// the machine with the servers, so it skips the two ECDSA verifications a browser would do.
/// Comparing the DER still proves that the expected server answered.
#[derive(Debug)]
struct Pinned {
    der: Vec<u8>,
    schemes: Vec<SignatureScheme>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.der.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the server sent another certificate".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

fn read_cert(path: &Path) -> Res<Vec<u8>> {
    let pem = std::fs::read_to_string(path)?;
    let b64: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    decode_base64(&b64).ok_or_else(|| format!("{}: no PEM certificate", path.display()).into())
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// A TLS 1.3-only client (ring, X25519 first) that accepts the certificate in `cert`.
/// `resume` keeps TLS 1.3 tickets; otherwise every handshake is a full one.
pub(crate) fn client_config(cert: &Path, resume: bool, alpn: &[String]) -> Res<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let schemes = provider
        .signature_verification_algorithms
        .supported_schemes();
    let verifier = Arc::new(Pinned {
        der: read_cert(cert)?,
        schemes,
    });
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    cfg.resumption = if resume {
        Resumption::store(Arc::new(TicketPool::default()))
    } else {
        Resumption::disabled()
    };
    Ok(Arc::new(cfg))
}

/// A session store that keeps up to 4096 TLS 1.3 tickets per server (rustls' in-memory
/// cache keeps 8). With 50 handshakes in flight, 8 run dry and a "resumed" run would be
/// half full handshakes. Each ticket is still used at most once, newest first.
#[derive(Debug)]
struct TicketPool {
    inner: ClientSessionMemoryCache,
    tls13: Mutex<HashMap<ServerName<'static>, VecDeque<Tls13ClientSessionValue>>>,
}

impl Default for TicketPool {
    fn default() -> Self {
        TicketPool {
            inner: ClientSessionMemoryCache::new(64),
            tls13: Mutex::new(HashMap::new()),
        }
    }
}

impl ClientSessionStore for TicketPool {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.inner.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.inner.kx_hint(server_name)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.inner.set_tls12_session(server_name, value);
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.inner.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.inner.remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        let mut map = self.tls13.lock();
        let q = map.entry(server_name).or_default();
        if q.len() >= 4096 {
            q.pop_front();
        }
        q.push_back(value);
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        self.tls13
            .lock()
            .get_mut(server_name)
            .and_then(VecDeque::pop_back)
    }
}
