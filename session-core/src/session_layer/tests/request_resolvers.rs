//! Resolvers that read the request (a webhook, a JWT in its own cookie): the layer asks them
//! without a credential of its own, shows them the client's headers and requested role, and
//! removes their cookies with the session cookie.

use super::*;
use crate::{BoxFuture, ResolveRequest};

/// What a [`HeaderResolver`] was shown.
#[derive(Debug, Default, Clone)]
struct Shown {
    authorization: Option<String>,
    requested_role: Option<String>,
    credential: bool,
    method: String,
    path: Option<String>,
}

/// Answers from the request itself: cookie `idp=good` or header `x-key: good` → carol;
/// `x-key: deny` → refused (401); anything else → not valid.
#[derive(Clone)]
struct HeaderResolver {
    deferred: bool,
    shown: Arc<Mutex<Vec<Shown>>>,
}

impl HeaderResolver {
    fn new(deferred: bool) -> Self {
        HeaderResolver {
            deferred,
            shown: Arc::default(),
        }
    }

    fn answer(&self, request: &ResolveRequest<'_>) -> Result<Option<Identity>, ResolveError> {
        let h = request.headers();
        self.shown.lock().push(Shown {
            authorization: h.get(AUTHORIZATION).map(|v| v.to_str().unwrap().to_owned()),
            requested_role: request.requested_role().map(str::to_owned),
            credential: request.credential().is_some(),
            method: request.method().to_string(),
            path: request.uri().map(|u| u.path().to_owned()),
        });
        let carol = || Identity::new("carol", "viewer", ["viewer", "editor"]).without_session();
        if request.cookie("idp") == Ok(Some("good")) {
            return Ok(Some(carol()));
        }
        match h.get("x-key").map(|v| v.as_bytes()) {
            Some(b"good") => Ok(Some(carol())),
            Some(b"deny") => Err(ResolveError::Unauthorized("webhook said 401".into())),
            _ => Ok(None),
        }
    }
}

impl Resolver for HeaderResolver {
    fn resolve<'a>(
        &'a self,
        request: &'a ResolveRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<Identity>, ResolveError>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            self.answer(request)
        })
    }

    fn resolve_now(
        &self,
        request: &ResolveRequest<'_>,
    ) -> Option<Result<Option<Identity>, ResolveError>> {
        (!self.deferred).then(|| self.answer(request))
    }

    fn resolves_without_credential(&self) -> bool {
        true
    }

    fn credential_cookies(&self) -> Vec<String> {
        vec!["idp".into()]
    }
}

fn both() -> [HeaderResolver; 2] {
    [HeaderResolver::new(false), HeaderResolver::new(true)]
}

#[tokio::test]
async fn a_resolver_that_asks_decides_requests_without_a_credential() {
    for r in both() {
        let shown = r.shown.clone();
        let layer = layer_with(r, SessionConfig::default());
        let out = send(
            layer.clone(),
            req()
                .method("POST")
                .uri("/graphql")
                .header("x-key", "good")
                .header("x-hasura-role", "editor")
                .body(())
                .unwrap(),
        )
        .await;
        assert_eq!(out.status, StatusCode::OK);
        assert_eq!(out.up("x-hasura-user-id"), ["carol"]);
        // The requested role was shown to the resolver, then selected by the layer.
        assert_eq!(out.up("x-hasura-role"), ["editor"]);
        assert!(out.upstream().credential.is_none());
        let seen = shown.lock()[0].clone();
        assert_eq!(seen.requested_role.as_deref(), Some("editor"));
        assert!(!seen.credential);
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.path.as_deref(), Some("/graphql"));

        // "Not valid" without a credential of the layer's: anonymous, nothing cleared.
        let out = send(layer.clone(), req().body(()).unwrap()).await;
        assert_eq!(out.status, StatusCode::OK);
        assert_eq!(out.up("x-hasura-role"), ["anonymous"]);
        assert!(out.headers.get_all(SET_COOKIE).iter().count() == 1);

        // Refused: 401, nothing proxied.
        let out = send(layer, req().header("x-key", "deny").body(()).unwrap()).await;
        assert_eq!(out.status, StatusCode::UNAUTHORIZED);
        assert_eq!(out.code(), "authentication-refused");
        assert!(out.headers.contains_key(WWW_AUTHENTICATE));
        assert!(out.seen.is_none());
    }
}

#[tokio::test]
async fn the_resolver_sees_credentials_that_the_upstream_does_not() {
    for r in both() {
        let shown = r.shown.clone();
        let layer = layer_with(r, SessionConfig::default());
        let out = send(
            layer,
            req()
                .header(AUTHORIZATION, bearer(TOKEN))
                .header(COOKIE, "idp=good; theme=dark")
                .body(())
                .unwrap(),
        )
        .await;
        assert_eq!(out.status, StatusCode::OK);
        assert_eq!(out.up("x-hasura-user-id"), ["carol"]);
        let seen = shown.lock()[0].clone();
        assert_eq!(seen.authorization, Some(bearer(TOKEN)));
        assert!(seen.credential);
        // Removed after the resolver answered: the bearer header and the resolver's cookie.
        assert!(out.up("authorization").is_empty());
        assert_eq!(out.up("cookie"), ["theme=dark"]);
    }
}

#[tokio::test]
async fn a_cookie_the_resolver_refuses_leaves_an_anonymous_request_and_is_not_cleared() {
    for r in both() {
        let layer = layer_with(r, SessionConfig::default());
        let out = send(layer, req().header(COOKIE, "idp=forged").body(()).unwrap()).await;
        assert_eq!(out.status, StatusCode::OK);
        assert_eq!(out.up("x-hasura-role"), ["anonymous"]);
        // Only the upstream's own cookie: the gateway did not set `idp`, so it does not clear it.
        let set: Vec<_> = out.headers.get_all(SET_COOKIE).iter().collect();
        assert_eq!(set, ["upstream=1"]);
    }
}

#[tokio::test]
async fn an_ambiguous_role_is_refused_before_a_resolver_is_asked() {
    for r in both() {
        let shown = r.shown.clone();
        let layer = layer_with(r, SessionConfig::default());
        let out = send(
            layer,
            req()
                .header("x-key", "good")
                .header("x-hasura-role", "viewer")
                .header("x-hasura-role", "editor")
                .body(())
                .unwrap(),
        )
        .await;
        assert_eq!(out.status, StatusCode::BAD_REQUEST);
        assert_eq!(out.code(), "ambiguous-role");
        assert!(shown.lock().is_empty());
    }
}

#[tokio::test]
async fn a_store_resolver_is_not_asked_without_a_credential() {
    let (store, _) = store_with_session(60).await;
    let layer = layer_with(
        StoreResolver::new(Arc::new(store)),
        SessionConfig::default(),
    );
    let out = send(layer, req().header(COOKIE, "idp=good").body(()).unwrap()).await;
    assert_eq!(out.up("x-hasura-role"), ["anonymous"]);
    // Not the store resolver's cookie: forwarded untouched.
    assert_eq!(out.up("cookie"), ["idp=good"]);
}

#[test]
fn resolve_request_reads_cookies_like_the_session_cookie() {
    let (head, ()) = Request::builder()
        .header(COOKIE, "a=1; idp=\"v.w.x\"")
        .header(COOKIE, "b=2")
        .body(())
        .unwrap()
        .into_parts();
    let r = ResolveRequest::new(&head, None, None);
    assert_eq!(r.cookie("idp"), Ok(Some("v.w.x")));
    assert_eq!(r.cookie("b"), Ok(Some("2")));
    assert_eq!(r.cookie("zz"), Ok(None));
    let (twice, ()) = Request::builder()
        .header(COOKIE, "idp=1")
        .header(COOKIE, "idp=2")
        .body(())
        .unwrap()
        .into_parts();
    assert_eq!(
        ResolveRequest::new(&twice, None, None).cookie("idp"),
        Err(crate::CredentialError::DuplicateCookie)
    );
}
