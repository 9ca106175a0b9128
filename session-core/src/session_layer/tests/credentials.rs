//! Finding the credential and refusing bad ones: ambiguous credentials, invalid, expired or
//! revoked bearers and cookies, and whether credentials are forwarded: SECURITY-CASES 7, 8, 9
//! and 34.

use super::*;

#[tokio::test]
async fn case7_ambiguous_credentials_get_400_and_never_reach_upstream() {
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![
            ("authorization", bearer(TOKEN)),
            ("authorization", bearer("other")),
        ],
        vec![
            ("authorization", bearer(TOKEN)),
            ("authorization", bearer(TOKEN)),
        ],
        vec![("authorization", format!("Bearer {TOKEN}, Bearer other"))],
        vec![(
            "cookie",
            format!("{COOKIE_NAME}={TOKEN}; {COOKIE_NAME}=other"),
        )],
        vec![
            ("cookie", format!("{COOKIE_NAME}={TOKEN}")),
            ("cookie", format!("{COOKIE_NAME}={TOKEN}")),
        ],
        vec![("authorization", "Bearer".to_owned())],
        vec![("authorization", "Bearer a b".to_owned())],
    ];
    for layer in layers() {
        for headers in &cases {
            let mut b = req();
            for (k, v) in headers {
                b = b.header(*k, v);
            }
            let out = send(layer.clone(), b.body(()).unwrap()).await;
            assert_eq!(out.status, StatusCode::BAD_REQUEST, "{headers:?}");
            assert!(out.seen.is_none(), "{headers:?}");
            assert!(
                [
                    "duplicate-authorization",
                    "duplicate-cookie",
                    "malformed-authorization"
                ]
                .contains(&out.code().as_str()),
                "{}",
                out.code()
            );
            assert_eq!(out.headers["content-type"], "application/json");
        }
    }
}

#[tokio::test]
async fn case8_invalid_expired_or_revoked_bearer_gets_401() {
    let (store, token) = store_with_session(60).await;
    let layer = store_layer(&store);

    let ok = send(
        layer.clone(),
        req()
            .header(AUTHORIZATION, bearer(token.expose()))
            .body(())
            .unwrap(),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.up("x-hasura-user-id"), ["bob"]);

    let check_401 = |out: Outcome| {
        assert_eq!(out.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            out.headers[WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\""
        );
        assert_eq!(out.code(), "invalid-token");
        assert!(out.seen.is_none());
    };
    // Unknown.
    check_401(
        send(
            layer.clone(),
            req()
                .header(AUTHORIZATION, bearer("unknown"))
                .body(())
                .unwrap(),
        )
        .await,
    );
    // Unknown, deferred resolver.
    check_401(
        send(
            layer_with(StaticResolver::new().deferred(), SessionConfig::default()),
            req()
                .header(AUTHORIZATION, bearer("unknown"))
                .body(())
                .unwrap(),
        )
        .await,
    );
    // Revoked.
    let (store2, token2) = store_with_session(60).await;
    store2.revoke(&token2.hash()).await.unwrap();
    check_401(
        send(
            store_layer(&store2),
            req()
                .header(AUTHORIZATION, bearer(token2.expose()))
                .body(())
                .unwrap(),
        )
        .await,
    );
    // Expired.
    store.advance_clock(Duration::from_secs(61));
    check_401(
        send(
            layer,
            req()
                .header(AUTHORIZATION, bearer(token.expose()))
                .body(())
                .unwrap(),
        )
        .await,
    );
}

#[tokio::test]
async fn invalid_cookie_is_cleared_and_the_request_goes_on_anonymous() {
    let (store, token) = store_with_session(60).await;
    let layer = store_layer(&store);
    let clearing = SessionConfig::default().cookie.clearing_cookie();
    for cookie in [
        format!("{COOKIE_NAME}=unknown-token; other=1"),
        format!("{COOKIE_NAME}=not a token; other=1"),
        format!("{COOKIE_NAME}=; other=1"),
    ] {
        let out = send(
            layer.clone(),
            req().header(COOKIE, &cookie).body(()).unwrap(),
        )
        .await;
        assert_eq!(out.status, StatusCode::OK, "{cookie}");
        assert_eq!(out.up("x-hasura-role"), ["anonymous"]);
        assert!(out.upstream().credential.is_none());
        let set: Vec<_> = out.headers.get_all(SET_COOKIE).iter().cloned().collect();
        assert_eq!(
            set.len(),
            2,
            "the upstream's cookie is kept, ours is appended"
        );
        assert_eq!(set[1], clearing);
        assert!(set[1].to_str().unwrap().contains("Max-Age=0"));
        assert_eq!(out.up("cookie"), ["other=1"]);
    }
    // Expired cookie, deferred path too.
    store.advance_clock(Duration::from_secs(61));
    let out = send(
        layer,
        req()
            .header(COOKIE, format!("{COOKIE_NAME}={}", token.expose()))
            .body(())
            .unwrap(),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.headers.get_all(SET_COOKIE).iter().count(), 2);
    let out = send(
        layer_with(StaticResolver::new().deferred(), SessionConfig::default()),
        req()
            .header(COOKIE, format!("{COOKIE_NAME}=x"))
            .body(())
            .unwrap(),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.up("x-hasura-role"), ["anonymous"]);
    assert_eq!(out.headers.get_all(SET_COOKIE).iter().count(), 2);
}

/// SECURITY-CASES 34: a login answered to a request with a stale cookie keeps the new session
/// cookie last; the clearing cookie is not appended after it (on both resolver paths). A
/// cookie of another name does not count.
#[tokio::test]
async fn case_34_a_new_session_cookie_is_not_followed_by_the_clearing_one() {
    for resolver in [StaticResolver::new(), StaticResolver::new().deferred()] {
        for (set, cleared) in [
            ("gateway_session=new-token; Path=/; Max-Age=60", false),
            ("other=1", true),
        ] {
            let svc = ServiceBuilder::new()
                .layer(layer_with(resolver.clone(), SessionConfig::default()))
                .service(service_fn(move |_req: Request<()>| async move {
                    let mut res = Response::new(Full::<Bytes>::from("ok"));
                    res.headers_mut().append(SET_COOKIE, set.parse().unwrap());
                    Ok::<_, Infallible>(res)
                }));
            let stale = req()
                .header(COOKIE, format!("{COOKIE_NAME}=stale-token"))
                .body(())
                .unwrap();
            let res = svc.oneshot(stale).await.unwrap();
            let set_cookies: Vec<_> = res.headers().get_all(SET_COOKIE).iter().collect();
            assert_eq!(set_cookies[0], set);
            assert_eq!(set_cookies.len(), if cleared { 2 } else { 1 }, "{set}");
        }
    }
}

#[tokio::test]
async fn case9_credentials_are_not_forwarded_by_default() {
    for layer in layers() {
        let out = send(
            layer.clone(),
            req()
                .header(AUTHORIZATION, bearer(TOKEN))
                .header(COOKIE, format!("a=1; {COOKIE_NAME}={TOKEN}; b=2"))
                .header(COOKIE, "c=3")
                .body(())
                .unwrap(),
        )
        .await;
        assert_eq!(out.status, StatusCode::OK);
        assert!(out.up("authorization").is_empty());
        assert_eq!(out.up("cookie"), ["a=1; b=2", "c=3"]);
        let all: String = out
            .upstream()
            .headers
            .values()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        assert!(!all.contains(TOKEN), "the token reached the upstream");

        // A cookie-only session: the cookie header goes away entirely when it was alone.
        let out = send(
            layer,
            req()
                .header(COOKIE, format!("{COOKIE_NAME}={TOKEN}"))
                .body(())
                .unwrap(),
        )
        .await;
        assert!(out.up("cookie").is_empty());
    }
}

#[tokio::test]
async fn non_bearer_authorization_is_left_alone() {
    let out = send(
        layers()[0].clone(),
        req()
            .header(AUTHORIZATION, "Basic dXNlcjpwYXNz")
            .body(())
            .unwrap(),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.up("authorization"), ["Basic dXNlcjpwYXNz"]);
    assert_eq!(out.up("x-hasura-role"), ["anonymous"]);
}

#[tokio::test]
async fn forward_credentials_keeps_them() {
    let config = SessionConfig {
        forward_credentials: true,
        ..SessionConfig::default()
    };
    let out = send(
        layer_with(resolvers()[0].clone(), config),
        req()
            .header(AUTHORIZATION, bearer(TOKEN))
            .header(COOKIE, format!("a=1; {COOKIE_NAME}={TOKEN}"))
            .body(())
            .unwrap(),
    )
    .await;
    assert_eq!(out.up("authorization"), [bearer(TOKEN)]);
    assert_eq!(out.up("cookie"), [format!("a=1; {COOKIE_NAME}={TOKEN}")]);
}
