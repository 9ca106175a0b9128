//! Issue 15 end to end, against the real binary: the gateway as the resource server of an
//! identity provider. The test plays the provider: it mints HS256 and RS256 tokens with
//! Hasura-style claims, serves a JWKS over HTTPS from a private CA (rcgen; the CA reaches the
//! gateway through `SSL_CERT_FILE`, as an operator would give it), rotates it, runs an auth
//! webhook, and checks what the upstream receives. Keys are fixtures
//! (`tests/fixtures/identity/README.md`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../session-core/tests/support/https.rs"]
mod https;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Hasura's default claims namespace.
const NS: &str = "https://hasura.io/jwt/claims";
const AUDIENCE: &str = "my-app";
const ISSUER: &str = "https://idp.test/";
/// HS256 secrets (Hasura wants at least 32 characters).
const HS_SECRET_A: &str = "hs256-secret-a-0123456789abcdefghijklmnop";
const HS_SECRET_B: &str = "hs256-secret-b-0123456789abcdefghijklmnop";

// ---------------------------------------------------------------------------------------------
// Tokens.

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/identity/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An RSA signing key from the fixtures, with its public half as a JWK and as PEM.
struct RsaKey {
    encoding: EncodingKey,
    jwk: Value,
    public_pem: String,
}

fn rsa(name: &str) -> RsaKey {
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
    fn jwk(&self, kid: &str) -> Value {
        let mut jwk = self.jwk.clone();
        jwk["kid"] = kid.into();
        jwk["alg"] = "RS256".into();
        jwk["use"] = "sig".into();
        jwk
    }

    /// An RS256 token with `kid` in its header.
    fn sign(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

fn hs256(secret: &[u8], kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// An unsigned token (`alg: none`, empty signature).
fn alg_none(kid: &str, claims: &Value) -> String {
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
        b64(claims)
    )
}

/// Hasura's claims object: allowed roles, default role, user id and extra variables.
fn hasura(user: &str, roles: &[&str], default: &str, extra: Value) -> Value {
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
fn payload(user: &str, ttl: i64, ns: Value) -> Value {
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
fn usual() -> Value {
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

fn with(mut base: Value, patch: Value) -> Value {
    for (k, v) in patch.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

// ---------------------------------------------------------------------------------------------
// The identity provider's JWKS endpoint: HTTPS with a leaf from a private CA.

struct JwksState {
    body: Mutex<String>,
    cache_control: Mutex<String>,
    /// How long each answer takes (a slow identity provider).
    delay: Mutex<Duration>,
    /// The answer's status (200 unless told otherwise).
    status: Mutex<u16>,
    hits: AtomicUsize,
}

struct Jwks {
    url: String,
    port: u16,
    /// The CA's PEM, for `SSL_CERT_FILE`.
    ca_file: String,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<JwksState>,
    _dir: tempfile::TempDir,
}

impl Jwks {
    /// Serves `keys` on a free port, `Cache-Control: max-age=3600` until told otherwise.
    async fn start(keys: &[Value]) -> Jwks {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let jwks = Jwks::new(listener.local_addr().unwrap().port(), keys);
        jwks.serve(listener);
        jwks
    }

    /// The CA, the certificate and the key set for a server on `port`, which listens only
    /// once [`listen`](Jwks::listen) is called.
    fn new(port: u16, keys: &[Value]) -> Jwks {
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
    async fn listen(&self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        self.serve(listener);
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
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

    fn set_keys(&self, keys: &[Value]) {
        *self.state.body.lock() = json!({ "keys": keys }).to_string();
    }

    fn set_cache_control(&self, value: &str) {
        *self.state.cache_control.lock() = value.to_owned();
    }

    fn set_status(&self, status: u16) {
        *self.state.status.lock() = status;
    }

    fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock() = delay;
    }

    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// The environment that makes the gateway trust this server's CA.
    fn env(&self) -> [(&str, &str); 1] {
        [("SSL_CERT_FILE", self.ca_file.as_str())]
    }
}

fn jwks_answer(req: &Request<Incoming>, state: &JwksState) -> Response<Full<Bytes>> {
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
fn config(up: &Upstream, ws: Option<SocketAddr>, auth: &str) -> String {
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
fn jwks_auth(url: &str, extra: &str) -> String {
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

/// A GET to service `service` with `headers`.
async fn get(g: &Gateway, service: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().get(g.url("/things")).header("host", host(service));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn bearer(g: &Gateway, service: &str, token: &str) -> reqwest::Response {
    get(g, service, &[("authorization", &format!("Bearer {token}"))]).await
}

/// The `code` of a JSON rejection.
async fn code(res: reqwest::Response) -> String {
    let body: Value = res.json().await.unwrap();
    body["code"].as_str().unwrap_or_default().to_owned()
}

/// Asserts a 401 that tells a bearer client its token is invalid.
#[track_caller]
fn assert_invalid_token(res: &reqwest::Response, what: &str) {
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
async fn ready(g: &Gateway) {
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
async fn eventually<F, Fut>(limit: Duration, mut f: F) -> bool
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

// ---------------------------------------------------------------------------------------------
// (1) RS256 through a JWKS over HTTPS.

/// An RS256 token whose key comes from a JWKS served over HTTPS by a private CA (trusted through
/// `SSL_CERT_FILE`): the upstream receives the user id, the default role, the allowed roles and
/// the extra variable from the claims, and none of the client's own `X-Hasura-*` headers;
/// `X-Hasura-Role` selects among the allowed roles and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_from_a_jwks_over_https_reaches_the_upstream_as_session_variables() {
    let k1 = rsa("rsa1");
    let jwks = Jwks::start(&[k1.jwk("k1")]).await;
    let up = Upstream::start().await;
    let g = Gateway::start_with_env(
        &config(&up, None, &jwks_auth(&jwks.url, "")),
        0,
        0,
        &jwks.env(),
    );
    ready(&g).await;
    let token = k1.sign("k1", &usual());

    let res = get(
        &g,
        "data",
        &[
            ("authorization", &format!("Bearer {token}")),
            ("x-hasura-org-id", "666"),
            ("x-hasura-user-id", "evil"),
            ("x-hasura-is-owner", "true"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200, "log:\n{}", g.log());
    let seen = up.last();
    assert_eq!(seen.all("x-hasura-user-id"), ["u-17"]);
    assert_eq!(seen.all("x-hasura-role"), ["user"]);
    assert_eq!(seen.all("x-hasura-allowed-roles"), ["user,admin"]);
    assert_eq!(
        seen.all("x-hasura-org-id"),
        ["42"],
        "the claim, not the client's header"
    );
    assert!(seen.all("x-hasura-is-owner").is_empty());
    assert!(
        seen.all("authorization").is_empty(),
        "the token is not forwarded by default"
    );
    assert!(jwks.hits() >= 1, "the JWKS was never fetched");

    // X-Hasura-Role picks another allowed role, on a service only that role may use.
    let res = get(
        &g,
        "admin",
        &[
            ("authorization", &format!("Bearer {token}")),
            ("x-hasura-role", "admin"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    let seen = up.last();
    assert_eq!(seen.all("x-hasura-role"), ["admin"]);
    assert_eq!(seen.all("x-hasura-user-id"), ["u-17"]);
    assert_eq!(seen.all("x-hasura-org-id"), ["42"]);

    // A role the token does not allow: 403, and nothing reaches the upstream.
    let before = up.count();
    let res = get(
        &g,
        "data",
        &[
            ("authorization", &format!("Bearer {token}")),
            ("x-hasura-role", "editor"),
        ],
    )
    .await;
    assert_eq!(res.status(), 403);
    assert_eq!(code(res).await, "role-not-allowed");
    // The default role (user) is not enough for the admin-only service.
    let res = bearer(&g, "admin", &token).await;
    assert!(
        res.status() == 401 || res.status() == 403,
        "got {}",
        res.status()
    );
    assert_eq!(up.count(), before);
}

/// An identity provider's client does not poll `/readyz`: a JWT sent as soon as the gateway
/// accepts connections, while the start-up JWKS fetch is under way (the JWKS answers in
/// 300 ms here, well within the fetch timeout), is answered once that fetch has ended, not
/// refused with 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_sent_as_soon_as_the_gateway_listens_is_served() {
    let k1 = rsa("rsa1");
    let jwks = Jwks::start(&[k1.jwk("k1")]).await;
    jwks.set_delay(Duration::from_millis(300));
    let up = Upstream::start().await;
    let g = Gateway::start_with_env(
        &config(&up, None, &jwks_auth(&jwks.url, "")),
        0,
        0,
        &jwks.env(),
    );
    let res = bearer(&g, "data", &k1.sign("k1", &usual())).await;
    assert_eq!(res.status(), 200, "log:\n{}", g.log());
    assert_eq!(up.last().all("x-hasura-user-id"), ["u-17"]);
}

/// A verified token is cached, but never past its `exp`: the same token, valid a moment ago,
/// is refused once it has expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_token_is_refused_once_it_expires() {
    let k1 = rsa("rsa1");
    let jwks = Jwks::start(&[k1.jwk("k1")]).await;
    let up = Upstream::start().await;
    let g = Gateway::start_with_env(
        &config(&up, None, &jwks_auth(&jwks.url, "")),
        0,
        0,
        &jwks.env(),
    );
    ready(&g).await;
    let claims = payload("u-17", 2, hasura("u-17", &["user"], "user", json!({})));
    let exp = UNIX_EPOCH + Duration::from_secs(claims["exp"].as_u64().unwrap());
    let token = k1.sign("k1", &claims);
    for _ in 0..3 {
        assert_eq!(bearer(&g, "data", &token).await.status(), 200);
    }
    let wait = exp
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    tokio::time::sleep(wait + Duration::from_millis(1100)).await;
    let before = up.count();
    let res = bearer(&g, "data", &token).await;
    assert_invalid_token(&res, "a cached token after its exp");
    assert_eq!(up.count(), before);
}

/// Identity providers publish keys without `alg` or `use` (the JWK's own fields are optional):
/// such a key verifies an RS256 token with its `kid`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwk_without_alg_or_use_verifies() {
    let k1 = rsa("rsa1");
    let mut jwk = k1.jwk("k1");
    jwk.as_object_mut().unwrap().remove("alg");
    jwk.as_object_mut().unwrap().remove("use");
    let jwks = Jwks::start(&[jwk]).await;
    let up = Upstream::start().await;
    let g = Gateway::start_with_env(
        &config(&up, None, &jwks_auth(&jwks.url, "")),
        0,
        0,
        &jwks.env(),
    );
    ready(&g).await;
    let res = bearer(&g, "data", &k1.sign("k1", &usual())).await;
    assert_eq!(res.status(), 200, "log:\n{}", g.log());
    assert_eq!(up.last().all("x-hasura-user-id"), ["u-17"]);
}

// ---------------------------------------------------------------------------------------------
// (2) HS256 from HASURA_GRAPHQL_JWT_SECRET.

/// `jwt_secret_env` names Hasura's environment variable holding a list of two HS256 configs
/// told apart by issuer: one with `stringified_json` claims, one with `claims_namespace_path`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_configs_from_hasuras_environment_variable() {
    let up = Upstream::start().await;
    let secret = json!([
        {
            "type": "HS256",
            "key": HS_SECRET_A,
            "claims_format": "stringified_json",
            "issuer": "https://a.idp.test/",
        },
        {
            "type": "HS256",
            "key": HS_SECRET_B,
            "claims_namespace_path": "$.hasura",
            "issuer": "https://b.idp.test/",
        },
    ])
    .to_string();
    let g = Gateway::start_with_env(
        &config(
            &up,
            None,
            "[auth]\njwt_secret_env = \"HASURA_GRAPHQL_JWT_SECRET\"\n",
        ),
        0,
        0,
        &[("HASURA_GRAPHQL_JWT_SECRET", &secret)],
    );
    let n = now();

    // Stringified claims under the default namespace.
    let ns = hasura(
        "a-1",
        &["user"],
        "user",
        json!({"x-hasura-org-id": "a-org"}),
    );
    let a = json!({
        "sub": "a-1", "iss": "https://a.idp.test/", "exp": n + 600,
        NS: ns.to_string(),
    });
    let res = bearer(&g, "data", &hs256(HS_SECRET_A.as_bytes(), None, &a)).await;
    assert_eq!(res.status(), 200, "log:\n{}", g.log());
    let seen = up.last();
    assert_eq!(seen.all("x-hasura-user-id"), ["a-1"]);
    assert_eq!(seen.all("x-hasura-role"), ["user"]);
    assert_eq!(seen.all("x-hasura-org-id"), ["a-org"]);

    // Claims at a JSON path.
    let b = json!({
        // An `aud` with no audience configured is not checked, as in Hasura.
        "sub": "b-2", "iss": "https://b.idp.test/", "aud": "some-api", "exp": n + 600,
        "hasura": hasura("b-2", &["user", "admin"], "admin", json!({"x-hasura-team": "blue"})),
    });
    let res = bearer(&g, "data", &hs256(HS_SECRET_B.as_bytes(), None, &b)).await;
    assert_eq!(res.status(), 200);
    let seen = up.last();
    assert_eq!(seen.all("x-hasura-user-id"), ["b-2"]);
    assert_eq!(seen.all("x-hasura-role"), ["admin"]);
    assert_eq!(seen.all("x-hasura-allowed-roles"), ["user,admin"]);
    assert_eq!(seen.all("x-hasura-team"), ["blue"]);

    // Each issuer's token must carry its own secret's signature, and a stringified config
    // does not read a plain object (nor the reverse).
    let before = up.count();
    let res = bearer(&g, "data", &hs256(HS_SECRET_B.as_bytes(), None, &a)).await;
    assert_invalid_token(&res, "issuer a signed with b's secret");
    let plain_a = with(a.clone(), json!({ NS: ns }));
    let res = bearer(&g, "data", &hs256(HS_SECRET_A.as_bytes(), None, &plain_a)).await;
    assert_invalid_token(&res, "a JSON object where stringified_json is configured");
    assert_eq!(up.count(), before);
}

/// The most common Hasura setup: one HS256 config in `HASURA_GRAPHQL_JWT_SECRET`, claims named
/// in any case (Hasura's session variables are case-insensitive), a number as a variable's
/// value, and the role chosen with `X-Hasura-Role`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_one_hasura_config_with_claims_in_any_case() {
    let up = Upstream::start().await;
    let secret = json!({"type": "HS256", "key": HS_SECRET_A}).to_string();
    let g = Gateway::start_with_env(
        &config(
            &up,
            None,
            "[auth]\njwt_secret_env = \"HASURA_GRAPHQL_JWT_SECRET\"\n",
        ),
        0,
        0,
        &[("HASURA_GRAPHQL_JWT_SECRET", &secret)],
    );
    let claims = json!({
        "sub": "h-4", "iat": now(), "exp": now() + 600,
        NS: {
            "X-Hasura-Allowed-Roles": ["user", "admin"],
            "X-Hasura-Default-Role": "user",
            "X-Hasura-User-Id": "h-4",
            "X-Hasura-Org-Id": 7,
        },
    });
    let token = hs256(HS_SECRET_A.as_bytes(), None, &claims);
    let res = bearer(&g, "data", &token).await;
    assert_eq!(res.status(), 200, "log:\n{}", g.log());
    let seen = up.last();
    assert_eq!(seen.all("x-hasura-user-id"), ["h-4"]);
    assert_eq!(seen.all("x-hasura-role"), ["user"]);
    assert_eq!(seen.all("x-hasura-allowed-roles"), ["user,admin"]);
    assert_eq!(seen.all("x-hasura-org-id"), ["7"]);

    let res = get(
        &g,
        "admin",
        &[
            ("authorization", &format!("Bearer {token}")),
            ("X-Hasura-Role", "admin"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(up.last().all("x-hasura-role"), ["admin"]);
}

/// `claims_map` in the TOML table: paths into the payload, a default, and a literal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_map_in_a_toml_jwt_table() {
    let up = Upstream::start().await;
    let auth = format!(
        r#"
[[auth.jwt]]
type = "HS256"
key = "{HS_SECRET_A}"
claims_map = {{ "x-hasura-allowed-roles" = {{ path = "$.roles" }}, "x-hasura-default-role" = {{ path = "$.role", default = "user" }}, "x-hasura-user-id" = {{ path = "$.sub" }}, "x-hasura-org-id" = "acme" }}
"#
    );
    let g = Gateway::start(&config(&up, None, &auth), 0, 0);
    let claims = json!({"sub": "m-1", "roles": ["user", "admin"], "exp": now() + 600});
    let res = bearer(&g, "data", &hs256(HS_SECRET_A.as_bytes(), None, &claims)).await;
    assert_eq!(res.status(), 200, "log:\n{}", g.log());
    let seen = up.last();
    assert_eq!(seen.all("x-hasura-user-id"), ["m-1"]);
    assert_eq!(seen.all("x-hasura-role"), ["user"], "the default");
    assert_eq!(seen.all("x-hasura-allowed-roles"), ["user,admin"]);
    assert_eq!(seen.all("x-hasura-org-id"), ["acme"], "the literal");

    let claims = with(claims, json!({"role": "admin"}));
    let res = bearer(&g, "data", &hs256(HS_SECRET_A.as_bytes(), None, &claims)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(up.last().all("x-hasura-role"), ["admin"]);

    // No roles at the path and no default: not a valid token.
    let before = up.count();
    let claims = json!({"sub": "m-1", "exp": now() + 600});
    let res = bearer(&g, "data", &hs256(HS_SECRET_A.as_bytes(), None, &claims)).await;
    assert_invalid_token(&res, "claims_map path with nothing there");
    assert_eq!(up.count(), before);
}

// ---------------------------------------------------------------------------------------------
// (3) Rotation.

/// A gateway in front of a JWKS holding `k1` that answers `Cache-Control: max-age=1`, with
/// `jwks_refresh_min = "1s"`, ready, and a `k1` token that verified.
async fn rotating(jwks: &Jwks, up: &Upstream, k1: &RsaKey) -> (Gateway, String) {
    jwks.set_cache_control("max-age=1");
    let g = Gateway::start_with_env(
        &config(up, None, &jwks_auth(&jwks.url, "jwks_refresh_min = \"1s\"")),
        0,
        0,
        &jwks.env(),
    );
    ready(&g).await;
    let old = k1.sign("k1", &usual());
    assert_eq!(
        bearer(&g, "data", &old).await.status(),
        200,
        "log:\n{}",
        g.log()
    );
    (g, old)
}

/// The provider adds a key: a token with the new `kid` verifies on its first request (the
/// JWKS is refetched at once for an unknown `kid`), with the default refetch interval, right
/// after the gateway became ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_rotation_a_new_kid_verifies_at_once() {
    let (k1, k2) = (rsa("rsa1"), rsa("rsa2"));
    let jwks = Jwks::start(&[k1.jwk("k1")]).await;
    let up = Upstream::start().await;
    let (g, old) = rotating(&jwks, &up, &k1).await;

    jwks.set_keys(&[k1.jwk("k1"), k2.jwk("k2")]);
    let hits = jwks.hits();
    let new = k2.sign(
        "k2",
        &payload("u-18", 3600, hasura("u-18", &["user"], "user", json!({}))),
    );
    let res = bearer(&g, "data", &new).await;
    assert_eq!(
        res.status(),
        200,
        "the first token signed with a key just added to the JWKS was refused (JWKS fetches \
         since the rotation: {}); log:\n{}",
        jwks.hits() - hits,
        g.log()
    );
    assert_eq!(up.last().all("x-hasura-user-id"), ["u-18"]);
    assert_eq!(bearer(&g, "data", &old).await.status(), 200);
}

/// The provider rotates its keys: the new key verifies once the JWKS is refreshed (at the
/// latest as its `Cache-Control: max-age=1` says); the old key, once it leaves the set, stops
/// verifying after the refresh, its cached tokens included; a flood of unknown `kid`s does not
/// turn into a flood of fetches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_rotation_a_removed_kid_stops_verifying_after_the_refresh() {
    let (k1, k2) = (rsa("rsa1"), rsa("rsa2"));
    let jwks = Jwks::start(&[k1.jwk("k1")]).await;
    let up = Upstream::start().await;
    let (g, old) = rotating(&jwks, &up, &k1).await;

    jwks.set_keys(&[k1.jwk("k1"), k2.jwk("k2")]);
    let new = k2.sign(
        "k2",
        &payload("u-18", 3600, hasura("u-18", &["user"], "user", json!({}))),
    );
    let accepted = eventually(Duration::from_secs(5), || async {
        bearer(&g, "data", &new).await.status() == 200
    })
    .await;
    assert!(
        accepted,
        "a new key was still refused 5 s after it was published"
    );
    assert_eq!(up.last().all("x-hasura-user-id"), ["u-18"]);
    assert_eq!(bearer(&g, "data", &old).await.status(), 200);

    // The old key leaves: its (cached) token stops verifying after the refresh.
    jwks.set_keys(&[k2.jwk("k2")]);
    let removed = Instant::now();
    let refused = eventually(Duration::from_secs(6), || async {
        bearer(&g, "data", &old).await.status() == 401
    })
    .await;
    assert!(
        refused,
        "a token of a removed key still verified 6 s after its removal"
    );
    let res = bearer(&g, "data", &old).await;
    assert_invalid_token(&res, "a token of a removed key");
    eprintln!("removed key refused after {:?}", removed.elapsed());
    assert_eq!(bearer(&g, "data", &new).await.status(), 200);
    assert_eq!(up.last().all("x-hasura-user-id"), ["u-18"]);

    // A flood of unknown kids: every one refused, and only a few fetches.
    let before = jwks.hits();
    let started = Instant::now();
    let floods = (0..60).map(|i| {
        let token = k2.sign(&format!("unknown-{i}"), &usual());
        let g = &g;
        async move { bearer(g, "data", &token).await.status() }
    });
    let statuses = futures_util::future::join_all(floods).await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    let took = started.elapsed();
    let fetches = jwks.hits() - before;
    // Scheduled refreshes (one a second here) plus at most one refetch per interval.
    let allowed = took.as_secs() as usize + 3;
    assert!(
        fetches <= allowed,
        "{fetches} JWKS fetches for 60 unknown kids in {took:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// (4) Rejections at the socket.

/// Tokens that must not verify, each answered 401 with `WWW-Authenticate: Bearer
/// error="invalid_token"` and never forwarded; a JWT in a cookie when the config says header
/// is not read (anonymous).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_401_invalid_token_and_never_reach_the_upstream() {
    let (k1, k2) = (rsa("rsa1"), rsa("rsa2"));
    let jwks = Jwks::start(&[k1.jwk("k1")]).await;
    let up = Upstream::start().await;
    let g = Gateway::start_with_env(
        &config(&up, None, &jwks_auth(&jwks.url, "")),
        0,
        0,
        &jwks.env(),
    );
    ready(&g).await;
    let good = k1.sign("k1", &usual());
    assert_eq!(
        bearer(&g, "data", &good).await.status(),
        200,
        "log:\n{}",
        g.log()
    );
    let n = now() as i64;
    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            k1.sign("k1", &with(usual(), json!({"exp": n - 60}))),
        ),
        ("wrong signature", k2.sign("k1", &usual())),
        ("alg none", alg_none("k1", &usual())),
        (
            "HS256 signed with the RSA public key (algorithm confusion)",
            hs256(k1.public_pem.as_bytes(), Some("k1"), &usual()),
        ),
        (
            "nbf in the future",
            k1.sign("k1", &with(usual(), json!({"nbf": n + 600}))),
        ),
        (
            "wrong audience",
            k1.sign("k1", &with(usual(), json!({"aud": "other-app"}))),
        ),
        (
            "wrong issuer",
            k1.sign("k1", &with(usual(), json!({"iss": "https://evil.test/"}))),
        ),
        (
            "default role not allowed",
            k1.sign(
                "k1",
                &payload("u-17", 3600, hasura("u-17", &["user"], "admin", json!({}))),
            ),
        ),
        ("kid not in the set", k2.sign("k9", &usual())),
        (
            "no claims",
            k1.sign("k1", &with(usual(), json!({ NS: null }))),
        ),
    ];
    let before = up.count();
    for (what, token) in &cases {
        let res = bearer(&g, "data", token).await;
        assert_invalid_token(&res, what);
    }
    assert_eq!(up.count(), before, "a refused token reached the upstream");

    // A valid JWT in a cookie, when the config reads the Authorization header: not a
    // credential, so the request is anonymous.
    let res = get(&g, "data", &[("cookie", &format!("idp_token={good}"))]).await;
    assert_eq!(res.status(), 200);
    let seen = up.last();
    assert_eq!(seen.all("x-hasura-role"), ["anonymous"]);
    assert_eq!(seen.all("x-hasura-user-id"), ["0"]);

    // The good token still verifies: the refusals were the tokens', not the setup's.
    assert_eq!(bearer(&g, "data", &good).await.status(), 200);
    assert_eq!(up.last().all("x-hasura-user-id"), ["u-17"]);
}

/// A JWT read from a cookie (`header = {type = "Cookie"}`, the config given as Hasura's JSON in
/// `jwt_secret`): a valid one is the identity; an invalid one leaves the request anonymous and
/// the cookie in place; a bearer JWT is not read by a cookie config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_cookie_that_fails_is_anonymous_and_not_cleared() {
    let up = Upstream::start().await;
    let secret = json!({
        "type": "HS256",
        "key": HS_SECRET_A,
        "header": {"type": "Cookie", "name": "idp_token"},
    })
    .to_string();
    let auth = format!("[auth]\njwt_secret = '{secret}'\n");
    let g = Gateway::start(&config(&up, None, &auth), 0, 0);
    let n = now() as i64;
    let claims = json!({
        "sub": "c-3", "exp": n + 600,
        NS: hasura("c-3", &["user"], "user", json!({"x-hasura-org-id": "c-org"})),
    });
    let good = hs256(HS_SECRET_A.as_bytes(), None, &claims);

    let res = get(
        &g,
        "data",
        &[("cookie", &format!("theme=dark; idp_token={good}"))],
    )
    .await;
    assert_eq!(res.status(), 200, "log:\n{}", g.log());
    let seen = up.last();
    assert_eq!(seen.all("x-hasura-user-id"), ["c-3"]);
    assert_eq!(seen.all("x-hasura-role"), ["user"]);
    assert_eq!(seen.all("x-hasura-org-id"), ["c-org"]);

    for (what, token) in [
        (
            "expired",
            hs256(
                HS_SECRET_A.as_bytes(),
                None,
                &with(claims.clone(), json!({"exp": n - 60})),
            ),
        ),
        ("wrong secret", hs256(HS_SECRET_B.as_bytes(), None, &claims)),
    ] {
        let res = get(&g, "data", &[("cookie", &format!("idp_token={token}"))]).await;
        assert_eq!(res.status(), 200, "{what}");
        let cleared: Vec<_> = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .filter(|c| c.starts_with("idp_token="))
            .collect();
        assert!(
            cleared.is_empty(),
            "{what}: the cookie was cleared: {cleared:?}"
        );
        let seen = up.last();
        assert_eq!(seen.all("x-hasura-user-id"), ["0"], "{what}");
        assert_eq!(seen.all("x-hasura-role"), ["anonymous"], "{what}");
    }

    // The same valid token as a bearer: the config reads the cookie only.
    let before = up.count();
    let res = bearer(&g, "data", &good).await;
    assert_invalid_token(&res, "a bearer JWT for a cookie config");
    assert_eq!(up.count(), before);
}

// ---------------------------------------------------------------------------------------------
// (5) No JWKS.

/// The JWKS cannot be reached when the gateway starts: `/readyz` answers 503 with a reason,
/// JWT requests get 503 (fail closed, never anonymous), while session-store tokens and
/// anonymous traffic are served; once the JWKS answers, everything is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_jwks_fails_closed_and_readyz_says_why() {
    let k1 = rsa("rsa1");
    // The provider's CA exists, but nothing listens on its port yet.
    let jwks = Jwks::new(free_port(), &[k1.jwk("k1")]);
    let up = Upstream::start().await;
    let g = Gateway::start_with_env(
        &config(
            &up,
            None,
            &jwks_auth(&jwks.url, "jwks_refetch_interval = \"1s\""),
        ),
        0,
        0,
        &jwks.env(),
    );
    let c = client();

    // /readyz: 503 with the reason once the start-up fetch has failed.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = c.get(g.admin_url("/readyz")).send().await.unwrap();
        let status = res.status();
        let body = res.text().await.unwrap();
        if status == 503 && body.to_ascii_lowercase().contains("jwks") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz answered {status} {body:?}; log:\n{}",
            g.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let token = k1.sign("k1", &usual());
    let before = up.count();
    let res = bearer(&g, "data", &token).await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(code(res).await, "session-store-unavailable");
    assert_eq!(up.count(), before);

    // The session store and anonymous traffic do not depend on the JWKS.
    let session = create_session(&g, "s-9", &["user"], None).await;
    assert_eq!(session.len(), 43);
    let res = bearer(&g, "data", &session).await;
    assert_eq!(res.status(), 200);
    assert_eq!(up.last().all("x-hasura-user-id"), ["s-9"]);
    let res = get(&g, "data", &[]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(up.last().all("x-hasura-role"), ["anonymous"]);

    // The JWKS comes up: the gateway becomes ready and the token verifies.
    jwks.listen().await;
    let ready = eventually(Duration::from_secs(10), || async {
        client()
            .get(g.admin_url("/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(ready, "/readyz never answered 200 once the JWKS was up");
    let res = bearer(&g, "data", &token).await;
    assert_eq!(res.status(), 200);
    assert_eq!(up.last().all("x-hasura-user-id"), ["u-17"]);
}

/// A JWKS that fails after the gateway has its keys: the last good set stays in use (tokens
/// verify, `/readyz` stays 200) while the refreshes fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_that_fails_later_keeps_the_last_good_key_set() {
    let k1 = rsa("rsa1");
    let jwks = Jwks::start(&[k1.jwk("k1")]).await;
    jwks.set_cache_control("max-age=1");
    let up = Upstream::start().await;
    let g = Gateway::start_with_env(
        &config(
            &up,
            None,
            &jwks_auth(
                &jwks.url,
                "jwks_refresh_min = \"1s\"\njwks_refetch_interval = \"1s\"",
            ),
        ),
        0,
        0,
        &jwks.env(),
    );
    ready(&g).await;
    let token = k1.sign("k1", &usual());
    assert_eq!(bearer(&g, "data", &token).await.status(), 200);
    jwks.set_status(500);
    let hits = jwks.hits();
    let failed = eventually(Duration::from_secs(5), || async { jwks.hits() >= hits + 2 }).await;
    assert!(failed, "the JWKS was not refreshed");
    // A token not seen before, so not a cache hit.
    let fresh = k1.sign(
        "k1",
        &payload("u-19", 600, hasura("u-19", &["user"], "user", json!({}))),
    );
    let res = bearer(&g, "data", &fresh).await;
    assert_eq!(res.status(), 200, "log:\n{}", g.log());
    assert_eq!(up.last().all("x-hasura-user-id"), ["u-19"]);
    let res = client().get(g.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

/// A JWKS URL naming `localhost` (the certificate's DNS name), as a test identity provider
/// often is, works as well as one naming the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_url_naming_localhost() {
    let k1 = rsa("rsa1");
    let jwks = Jwks::start(&[k1.jwk("k1")]).await;
    let url = jwks.url.replace("127.0.0.1", "localhost");
    let up = Upstream::start().await;
    let g = Gateway::start_with_env(&config(&up, None, &jwks_auth(&url, "")), 0, 0, &jwks.env());
    ready(&g).await;
    let res = bearer(&g, "data", &k1.sign("k1", &usual())).await;
    assert_eq!(res.status(), 200, "log:\n{}", g.log());
}

// ---------------------------------------------------------------------------------------------
// (6) WebSocket tunnels end with the token.

/// A WebSocket opened with a JWT is closed when the token expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_opened_with_a_jwt_closes_when_the_token_expires() {
    let k1 = rsa("rsa1");
    let jwks = Jwks::start(&[k1.jwk("k1")]).await;
    let up = Upstream::start().await;
    let ws = ws_echo().await;
    let g = Gateway::start_with_env(
        &config(&up, Some(ws), &jwks_auth(&jwks.url, "")),
        0,
        0,
        &jwks.env(),
    );
    ready(&g).await;
    let claims = payload("u-17", 4, hasura("u-17", &["user"], "user", json!({})));
    let token = k1.sign("k1", &claims);
    let exp = UNIX_EPOCH + Duration::from_secs(claims["exp"].as_u64().unwrap());
    let mut req = format!("ws://{}/chat", host("ws"))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", g.http))
        .await
        .unwrap();
    let (mut t, res) = tokio::time::timeout(
        Duration::from_secs(3),
        tokio_tungstenite::client_async(req, stream),
    )
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("the tunnel was not opened: {e}; log:\n{}", g.log()));
    assert_eq!(res.status(), 101);
    t.send(Message::text("hello")).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(2), t.next()).await {
        Ok(Some(Ok(Message::Text(m)))) => assert_eq!(m.as_str(), "hello"),
        other => panic!("no echo: {other:?}"),
    }

    // Open until the token's exp, closed soon after.
    let closed_at = loop {
        match tokio::time::timeout(Duration::from_secs(8), t.next()).await {
            Err(_) => panic!("the tunnel was still open 8 s after the last echo"),
            Ok(Some(Ok(Message::Text(m)))) => panic!("unexpected message {m}"),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => break SystemTime::now(),
        }
    };
    let early = exp.duration_since(closed_at).unwrap_or(Duration::ZERO);
    let late = closed_at.duration_since(exp).unwrap_or(Duration::ZERO);
    assert!(
        early <= Duration::from_millis(1100),
        "closed {early:?} before the token's exp"
    );
    assert!(
        late <= Duration::from_secs(3),
        "closed {late:?} after the token's exp"
    );
}

// ---------------------------------------------------------------------------------------------
// (7) The auth webhook.

/// A Hasura-style auth webhook on plain HTTP to loopback. It answers by the client's
/// `Authorization` (a request header in GET mode, `headers` of the JSON body in POST mode):
/// `Bearer opaque-good` → user `w-5` with the role the client asked for (`user` by default)
/// and `X-Hasura-Org-Id: 7`; `Bearer opaque-cached` → user `c-1`, the same role rule,
/// cacheable for a minute; `Bearer opaque-refused` → 401; any other → 500; none → anonymous.
struct Webhook {
    url: String,
    seen: Arc<Mutex<Vec<Call>>>,
}

/// One call the webhook received.
#[derive(Clone, Debug)]
struct Call {
    method: http::Method,
    headers: HeaderMap,
    /// The JSON body (POST mode), `Null` when empty.
    body: Value,
}

impl Webhook {
    async fn start() -> Webhook {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Call>>> = Arc::default();
        let s = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let s = s.clone();
                        async move { Ok::<_, Infallible>(webhook_answer(req, &s).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Webhook {
            url: format!("http://{addr}/hook"),
            seen,
        }
    }

    fn count(&self) -> usize {
        self.seen.lock().len()
    }

    fn last(&self) -> Call {
        self.seen
            .lock()
            .last()
            .cloned()
            .expect("the webhook was not called")
    }
}

async fn webhook_answer(req: Request<Incoming>, seen: &Mutex<Vec<Call>>) -> Response<Full<Bytes>> {
    use http_body_util::BodyExt;
    let (parts, body) = req.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    seen.lock().push(Call {
        method: parts.method.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    // The client's headers: the request's own in GET mode, the body's in POST mode.
    let header = |name: &str| -> Option<String> {
        if parts.method == http::Method::POST {
            body["headers"].as_object().and_then(|h| {
                h.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .and_then(|(_, v)| v.as_str().map(str::to_owned))
            })
        } else {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        }
    };
    let role = header("x-hasura-role").unwrap_or_else(|| "user".to_owned());
    let (status, body) = match header("authorization").as_deref() {
        Some("Bearer opaque-good") => (
            200,
            json!({"X-Hasura-User-Id": "w-5", "X-Hasura-Role": role, "X-Hasura-Org-Id": "7"}),
        ),
        Some("Bearer opaque-cached") => (
            200,
            json!({"X-Hasura-User-Id": "c-1", "X-Hasura-Role": role, "Cache-Control": "max-age=60"}),
        ),
        Some("Bearer opaque-refused") => (401, json!({"message": "no"})),
        Some(_) => (500, json!({"message": "broken"})),
        None => (200, json!({"X-Hasura-Role": "anonymous"})),
    };
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn webhook_auth(url: &str) -> String {
    webhook_auth_mode(url, "GET")
}

fn webhook_auth_mode(url: &str, mode: &str) -> String {
    format!(
        "[auth.webhook]\nurl = \"{url}\"\nmode = \"{mode}\"\ntimeout = \"2s\"\ncache_key_headers = []\n"
    )
}

/// The webhook decides opaque tokens and requests without a credential: its identity reaches
/// the upstream, it sees the client's `Authorization` and `X-Hasura-Role`, its 401 is a 401 and
/// its 500 a 503; a session token (43 characters) still goes to the session store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_webhook_decides_other_credentials_and_sessions_stay_in_the_store() {
    let hook = Webhook::start().await;
    let up = Upstream::start().await;
    let g = Gateway::start(&config(&up, None, &webhook_auth(&hook.url)), 0, 0);

    let res = get(
        &g,
        "data",
        &[
            ("authorization", "Bearer opaque-good"),
            ("x-hasura-org-id", "666"),
            ("x-hasura-user-id", "evil"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200, "log:\n{}", g.log());
    let call = hook.last();
    assert_eq!(call.method, http::Method::GET);
    assert_eq!(call.headers["authorization"], "Bearer opaque-good");
    let seen = up.last();
    assert_eq!(seen.all("x-hasura-user-id"), ["w-5"]);
    assert_eq!(seen.all("x-hasura-role"), ["user"]);
    assert_eq!(seen.all("x-hasura-org-id"), ["7"]);

    // The requested role goes to the webhook, which chooses.
    let res = get(
        &g,
        "admin",
        &[
            ("authorization", "Bearer opaque-good"),
            ("x-hasura-role", "admin"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(hook.last().headers["x-hasura-role"], "admin");
    let seen = up.last();
    assert_eq!(seen.all("x-hasura-role"), ["admin"]);
    assert_eq!(seen.all("x-hasura-user-id"), ["w-5"]);

    // 401 → 401; 500 → 503; nothing reaches the upstream.
    let before = up.count();
    let res = get(&g, "data", &[("authorization", "Bearer opaque-refused")]).await;
    assert_eq!(res.status(), 401);
    assert_eq!(code(res).await, "authentication-refused");
    let res = get(&g, "data", &[("authorization", "Bearer opaque-broken")]).await;
    assert_eq!(res.status(), 503);
    assert_eq!(code(res).await, "session-store-unavailable");
    assert_eq!(up.count(), before);

    // Without a credential the webhook is asked too.
    let calls = hook.count();
    let res = get(&g, "data", &[]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(hook.count(), calls + 1);
    assert!(!hook.last().headers.contains_key("authorization"));
    assert_eq!(up.last().all("x-hasura-role"), ["anonymous"]);

    // A session token goes to the store, not to the webhook.
    let session = create_session(&g, "s-1", &["user"], None).await;
    let calls = hook.count();
    let res = bearer(&g, "data", &session).await;
    assert_eq!(res.status(), 200);
    assert_eq!(up.last().all("x-hasura-user-id"), ["s-1"]);
    assert_eq!(
        hook.count(),
        calls,
        "a session token was sent to the webhook"
    );
}

/// POST mode: the webhook gets `{"headers": {...}, "request": {...}}` with the client's
/// headers and never its body, and decides as in GET mode. Its answer with `Cache-Control:
/// max-age` in the body is cached per credential and requested role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_webhook_in_post_mode_and_its_cache() {
    let hook = Webhook::start().await;
    let up = Upstream::start().await;
    let g = Gateway::start(
        &config(&up, None, &webhook_auth_mode(&hook.url, "POST")),
        0,
        0,
    );
    let res = client()
        .post(g.url("/things?x=1"))
        .header("host", host("open"))
        .header("authorization", "Bearer opaque-good")
        .header("x-hasura-role", "user")
        .header("content-type", "text/plain")
        .body("the client's own body")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "log:\n{}", g.log());
    let call = hook.last();
    assert_eq!(call.method, http::Method::POST);
    let sent = call.body.to_string();
    assert!(!sent.contains("the client's own body"), "{sent}");
    let headers = call.body["headers"].as_object().expect("no headers object");
    let auth = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.clone());
    assert_eq!(auth, Some(json!("Bearer opaque-good")), "{sent}");
    assert_eq!(call.body["request"]["method"], "POST", "{sent}");
    let seen = up.last();
    assert_eq!(seen.all("x-hasura-user-id"), ["w-5"]);
    assert_eq!(seen.all("x-hasura-org-id"), ["7"]);
    assert_eq!(seen.body_len, "the client's own body".len());

    let res = get(&g, "data", &[("authorization", "Bearer opaque-refused")]).await;
    assert_eq!(res.status(), 401);
    assert_eq!(code(res).await, "authentication-refused");

    // Cached by the body's Cache-Control: the second request does not call the webhook; another
    // requested role is another cache entry.
    let calls = hook.count();
    for _ in 0..2 {
        let res = get(&g, "data", &[("authorization", "Bearer opaque-cached")]).await;
        assert_eq!(res.status(), 200);
        assert_eq!(up.last().all("x-hasura-user-id"), ["c-1"]);
    }
    assert_eq!(hook.count(), calls + 1, "a cacheable answer was not cached");
    let res = get(
        &g,
        "admin",
        &[
            ("authorization", "Bearer opaque-cached"),
            ("x-hasura-role", "admin"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(up.last().all("x-hasura-role"), ["admin"]);
    assert_eq!(
        hook.count(),
        calls + 2,
        "a cached answer served another role"
    );
}

/// A webhook that cannot be reached: 503 for every request it would decide (fail closed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_webhook_fails_closed() {
    let up = Upstream::start().await;
    let url = format!("http://127.0.0.1:{}/hook", free_port());
    let g = Gateway::start(&config(&up, None, &webhook_auth(&url)), 0, 0);
    let res = get(&g, "data", &[("authorization", "Bearer opaque-good")]).await;
    assert_eq!(res.status(), 503, "log:\n{}", g.log());
    assert_eq!(code(res).await, "session-store-unavailable");
    let res = get(&g, "data", &[]).await;
    assert_eq!(res.status(), 503);
    assert_eq!(up.count(), 0);
}

// ---------------------------------------------------------------------------------------------
// (8) gateway check.

/// Runs `gateway check` on `text`: the exit code and stderr.
fn check(text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["check", "--config"])
        .arg(&path)
        .env_remove("HASURA_GRAPHQL_JWT_SECRET")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

/// `gateway check` accepts the `[auth]` tables and names the line of a bad `[[auth.jwt]]`
/// field.
#[test]
fn gateway_check_names_the_line_of_a_bad_jwt_config() {
    let up = "http://127.0.0.1:3000";
    // Nothing listens on port 1: check must not need the JWKS or the webhook.
    let good_auth = format!(
        "{}\n{}",
        jwks_auth("https://127.0.0.1:1/jwks.json", "jwks_refresh_min = \"1s\""),
        webhook_auth("http://127.0.0.1:1/hook"),
    );
    let good = standard_config(8080, 9090, up, &good_auth);
    let (status, err) = check(&good);
    assert_eq!(status, Some(0), "{err}");

    // A value of the wrong kind.
    let bad = good.replacen("claims_format = \"json\"", "claims_format = \"yaml\"", 1);
    let (status, err) = check(&bad);
    assert_eq!(status, Some(64), "{err}");
    let value_line = line_of(&bad, "\"yaml\"");
    let table_line = line_of(&bad, "[[auth.jwt]]");
    assert!(
        err.contains(&format!("line {value_line}")) || err.contains(&format!("line {table_line}")),
        "{err}"
    );
    assert!(err.contains("claims_format"), "{err}");

    // A key that is not one: the line of `key`, or at least of its table.
    let bad = standard_config(
        8080,
        9090,
        up,
        "\n[[auth.jwt]]\ntype = \"RS256\"\nkey = \"not a PEM key\"\n",
    );
    let (status, err) = check(&bad);
    assert_eq!(status, Some(64), "{err}");
    let key_line = line_of(&bad, "not a PEM key");
    let table_line = line_of(&bad, "[[auth.jwt]]");
    assert!(
        err.contains(&format!("line {key_line}")) || err.contains(&format!("line {table_line}")),
        "{err}"
    );
    assert!(err.contains("key"), "{err}");
}

/// A Hasura config pasted as it is documented for Firebase (`type` with `jwk_url`) passes
/// `gateway check`: Hasura accepts `type` there, so a team pasting theirs must not be refused.
#[test]
fn gateway_check_accepts_hasuras_type_with_jwk_url() {
    let auth = "\n[auth]\njwt_secret = '{\"type\": \"RS256\", \"jwk_url\": \
                \"https://127.0.0.1:1/jwks.json\", \"audience\": \"my-app\", \
                \"issuer\": \"https://idp.test/\"}'\n";
    let text = standard_config(8080, 9090, "http://127.0.0.1:3000", auth);
    let (status, err) = check(&text);
    assert_eq!(status, Some(0), "{err}");
}
