//! Issue 15 end to end, against the real binary: a Hasura-style auth webhook decides the
//! credentials that are neither JWTs nor session tokens, in GET and POST mode, with its cache,
//! and fails closed when it cannot be reached. The test runs the webhook; the gateway config
//! comes from common/identity.rs, shared with the JWT tests (identity_jwt.rs, identity_jwks.rs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use common::identity::*;
use common::*;
use http::{HeaderMap, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// (7) The auth webhook.

/// A Hasura-style auth webhook on plain HTTP to loopback. It answers by the client's
/// `Authorization` (a request header in GET mode, `headers` of the JSON body in POST mode):
/// `Bearer opaque-good` → user `w-5` with the role the client asked for (`user` by default)
/// and `X-Hasura-Org-Id: 7`; `Bearer opaque-cached` → user `c-1`, the same role rule,
/// cacheable for a minute; `Bearer opaque-refused` → 401; any other → 500; none → anonymous.
struct Webhook {
    url: String,
    seen: Arc<Mutex<Vec<Call>>>,
}

/// One call the webhook received.
#[derive(Clone, Debug)]
struct Call {
    method: http::Method,
    headers: HeaderMap,
    /// The JSON body (POST mode), `Null` when empty.
    body: Value,
}

impl Webhook {
    async fn start() -> Webhook {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Call>>> = Arc::default();
        let s = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let s = s.clone();
                        async move { Ok::<_, Infallible>(webhook_answer(req, &s).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Webhook {
            url: format!("http://{addr}/hook"),
            seen,
        }
    }

    fn count(&self) -> usize {
        self.seen.lock().len()
    }

    fn last(&self) -> Call {
        self.seen
            .lock()
            .last()
            .cloned()
            .expect("the webhook was not called")
    }
}

async fn webhook_answer(req: Request<Incoming>, seen: &Mutex<Vec<Call>>) -> Response<Full<Bytes>> {
    use http_body_util::BodyExt;
    let (parts, body) = req.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    seen.lock().push(Call {
        method: parts.method.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    // The client's headers: the request's own in GET mode, the body's in POST mode.
    let header = |name: &str| -> Option<String> {
        if parts.method == http::Method::POST {
            body["headers"].as_object().and_then(|h| {
                h.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .and_then(|(_, v)| v.as_str().map(str::to_owned))
            })
        } else {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        }
    };
    let role = header("x-hasura-role").unwrap_or_else(|| "user".to_owned());
    let (status, body) = match header("authorization").as_deref() {
        Some("Bearer opaque-good") => (
            200,
            json!({"X-Hasura-User-Id": "w-5", "X-Hasura-Role": role, "X-Hasura-Org-Id": "7"}),
        ),
        Some("Bearer opaque-cached") => (
            200,
            json!({"X-Hasura-User-Id": "c-1", "X-Hasura-Role": role, "Cache-Control": "max-age=60"}),
        ),
        Some("Bearer opaque-refused") => (401, json!({"message": "no"})),
        Some(_) => (500, json!({"message": "broken"})),
        None => (200, json!({"X-Hasura-Role": "anonymous"})),
    };
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

/// The webhook decides opaque tokens and requests without a credential: its identity reaches
/// the upstream, it sees the client's `Authorization` and `X-Hasura-Role`, its 401 is a 401 and
/// its 500 a 503; a session token (43 characters) still goes to the session store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_webhook_decides_other_credentials_and_sessions_stay_in_the_store() {
    let hook = Webhook::start().await;
    let up = Upstream::start().await;
    let g = Gateway::start(&config(&up, None, &webhook_auth(&hook.url)), 0, 0);

    let res = get(
        &g,
        "data",
        &[
            ("authorization", "Bearer opaque-good"),
            ("x-hasura-org-id", "666"),
            ("x-hasura-user-id", "evil"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200, "log:\n{}", g.log());
    let call = hook.last();
    assert_eq!(call.method, http::Method::GET);
    assert_eq!(call.headers["authorization"], "Bearer opaque-good");
    let seen = up.last();
    assert_eq!(seen.all("x-hasura-user-id"), ["w-5"]);
    assert_eq!(seen.all("x-hasura-role"), ["user"]);
    assert_eq!(seen.all("x-hasura-org-id"), ["7"]);

    // The requested role goes to the webhook, which chooses.
    let res = get(
        &g,
        "admin",
        &[
            ("authorization", "Bearer opaque-good"),
            ("x-hasura-role", "admin"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(hook.last().headers["x-hasura-role"], "admin");
    let seen = up.last();
    assert_eq!(seen.all("x-hasura-role"), ["admin"]);
    assert_eq!(seen.all("x-hasura-user-id"), ["w-5"]);

    // 401 → 401; 500 → 503; nothing reaches the upstream.
    let before = up.count();
    let res = get(&g, "data", &[("authorization", "Bearer opaque-refused")]).await;
    assert_eq!(res.status(), 401);
    assert_eq!(code(res).await, "authentication-refused");
    let res = get(&g, "data", &[("authorization", "Bearer opaque-broken")]).await;
    assert_eq!(res.status(), 503);
    assert_eq!(code(res).await, "session-store-unavailable");
    assert_eq!(up.count(), before);

    // Without a credential the webhook is asked too.
    let calls = hook.count();
    let res = get(&g, "data", &[]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(hook.count(), calls + 1);
    assert!(!hook.last().headers.contains_key("authorization"));
    assert_eq!(up.last().all("x-hasura-role"), ["anonymous"]);

    // A session token goes to the store, not to the webhook.
    let session = create_session(&g, "s-1", &["user"], None).await;
    let calls = hook.count();
    let res = bearer(&g, "data", &session).await;
    assert_eq!(res.status(), 200);
    assert_eq!(up.last().all("x-hasura-user-id"), ["s-1"]);
    assert_eq!(
        hook.count(),
        calls,
        "a session token was sent to the webhook"
    );
}

/// POST mode: the webhook gets `{"headers": {...}, "request": {...}}` with the client's
/// headers and never its body, and decides as in GET mode. Its answer with `Cache-Control:
/// max-age` in the body is cached per credential and requested role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_webhook_in_post_mode_and_its_cache() {
    let hook = Webhook::start().await;
    let up = Upstream::start().await;
    let g = Gateway::start(
        &config(&up, None, &webhook_auth_mode(&hook.url, "POST")),
        0,
        0,
    );
    let res = client()
        .post(g.url("/things?x=1"))
        .header("host", host("open"))
        .header("authorization", "Bearer opaque-good")
        .header("x-hasura-role", "user")
        .header("content-type", "text/plain")
        .body("the client's own body")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "log:\n{}", g.log());
    let call = hook.last();
    assert_eq!(call.method, http::Method::POST);
    let sent = call.body.to_string();
    assert!(!sent.contains("the client's own body"), "{sent}");
    let headers = call.body["headers"].as_object().expect("no headers object");
    let auth = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.clone());
    assert_eq!(auth, Some(json!("Bearer opaque-good")), "{sent}");
    assert_eq!(call.body["request"]["method"], "POST", "{sent}");
    let seen = up.last();
    assert_eq!(seen.all("x-hasura-user-id"), ["w-5"]);
    assert_eq!(seen.all("x-hasura-org-id"), ["7"]);
    assert_eq!(seen.body_len, "the client's own body".len());

    let res = get(&g, "data", &[("authorization", "Bearer opaque-refused")]).await;
    assert_eq!(res.status(), 401);
    assert_eq!(code(res).await, "authentication-refused");

    // Cached by the body's Cache-Control: the second request does not call the webhook; another
    // requested role is another cache entry.
    let calls = hook.count();
    for _ in 0..2 {
        let res = get(&g, "data", &[("authorization", "Bearer opaque-cached")]).await;
        assert_eq!(res.status(), 200);
        assert_eq!(up.last().all("x-hasura-user-id"), ["c-1"]);
    }
    assert_eq!(hook.count(), calls + 1, "a cacheable answer was not cached");
    let res = get(
        &g,
        "admin",
        &[
            ("authorization", "Bearer opaque-cached"),
            ("x-hasura-role", "admin"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(up.last().all("x-hasura-role"), ["admin"]);
    assert_eq!(
        hook.count(),
        calls + 2,
        "a cached answer served another role"
    );
}

/// A webhook that cannot be reached: 503 for every request it would decide (fail closed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_webhook_fails_closed() {
    let up = Upstream::start().await;
    let url = format!("http://127.0.0.1:{}/hook", free_port());
    let g = Gateway::start(&config(&up, None, &webhook_auth(&url)), 0, 0);
    let res = get(&g, "data", &[("authorization", "Bearer opaque-good")]).await;
    assert_eq!(res.status(), 503, "log:\n{}", g.log());
    assert_eq!(code(res).await, "session-store-unavailable");
    let res = get(&g, "data", &[]).await;
    assert_eq!(res.status(), 503);
    assert_eq!(up.count(), 0);
}
