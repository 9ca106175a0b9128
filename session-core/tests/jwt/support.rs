//! What every test here shares: the fixture keys, token minting, the resolver calls, and the
//! JWKS server (axum over HTTPS, its certificate from a private CA made with rcgen).

pub(crate) use std::sync::atomic::{AtomicUsize, Ordering};
pub(crate) use std::sync::Arc;
pub(crate) use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
pub(crate) use base64::engine::general_purpose::URL_SAFE_NO_PAD;
pub(crate) use base64::Engine as _;
pub(crate) use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
pub(crate) use serde_json::{json, Value};
use session_core::http_client::{HttpClient, HttpClientConfig};
pub(crate) use session_core::jwt::{JwtConfig, JwtHeader, JwtResolver};
pub(crate) use session_core::{
    Credential, CredentialSource, Identity, ResolveError, ResolveRequest, Resolver, Token,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

pub(crate) const NS: &str = "https://hasura.io/jwt/claims";

pub(crate) fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/jwt/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub(crate) fn pem_der(pem: &str) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents
}

/// A signing key and its public half (PEM), from the fixtures.
pub(crate) struct TestKey {
    pub(crate) alg: Algorithm,
    pub(crate) encoding: EncodingKey,
    pub(crate) public_pem: String,
}

pub(crate) fn key(name: &str, alg: Algorithm) -> TestKey {
    let der = pem_der(&fixture(&format!("{name}.key")));
    let encoding = match alg {
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => EncodingKey::from_rsa_der(&der),
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_der(&der),
        Algorithm::EdDSA => EncodingKey::from_ed_der(&der),
        _ => unreachable!(),
    };
    TestKey {
        alg,
        encoding,
        public_pem: fixture(&format!("{name}.pub")),
    }
}

impl TestKey {
    /// The public key as a JWK with `kid`.
    pub(crate) fn jwk(&self, kid: &str) -> Value {
        jwk(&self.public_pem, kid)
    }

    pub(crate) fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// A PEM public key as a JWK with `kid`.
pub(crate) fn jwk(public_pem: &str, kid: &str) -> Value {
    {
        let der = pem_der(public_pem);
        let (_, spki) = SubjectPublicKeyInfo::from_der(&der).unwrap();
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let raw = &spki.subject_public_key.data;
        match spki.parsed().unwrap() {
            PublicKey::RSA(rsa) => {
                let trim = |b: &[u8]| {
                    b.iter()
                        .skip_while(|&&x| x == 0)
                        .copied()
                        .collect::<Vec<_>>()
                };
                json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                       "n": b64(&trim(rsa.modulus)), "e": b64(&trim(rsa.exponent))})
            }
            PublicKey::EC(_) => {
                let half = (raw.len() - 1) / 2;
                let crv = match half {
                    32 => "P-256",
                    48 => "P-384",
                    _ => "P-521",
                };
                json!({"kty": "EC", "kid": kid, "crv": crv,
                       "x": b64(&raw[1..1 + half]), "y": b64(&raw[1 + half..])})
            }
            _ => json!({"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(raw)}),
        }
    }
}

/// An ES512 (P-521) token, signed with RustCrypto's `p521` (jsonwebtoken 9 cannot).
pub(crate) fn es512_sign(kid: Option<&str>, claims: &Value) -> String {
    use p521::ecdsa::signature::Signer as _;
    use p521::pkcs8::DecodePrivateKey as _;
    let secret = p521::SecretKey::from_pkcs8_der(&pem_der(&fixture("es512.key"))).unwrap();
    let signing = p521::ecdsa::SigningKey::from_bytes(&secret.to_bytes()).unwrap();
    let mut header = json!({"alg": "ES512", "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let message = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature: p521::ecdsa::Signature = signing.sign(message.as_bytes());
    format!("{message}.{}", b64(&signature.to_bytes()))
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Hasura-style claims: user `u1`, roles `user` (default) and `editor`, valid for an hour.
pub(crate) fn claims() -> Value {
    json!({
        "sub": "u1",
        "exp": now() + 3600,
        NS: {
            "x-hasura-allowed-roles": ["user", "editor"],
            "x-hasura-default-role": "user",
            "x-hasura-user-id": "u1",
        }
    })
}

pub(crate) fn with(mut base: Value, patch: Value) -> Value {
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

pub(crate) fn hs_token(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

pub(crate) fn config(json: Value) -> JwtConfig {
    serde_json::from_value(json).unwrap()
}

pub(crate) fn resolver(configs: Vec<JwtConfig>, ca_pem: Option<String>) -> JwtResolver {
    let client = HttpClient::new(HttpClientConfig {
        extra_roots_pem: ca_pem,
        ..Default::default()
    })
    .unwrap();
    JwtResolver::new(configs, client).unwrap()
}

/// Resolves `token` as a bearer credential: `resolve_now` first, as the layer does, then
/// `resolve` if it defers.
pub(crate) async fn bearer(r: &JwtResolver, token: &str) -> Result<Option<Identity>, ResolveError> {
    let credential = Credential {
        token: Token::parse(token).unwrap(),
        source: CredentialSource::Bearer,
    };
    let req = ResolveRequest::for_credential(&credential);
    match r.resolve_now(&req) {
        Some(answer) => answer,
        None => r.resolve(&req).await,
    }
}

/// Only `resolve_now`: `None` when it would need I/O.
pub(crate) fn bearer_now(
    r: &JwtResolver,
    token: &str,
) -> Option<Result<Option<Identity>, ResolveError>> {
    let credential = Credential {
        token: Token::parse(token).unwrap(),
        source: CredentialSource::Bearer,
    };
    r.resolve_now(&ResolveRequest::for_credential(&credential))
}

/// A request with `Cookie: <cookie>` and the credential the session layer would have read.
pub(crate) async fn with_cookie(
    r: &JwtResolver,
    cookie: &str,
    credential: Option<Credential>,
) -> Result<Option<Identity>, ResolveError> {
    let (parts, ()) = http::Request::get("/")
        .header("cookie", cookie)
        .body(())
        .unwrap()
        .into_parts();
    let req = ResolveRequest::new(&parts, credential.as_ref(), None);
    r.resolve(&req).await
}

pub(crate) fn valid(answer: Result<Option<Identity>, ResolveError>) -> Identity {
    answer.unwrap().expect("the token should verify")
}

#[track_caller]
pub(crate) fn invalid(answer: Result<Option<Identity>, ResolveError>, what: &str) {
    assert!(matches!(answer, Ok(None)), "{what}: {answer:?}");
}

// ---------------------------------------------------------------------------------------------
// The JWKS server.

pub(crate) struct JwksState {
    pub(crate) body: Mutex<String>,
    pub(crate) status: Mutex<u16>,
    pub(crate) cache_control: Mutex<String>,
    pub(crate) hits: AtomicUsize,
}

pub(crate) struct JwksServer {
    pub(crate) url: String,
    pub(crate) ca_pem: String,
    pub(crate) state: Arc<JwksState>,
}

impl JwksServer {
    pub(crate) async fn start(keys: &[Value]) -> JwksServer {
        let ca = crate::https::private_ca("jwks test CA");
        let state = Arc::new(JwksState {
            body: Mutex::new(String::new()),
            status: Mutex::new(200),
            cache_control: Mutex::new("max-age=3600".into()),
            hits: AtomicUsize::new(0),
        });
        let server = JwksServer {
            url: String::new(),
            ca_pem: ca.ca_pem.clone(),
            state: state.clone(),
        };
        server.set_keys(keys);
        let app = axum::Router::new()
            .route("/.well-known/jwks.json", get(jwks))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        crate::https::serve(listener, ca.acceptor, app);
        JwksServer {
            url: format!("https://localhost:{port}/.well-known/jwks.json"),
            ..server
        }
    }

    pub(crate) fn set_keys(&self, keys: &[Value]) {
        *self.state.body.lock() = json!({ "keys": keys }).to_string();
    }

    pub(crate) fn set_status(&self, status: u16) {
        *self.state.status.lock() = status;
    }

    pub(crate) fn set_cache_control(&self, value: &str) {
        *self.state.cache_control.lock() = value.to_owned();
    }

    pub(crate) fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// A JWKS config for this server with `extra` keys.
    pub(crate) fn config(&self, extra: Value) -> JwtConfig {
        config(with(json!({ "jwk_url": self.url }), extra))
    }

    pub(crate) fn resolver(&self, configs: Vec<JwtConfig>) -> JwtResolver {
        resolver(configs, Some(self.ca_pem.clone()))
    }
}

pub(crate) async fn jwks(State(state): State<Arc<JwksState>>) -> impl IntoResponse {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let status = http::StatusCode::from_u16(*state.status.lock()).unwrap();
    let cache_control = state.cache_control.lock().clone();
    let body = state.body.lock().clone();
    (
        status,
        [
            (http::header::CONTENT_TYPE, "application/json".to_owned()),
            (http::header::CACHE_CONTROL, cache_control),
        ],
        body,
    )
}

/// Polls `f` every 50 ms until it holds, for at most `limit`.
pub(crate) async fn eventually(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) const SECRET: &str = "a-shared-secret-of-at-least-32-bytes!!";
