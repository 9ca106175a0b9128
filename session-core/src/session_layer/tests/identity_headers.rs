//! What upstream sees: identity headers injected for a resolved session or the anonymous
//! identity, and every client-sent identity header (prefixed, underscore forms, `Connection`
//! names, header-breaking bytes) removed first: SECURITY-CASES 1, 2, 3 and 6. Session
//! variables are injected after that strip, and only under the layer's own names.

use super::*;

#[tokio::test]
async fn no_credential_is_anonymous() {
    for layer in layers() {
        let out = send(layer, req().body(()).unwrap()).await;
        assert_eq!(out.status, StatusCode::OK);
        assert_eq!(out.up("x-hasura-user-id"), ["0"]);
        assert_eq!(out.up("x-hasura-role"), ["anonymous"]);
        assert_eq!(out.up("x-hasura-allowed-roles"), ["anonymous"]);
        let seen = out.upstream();
        assert_eq!(
            seen.identity,
            Some(Identity::anonymous(&Default::default()))
        );
        assert!(seen.credential.is_none());
        assert_eq!(
            out.headers.get_all(SET_COOKIE).iter().count(),
            1,
            "no clearing cookie"
        );
    }
}

#[tokio::test]
async fn valid_bearer_resolves_and_injects() {
    for layer in layers() {
        let out = send(
            layer,
            req().header(AUTHORIZATION, bearer(TOKEN)).body(()).unwrap(),
        )
        .await;
        assert_eq!(out.status, StatusCode::OK);
        assert_eq!(out.up("x-hasura-user-id"), ["alice"]);
        assert_eq!(out.up("x-hasura-role"), ["user"]);
        assert_eq!(out.up("x-hasura-allowed-roles"), ["user,editor"]);
        let seen = out.upstream();
        assert_eq!(seen.identity, Some(alice()));
        let cred = seen.credential.clone().expect("Credential in extensions");
        assert_eq!(cred.token.expose(), TOKEN);
        assert_eq!(cred.source, CredentialSource::Bearer);
    }
}

#[tokio::test]
async fn valid_cookie_resolves() {
    for layer in layers() {
        let out = send(
            layer,
            req()
                .header(COOKIE, format!("a=1; {COOKIE_NAME}={TOKEN}"))
                .body(())
                .unwrap(),
        )
        .await;
        assert_eq!(out.status, StatusCode::OK);
        assert_eq!(out.up("x-hasura-user-id"), ["alice"]);
        assert_eq!(
            out.upstream().credential.as_ref().unwrap().source,
            CredentialSource::Cookie
        );
    }
}

#[tokio::test]
async fn case1_anonymous_identity_headers_are_replaced_in_any_case() {
    for layer in layers() {
        let out = send(
            layer,
            req()
                .header("X-Hasura-Role", "admin")
                .header("x-hasura-user-id", "1")
                .header("X-HASURA-ROLE", "admin2")
                .header("X-Hasura-Allowed-Roles", "admin")
                .body(())
                .unwrap(),
        )
        .await;
        assert_eq!(
            out.status,
            StatusCode::OK,
            "an anonymous role request is ignored, not refused"
        );
        assert_eq!(out.up("x-hasura-role"), ["anonymous"]);
        assert_eq!(out.up("x-hasura-user-id"), ["0"]);
        assert_eq!(out.up("x-hasura-allowed-roles"), ["anonymous"]);
    }
}

#[tokio::test]
async fn case2_every_prefixed_header_is_stripped_even_with_a_valid_token() {
    for layer in layers() {
        let out = send(
            layer,
            req()
                .header(AUTHORIZATION, bearer(TOKEN))
                .header("X-Hasura-User-Id", "1")
                .header("X-Hasura-Org-Id", "42")
                .header("x-hasura-custom", "yes")
                .header("x-hasura-", "bare prefix")
                .header("x-other", "kept")
                .body(())
                .unwrap(),
        )
        .await;
        assert_eq!(out.status, StatusCode::OK);
        assert_eq!(out.up("x-hasura-user-id"), ["alice"]);
        assert!(out.up("x-hasura-org-id").is_empty());
        assert!(out.up("x-hasura-custom").is_empty());
        assert!(out.up("x-hasura-").is_empty());
        assert_eq!(out.up("x-other"), ["kept"]);
        let names: Vec<_> = out
            .upstream()
            .headers
            .keys()
            .map(|k| k.as_str().to_owned())
            .collect();
        let identity_names: Vec<_> = names.iter().filter(|n| n.starts_with("x-hasura")).collect();
        assert_eq!(
            identity_names,
            [
                "x-hasura-user-id",
                "x-hasura-role",
                "x-hasura-allowed-roles"
            ]
        );
    }
}

#[tokio::test]
async fn case3_underscore_forms_are_dropped() {
    for layer in layers() {
        let out = send(
            layer,
            req()
                .header("X_Hasura_Role", "admin")
                .header("x_hasura_user_id", "1")
                .header("X-Hasura_Allowed_Roles", "admin")
                .header("x_HASURA-whatever", "1")
                .header("x_other", "kept")
                .body(())
                .unwrap(),
        )
        .await;
        assert_eq!(out.status, StatusCode::OK);
        let names: Vec<_> = out
            .upstream()
            .headers
            .keys()
            .map(|k| k.as_str().to_owned())
            .collect();
        assert!(
            !names
                .iter()
                .any(|n| n.contains('_') && n.to_lowercase().starts_with("x_hasura")),
            "{names:?}"
        );
        assert!(
            !names.iter().any(|n| n.starts_with("x-hasura_")),
            "{names:?}"
        );
        assert_eq!(out.up("x-hasura-role"), ["anonymous"]);
        assert_eq!(out.up("x_other"), ["kept"]);
    }
}

#[tokio::test]
async fn underscore_role_request_is_not_honoured() {
    let out = send(
        layers()[0].clone(),
        req()
            .header(AUTHORIZATION, bearer(TOKEN))
            .header("x_hasura_role", "editor")
            .body(())
            .unwrap(),
    )
    .await;
    assert_eq!(out.up("x-hasura-role"), ["user"]);
}

#[tokio::test]
async fn identity_names_are_removed_from_connection() {
    // SECURITY-CASES 4 (defensive: the hop-by-hop layer normally runs first).
    for layer in layers() {
        let out = send(
            layer.clone(),
            req()
                .header(AUTHORIZATION, bearer(TOKEN))
                .header(CONNECTION, "close, X-Hasura-Role, x_hasura_user_id")
                .header(CONNECTION, "X-Hasura-Allowed-Roles")
                .body(())
                .unwrap(),
        )
        .await;
        assert_eq!(out.up("connection"), ["close"]);
        assert_eq!(out.up("x-hasura-role"), ["user"]);
        assert_eq!(out.up("x-hasura-user-id"), ["alice"]);

        let out = send(
            layer,
            req().header(CONNECTION, "X-Hasura-Role").body(()).unwrap(),
        )
        .await;
        assert!(out.up("connection").is_empty());
        assert_eq!(out.up("x-hasura-role"), ["anonymous"]);
    }
}

#[tokio::test]
async fn unrelated_connection_tokens_are_left_alone() {
    let out = send(
        layers()[0].clone(),
        req()
            .header(CONNECTION, "keep-alive, x-custom")
            .body(())
            .unwrap(),
    )
    .await;
    assert_eq!(out.up("connection"), ["keep-alive, x-custom"]);
}

#[tokio::test]
async fn case6_identity_with_header_breaking_bytes_is_never_injected() {
    for bad in [
        Identity::new("1\r\nx-hasura-role: admin", "user", ["user"]),
        Identity::new("1", "us\ner", ["us\ner"]),
        Identity::new("1", "user", ["user", "a\0"]),
    ] {
        let r = StaticResolver::new().with(TOKEN, bad);
        for r in [r.clone(), r.deferred()] {
            let out = send(
                layer_with(r, SessionConfig::default()),
                req().header(AUTHORIZATION, bearer(TOKEN)).body(()).unwrap(),
            )
            .await;
            assert_eq!(out.status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(out.code(), "internal-error");
            assert!(out.seen.is_none());
        }
    }
}

fn org_vars(name: &str, value: &str) -> crate::Variables {
    [(name.to_owned(), value.to_owned())].into()
}

#[tokio::test]
async fn session_variables_are_injected_and_client_copies_never_pass() {
    let store = MemoryStore::new();
    let (token, _) = store
        .create(NewSession {
            user_id: "carol".into(),
            roles: vec!["user".into(), "admin".into()],
            ttl: Duration::from_secs(60),
            variables: org_vars("x-hasura-org-id", "42"),
            ..Default::default()
        })
        .await
        .unwrap();
    let from_store = store_layer(&store);
    let with_vars = alice()
        .with_variables(&org_vars("x-hasura-org-id", "42"))
        .unwrap();
    let r = StaticResolver::new().with(TOKEN, with_vars);
    let layers = [
        (from_store, token.expose().to_owned()),
        (
            layer_with(r.clone(), SessionConfig::default()),
            TOKEN.to_owned(),
        ),
        (
            layer_with(r.deferred(), SessionConfig::default()),
            TOKEN.to_owned(),
        ),
    ];
    for (layer, token) in layers {
        let out = send(
            layer,
            req()
                .header(AUTHORIZATION, bearer(&token))
                .header("X-Hasura-Org-Id", "666")
                .header("x_hasura_org_id", "667")
                .header(CONNECTION, "X-Hasura-Org-Id")
                // Asking for another role keeps the session's variables.
                .header("x-hasura-role", "user")
                .body(())
                .unwrap(),
        )
        .await;
        assert_eq!(out.status, StatusCode::OK, "{}", out.code());
        assert_eq!(out.up("x-hasura-org-id"), ["42"], "the session's, only");
        assert!(out.up("x_hasura_org_id").is_empty());
        assert!(out.up("connection").is_empty());
        let identity = out.upstream().identity.clone().unwrap();
        assert_eq!(identity.variables().len(), 1);
    }
}

#[tokio::test]
async fn variables_outside_the_layer_s_names_are_never_injected() {
    // A resolver (or a store shared with other writers) may hand back any well-formed header:
    // the layer injects only names under its prefix, and never one of its identity headers.
    let custom = SessionConfig {
        identity_prefix: "x-app-".into(),
        user_id_header: http::HeaderName::from_static("x-app-user-id"),
        role_header: http::HeaderName::from_static("x-app-role"),
        allowed_roles_header: http::HeaderName::from_static("x-app-allowed-roles"),
        ..SessionConfig::default()
    };
    for (name, config) in [
        ("x-other", SessionConfig::default()),
        ("authorization", SessionConfig::default()),
        ("x-hasura-role", SessionConfig::default()),
        ("x-hasura-allowed-roles", SessionConfig::default()),
        ("x-hasura-org-id", custom.clone()),
        ("x-app-role", custom.clone()),
    ] {
        let identity = alice().with_variables(&org_vars(name, "admin")).unwrap();
        let r = StaticResolver::new().with(TOKEN, identity);
        for r in [r.clone(), r.deferred()] {
            let out = send(
                layer_with(r, config.clone()),
                req().header(AUTHORIZATION, bearer(TOKEN)).body(()).unwrap(),
            )
            .await;
            assert_eq!(out.status, StatusCode::INTERNAL_SERVER_ERROR, "{name}");
            assert!(out.seen.is_none(), "{name}");
        }
    }
    // Under the configured prefix, it is injected.
    let identity = alice().with_variables(&org_vars("x-app-org", "7")).unwrap();
    let out = send(
        layer_with(StaticResolver::new().with(TOKEN, identity), custom),
        req().header(AUTHORIZATION, bearer(TOKEN)).body(()).unwrap(),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.up("x-app-org"), ["7"]);
}
