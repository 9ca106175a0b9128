//! The identity provider the identity tests (identity_jwt.rs, identity_jwks.rs,
//! identity_webhook.rs) play against the real binary, so that all three test one provider: the
//! tokens it mints (HS256 and RS256 with Hasura-style claims, keys from the fixtures), its JWKS
//! endpoint (HTTPS from a private CA that reaches the gateway through `SSL_CERT_FILE`), and the
//! gateway configs and requests they share.

use super::*;

#[path = "../../../session-core/tests/support/https.rs"]
mod https;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use serde_json::{json, Value};

/// Hasura's default claims namespace.
pub const NS: &str = "https://hasura.io/jwt/claims";
pub const AUDIENCE: &str = "my-app";
pub const ISSUER: &str = "https://idp.test/";
/// HS256 secrets (Hasura wants at least 32 characters).
pub const HS_SECRET_A: &str = "hs256-secret-a-0123456789abcdefghijklmnop";
pub const HS_SECRET_B: &str = "hs256-secret-b-0123456789abcdefghijklmnop";

// ---------------------------------------------------------------------------------------------
// Tokens.

pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/identity/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An RSA signing key from the fixtures, with its public half as a JWK and as PEM.
pub struct RsaKey {
    pub encoding: EncodingKey,
    pub jwk: Value,
    pub public_pem: String,
}

pub fn rsa(name: &str) -> RsaKey {
    let pem = fixture(&format!("{name}.key"));
    let der = rustls_pemfile::private_key(&mut pem.as_bytes())
        .unwrap()
        .unwrap();
    RsaKey {
        encoding: EncodingKey::from_rsa_der(der.secret_der()),
        jwk: serde_json::from_str(&fixture(&format!("{name}.jwk.json"))).unwrap(),
        public_pem: fixture(&format!("{name}.pub")),
    }
}

impl RsaKey {
    /// The public key as a JWK with `kid`, as an identity provider publishes it.
    pub fn jwk(&self, kid: &str) -> Value {
        let mut jwk = self.jwk.clone();
        jwk["kid"] = kid.into();
        jwk["alg"] = "RS256".into();
        jwk["use"] = "sig".into();
        jwk
    }

    /// An RS256 token with `kid` in its header.
    pub fn sign(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

pub fn hs256(secret: &[u8], kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// An unsigned token (`alg: none`, empty signature).
pub fn alg_none(kid: &str, claims: &Value) -> String {
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
        b64(claims)
    )
}

/// Hasura's claims object: allowed roles, default role, user id and extra variables.
pub fn hasura(user: &str, roles: &[&str], default: &str, extra: Value) -> Value {
    let mut ns = json!({
        "x-hasura-allowed-roles": roles,
        "x-hasura-default-role": default,
        "x-hasura-user-id": user,
    });
    for (k, v) in extra.as_object().unwrap() {
        ns[k] = v.clone();
    }
    ns
}

/// A payload from our identity provider (`iss`, `aud`), valid for `ttl` seconds, with the
/// claims under Hasura's default namespace.
pub fn payload(user: &str, ttl: i64, ns: Value) -> Value {
    let n = now() as i64;
    json!({
        "sub": user,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": n,
        "exp": n + ttl,
        NS: ns,
    })
}

/// The usual claims: user `u-17`, roles user (default) and admin, org 42, for an hour.
pub fn usual() -> Value {
    payload(
        "u-17",
        3600,
        hasura(
            "u-17",
            &["user", "admin"],
            "user",
            json!({"x-hasura-org-id": "42"}),
        ),
    )
}

pub fn with(mut base: Value, patch: Value) -> Value {
    for (k, v) in patch.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

// ---------------------------------------------------------------------------------------------
// The identity provider's JWKS endpoint: HTTPS with a leaf from a private CA.

pub struct JwksState {
    pub body: Mutex<String>,
    pub cache_control: Mutex<String>,
    /// How long each answer takes (a slow identity provider).
    pub delay: Mutex<Duration>,
    /// The answer's status (200 unless told otherwise).
    pub status: Mutex<u16>,
    pub hits: AtomicUsize,
}

pub struct Jwks {
    pub url: String,
    pub port: u16,
    /// The CA's PEM, for `SSL_CERT_FILE`.
    pub ca_file: String,
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub state: Arc<JwksState>,
    pub _dir: tempfile::TempDir,
}

impl Jwks {
    /// Serves `keys` on a free port, `Cache-Control: max-age=3600` until told otherwise.
    pub async fn start(keys: &[Value]) -> Jwks {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let jwks = Jwks::new(listener.local_addr().unwrap().port(), keys);
        jwks.serve(listener);
        jwks
    }

    /// The CA, the certificate and the key set for a server on `port`, which listens only
    /// once [`listen`](Jwks::listen) is called.
    pub fn new(port: u16, keys: &[Value]) -> Jwks {
        let ca = https::private_ca("identity provider test CA");
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("idp-ca.pem");
        std::fs::write(&ca_file, &ca.ca_pem).unwrap();
        let jwks = Jwks {
            url: format!("https://127.0.0.1:{port}/jwks.json"),
            port,
            ca_file: ca_file.to_str().unwrap().to_owned(),
            acceptor: ca.acceptor,
            state: Arc::new(JwksState {
                body: Mutex::new(String::new()),
                cache_control: Mutex::new("max-age=3600".into()),
                delay: Mutex::new(Duration::ZERO),
                status: Mutex::new(200),
                hits: AtomicUsize::new(0),
            }),
            _dir: dir,
        };
        jwks.set_keys(keys);
        jwks
    }

    /// Starts listening on the port given to [`new`](Jwks::new).
    pub async fn listen(&self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        self.serve(listener);
    }

    pub fn serve(&self, listener: tokio::net::TcpListener) {
        let acceptor = self.acceptor.clone();
        let s = self.state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let s = s.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let s = s.clone();
                        async move {
                            let delay = *s.delay.lock();
                            tokio::time::sleep(delay).await;
                            Ok::<_, Infallible>(jwks_answer(&req, &s))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
    }

    pub fn set_keys(&self, keys: &[Value]) {
        *self.state.body.lock() = json!({ "keys": keys }).to_string();
    }

    pub fn set_cache_control(&self, value: &str) {
        *self.state.cache_control.lock() = value.to_owned();
    }

    pub fn set_status(&self, status: u16) {
        *self.state.status.lock() = status;
    }

    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock() = delay;
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// The environment that makes the gateway trust this server's CA.
    pub fn env(&self) -> [(&str, &str); 1] {
        [("SSL_CERT_FILE", self.ca_file.as_str())]
    }
}

pub fn jwks_answer(req: &Request<Incoming>, state: &JwksState) -> Response<Full<Bytes>> {
    if req.uri().path() != "/jwks.json" {
        return Response::builder()
            .status(404)
            .body(Full::new(Bytes::new()))
            .unwrap();
    }
    state.hits.fetch_add(1, Ordering::SeqCst);
    Response::builder()
        .status(*state.status.lock())
        .header("content-type", "application/json")
        .header("cache-control", state.cache_control.lock().clone())
        .body(Full::new(Bytes::from(state.body.lock().clone())))
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The gateway.

/// The standard config plus a WebSocket service `ws` (when given) and `auth` (the `[auth]`
/// tables).
pub fn config(up: &Upstream, ws: Option<SocketAddr>, auth: &str) -> String {
    let ws = ws
        .map(|a| {
            format!(
                "\n[[services]]\nname = \"ws\"\nupstreams = [\"http://{a}\"]\n\
                 allowed_roles = [\"anonymous\", \"user\"]\nwebsocket = true\n"
            )
        })
        .unwrap_or_default();
    standard_config(0, 0, &up.url(), &format!("{ws}\n{auth}"))
}

/// `[[auth.jwt]]` for a JWKS at `url`, with our audience and issuer and `extra` lines.
pub fn jwks_auth(url: &str, extra: &str) -> String {
    format!(
        r#"
[[auth.jwt]]
jwk_url = "{url}"
claims_namespace = "{NS}"
claims_format = "json"
audience = "{AUDIENCE}"
issuer = "{ISSUER}"
allowed_skew = 0
header = {{ type = "Authorization" }}
{extra}
"#
    )
}

pub fn webhook_auth(url: &str) -> String {
    webhook_auth_mode(url, "GET")
}

pub fn webhook_auth_mode(url: &str, mode: &str) -> String {
    format!(
        "[auth.webhook]\nurl = \"{url}\"\nmode = \"{mode}\"\ntimeout = \"2s\"\ncache_key_headers = []\n"
    )
}

/// A GET to service `service` with `headers`.
pub async fn get(g: &Gateway, service: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().get(g.url("/things")).header("host", host(service));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

pub async fn bearer(g: &Gateway, service: &str, token: &str) -> reqwest::Response {
    get(g, service, &[("authorization", &format!("Bearer {token}"))]).await
}

/// The `code` of a JSON rejection.
pub async fn code(res: reqwest::Response) -> String {
    let body: Value = res.json().await.unwrap();
    body["code"].as_str().unwrap_or_default().to_owned()
}

/// Asserts a 401 that tells a bearer client its token is invalid.
#[track_caller]
pub fn assert_invalid_token(res: &reqwest::Response, what: &str) {
    assert_eq!(res.status(), 401, "{what}");
    let challenge = res
        .headers()
        .get("www-authenticate")
        .unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"))
        .to_str()
        .unwrap();
    assert!(
        challenge.starts_with("Bearer") && challenge.contains(r#"error="invalid_token""#),
        "{what}: {challenge}"
    );
}

/// Waits until `/readyz` answers 200: the JWKS has been fetched. (JWT requests sent while the
/// start-up fetch is still under way get 503, as `/readyz` says until then.)
pub async fn ready(g: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = client().get(g.admin_url("/readyz")).send().await.unwrap();
        let status = res.status();
        let body = res.text().await.unwrap();
        if status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz answered {status} {body:?} for 10 s; log:\n{}",
            g.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `f` every 100 ms until it holds, for at most `limit`.
pub async fn eventually<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
