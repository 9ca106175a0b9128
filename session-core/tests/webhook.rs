//! `WebhookResolver` against a real auth webhook (axum on 127.0.0.1, plain HTTP: loopback),
//! in both modes: what the webhook receives, what its answers become, what is cached, and what
//! a session layer in front of it answers and forwards.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/https.rs"]
mod https;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{json, Value};
use session_core::http_client::{HttpClient, HttpClientConfig};
use session_core::webhook::{WebhookConfig, WebhookMode, WebhookResolver};
use session_core::{Identity, ResolveError, ResolveRequest, Resolver, SessionConfig, SessionLayer};

/// One call the webhook received.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Hook {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Hook {
    fn calls(&self, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }
}

/// The webhook: each path answers one way. The identity answers take the user from
/// `Authorization: Bearer <user>` (or the POST body's copy of it) and the role from the
/// requested role, `user` when none was asked for.
async fn answer(
    State(hook): State<Hook>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    hook.seen.lock().push(Seen {
        method: method.clone(),
        path: path.clone(),
        headers: headers.clone(),
        body: body.clone(),
    });
    // In POST mode the client's headers are in the body.
    let sent: HashMap<String, String> = if method == Method::POST {
        let v: Value = serde_json::from_slice(&body).unwrap();
        serde_json::from_value(v["headers"].clone()).unwrap()
    } else {
        headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect()
    };
    let user = sent
        .get("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or("nobody")
        .to_owned();
    let role = sent
        .get("x-hasura-role")
        .cloned()
        .unwrap_or_else(|| "user".to_owned());
    let who = json!({"X-Hasura-User-Id": user, "X-Hasura-Role": role});
    let with = |extra: Value| {
        let mut v = who.clone();
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        axum::Json(v).into_response()
    };
    match path.as_str() {
        "/max-age" => with(json!({"Cache-Control": "max-age=60"})),
        "/header-max-age" => ([("cache-control", "max-age=60")], axum::Json(who)).into_response(),
        "/expires" => with(json!({
            "Expires": httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(60)),
        })),
        "/header-expires" => (
            [(
                "expires",
                httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(60)),
            )],
            axum::Json(who),
        )
            .into_response(),
        "/short" => with(json!({"Cache-Control": "max-age=3600"})),
        "/plain" => axum::Json(who).into_response(),
        "/roles" => with(json!({
            "X-Hasura-Allowed-Roles": ["user", "editor"],
            "X-Hasura-Role": "editor",
            "x-hasura-org-id": 7,
            "X-Hasura-Is-Owner": false,
            "X-Hasura-Team": "blue",
        })),
        "/roles-string" => with(json!({
            "X-Hasura-Role": "user",
            "X-Hasura-Allowed-Roles": "user, editor",
        })),
        "/role-not-allowed" => with(json!({
            "X-Hasura-Role": "admin",
            "X-Hasura-Allowed-Roles": ["user"],
        })),
        "/anonymous" => axum::Json(json!({"X-Hasura-Role": "anonymous"})).into_response(),
        "/no-role" => axum::Json(json!({"X-Hasura-User-Id": "1"})).into_response(),
        "/bad-json" => (StatusCode::OK, "{\"X-Hasura-Role\": ").into_response(),
        "/not-object" => axum::Json(json!(["user"])).into_response(),
        "/unauthorized" => (
            StatusCode::UNAUTHORIZED,
            [("cache-control", "max-age=60")],
            "no",
        )
            .into_response(),
        "/error" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("cache-control", "max-age=60")],
        )
            .into_response(),
        "/forbidden" => StatusCode::FORBIDDEN.into_response(),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            with(json!({"Cache-Control": "max-age=60"}))
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn start() -> (SocketAddr, Hook) {
    let hook = Hook::default();
    let app = Router::new()
        .route("/{*path}", any(answer))
        .with_state(hook.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, hook)
}

fn config(addr: SocketAddr, path: &str, mode: WebhookMode) -> WebhookConfig {
    WebhookConfig {
        mode,
        ..WebhookConfig::new(format!("http://{addr}{path}"))
    }
}

fn resolver(addr: SocketAddr, path: &str, mode: WebhookMode) -> WebhookResolver {
    WebhookResolver::new(&config(addr, path, mode)).unwrap()
}

/// A client request's head, as the session layer hands it over (identity headers stripped).
fn head(headers: &[(&str, &str)]) -> http::request::Parts {
    let mut b = http::Request::builder().method("PUT").uri("/graphql?op=1");
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(()).unwrap().into_parts().0
}

/// `resolve_now`, then `resolve` when it has no answer, as the layer calls them.
async fn ask(
    r: &WebhookResolver,
    head: &http::request::Parts,
    role: Option<&str>,
) -> Result<Option<Identity>, ResolveError> {
    let req = ResolveRequest::new(head, None, role);
    if let Some(now) = r.resolve_now(&req) {
        return now;
    }
    r.resolve(&req).await
}

async fn identity(
    r: &WebhookResolver,
    head: &http::request::Parts,
    role: Option<&str>,
) -> Identity {
    ask(r, head, role).await.unwrap().expect("an identity")
}

const BOTH: [WebhookMode; 2] = [WebhookMode::Get, WebhookMode::Post];

#[tokio::test]
async fn get_sends_the_clients_headers_without_hop_by_hop_ones_and_the_requested_role() {
    let (addr, hook) = start().await;
    let r = resolver(addr, "/plain", WebhookMode::Get);
    assert!(r.resolves_without_credential());
    let h = head(&[
        ("authorization", "Bearer alice"),
        ("cookie", "theme=dark"),
        ("x-tenant", "t1"),
        ("connection", "keep-alive, x-hop"),
        ("x-hop", "1"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("trailer", "x-t"),
        ("upgrade", "websocket"),
        ("proxy-authorization", "Basic eA=="),
        ("host", "app.example"),
        ("content-length", "12"),
        ("accept-encoding", "gzip, br"),
        ("if-none-match", "\"e1\""),
    ]);
    let who = identity(&r, &h, Some("editor")).await;
    assert_eq!(&*who.user_id, "alice");
    assert_eq!(&*who.role, "editor", "the webhook chose the requested role");

    let calls = hook.calls("/plain");
    assert_eq!(calls.len(), 1);
    let got = &calls[0];
    assert_eq!(got.method, Method::GET);
    assert!(got.body.is_empty());
    assert_eq!(got.headers["authorization"], "Bearer alice");
    assert_eq!(got.headers["cookie"], "theme=dark");
    assert_eq!(got.headers["x-tenant"], "t1");
    assert_eq!(got.headers["x-hasura-role"], "editor");
    for hop in [
        "x-hop",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "accept-encoding",
        "if-none-match",
    ] {
        assert!(!got.headers.contains_key(hop), "{hop} was forwarded");
    }
    // The client's Content-Length is not; the client library may send its own (0).
    assert!(got.headers.get("content-length").is_none_or(|v| v == "0"));
    // The client's Host is not forwarded: the client library sends the webhook's own.
    assert_eq!(got.headers["host"], addr.to_string().as_str());

    // No role asked for: no X-Hasura-Role, and the webhook's default is used.
    let who = identity(&r, &head(&[("authorization", "Bearer bob")]), None).await;
    assert_eq!(&*who.role, "user");
    assert!(!hook.calls("/plain")[1]
        .headers
        .contains_key("x-hasura-role"));
}

#[tokio::test]
async fn post_sends_headers_and_the_request_as_json_without_the_body() {
    let (addr, hook) = start().await;
    let r = resolver(addr, "/plain", WebhookMode::Post);
    let h = head(&[
        ("authorization", "Bearer alice"),
        ("cookie", "a=1"),
        ("connection", "x-hop"),
        ("x-hop", "1"),
        ("content-type", "text/plain"),
        ("content-length", "5"),
    ]);
    let who = identity(&r, &h, Some("editor")).await;
    assert_eq!(&*who.user_id, "alice");
    assert_eq!(&*who.role, "editor");

    let calls = hook.calls("/plain");
    assert_eq!(calls.len(), 1);
    let got = &calls[0];
    assert_eq!(got.method, Method::POST);
    assert_eq!(got.headers["content-type"], "application/json");
    assert!(
        !got.headers.contains_key("authorization"),
        "only in the body"
    );
    let body: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(
        body,
        json!({
            "headers": {
                "authorization": "Bearer alice",
                "cookie": "a=1",
                "content-type": "text/plain",
                "x-hasura-role": "editor",
            },
            "request": {"method": "PUT", "url": "/graphql?op=1"},
        })
    );
}

#[tokio::test]
async fn max_age_caches_per_credential_role_and_key_header() {
    for mode in BOTH {
        for path in ["/max-age", "/header-max-age"] {
            let (addr, hook) = start().await;
            let r = WebhookResolver::new(&WebhookConfig {
                cache_key_headers: vec!["X-Tenant".into()],
                ..config(addr, path, mode)
            })
            .unwrap();
            let alice = head(&[("authorization", "Bearer alice"), ("x-tenant", "t1")]);
            let first = identity(&r, &alice, Some("editor")).await;
            let req = ResolveRequest::new(&alice, None, Some("editor"));
            let hit = r.resolve_now(&req).expect("served from the cache").unwrap();
            assert_eq!(hit, Some(first.clone()));
            assert_eq!(r.resolve(&req).await.unwrap(), Some(first));
            assert_eq!(hook.calls(path).len(), 1, "{mode:?} {path}: one call");

            // A header outside the key does not matter.
            let noisy = head(&[
                ("authorization", "Bearer alice"),
                ("x-tenant", "t1"),
                ("user-agent", "other"),
            ]);
            identity(&r, &noisy, Some("editor")).await;
            assert_eq!(hook.calls(path).len(), 1);

            // Another role, another key header value, another credential: asked again.
            let other_role = identity(&r, &alice, Some("viewer")).await;
            assert_eq!(&*other_role.role, "viewer");
            assert_eq!(hook.calls(path).len(), 2);
            let t2 = head(&[("authorization", "Bearer alice"), ("x-tenant", "t2")]);
            identity(&r, &t2, Some("editor")).await;
            assert_eq!(hook.calls(path).len(), 3);
            let no_tenant = head(&[("authorization", "Bearer alice")]);
            identity(&r, &no_tenant, Some("editor")).await;
            assert_eq!(hook.calls(path).len(), 4);
            let bob = head(&[("authorization", "Bearer bob"), ("x-tenant", "t1")]);
            assert_eq!(&*identity(&r, &bob, Some("editor")).await.user_id, "bob");
            assert_eq!(hook.calls(path).len(), 5);
            let cookie = head(&[
                ("authorization", "Bearer alice"),
                ("x-tenant", "t1"),
                ("cookie", "s=1"),
            ]);
            identity(&r, &cookie, Some("editor")).await;
            assert_eq!(hook.calls(path).len(), 6);
            assert_eq!(r.cached(), 6);

            r.clear_cache();
            identity(&r, &alice, Some("editor")).await;
            assert_eq!(hook.calls(path).len(), 7);
        }
    }
}

#[tokio::test]
async fn expires_caches_and_no_cache_fields_mean_no_cache() {
    for mode in BOTH {
        let (addr, hook) = start().await;
        let h = head(&[("authorization", "Bearer alice")]);
        for path in ["/expires", "/header-expires"] {
            let r = resolver(addr, path, mode);
            identity(&r, &h, None).await;
            identity(&r, &h, None).await;
            assert_eq!(hook.calls(path).len(), 1, "{mode:?} {path}");
        }
        let r = resolver(addr, "/plain", mode);
        for _ in 0..3 {
            identity(&r, &h, None).await;
        }
        assert_eq!(hook.calls("/plain").len(), 3, "{mode:?}: not cached");
        assert_eq!(r.cached(), 0);
    }
}

#[tokio::test]
async fn the_cache_obeys_max_ttl_and_its_bound() {
    let (addr, hook) = start().await;
    let r = WebhookResolver::new(&WebhookConfig {
        cache_max_ttl: Duration::from_millis(300),
        ..config(addr, "/short", WebhookMode::Get)
    })
    .unwrap();
    let h = head(&[("authorization", "Bearer alice")]);
    identity(&r, &h, None).await;
    identity(&r, &h, None).await;
    assert_eq!(hook.calls("/short").len(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    identity(&r, &h, None).await;
    assert_eq!(
        hook.calls("/short").len(),
        2,
        "max-age=3600 capped at 300 ms"
    );

    // A cache of 0 entries never caches.
    let off = WebhookResolver::new(&WebhookConfig {
        cache_entries: 0,
        ..config(addr, "/max-age", WebhookMode::Get)
    })
    .unwrap();
    identity(&off, &h, None).await;
    identity(&off, &h, None).await;
    assert_eq!(hook.calls("/max-age").len(), 2);

    // Bounded: never more than `cache_entries` answers.
    let small = WebhookResolver::new(&WebhookConfig {
        cache_entries: 4,
        ..config(addr, "/max-age", WebhookMode::Get)
    })
    .unwrap();
    for i in 0..10 {
        let bearer = format!("Bearer user{i}");
        identity(&small, &head(&[("authorization", &bearer)]), None).await;
        assert!(small.cached() <= 4, "{} cached", small.cached());
    }
}

#[tokio::test]
async fn unauthorized_is_401_and_never_cached() {
    for mode in BOTH {
        let (addr, hook) = start().await;
        let r = resolver(addr, "/unauthorized", mode);
        let h = head(&[("authorization", "Bearer mallory")]);
        for _ in 0..2 {
            assert!(matches!(
                ask(&r, &h, None).await,
                Err(ResolveError::Unauthorized(_))
            ));
        }
        assert_eq!(hook.calls("/unauthorized").len(), 2, "{mode:?}");
        assert_eq!(r.cached(), 0);
    }
}

#[tokio::test]
async fn other_answers_are_unavailable_and_never_cached() {
    for mode in BOTH {
        let (addr, hook) = start().await;
        let h = head(&[("authorization", "Bearer alice")]);
        for path in [
            "/error",
            "/forbidden",
            "/bad-json",
            "/not-object",
            "/no-role",
            "/role-not-allowed",
            "/missing",
        ] {
            let r = resolver(addr, path, mode);
            for _ in 0..2 {
                let got = ask(&r, &h, None).await;
                assert!(
                    matches!(got, Err(ResolveError::Unavailable(_))),
                    "{mode:?} {path}: {got:?}"
                );
            }
            assert_eq!(hook.calls(path).len(), 2, "{mode:?} {path}");
        }
    }
}

#[tokio::test]
async fn a_slow_webhook_times_out_unavailable() {
    let (addr, hook) = start().await;
    for mode in BOTH {
        let r = WebhookResolver::new(&WebhookConfig {
            timeout: Duration::from_millis(200),
            ..config(addr, "/slow", mode)
        })
        .unwrap();
        let started = Instant::now();
        let got = ask(&r, &head(&[]), None).await;
        let took = started.elapsed();
        assert!(matches!(got, Err(ResolveError::Unavailable(_))), "{got:?}");
        assert!(took < Duration::from_secs(2), "{mode:?}: took {took:?}");
        assert!(
            took >= Duration::from_millis(150),
            "{mode:?}: took {took:?}"
        );
    }
    assert_eq!(hook.calls("/slow").len(), 2);
}

#[tokio::test]
async fn the_config_timeout_holds_with_a_shared_client() {
    let (addr, hook) = start().await;
    // A client shared with other resolvers, its own timeout long (the default 5 s).
    let client = HttpClient::new(HttpClientConfig::default()).unwrap();
    let r = WebhookResolver::with_client(
        &WebhookConfig {
            timeout: Duration::from_millis(200),
            ..config(addr, "/slow", WebhookMode::Get)
        },
        client,
    )
    .unwrap();
    let started = Instant::now();
    let got = ask(&r, &head(&[]), None).await;
    assert!(matches!(got, Err(ResolveError::Unavailable(_))), "{got:?}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(hook.calls("/slow").len(), 1);
}

#[tokio::test]
async fn a_closed_port_is_unavailable() {
    // A port that was free a moment ago: nothing listens on it.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    for mode in BOTH {
        let r = resolver(addr, "/max-age", mode);
        let started = Instant::now();
        let got = ask(&r, &head(&[("authorization", "Bearer alice")]), None).await;
        assert!(matches!(got, Err(ResolveError::Unavailable(_))), "{got:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}

#[tokio::test]
async fn allowed_roles_and_variables() {
    for mode in BOTH {
        let (addr, _hook) = start().await;
        let h = head(&[("authorization", "Bearer alice")]);

        let who = identity(&resolver(addr, "/roles", mode), &h, None).await;
        assert_eq!(&*who.user_id, "alice");
        assert_eq!(&*who.role, "editor");
        let roles: Vec<&str> = who.allowed_roles.iter().map(|r| &**r).collect();
        assert_eq!(roles, ["user", "editor"]);
        assert!(who.is_authenticated());
        let vars: Vec<(String, String)> = who
            .variables()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        assert_eq!(
            vars,
            [
                ("x-hasura-is-owner".to_owned(), "false".to_owned()),
                ("x-hasura-org-id".to_owned(), "7".to_owned()),
                ("x-hasura-team".to_owned(), "blue".to_owned()),
            ]
        );

        let who = identity(&resolver(addr, "/roles-string", mode), &h, None).await;
        let roles: Vec<&str> = who.allowed_roles.iter().map(|r| &**r).collect();
        assert_eq!((&*who.role, roles), ("user", vec!["user", "editor"]));

        // Without X-Hasura-Allowed-Roles the role is the only one; without a user id, "0".
        let who = identity(&resolver(addr, "/anonymous", mode), &head(&[]), None).await;
        assert_eq!(&*who.user_id, "0");
        assert_eq!(&*who.role, "anonymous");
        assert_eq!(who.allowed_roles.len(), 1);
        assert!(who.variables().is_empty());
    }
}

/// What the upstream behind a session layer received: `None` when the layer answered itself.
async fn through_layer(
    r: WebhookResolver,
    req: http::Request<()>,
) -> (StatusCode, HeaderMap, Option<HeaderMap>) {
    use http_body_util::Full;
    use tower::{service_fn, ServiceBuilder, ServiceExt};

    let seen = Arc::new(Mutex::new(None));
    let record = seen.clone();
    let svc = ServiceBuilder::new()
        .layer(SessionLayer::new(Arc::new(r), SessionConfig::default()))
        .service(service_fn(move |req: http::Request<()>| {
            let record = record.clone();
            async move {
                *record.lock() = Some(req.headers().clone());
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::from("ok")))
            }
        }));
    let res = svc.oneshot(req).await.unwrap();
    let upstream = seen.lock().take();
    (res.status(), res.headers().clone(), upstream)
}

#[tokio::test]
async fn through_the_session_layer() {
    let (addr, hook) = start().await;
    let client = || {
        http::Request::builder()
            .uri("/graphql")
            .header("authorization", "Bearer alice")
            .header("x-hasura-role", "editor")
            .header("x-hasura-org-id", "999")
    };

    // The identity and its variables reach the upstream; the client's own are gone.
    let r = resolver(addr, "/roles", WebhookMode::Get);
    let (status, _, up) = through_layer(r, client().body(()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let up = up.expect("proxied");
    let get = |n: &str| up.get(n).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(get("x-hasura-user-id").as_deref(), Some("alice"));
    assert_eq!(get("x-hasura-role").as_deref(), Some("editor"));
    assert_eq!(
        get("x-hasura-allowed-roles").as_deref(),
        Some("user,editor")
    );
    assert_eq!(get("x-hasura-org-id").as_deref(), Some("7"));
    assert_eq!(get("x-hasura-team").as_deref(), Some("blue"));
    assert_eq!(get("authorization"), None, "credentials are not forwarded");
    // The webhook was shown the requested role, never the client's variables.
    let shown = &hook.calls("/roles")[0].headers;
    assert_eq!(shown["x-hasura-role"], "editor");
    assert!(!shown.contains_key("x-hasura-org-id"));

    // No credential at all: the webhook still decides.
    let r = resolver(addr, "/anonymous", WebhookMode::Post);
    let req = http::Request::builder().uri("/").body(()).unwrap();
    let (status, _, up) = through_layer(r, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(up.unwrap()["x-hasura-role"], "anonymous");
    assert_eq!(hook.calls("/anonymous").len(), 1);

    // 401 → 401; 500, a timeout, a closed port → 503 with Retry-After; never proxied.
    let r = resolver(addr, "/unauthorized", WebhookMode::Get);
    let (status, _, up) = through_layer(r, client().body(()).unwrap()).await;
    assert_eq!((status, up.is_none()), (StatusCode::UNAUTHORIZED, true));
    let slow = WebhookResolver::new(&WebhookConfig {
        timeout: Duration::from_millis(200),
        ..config(addr, "/slow", WebhookMode::Get)
    })
    .unwrap();
    for r in [resolver(addr, "/error", WebhookMode::Get), slow] {
        let (status, headers, up) = through_layer(r, client().body(()).unwrap()).await;
        assert_eq!(
            (status, up.is_none()),
            (StatusCode::SERVICE_UNAVAILABLE, true)
        );
        assert!(headers.contains_key("retry-after"));
    }
}

/// The same webhook over HTTPS with a certificate from a fresh private CA; returns its address
/// and the CA's PEM.
async fn start_https() -> (SocketAddr, Hook, String) {
    let ca = https::private_ca("webhook test CA");
    let hook = Hook::default();
    let app = Router::new()
        .route("/{*path}", any(answer))
        .with_state(hook.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    https::serve(listener, ca.acceptor, app);
    (addr, hook, ca.ca_pem)
}

#[tokio::test]
async fn https_with_a_private_ca() {
    let (addr, hook, ca_pem) = start_https().await;
    let h = head(&[("authorization", "Bearer alice")]);
    for mode in BOTH {
        let config = WebhookConfig {
            mode,
            ..WebhookConfig::new(format!("https://{addr}/roles"))
        };
        let client = HttpClient::new(HttpClientConfig {
            extra_roots_pem: Some(ca_pem.clone()),
            ..HttpClientConfig::default()
        })
        .unwrap();
        let trusting = WebhookResolver::with_client(&config, client).unwrap();
        let who = identity(&trusting, &h, None).await;
        assert_eq!((&*who.user_id, &*who.role), ("alice", "editor"));

        // Without the CA the certificate is not trusted: fail closed, nothing asked.
        let calls = hook.calls("/roles").len();
        let untrusting = WebhookResolver::new(&config).unwrap();
        let got = ask(&untrusting, &h, None).await;
        assert!(matches!(got, Err(ResolveError::Unavailable(_))), "{got:?}");
        assert_eq!(hook.calls("/roles").len(), calls);
    }
}
