//! Tower-level tests of every rule of the session layer, including SECURITY-CASES 1, 2, 3, 6,
//! 7, 8, 9, 11 and 12 at the layer level.
//!
//! One file per theme: `identity_headers` (what upstream sees), `credentials` (finding,
//! refusing and forwarding the token), `roles` (role requests), `resolver_and_config`
//! (resolver failures, the store lookup, cookies, configuration). The helpers they share stay
//! here.

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

async fn store_with_session(ttl: u64) -> (MemoryStore, Token) {
    let store = MemoryStore::new();
    let (token, _) = store
        .create(NewSession {
            user_id: "bob".into(),
            roles: vec!["user".into(), "admin".into()],
            ttl: Duration::from_secs(ttl),
            ..Default::default()
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

mod credentials;
mod identity_headers;
mod request_resolvers;
mod resolver_and_config;
mod roles;
