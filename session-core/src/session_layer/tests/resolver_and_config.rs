//! Resolver failures (503, 500, Retry-After), the store lookup by token hash (SECURITY-CASES 12),
//! login cookie attributes (SECURITY-CASES 11), custom configuration, and the service's reuse.

use super::*;

#[tokio::test]
async fn resolver_unavailable_fails_closed_with_503() {
    let failing = StaticResolver::new().failing(ResolveError::Unavailable("down".into()));
    for r in [
        layer_with(failing.clone(), SessionConfig::default()),
        layer_with(failing.deferred(), SessionConfig::default()),
        layer_with(
            StoreResolver::new(Arc::new(FailingStore)),
            SessionConfig::default(),
        ),
    ] {
        for (name, value) in [
            (AUTHORIZATION, bearer(TOKEN)),
            (COOKIE, format!("{COOKIE_NAME}={TOKEN}")),
        ] {
            let out = send(
                r.clone(),
                req().header(name.clone(), &value).body(()).unwrap(),
            )
            .await;
            assert_eq!(out.status, StatusCode::SERVICE_UNAVAILABLE, "{name}");
            assert_eq!(out.headers[RETRY_AFTER], "1");
            assert_eq!(out.code(), "session-store-unavailable");
            assert!(out.seen.is_none());
        }
        // Anonymous traffic keeps flowing.
        let out = send(r, req().body(()).unwrap()).await;
        assert_eq!(out.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn retry_after_is_configurable() {
    let failing = StaticResolver::new().failing(ResolveError::Unavailable("down".into()));
    let config = SessionConfig {
        retry_after: Duration::from_secs(7),
        ..SessionConfig::default()
    };
    let out = send(
        layer_with(failing, config),
        req().header(AUTHORIZATION, bearer(TOKEN)).body(()).unwrap(),
    )
    .await;
    assert_eq!(out.headers[RETRY_AFTER], "7");
}

#[tokio::test]
async fn resolver_internal_error_is_500() {
    let failing = StaticResolver::new().failing(ResolveError::Internal("bug".into()));
    let out = send(
        layer_with(failing, SessionConfig::default()),
        req().header(AUTHORIZATION, bearer(TOKEN)).body(()).unwrap(),
    )
    .await;
    assert_eq!(out.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        !String::from_utf8_lossy(&out.body).contains("bug"),
        "internals are not echoed"
    );
}

/// A store that records the ids it is asked about.
struct RecordingStore {
    inner: MemoryStore,
    asked: Mutex<Vec<TokenHash>>,
}

impl SessionStore for RecordingStore {
    fn create<'a>(
        &'a self,
        new: NewSession,
    ) -> crate::BoxFuture<'a, Result<(Token, crate::Session), crate::StoreError>> {
        self.inner.create(new)
    }
    fn resolve<'a>(
        &'a self,
        id: &'a TokenHash,
    ) -> crate::BoxFuture<'a, Result<Option<crate::Session>, crate::StoreError>> {
        self.asked.lock().push(*id);
        self.inner.resolve(id)
    }
    fn touch<'a>(
        &'a self,
        id: &'a TokenHash,
        ttl: Duration,
    ) -> crate::BoxFuture<'a, Result<bool, crate::StoreError>> {
        self.inner.touch(id, ttl)
    }
    fn revoke<'a>(
        &'a self,
        id: &'a TokenHash,
    ) -> crate::BoxFuture<'a, Result<bool, crate::StoreError>> {
        self.inner.revoke(id)
    }
    fn revoke_user<'a>(
        &'a self,
        user_id: &'a str,
    ) -> crate::BoxFuture<'a, Result<usize, crate::StoreError>> {
        self.inner.revoke_user(user_id)
    }
    fn list_user<'a>(
        &'a self,
        user_id: &'a str,
    ) -> crate::BoxFuture<'a, Result<Vec<crate::Session>, crate::StoreError>> {
        self.inner.list_user(user_id)
    }
}

#[tokio::test]
async fn case12_sessions_are_looked_up_by_sha256_of_the_token() {
    use sha2::{Digest, Sha256};
    let (inner, token) = store_with_session(60).await;
    let store = Arc::new(RecordingStore {
        inner,
        asked: Mutex::new(Vec::new()),
    });
    let layer = layer_with(StoreResolver::new(store.clone()), SessionConfig::default());
    let out = send(
        layer,
        req()
            .header(AUTHORIZATION, bearer(token.expose()))
            .body(())
            .unwrap(),
    )
    .await;
    assert_eq!(
        out.status,
        StatusCode::OK,
        "the provided resolve_identity path works"
    );
    let expected: [u8; 32] = Sha256::digest(token.expose().as_bytes()).into();
    assert_eq!(*store.asked.lock(), [TokenHash(expected)]);
}

#[tokio::test]
async fn case11_login_cookie_attributes() {
    let config = SessionConfig::default();
    let token = Token::generate();
    let v = config
        .cookie
        .session_cookie(&token, Duration::from_secs(60));
    let s = v.to_str().unwrap();
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=60"] {
        assert!(s.contains(attr), "{s}");
    }
}

#[tokio::test]
async fn custom_names_prefix_and_anonymous_identity() {
    let config = SessionConfig {
        identity_prefix: "X-Auth-".into(),
        user_id_header: http::HeaderName::from_static("x-auth-user"),
        role_header: http::HeaderName::from_static("x-auth-role"),
        allowed_roles_header: http::HeaderName::from_static("x-auth-roles"),
        anonymous: crate::AnonymousConfig {
            user_id: "guest".into(),
            role: "public".into(),
        },
        ..SessionConfig::default()
    };
    let layer = layer_with(resolvers()[0].clone(), config);
    let out = send(
        layer.clone(),
        req()
            .header("x-auth-user", "1")
            .header("X_Auth_Extra", "1")
            .header("x-hasura-role", "kept: not our prefix any more")
            .body(())
            .unwrap(),
    )
    .await;
    assert_eq!(out.up("x-auth-user"), ["guest"]);
    assert_eq!(out.up("x-auth-role"), ["public"]);
    assert_eq!(out.up("x-auth-roles"), ["public"]);
    assert!(out.up("x_auth_extra").is_empty());
    assert_eq!(out.up("x-hasura-role").len(), 1);

    let out = send(
        layer,
        req()
            .header(AUTHORIZATION, bearer(TOKEN))
            .header("x-auth-role", "editor")
            .body(())
            .unwrap(),
    )
    .await;
    assert_eq!(out.up("x-auth-user"), ["alice"]);
    assert_eq!(out.up("x-auth-role"), ["editor"]);
}

#[test]
fn invalid_config_is_refused() {
    let config = SessionConfig {
        identity_prefix: String::new(),
        ..SessionConfig::default()
    };
    assert!(SessionLayer::try_new(Arc::new(StaticResolver::new()), config).is_err());
}

#[tokio::test]
async fn the_service_is_reusable_and_clones_share_state() {
    let layer = layers()[1].clone();
    let svc =
        ServiceBuilder::new()
            .layer(layer)
            .service(service_fn(|req: Request<()>| async move {
                let role = req.headers()["x-hasura-role"].clone();
                Ok::<_, Infallible>(Response::new(Full::<Bytes>::from(role.as_bytes().to_vec())))
            }));
    for _ in 0..3 {
        let res = svc
            .clone()
            .oneshot(req().header(AUTHORIZATION, bearer(TOKEN)).body(()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "user");
    }
}
