//! Static keys (`type` + `key`): every algorithm, the refusals, where the token is read, the
//! claims formats, several issuers, and a whole request through the session layer.

use crate::support::*;

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
