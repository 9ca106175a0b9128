//! `JwtResolver` against real signed tokens and a real JWKS endpoint: an axum server over HTTPS
//! with a certificate from a private CA (made with rcgen), whose root the resolver's
//! `HttpClient` is given as `extra_roots_pem`. Keys are fixtures made with OpenSSL
//! (`tests/fixtures/jwt/README.md`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use serde_json::{json, Value};
use session_core::http_client::{HttpClient, HttpClientConfig};
use session_core::jwt::{JwtConfig, JwtHeader, JwtResolver};
use session_core::{
    Credential, CredentialSource, Identity, ResolveError, ResolveRequest, Resolver, Token,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

const NS: &str = "https://hasura.io/jwt/claims";

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/jwt/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn pem_der(pem: &str) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents
}

/// A signing key and its public half (PEM), from the fixtures.
struct TestKey {
    alg: Algorithm,
    encoding: EncodingKey,
    public_pem: String,
}

fn key(name: &str, alg: Algorithm) -> TestKey {
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
    fn jwk(&self, kid: &str) -> Value {
        jwk(&self.public_pem, kid)
    }

    fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// A PEM public key as a JWK with `kid`.
fn jwk(public_pem: &str, kid: &str) -> Value {
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
fn es512_sign(kid: Option<&str>, claims: &Value) -> String {
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

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Hasura-style claims: user `u1`, roles `user` (default) and `editor`, valid for an hour.
fn claims() -> Value {
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

fn with(mut base: Value, patch: Value) -> Value {
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

fn hs_token(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn config(json: Value) -> JwtConfig {
    serde_json::from_value(json).unwrap()
}

fn resolver(configs: Vec<JwtConfig>, ca_pem: Option<String>) -> JwtResolver {
    let client = HttpClient::new(HttpClientConfig {
        extra_roots_pem: ca_pem,
        ..Default::default()
    })
    .unwrap();
    JwtResolver::new(configs, client).unwrap()
}

/// Resolves `token` as a bearer credential: `resolve_now` first, as the layer does, then
/// `resolve` if it defers.
async fn bearer(r: &JwtResolver, token: &str) -> Result<Option<Identity>, ResolveError> {
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
fn bearer_now(r: &JwtResolver, token: &str) -> Option<Result<Option<Identity>, ResolveError>> {
    let credential = Credential {
        token: Token::parse(token).unwrap(),
        source: CredentialSource::Bearer,
    };
    r.resolve_now(&ResolveRequest::for_credential(&credential))
}

/// A request with `Cookie: <cookie>` and the credential the session layer would have read.
async fn with_cookie(
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

fn valid(answer: Result<Option<Identity>, ResolveError>) -> Identity {
    answer.unwrap().expect("the token should verify")
}

#[track_caller]
fn invalid(answer: Result<Option<Identity>, ResolveError>, what: &str) {
    assert!(matches!(answer, Ok(None)), "{what}: {answer:?}");
}

// ---------------------------------------------------------------------------------------------
// The JWKS server.

struct JwksState {
    body: Mutex<String>,
    status: Mutex<u16>,
    cache_control: Mutex<String>,
    hits: AtomicUsize,
}

struct JwksServer {
    url: String,
    ca_pem: String,
    state: Arc<JwksState>,
}

impl JwksServer {
    async fn start(keys: &[Value]) -> JwksServer {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::default();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "jwks test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
            )
            .unwrap();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let state = Arc::new(JwksState {
            body: Mutex::new(String::new()),
            status: Mutex::new(200),
            cache_control: Mutex::new("max-age=3600".into()),
            hits: AtomicUsize::new(0),
        });
        let server = JwksServer {
            url: String::new(),
            ca_pem: ca_cert.pem(),
            state: state.clone(),
        };
        server.set_keys(keys);
        let app = axum::Router::new()
            .route("/.well-known/jwks.json", get(jwks))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let svc = hyper_util::service::TowerToHyperService::new(app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
                });
            }
        });
        JwksServer {
            url: format!("https://localhost:{port}/.well-known/jwks.json"),
            ..server
        }
    }

    fn set_keys(&self, keys: &[Value]) {
        *self.state.body.lock() = json!({ "keys": keys }).to_string();
    }

    fn set_status(&self, status: u16) {
        *self.state.status.lock() = status;
    }

    fn set_cache_control(&self, value: &str) {
        *self.state.cache_control.lock() = value.to_owned();
    }

    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// A JWKS config for this server with `extra` keys.
    fn config(&self, extra: Value) -> JwtConfig {
        config(with(json!({ "jwk_url": self.url }), extra))
    }

    fn resolver(&self, configs: Vec<JwtConfig>) -> JwtResolver {
        resolver(configs, Some(self.ca_pem.clone()))
    }
}

async fn jwks(State(state): State<Arc<JwksState>>) -> impl IntoResponse {
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
async fn eventually(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
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

// ---------------------------------------------------------------------------------------------
// Static keys.

const SECRET: &str = "a-shared-secret-of-at-least-32-bytes!!";

#[tokio::test]
async fn static_keys_of_every_type_verify_hasura_claims() {
    let hs = resolver(vec![config(json!({"type": "HS256", "key": SECRET}))], None);
    let rich = with(
        claims(),
        json!({ NS: {
            "x-hasura-allowed-roles": ["user", "editor"],
            "x-hasura-default-role": "user",
            "x-hasura-user-id": "u1",
            "X-Hasura-Org-Id": 42,
            "x-hasura-teams": ["a", "b"],
            "x-hasura-admin": true,
        }}),
    );
    let exp = rich["exp"].as_u64().unwrap();
    let token = hs_token(SECRET.as_bytes(), &rich);
    // A static key needs no I/O: resolve_now answers.
    let id = valid(bearer_now(&hs, &token).expect("answered without I/O"));
    assert_eq!(&*id.user_id, "u1");
    assert_eq!(&*id.role, "user");
    assert!(id.has_role("editor"));
    assert_eq!(id.expires_at(), Some(UNIX_EPOCH + Duration::from_secs(exp)));
    let vars: Vec<(String, String)> = id
        .variables()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        vars,
        [
            ("x-hasura-admin".into(), "true".into()),
            ("x-hasura-org-id".into(), "42".into()),
            ("x-hasura-teams".into(), "{a,b}".into()),
        ]
    );
    // A second look is a cache hit with the same answer.
    assert_eq!(valid(bearer(&hs, &token).await), id);

    for (name, alg, key_field) in [
        ("rsa1", Algorithm::RS256, None),
        ("rsa1", Algorithm::RS256, Some(fixture("rsa1.crt"))),
        ("es256", Algorithm::ES256, None),
        ("es384", Algorithm::ES384, None),
        ("ed25519", Algorithm::EdDSA, None),
    ] {
        let k = key(name, alg);
        let type_name = if alg == Algorithm::EdDSA {
            "Ed25519".to_owned()
        } else {
            format!("{alg:?}")
        };
        let r = resolver(
            vec![config(json!({
                "type": type_name,
                "key": key_field.unwrap_or_else(|| k.public_pem.clone()),
            }))],
            None,
        );
        let id = valid(bearer(&r, &k.sign(None, &claims())).await);
        assert_eq!(&*id.user_id, "u1", "{name}");
        // Signed by another key of the same type: refused.
        if name == "rsa1" {
            invalid(
                bearer(&r, &key("rsa2", alg).sign(None, &claims())).await,
                "another RSA key",
            );
        }
    }
}

#[tokio::test]
async fn rejected_tokens() {
    let rsa = key("rsa1", Algorithm::RS256);
    let rs256 = resolver(
        vec![config(json!({
            "type": "RS256",
            "key": rsa.public_pem,
            "audience": ["api", "other"],
            "issuer": "https://issuer.test/",
        }))],
        None,
    );
    let good = with(
        claims(),
        json!({"aud": "api", "iss": "https://issuer.test/"}),
    );
    valid(bearer(&rs256, &rsa.sign(None, &good)).await);

    // alg: none, with and without a signature part.
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&good)
    );
    invalid(bearer(&rs256, &none).await, "alg none");
    let none_sig = format!("{none}c2ln");
    invalid(bearer(&rs256, &none_sig).await, "alg none with a signature");
    // Algorithm confusion: HS256 with the RSA public key (PEM) as the HMAC secret.
    let confused = hs_token(rsa.public_pem.as_bytes(), &good);
    invalid(
        bearer(&rs256, &confused).await,
        "HS256 with the RSA public key",
    );
    // An algorithm other than the configured one, with the right key.
    let mut rs384 = Header::new(Algorithm::RS384);
    rs384.kid = None;
    let other_alg = jsonwebtoken::encode(&rs384, &good, &rsa.encoding).unwrap();
    invalid(
        bearer(&rs256, &other_alg).await,
        "RS384 for an RS256 config",
    );
    // Claims.
    let cases = [
        (json!({"exp": now() - 120}), "expired"),
        (json!({"exp": null}), "no exp"),
        (json!({"nbf": now() + 120}), "nbf in the future"),
        (json!({"aud": "elsewhere"}), "wrong aud"),
        (json!({"aud": null}), "no aud"),
        (json!({"iss": "https://evil.test/"}), "wrong iss"),
        (json!({"iss": null}), "no iss"),
        (
            json!({NS: {"x-hasura-allowed-roles": ["user"], "x-hasura-default-role": "admin"}}),
            "default role not allowed",
        ),
        (
            json!({NS: {"x-hasura-default-role": "user"}}),
            "no allowed roles",
        ),
        (
            json!({NS: {"x-hasura-allowed-roles": ["user"], "x-hasura-default-role": "user",
                        "x-hasura-blob": {"a": 1}}}),
            "an object as a variable",
        ),
    ];
    for (patch, what) in cases {
        invalid(
            bearer(&rs256, &rsa.sign(None, &with(good.clone(), patch))).await,
            what,
        );
    }
    // A tampered payload.
    let token = rsa.sign(None, &good);
    let parts: Vec<&str> = token.split('.').collect();
    let forged = with(good.clone(), json!({"sub": "admin"}));
    let tampered = format!("{}.{}.{}", parts[0], b64(&forged), parts[2]);
    invalid(bearer(&rs256, &tampered).await, "tampered payload");

    // allowed_skew: 30 s of leeway for exp and nbf.
    let skewed = resolver(
        vec![config(
            json!({"type": "HS256", "key": SECRET, "allowed_skew": 30}),
        )],
        None,
    );
    let inside = [json!({"exp": now() - 10}), json!({"nbf": now() + 10})];
    for patch in inside {
        valid(
            bearer(
                &skewed,
                &hs_token(SECRET.as_bytes(), &with(claims(), patch)),
            )
            .await,
        );
    }
    let outside = [json!({"exp": now() - 60}), json!({"nbf": now() + 60})];
    for patch in outside {
        invalid(
            bearer(
                &skewed,
                &hs_token(SECRET.as_bytes(), &with(claims(), patch.clone())),
            )
            .await,
            &format!("outside the skew: {patch}"),
        );
    }
    // No skew configured: Hasura's default is 0.
    let strict = resolver(vec![config(json!({"type": "HS256", "key": SECRET}))], None);
    invalid(
        bearer(
            &strict,
            &hs_token(
                SECRET.as_bytes(),
                &with(claims(), json!({"exp": now() - 5})),
            ),
        )
        .await,
        "expired 5 s ago without skew",
    );
}

#[tokio::test]
async fn cookie_and_header_are_not_interchangeable() {
    let cookie_cfg = config(json!({
        "type": "HS256", "key": SECRET, "header": {"type": "Cookie", "name": "jwt"}
    }));
    let header_cfg = config(json!({"type": "HS256", "key": SECRET}));
    let token = hs_token(SECRET.as_bytes(), &claims());

    let by_cookie = resolver(vec![cookie_cfg.clone()], None);
    assert!(by_cookie.resolves_without_credential());
    assert_eq!(by_cookie.credential_cookies(), ["jwt"]);
    // In its cookie: accepted, with no layer credential at all.
    valid(with_cookie(&by_cookie, &format!("a=b; jwt={token}"), None).await);
    // As a bearer token: not this config's.
    invalid(
        bearer(&by_cookie, &token).await,
        "bearer for a cookie config",
    );
    // No cookie: nothing to resolve (anonymous).
    invalid(with_cookie(&by_cookie, "a=b", None).await, "no cookie");
    // Twice: ambiguous, refused.
    invalid(
        with_cookie(&by_cookie, &format!("jwt={token}; jwt={token}"), None).await,
        "the cookie twice",
    );

    let by_header = resolver(vec![header_cfg], None);
    assert!(!by_header.resolves_without_credential());
    assert!(by_header.credential_cookies().is_empty());
    valid(bearer(&by_header, &token).await);
    // In a cookie (even one the session layer read as its session cookie): not accepted.
    invalid(
        with_cookie(&by_header, &format!("jwt={token}"), None).await,
        "cookie",
    );
    let session_cookie = Credential {
        token: Token::parse(&token).unwrap(),
        source: CredentialSource::Cookie,
    };
    invalid(
        with_cookie(&by_header, &format!("sid={token}"), Some(session_cookie)).await,
        "the session cookie",
    );

    // Both configs, and a request with a bearer token and a JWT cookie: the bearer decides.
    let both = resolver(
        vec![
            cookie_cfg,
            config(json!({"type": "HS256", "key": "other-secret-other-secret-other-secret"})),
        ],
        None,
    );
    let bad_bearer = Credential {
        token: Token::parse(&token).unwrap(),
        source: CredentialSource::Bearer,
    };
    invalid(
        with_cookie(&both, &format!("jwt={token}"), Some(bad_bearer)).await,
        "an invalid bearer token is not saved by a valid cookie",
    );
}

#[tokio::test]
async fn claims_formats_paths_and_maps() {
    let hasura = json!({
        "x-hasura-allowed-roles": ["user"],
        "x-hasura-default-role": "user",
        "x-hasura-user-id": "u9",
    });
    // stringified_json
    let r = resolver(
        vec![config(
            json!({"type": "HS256", "key": SECRET, "claims_format": "stringified_json"}),
        )],
        None,
    );
    let token = hs_token(
        SECRET.as_bytes(),
        &with(claims(), json!({ NS: hasura.to_string() })),
    );
    assert_eq!(&*valid(bearer(&r, &token).await).user_id, "u9");
    // … an object where a string is expected is refused.
    let token = hs_token(SECRET.as_bytes(), &with(claims(), json!({ NS: hasura })));
    invalid(bearer(&r, &token).await, "an object for stringified_json");

    // claims_namespace_path, with a key holding a dot.
    let r = resolver(
        vec![config(json!({"type": "HS256", "key": SECRET,
                           "claims_namespace_path": "$.app['hasura.claims']"}))],
        None,
    );
    let token = hs_token(
        SECRET.as_bytes(),
        &json!({"exp": now() + 60, "app": {"hasura.claims": hasura}}),
    );
    assert_eq!(&*valid(bearer(&r, &token).await).user_id, "u9");
    let token = hs_token(SECRET.as_bytes(), &claims());
    invalid(bearer(&r, &token).await, "nothing at the path");

    // claims_map: paths into the whole payload, defaults, literals; no user id → "0".
    let r = resolver(
        vec![config(
            json!({"type": "HS256", "key": SECRET, "claims_map": {
                "x-hasura-allowed-roles": {"path": "$.roles", "default": ["viewer"]},
                "x-hasura-default-role": {"path": "$.roles[0]", "default": "viewer"},
                "x-hasura-org-id": {"path": "$.org.id", "default": "none"},
                "x-hasura-tenant": "acme",
            }}),
        )],
        None,
    );
    let token = hs_token(
        SECRET.as_bytes(),
        &json!({"exp": now() + 60, "roles": ["editor", "user"], "org": {"id": 7}}),
    );
    let id = valid(bearer(&r, &token).await);
    assert_eq!(&*id.role, "editor");
    assert_eq!(&*id.user_id, "0");
    let vars: Vec<(String, String)> = id
        .variables()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        vars,
        [
            ("x-hasura-org-id".into(), "7".into()),
            ("x-hasura-tenant".into(), "acme".into())
        ]
    );
    let token = hs_token(SECRET.as_bytes(), &json!({"exp": now() + 60}));
    let id = valid(bearer(&r, &token).await);
    assert_eq!(&*id.role, "viewer");
    assert_eq!(id.variables()[0].1, "none");
}

#[tokio::test]
async fn several_issuers() {
    let rsa = key("rsa1", Algorithm::RS256);
    let r = resolver(
        vec![
            config(json!({"type": "HS256", "key": SECRET, "issuer": "a"})),
            config(json!({"type": "RS256", "key": rsa.public_pem, "issuer": "b"})),
            config(json!({"type": "HS256", "key": "fallback-secret-fallback-secret-xx"})),
        ],
        None,
    );
    let a = hs_token(
        SECRET.as_bytes(),
        &with(claims(), json!({"iss": "a", "sub": "x"})),
    );
    valid(bearer(&r, &a).await);
    let b = rsa.sign(None, &with(claims(), json!({"iss": "b"})));
    valid(bearer(&r, &b).await);
    // Issuer `b` with the HS256 secret of `a`: only b's config reads it, and refuses it.
    let wrong = hs_token(SECRET.as_bytes(), &with(claims(), json!({"iss": "b"})));
    invalid(bearer(&r, &wrong).await, "iss b signed with a's secret");
    // No issuer: only the config without one.
    let fallback = hs_token(
        b"fallback-secret-fallback-secret-xx",
        &with(claims(), json!({"iss": null})),
    );
    valid(bearer(&r, &fallback).await);
    invalid(
        bearer(
            &r,
            &hs_token(SECRET.as_bytes(), &with(claims(), json!({"iss": "c"}))),
        )
        .await,
        "unknown issuer",
    );
}

// ---------------------------------------------------------------------------------------------
// JWKS.

#[tokio::test]
async fn jwks_rotation() {
    let k1 = key("rsa1", Algorithm::RS256);
    let k2 = key("rsa2", Algorithm::RS256);
    let ec = key("es256", Algorithm::ES256);
    let server = JwksServer::start(&[k1.jwk("k1"), ec.jwk("ec")]).await;
    server.set_cache_control("max-age=1");
    let r = server.resolver(vec![server.config(json!({
        "jwks_refresh_min": "300ms", "jwks_refetch_interval": "200ms"
    }))]);
    r.ready().await.unwrap();
    assert_eq!(r.not_ready(), None);

    let t1 = k1.sign(Some("k1"), &claims());
    valid(bearer(&r, &t1).await);
    valid(bearer(&r, &ec.sign(Some("ec"), &claims())).await);
    // The JWK says RS256: an RS512 token with that key is refused.
    let mut h = Header::new(Algorithm::RS512);
    h.kid = Some("k1".into());
    invalid(
        bearer(
            &r,
            &jsonwebtoken::encode(&h, &claims(), &k1.encoding).unwrap(),
        )
        .await,
        "RS512 with an RS256 JWK",
    );
    // A JWK of the wrong kid: refused even though another key would verify it.
    invalid(
        bearer(&r, &k1.sign(Some("ec"), &claims())).await,
        "kid of another key",
    );

    // A new key appears: a token with its kid is accepted at once (refetch on unknown kid).
    server.set_keys(&[k1.jwk("k1"), k2.jwk("k2")]);
    let t2 = k2.sign(Some("k2"), &claims());
    tokio::time::sleep(Duration::from_millis(250)).await; // past the refetch interval
    let hits = server.hits();
    assert!(
        bearer_now(&r, &t2).is_none(),
        "an unknown kid needs a fetch"
    );
    valid(bearer(&r, &t2).await);
    // (At least: the scheduled refresh, every second here, may have run meanwhile.)
    assert!(server.hits() > hits);

    // k1 leaves the set: its (cached) token stops verifying after the next refresh.
    valid(bearer(&r, &t1).await);
    server.set_keys(&[k2.jwk("k2")]);
    assert!(
        eventually(Duration::from_secs(5), async || bearer(&r, &t1)
            .await
            .unwrap()
            .is_none())
        .await,
        "a removed key still verifies"
    );
    valid(bearer(&r, &t2).await);
    // The ES256 key left too.
    invalid(
        bearer(&r, &ec.sign(Some("ec"), &claims())).await,
        "removed EC key",
    );
}

#[tokio::test]
async fn unknown_kid_flood_makes_one_fetch_per_interval() {
    let k1 = key("rsa1", Algorithm::RS256);
    let server = JwksServer::start(&[k1.jwk("k1")]).await;
    // Long enough that a slow (loaded, debug-build) run still ends the flood within it.
    let interval = Duration::from_secs(3);
    let r = server.resolver(vec![server.config(json!({"jwks_refetch_interval": "3s"}))]);
    r.ready().await.unwrap();
    assert_eq!(server.hits(), 1);
    tokio::time::sleep(interval + Duration::from_millis(100)).await;

    let tokens: Vec<String> = (0..50)
        .map(|i| k1.sign(Some(&format!("unknown-{i}")), &claims()))
        .collect();
    let answers = futures_util::future::join_all(tokens.iter().map(|t| bearer(&r, t))).await;
    for a in answers {
        invalid(a, "an unknown kid");
    }
    assert_eq!(server.hits(), 2, "one refetch for the whole flood");
    // Within the interval, an unknown kid is answered at once, without a fetch.
    let t = k1.sign(Some("unknown-x"), &claims());
    invalid(
        bearer_now(&r, &t).expect("rate-limited: no I/O"),
        "rate-limited",
    );
    assert_eq!(server.hits(), 2);
    // A known kid still verifies meanwhile.
    valid(bearer(&r, &k1.sign(Some("k1"), &claims())).await);
    // After the interval, one more fetch.
    tokio::time::sleep(interval + Duration::from_millis(100)).await;
    invalid(bearer(&r, &t).await, "still unknown");
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn jwks_down_at_start_then_recovers_and_survives_failed_refreshes() {
    let k1 = key("rsa1", Algorithm::RS256);
    let server = JwksServer::start(&[k1.jwk("k1")]).await;
    server.set_status(503);
    server.set_cache_control("max-age=0");
    let r = server.resolver(vec![server.config(json!({
        "jwks_refresh_min": "300ms", "jwks_refetch_interval": "300ms"
    }))]);
    let why = r.ready().await.unwrap_err();
    assert!(why.contains("503"), "{why}");
    assert!(r.not_ready().unwrap().contains("503"));
    let token = k1.sign(Some("k1"), &claims());
    assert!(matches!(
        bearer(&r, &token).await,
        Err(ResolveError::Unavailable(_))
    ));
    // A request without a JWT is not affected: nothing to resolve.
    let (parts, ()) = http::Request::get("/").body(()).unwrap().into_parts();
    assert!(matches!(
        r.resolve(&ResolveRequest::new(&parts, None, None)).await,
        Ok(None)
    ));

    server.set_status(200);
    assert!(
        eventually(Duration::from_secs(5), async || bearer(&r, &token)
            .await
            .is_ok_and(|id| id.is_some()))
        .await
    );
    assert_eq!(r.not_ready(), None);

    // The endpoint fails again (and serves garbage): the last good set is kept.
    server.set_status(500);
    let hits = server.hits();
    assert!(eventually(Duration::from_secs(5), async || server.hits() >= hits + 2).await);
    server.set_status(200);
    server.set_keys(&[json!({"kty": "RSA", "kid": "k9", "use": "enc", "n": "AQAB", "e": "AQAB"})]);
    let hits = server.hits();
    assert!(eventually(Duration::from_secs(5), async || server.hits() >= hits + 2).await);
    assert_eq!(r.not_ready(), None);
    let fresh = k1.sign(Some("k1"), &with(claims(), json!({"sub": "fresh"})));
    valid(bearer(&r, &fresh).await);
}

#[tokio::test]
async fn jwks_skips_unusable_keys() {
    let k1 = key("rsa1", Algorithm::RS256);
    let ed = key("ed25519", Algorithm::EdDSA);
    let server = JwksServer::start(&[
        json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AQAB", "y": "AQAB"}),
        json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}),
        json!({"kty": "RSA", "kid": "weird", "alg": "RS999", "n": "AQAB", "e": "AQAB"}),
        json!("not even an object"),
        k1.jwk("k1"),
        ed.jwk("ed"),
    ])
    .await;
    let r = server.resolver(vec![server.config(json!({}))]);
    r.ready().await.unwrap();
    valid(bearer(&r, &k1.sign(Some("k1"), &claims())).await);
    valid(bearer(&r, &ed.sign(Some("ed"), &claims())).await);
    // A token without a kid is tried against the keys of its algorithm.
    valid(bearer(&r, &k1.sign(None, &claims())).await);
    // HS256 against a JWKS (whose `oct` key was skipped): refused.
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("hmac".into());
    let hs = jsonwebtoken::encode(&h, &claims(), &EncodingKey::from_secret(b"secret")).unwrap();
    invalid(bearer(&r, &hs).await, "HS256 with a JWKS");

    // A set with no usable key at all is not a usable set.
    let server = JwksServer::start(&[json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"})]).await;
    let r = server.resolver(vec![server.config(json!({}))]);
    assert!(r.ready().await.unwrap_err().contains("no usable key"));
}

#[tokio::test]
async fn cookie_config_with_jwks() {
    let k1 = key("rsa1", Algorithm::RS256);
    let server = JwksServer::start(&[k1.jwk("k1")]).await;
    let r = server.resolver(vec![server.config(json!({
        "header": {"type": "Cookie", "name": "id_token"}
    }))]);
    r.ready().await.unwrap();
    let token = k1.sign(Some("k1"), &claims());
    valid(with_cookie(&r, &format!("id_token={token}"), None).await);
    invalid(bearer(&r, &token).await, "bearer for a cookie config");
    let _ = JwtHeader::Authorization; // the type is public for embedders
}

// ---------------------------------------------------------------------------------------------
// Through the session layer: what the upstream receives.

#[tokio::test]
async fn through_the_session_layer() {
    use http_body_util::Full;
    use session_core::{SessionConfig, SessionLayer};
    use tower::{service_fn, ServiceBuilder, ServiceExt};

    let configs = vec![
        config(json!({"type": "HS256", "key": SECRET})),
        config(
            json!({"type": "HS256", "key": SECRET, "header": {"type": "Cookie", "name": "jwt"}}),
        ),
    ];
    let app = ServiceBuilder::new()
        .layer(SessionLayer::new(
            Arc::new(resolver(configs, None)),
            SessionConfig::default(),
        ))
        .service(service_fn(|req: http::Request<()>| async move {
            // Echo the identity headers the upstream receives.
            let mut seen: Vec<String> = req
                .headers()
                .iter()
                .filter(|(n, _)| n.as_str().starts_with("x-hasura-"))
                .map(|(n, v)| format!("{n}={}", v.to_str().unwrap()))
                .collect();
            seen.sort();
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::<bytes::Bytes>::from(
                seen.join("\n"),
            )))
        }));
    let call = |req: http::Request<()>| {
        let app = app.clone();
        async move {
            let rsp = app.oneshot(req).await.unwrap();
            let status = rsp.status();
            let www = rsp.headers().get("www-authenticate").cloned();
            let body = http_body_util::BodyExt::collect(rsp.into_body())
                .await
                .unwrap()
                .to_bytes();
            (status, www, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let token = hs_token(
        SECRET.as_bytes(),
        &with(
            claims(),
            json!({NS: {"x-hasura-allowed-roles": ["user", "editor"], "x-hasura-default-role": "user",
                        "x-hasura-user-id": "u1", "x-hasura-org-id": "42"}}),
        ),
    );
    // A bearer JWT, a requested role, and client-sent identity headers (stripped).
    let req = http::Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .header("x-hasura-role", "editor")
        .header("x-hasura-org-id", "666")
        .header("x-hasura-user-id", "admin")
        .body(())
        .unwrap();
    let (status, _, body) = call(req).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        "x-hasura-allowed-roles=user,editor\nx-hasura-org-id=42\nx-hasura-role=editor\nx-hasura-user-id=u1"
    );
    // An invalid bearer JWT: 401 invalid_token, never anonymous.
    let bad = hs_token(b"wrong-secret-wrong-secret-wrong-secret", &claims());
    let req = http::Request::get("/")
        .header("authorization", format!("Bearer {bad}"))
        .body(())
        .unwrap();
    let (status, www, _) = call(req).await;
    assert_eq!(status, 401);
    assert!(www.unwrap().to_str().unwrap().contains("invalid_token"));
    // The same JWT in its cookie: the identity; an invalid one: anonymous.
    let req = http::Request::get("/")
        .header("cookie", format!("jwt={token}"))
        .body(())
        .unwrap();
    let (status, _, body) = call(req).await;
    assert_eq!(status, 200);
    assert!(body.contains("x-hasura-user-id=u1"), "{body}");
    let req = http::Request::get("/")
        .header("cookie", format!("jwt={bad}"))
        .body(())
        .unwrap();
    let (status, _, body) = call(req).await;
    assert_eq!(status, 200);
    assert!(body.contains("x-hasura-role=anonymous"), "{body}");
}

/// Prints what one resolution costs: a signature check (HS256, RS256, ES256) against a cache
/// hit. Run it in release: `cargo test -p session-core --features jwt --release --test jwt --
/// --ignored --nocapture cost`.
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn cost_of_verification_and_of_a_cache_hit() {
    let rsa = key("rsa1", Algorithm::RS256);
    let es = key("es256", Algorithm::ES256);
    let cases = [
        (
            "HS256",
            json!({"type": "HS256", "key": SECRET}),
            hs_token(SECRET.as_bytes(), &claims()),
        ),
        (
            "RS256",
            json!({"type": "RS256", "key": rsa.public_pem}),
            rsa.sign(None, &claims()),
        ),
        (
            "ES256",
            json!({"type": "ES256", "key": es.public_pem}),
            es.sign(None, &claims()),
        ),
    ];
    for (name, cfg, token) in cases {
        let credential = Credential {
            token: Token::parse(&token).unwrap(),
            source: CredentialSource::Bearer,
        };
        let req = ResolveRequest::for_credential(&credential);
        for (label, entries) in [("verify", 0), ("cache hit", 1000)] {
            let r = resolver(
                vec![config(with(cfg.clone(), json!({"cache_entries": entries})))],
                None,
            );
            let n = 2000;
            let start = std::time::Instant::now();
            for _ in 0..n {
                assert!(r.resolve_now(&req).unwrap().unwrap().is_some());
            }
            let per = start.elapsed() / n;
            println!(
                "{name} {label}: {per:?} per resolve_now ({} bytes token)",
                token.len()
            );
        }
    }
}

#[tokio::test]
async fn es512_with_a_static_key_and_a_jwks() {
    let public = fixture("es512.pub");
    let r = resolver(
        vec![config(
            json!({"type": "ES512", "key": public, "audience": "api",
                           "issuer": "i", "allowed_skew": 30}),
        )],
        None,
    );
    let good = with(claims(), json!({"aud": ["x", "api"], "iss": "i"}));
    let id = valid(bearer_now(&r, &es512_sign(None, &good)).expect("no I/O"));
    assert_eq!(&*id.user_id, "u1");
    valid(
        bearer(
            &r,
            &es512_sign(None, &with(good.clone(), json!({"exp": now() - 10}))),
        )
        .await,
    );
    for (patch, what) in [
        (json!({"exp": now() - 60}), "expired"),
        (json!({"exp": null}), "no exp"),
        (json!({"exp": "soon"}), "exp not a number"),
        (json!({"nbf": now() + 60}), "nbf in the future"),
        (json!({"aud": "other"}), "wrong aud"),
        (json!({"aud": null}), "no aud"),
        (json!({"iss": "j"}), "wrong iss"),
        (json!({"iss": null}), "no iss"),
    ] {
        invalid(
            bearer(&r, &es512_sign(None, &with(good.clone(), patch))).await,
            what,
        );
    }
    // A tampered payload, and an ES256 signature relabelled ES512.
    let token = es512_sign(None, &good);
    let parts: Vec<&str> = token.split('.').collect();
    let forged = URL_SAFE_NO_PAD.encode(with(good.clone(), json!({"sub": "x"})).to_string());
    invalid(
        bearer(&r, &format!("{}.{forged}.{}", parts[0], parts[2])).await,
        "tampered",
    );
    let es256 = key("es256", Algorithm::ES256).sign(None, &good);
    let es256_sig = es256.rsplit('.').next().unwrap();
    invalid(
        bearer(&r, &format!("{}.{}.{es256_sig}", parts[0], parts[1])).await,
        "an ES256 signature",
    );
    // ES512 where ES256 is configured, and the reverse.
    let es256_cfg = resolver(
        vec![config(
            json!({"type": "ES256", "key": fixture("es256.pub")}),
        )],
        None,
    );
    invalid(
        bearer(&es256_cfg, &es512_sign(None, &claims())).await,
        "ES512 for ES256",
    );
    invalid(bearer(&r, &es256).await, "ES256 for ES512");

    // From a JWKS.
    let server = JwksServer::start(&[jwk(&public, "p521")]).await;
    let r = server.resolver(vec![server.config(json!({}))]);
    r.ready().await.unwrap();
    valid(bearer(&r, &es512_sign(Some("p521"), &claims())).await);
    valid(bearer(&r, &es512_sign(None, &claims())).await);
    invalid(
        bearer(&r, &es512_sign(Some("other"), &claims())).await,
        "unknown kid",
    );
}
