use super::*;

const RSA_PUB: &str = include_str!("../../tests/fixtures/jwt/rsa1.pub");
const RSA_CERT: &str = include_str!("../../tests/fixtures/jwt/rsa1.crt");
const ES256_PUB: &str = include_str!("../../tests/fixtures/jwt/es256.pub");
const ES384_PUB: &str = include_str!("../../tests/fixtures/jwt/es384.pub");
const ES512_PUB: &str = include_str!("../../tests/fixtures/jwt/es512.pub");
const ED_PUB: &str = include_str!("../../tests/fixtures/jwt/ed25519.pub");

fn field_of(json: &str) -> String {
    JwtConfig::from_json(json)
        .unwrap()
        .validate()
        .unwrap_err()
        .field
}

#[test]
fn hasura_jwk_url_example() {
    // Hasura's documented Auth0 / Firebase shapes.
    let auth0 = r#"{"jwk_url": "https://example.auth0.com/.well-known/jwks.json",
                    "audience": "my-api", "issuer": "https://example.auth0.com/"}"#;
    let c = JwtConfig::from_json(auth0).unwrap();
    c.validate().unwrap();
    assert_eq!(c.audience, Some(Audience::One("my-api".into())));
    assert_eq!(c.header, JwtHeader::Authorization);
    assert_eq!(c.cache_ttl, DEFAULT_CACHE_TTL);

    let firebase = r#"{
        "type": null,
        "jwk_url": "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com",
        "audience": ["my-project", "other"],
        "issuer": "https://securetoken.google.com/my-project",
        "claims_namespace_path": "$.hasura['claims']",
        "claims_format": "stringified_json",
        "allowed_skew": 30,
        "header": {"type": "Cookie", "name": "__session"},
        "jwks_refetch_interval": "30s"
    }"#;
    let c = JwtConfig::from_json(firebase).unwrap();
    c.validate().unwrap();
    assert_eq!(c.allowed_skew, Duration::from_secs(30));
    assert_eq!(c.jwks_refetch_interval, Duration::from_secs(30));
    assert_eq!(c.claims_format, ClaimsFormat::StringifiedJson);
    assert_eq!(
        c.header,
        JwtHeader::Cookie {
            name: "__session".into()
        }
    );
}

#[test]
fn type_and_key_examples() {
    let hs = r#"{"type": "HS256", "key": "3EK6FD+o0+c7tzBNVfjpMkNDi2yARAAKzQlk8O2IKoxQu4nF7EdAh8s3TwpHwrdWT6R"}"#;
    let c = JwtConfig::from_json(hs).unwrap();
    c.validate().unwrap();
    assert_eq!(c.algorithm, Some(JwtAlgorithm::HS256));
    assert!(
        !format!("{c:?}").contains("3EK6FD"),
        "Debug redacts the key"
    );

    let pem = |alg: &str, key: &str| {
        serde_json::json!({"type": alg, "key": key, "claims_map": {
            "x-hasura-allowed-roles": {"path": "$.roles", "default": ["user"]},
            "x-hasura-default-role": "user",
            "x-hasura-user-id": {"path": "$.sub"},
            "x-hasura-org-id": {"path": "$.org['id']", "default": "1"}
        }})
        .to_string()
    };
    for (alg, key) in [
        ("RS256", RSA_PUB),
        ("RS512", RSA_CERT),
        ("PS256", RSA_PUB),
        ("ES256", ES256_PUB),
        ("ES384", ES384_PUB),
        ("Ed25519", ED_PUB),
        ("EdDSA", ED_PUB),
    ] {
        let c = JwtConfig::from_json(&pem(alg, key)).unwrap();
        c.validate().unwrap_or_else(|e| panic!("{alg}: {e}"));
    }
    // The key must fit the type.
    for (alg, key) in [
        ("RS256", ES256_PUB),
        ("ES256", ES384_PUB),
        ("ES384", RSA_PUB),
        ("Ed25519", ES256_PUB),
        ("HS256", RSA_PUB),
        ("RS256", "not a pem"),
    ] {
        assert_eq!(field_of(&pem(alg, key)), "key", "{alg}");
    }
    // ES512 (P-521, outside ring) needs a P-521 key.
    JwtConfig::from_json(&pem("ES512", ES512_PUB))
        .unwrap()
        .validate()
        .unwrap();
    for key in [ES256_PUB, ES384_PUB, RSA_PUB] {
        assert_eq!(field_of(&pem("ES512", key)), "key");
    }
}

#[test]
fn toml_uses_the_same_names() {
    // What gateway-bin reads from a `[[jwt]]` table, with durations as seconds or humantime.
    #[derive(Deserialize)]
    struct File {
        jwt: Vec<JwtConfig>,
    }
    let text = r#"
        [[jwt]]
        type = "HS512"
        key = "secret-secret-secret-secret-secret-secret-secret-secret-secret-x"
        claims_namespace = "hasura"
        header = { type = "authorization" }
        cache_ttl = "1m"
        cache_entries = 5
        jwks_refresh_min = 10
        jwks_refresh_max = "2h"
        http_timeout = "2s"
        issuer = "me"
        allowed_skew = 5

        [[jwt]]
        jwk_url = "https://idp.example/.well-known/jwks.json"
        audience = ["a", "b"]
        header = { type = "Cookie", name = "id_token" }
        [jwt.claims_map]
        x-hasura-allowed-roles = { path = "$.roles", default = ["user"] }
        x-hasura-default-role = "user"
        x-hasura-user-id = { path = "$.sub" }
    "#;
    let file: File = toml::from_str(text).unwrap();
    for c in &file.jwt {
        c.validate().unwrap();
    }
    let [a, b] = &file.jwt[..] else { panic!() };
    assert_eq!(a.cache_ttl, Duration::from_secs(60));
    assert_eq!(a.jwks_refresh_min, Duration::from_secs(10));
    assert_eq!(a.jwks_refresh_max, Duration::from_secs(7200));
    assert_eq!(a.allowed_skew, Duration::from_secs(5));
    assert_eq!(a.header, JwtHeader::Authorization);
    assert_eq!(
        b.audience,
        Some(Audience::Many(vec!["a".into(), "b".into()]))
    );
    assert_eq!(b.claims_map.as_ref().map(BTreeMap::len), Some(3));
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (r#"{"type": "HS256"}"#, "key"),
        (r#"{"key": "k"}"#, "type"),
        (
            r#"{"type": "HS256", "key": "0123456789abcdef0123456789abcdef", "jwk_url": "https://x/"}"#,
            "key",
        ),
        (r#"{"type": "HS256", "jwk_url": "https://x/"}"#, "type"),
        (
            r#"{"type": "HS256", "key": "31-characters-is-one-too-short"}"#,
            "key",
        ),
        (r#"{"jwk_url": "not a url"}"#, "jwk_url"),
        (
            r#"{"type": "HS256", "key": "0123456789abcdef0123456789abcdef", "claims_namespace": "a", "claims_namespace_path": "$.a"}"#,
            "claims_namespace_path",
        ),
        (
            r#"{"type": "HS256", "key": "0123456789abcdef0123456789abcdef", "claims_namespace_path": "a.b"}"#,
            "claims_namespace_path",
        ),
        (
            r#"{"type": "HS256", "key": "0123456789abcdef0123456789abcdef", "claims_map": {"x-hasura-default-role": "u"}}"#,
            "claims_map",
        ),
        (
            r#"{"type": "HS256", "key": "0123456789abcdef0123456789abcdef", "claims_map": {"x-hasura-allowed-roles": "u", "x-hasura-default-role": "u"}}"#,
            "claims_map.x-hasura-allowed-roles",
        ),
        (
            r#"{"type": "HS256", "key": "0123456789abcdef0123456789abcdef", "claims_map": {"x-hasura-allowed-roles": ["u"], "x-hasura-default-role": "u", "org": "1"}}"#,
            "claims_map.org",
        ),
        (
            r#"{"type": "HS256", "key": "0123456789abcdef0123456789abcdef", "claims_map": {"x-hasura-allowed-roles": ["u"], "x-hasura-default-role": "u", "x-hasura-o": {"path": "x"}}}"#,
            "claims_map.x-hasura-o",
        ),
        (
            r#"{"type": "HS256", "key": "0123456789abcdef0123456789abcdef", "audience": []}"#,
            "audience",
        ),
        (
            r#"{"type": "HS256", "key": "0123456789abcdef0123456789abcdef", "header": {"type": "Cookie", "name": "a b"}}"#,
            "header.name",
        ),
        (
            r#"{"type": "HS256", "key": "0123456789abcdef0123456789abcdef", "jwks_refresh_min": 0}"#,
            "jwks_refresh_min",
        ),
        (
            r#"{"type": "HS256", "key": "0123456789abcdef0123456789abcdef", "jwks_refresh_min": 60, "jwks_refresh_max": 30}"#,
            "jwks_refresh_max",
        ),
    ];
    for (json, field) in cases {
        assert_eq!(field_of(json), field, "{json}");
    }
    // Shapes serde refuses: unknown keys, a cookie without a name, an unknown algorithm.
    for json in [
        r#"{"type": "HS256", "key": "0123456789abcdef0123456789abcdef", "claims_namespce": "x"}"#,
        r#"{"type": "HS256", "key": "0123456789abcdef0123456789abcdef", "header": {"type": "Cookie"}}"#,
        r#"{"type": "HS256", "key": "0123456789abcdef0123456789abcdef", "header": {"type": "CustomHeader", "name": "x"}}"#,
        r#"{"type": "none", "key": "k"}"#,
        r#"{"type": "HS256", "key": "0123456789abcdef0123456789abcdef", "claims_format": "yaml"}"#,
        r#"{"type": "HS256", "key": "0123456789abcdef0123456789abcdef", "allowed_skew": "soon"}"#,
    ] {
        assert!(JwtConfig::from_json(json).is_err(), "{json}");
    }
}
