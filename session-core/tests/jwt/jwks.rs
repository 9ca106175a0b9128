//! JWKS: rotation, the unknown-kid refetch limit, an endpoint down at start or failing later,
//! unusable keys, and ES512 (P-521).

use crate::support::*;

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
