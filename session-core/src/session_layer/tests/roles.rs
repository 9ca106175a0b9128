//! Role requests: an allowed role is selected, anything else is refused, and store-backed
//! identities keep their prebuilt header values.

use super::*;

#[tokio::test]
async fn role_request_selects_an_allowed_role() {
    for layer in layers() {
        let out = send(
            layer.clone(),
            req()
                .header(AUTHORIZATION, bearer(TOKEN))
                .header("X-Hasura-Role", "editor")
                .body(())
                .unwrap(),
        )
        .await;
        assert_eq!(out.status, StatusCode::OK);
        assert_eq!(out.up("x-hasura-role"), ["editor"]);
        assert_eq!(out.up("x-hasura-allowed-roles"), ["user,editor"]);
        assert_eq!(&*out.upstream().identity.as_ref().unwrap().role, "editor");
    }
}

#[tokio::test]
async fn role_request_outside_allowed_roles_gets_403() {
    for layer in layers() {
        for asked in ["admin", "Editor", "", "user,editor"] {
            let out = send(
                layer.clone(),
                req()
                    .header(AUTHORIZATION, bearer(TOKEN))
                    .header("x-hasura-role", asked)
                    .body(())
                    .unwrap(),
            )
            .await;
            assert_eq!(out.status, StatusCode::FORBIDDEN, "{asked:?}");
            assert_eq!(out.code(), "role-not-allowed");
            assert!(out.seen.is_none());
        }
    }
}

#[tokio::test]
async fn role_request_twice_is_ambiguous() {
    let out = send(
        layers()[0].clone(),
        req()
            .header(AUTHORIZATION, bearer(TOKEN))
            .header("x-hasura-role", "user")
            .header("x-hasura-role", "editor")
            .body(())
            .unwrap(),
    )
    .await;
    assert_eq!(out.status, StatusCode::BAD_REQUEST);
    assert_eq!(out.code(), "ambiguous-role");
}

#[tokio::test]
async fn role_selection_with_store_identities_uses_prebuilt_values() {
    let (store, token) = store_with_session(60).await;
    let out = send(
        store_layer(&store),
        req()
            .header(AUTHORIZATION, bearer(token.expose()))
            .header("x-hasura-role", "admin")
            .body(())
            .unwrap(),
    )
    .await;
    assert_eq!(out.up("x-hasura-role"), ["admin"]);
    assert_eq!(out.up("x-hasura-allowed-roles"), ["user,admin"]);
    // The slow path (no prebuilt values) gives the same headers.
    let id = store
        .resolve_identity(&token.hash(), None)
        .await
        .unwrap()
        .unwrap()
        .without_role_headers();
    let out = send(
        layer_with(
            StaticResolver::new().with("t", id),
            SessionConfig::default(),
        ),
        req()
            .header(AUTHORIZATION, bearer("t"))
            .header("x-hasura-role", "admin")
            .body(())
            .unwrap(),
    )
    .await;
    assert_eq!(out.up("x-hasura-role"), ["admin"]);
    assert_eq!(out.up("x-hasura-allowed-roles"), ["user,admin"]);
}
