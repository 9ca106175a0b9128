//! Verification keys: a configured one ([`StaticKey`]: an HMAC secret, a PEM public key or an
//! X.509 certificate) or the keys of a JWKS ([`parse_jwks`]), each tied to the algorithms it
//! may verify.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// A JWT signature algorithm, as `type` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// ECDSA P-521 with SHA-512 (verified with RustCrypto's `p521`: ring has no P-521).
    ES512,
    /// Ed25519 (`Ed25519`, Hasura's name, or `EdDSA`, the JOSE name).
    #[serde(alias = "Ed25519")]
    EdDSA,
}

impl JwtAlgorithm {
    /// jsonwebtoken's algorithm; `None` for ES512, which it lacks (see [`Material::P521`]).
    pub(crate) fn verifier(self) -> Option<Algorithm> {
        Some(match self {
            JwtAlgorithm::HS256 => Algorithm::HS256,
            JwtAlgorithm::HS384 => Algorithm::HS384,
            JwtAlgorithm::HS512 => Algorithm::HS512,
            JwtAlgorithm::RS256 => Algorithm::RS256,
            JwtAlgorithm::RS384 => Algorithm::RS384,
            JwtAlgorithm::RS512 => Algorithm::RS512,
            JwtAlgorithm::PS256 => Algorithm::PS256,
            JwtAlgorithm::PS384 => Algorithm::PS384,
            JwtAlgorithm::PS512 => Algorithm::PS512,
            JwtAlgorithm::ES256 => Algorithm::ES256,
            JwtAlgorithm::ES384 => Algorithm::ES384,
            JwtAlgorithm::EdDSA => Algorithm::EdDSA,
            JwtAlgorithm::ES512 => return None,
        })
    }
}

const RSA_ALGS: &[JwtAlgorithm] = &[
    JwtAlgorithm::RS256,
    JwtAlgorithm::RS384,
    JwtAlgorithm::RS512,
    JwtAlgorithm::PS256,
    JwtAlgorithm::PS384,
    JwtAlgorithm::PS512,
];

/// The public key (or HMAC secret) itself.
pub(crate) enum Material {
    /// Every algorithm but ES512: verified by jsonwebtoken (ring).
    Jwt(DecodingKey),
    /// A P-521 key: ES512, verified with RustCrypto's `p521`.
    P521(p521::ecdsa::VerifyingKey),
}

fn p521_key(sec1_point: &[u8]) -> Result<Material, String> {
    // Parses only a point on P-521, so a key of another curve cannot pass.
    p521::ecdsa::VerifyingKey::from_sec1_bytes(sec1_point)
        .map(Material::P521)
        .map_err(|_| "not a P-521 public key".to_owned())
}

/// A key that verifies tokens, and the one algorithm (or, for a JWK without `alg`, the
/// algorithms of its key type) it accepts.
pub(crate) struct VerifyKey {
    pub(crate) kid: Option<Arc<str>>,
    pub(crate) algorithms: Vec<JwtAlgorithm>,
    pub(crate) key: Material,
    /// SHA-256 of the key material: a cached identity remembers the key that verified it, and
    /// is dropped once no key with this fingerprint is in the set (a rotated key reusing a
    /// `kid` is another key).
    pub(crate) fingerprint: [u8; 32],
}

impl VerifyKey {
    pub(crate) fn allows(&self, alg: JwtAlgorithm) -> bool {
        self.algorithms.contains(&alg)
    }
}

/// The configured `key` for `type`.
pub(crate) struct StaticKey(pub(crate) Arc<VerifyKey>);

/// The shortest HMAC secret accepted (256 bits, as Hasura GraphQL Engine requires).
pub(crate) const MIN_HMAC_KEY_LEN: usize = 32;

impl StaticKey {
    /// Parses `key` for `alg`. The message never echoes the key.
    pub(crate) fn parse(alg: JwtAlgorithm, key: &str) -> Result<StaticKey, String> {
        let material = match alg {
            JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512 => {
                if key.len() < MIN_HMAC_KEY_LEN {
                    // Hasura's rule too: a short shared secret can be found by brute force
                    // from one token, and then anyone can mint tokens.
                    return Err(format!(
                        "the HMAC secret must be at least {MIN_HMAC_KEY_LEN} characters"
                    ));
                }
                if key.contains("-----BEGIN") {
                    // A public key as an HMAC secret is the algorithm-confusion setup: anyone
                    // holding the public key could mint tokens.
                    return Err("an HS* key is a shared secret, not a PEM key".into());
                }
                Material::Jwt(DecodingKey::from_secret(key.as_bytes()))
            }
            _ => public_key(alg, key)?,
        };
        let fingerprint = Sha256::digest(key.as_bytes()).into();
        Ok(StaticKey(Arc::new(VerifyKey {
            kid: None,
            algorithms: vec![alg],
            key: material,
            fingerprint,
        })))
    }
}

fn is_rsa(alg: JwtAlgorithm) -> bool {
    RSA_ALGS.contains(&alg)
}

/// A PEM public key (`PUBLIC KEY`, `RSA PUBLIC KEY`) or certificate, checked against `alg`'s
/// key type and curve.
fn public_key(alg: JwtAlgorithm, pem_text: &str) -> Result<Material, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.trim().as_bytes())
        .map_err(|_| "not a PEM public key or certificate".to_owned())?;
    match pem.label.as_str() {
        "RSA PUBLIC KEY" if is_rsa(alg) => {
            Ok(Material::Jwt(DecodingKey::from_rsa_der(&pem.contents)))
        }
        "RSA PUBLIC KEY" => Err(format!("an RSA key cannot verify {alg:?}")),
        "PUBLIC KEY" => {
            let (_, spki) = SubjectPublicKeyInfo::from_der(&pem.contents)
                .map_err(|_| "the PUBLIC KEY does not parse".to_owned())?;
            spki_key(alg, &spki)
        }
        "CERTIFICATE" => {
            let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents)
                .map_err(|_| "the CERTIFICATE does not parse".to_owned())?;
            spki_key(alg, cert.public_key())
        }
        "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
            Err("this is a private key: give the public key or certificate".into())
        }
        other => Err(format!("unexpected PEM block {other:?}")),
    }
}

fn spki_key(alg: JwtAlgorithm, spki: &SubjectPublicKeyInfo<'_>) -> Result<Material, String> {
    let parsed = spki
        .parsed()
        .map_err(|_| "the public key does not parse".to_owned())?;
    let raw = &spki.subject_public_key.data;
    let jwt = |k: DecodingKey| Ok(Material::Jwt(k));
    match (alg, parsed) {
        (alg, PublicKey::RSA(_)) if is_rsa(alg) => jwt(DecodingKey::from_rsa_der(raw)),
        (JwtAlgorithm::ES256, PublicKey::EC(p)) if p.key_size() == 256 => {
            jwt(DecodingKey::from_ec_der(raw))
        }
        (JwtAlgorithm::ES384, PublicKey::EC(p)) if p.key_size() == 384 => {
            jwt(DecodingKey::from_ec_der(raw))
        }
        (JwtAlgorithm::ES512, PublicKey::EC(_)) => {
            p521_key(raw).map_err(|_| format!("the key's type or curve does not match {alg:?}"))
        }
        (JwtAlgorithm::EdDSA, PublicKey::Unknown(_))
            if spki.algorithm.algorithm == x509_parser::oid_registry::OID_SIG_ED25519 =>
        {
            jwt(DecodingKey::from_ed_der(raw))
        }
        _ => Err(format!("the key's type or curve does not match {alg:?}")),
    }
}

/// One key of a JWKS document, as far as we read it.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    key_use: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

/// The usable keys of a JWKS document (`{"keys": [...]}`), and one warning per key skipped
/// (an encryption key, an unsupported type or curve, missing parameters). `Err` when the
/// document itself is not a key set.
pub(crate) fn parse_jwks(body: &[u8]) -> Result<(Vec<Arc<VerifyKey>>, Vec<String>), String> {
    #[derive(Deserialize)]
    struct Doc {
        keys: Vec<serde_json::Value>,
    }
    let doc: Doc = serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    let mut warnings = Vec::new();
    for (i, value) in doc.keys.iter().enumerate() {
        match jwk_key(value) {
            Ok(k) => keys.push(Arc::new(k)),
            Err(why) => warnings.push(format!("key {i} skipped: {why}")),
        }
    }
    Ok((keys, warnings))
}

fn jwk_key(value: &serde_json::Value) -> Result<VerifyKey, String> {
    use base64::Engine as _;
    let jwk: RawJwk =
        serde_json::from_value(value.clone()).map_err(|e| format!("not a JWK: {e}"))?;
    let kid_note = jwk.kid.as_deref().unwrap_or("(no kid)");
    if jwk.key_use.as_deref().is_some_and(|u| u != "sig") {
        return Err(format!("{kid_note}: `use` is not \"sig\""));
    }
    let named = match jwk.alg.as_deref() {
        None => None,
        Some(a) => Some(
            serde_json::from_value::<JwtAlgorithm>(serde_json::Value::String(a.to_owned()))
                .map_err(|_| format!("{kid_note}: unsupported alg {a:?}"))?,
        ),
    };
    let need = |v: &Option<String>, name: &str| {
        v.clone()
            .ok_or_else(|| format!("{kid_note}: missing `{name}`"))
    };
    let bad = |e: jsonwebtoken::errors::Error| format!("{kid_note}: bad key parameters: {e}");
    let jwt = Material::Jwt;
    let (key, family) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => (
            jwt(
                DecodingKey::from_rsa_components(&need(&jwk.n, "n")?, &need(&jwk.e, "e")?)
                    .map_err(bad)?,
            ),
            RSA_ALGS.to_vec(),
        ),
        ("EC", Some("P-256")) => (
            jwt(
                DecodingKey::from_ec_components(&need(&jwk.x, "x")?, &need(&jwk.y, "y")?)
                    .map_err(bad)?,
            ),
            vec![JwtAlgorithm::ES256],
        ),
        ("EC", Some("P-384")) => (
            jwt(
                DecodingKey::from_ec_components(&need(&jwk.x, "x")?, &need(&jwk.y, "y")?)
                    .map_err(bad)?,
            ),
            vec![JwtAlgorithm::ES384],
        ),
        ("EC", Some("P-521")) => {
            let coord = |v: &Option<String>, name: &str| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(need(v, name)?)
                    .ok()
                    .filter(|b| b.len() == 66)
                    .ok_or_else(|| format!("{kid_note}: `{name}` is not a P-521 coordinate"))
            };
            let mut point = vec![0x04];
            point.extend(coord(&jwk.x, "x")?);
            point.extend(coord(&jwk.y, "y")?);
            (
                p521_key(&point).map_err(|m| format!("{kid_note}: {m}"))?,
                vec![JwtAlgorithm::ES512],
            )
        }
        ("OKP", Some("Ed25519")) => (
            jwt(DecodingKey::from_ed_components(&need(&jwk.x, "x")?).map_err(bad)?),
            vec![JwtAlgorithm::EdDSA],
        ),
        (kty, crv) => {
            return Err(format!(
                "{kid_note}: unsupported key type {kty:?}{}",
                crv.map(|c| format!(" curve {c:?}")).unwrap_or_default()
            ))
        }
    };
    let algorithms = match named {
        Some(a) if family.contains(&a) => vec![a],
        Some(a) => return Err(format!("{kid_note}: alg {a:?} does not fit key type")),
        // Without `alg`, the key type decides (RFC 7517 §4.4 makes `alg` optional).
        None => family,
    };
    let fingerprint = Sha256::digest(serde_json::to_vec(value).unwrap_or_default()).into();
    Ok(VerifyKey {
        kid: jwk.kid.map(Arc::from),
        algorithms,
        key,
        fingerprint,
    })
}
