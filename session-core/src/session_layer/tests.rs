//! Tower-level tests of every rule of the session layer, including SECURITY-CASES 1, 2, 3, 6,
//! 7, 8, 9, 11 and 12 at the layer level.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONNECTION, COOKIE, RETRY_AFTER, SET_COOKIE, WWW_AUTHENTICATE};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use parking_lot::Mutex;
use tower::{service_fn, ServiceBuilder, ServiceExt};

use crate::test_util::{FailingStore, StaticResolver};
use crate::{
    Credential, CredentialSource, Identity, MemoryStore, NewSession, ResolveError, Resolver,
    SessionConfig, SessionLayer, SessionStore, StoreResolver, Token, TokenHash,
};

/// What the inner service saw.
#[derive(Debug, Clone)]
struct Seen {
    headers: HeaderMap,
    identity: Option<Identity>,
    credential: Option<Credential>,
}

struct Outcome {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    seen: Option<Seen>,
}

impl Outcome {
    fn upstream(&self) -> &Seen {
        self.seen
            .as_ref()
            .expect("the request should have reached the inner service")
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }

    /// All values of an upstream header.
    fn up(&self, name: &str) -> Vec<String> {
        self.upstream()
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

async fn send(layer: SessionLayer, req: Request<()>) -> Outcome {
    let seen = Arc::new(Mutex::new(None));
    let record = seen.clone();
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(move |req: Request<()>| {
            let record = record.clone();
            async move {
                *record.lock() = Some(Seen {
                    headers: req.headers().clone(),
                    identity: req.extensions().get::<Identity>().cloned(),
                    credential: req.extensions().get::<Credential>().cloned(),
                });
                let mut res = Response::new(Full::<Bytes>::from("ok"));
                res.headers_mut()
                    .insert(SET_COOKIE, "upstream=1".parse().unwrap());
                Ok::<_, Infallible>(res)
            }
        }));
    let res = svc.oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let seen = seen.lock().take();
    Outcome {
        status,
        headers,
        body,
        seen,
    }
}

fn layer_with(resolver: impl Resolver, config: SessionConfig) -> SessionLayer {
    SessionLayer::new(Arc::new(resolver), config)
}

const TOKEN: &str = "valid-token";
const COOKIE_NAME: &str = "gateway_session";

fn alice() -> Identity {
    Identity::new("alice", "user", ["user", "editor"])
}

/// Both ways a resolver can answer: at once, and through the boxed future.
fn resolvers() -> [StaticResolver; 2] {
    let r = StaticResolver::new().with(TOKEN, alice());
    [r.clone(), r.deferred()]
}

fn layers() -> [SessionLayer; 2] {
    resolvers().map(|r| layer_with(r, SessionConfig::default()))
}

fn req() -> http::request::Builder {
    Request::builder().uri("/")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

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

async fn store_with_session(ttl: u64) -> (MemoryStore, Token) {
    let store = MemoryStore::new();
    let (token, _) = store
        .create(NewSession {
            user_id: "bob".into(),
            roles: vec!["user".into(), "admin".into()],
            default_role: None,
            ttl: Duration::from_secs(ttl),
        })
        .await
        .unwrap();
    (store, token)
}

fn store_layer(store: &MemoryStore) -> SessionLayer {
    layer_with(
        StoreResolver::new(Arc::new(store.clone())),
        SessionConfig::default(),
    )
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
