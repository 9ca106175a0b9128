//! Issue 15 end to end, against the real binary: the gateway as the resource server of an
//! identity provider, and the tokens it verifies. The test plays the provider
//! (common/identity.rs): RS256 tokens whose key comes from a JWKS over HTTPS, HS256 tokens from
//! Hasura's environment variable, claims maps, the tokens refused at the socket, and `gateway
//! check` of the `[auth]` tables; it checks what the upstream receives. The key set over time
//! (rotation, an unreachable or failing JWKS, WebSocket tunnels ending with the token) is in
//! identity_jwks.rs, the auth webhook in identity_webhook.rs. Keys are fixtures
//! (`tests/fixtures/identity/README.md`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::identity::*;
use common::*;
use serde_json::json;

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
