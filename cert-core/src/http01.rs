//! [`Http01Layer`]: the plain listener answers ACME HTTP-01 validations itself.
//!
//! It goes in front of whatever the plain listener serves (the gateway's routes, or a redirect
//! to HTTPS): a request for `/.well-known/acme-challenge/…` is answered from the
//! [`ChallengeResponder`] and never reaches the inner service, so no path trick can route a
//! validation request to an upstream, and an upstream can never answer one (SECURITY-CASES 17).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::ChallengeResponder;

/// This crate's one refusal, as `(status, code, message)`: cert-core does not depend on
/// route-core, whose `Rejection` the other crates declare theirs with, so the gateway's
/// vocabulary test reads this table.
pub const REJECTIONS: &[(u16, &str, &str)] =
    &[(404, "unknown-challenge", "no such ACME challenge")];

/// The body of the 404 for an unknown challenge token (`REJECTIONS[0]`, checked by a test).
const UNKNOWN_CHALLENGE: &str = r#"{"error":"no such ACME challenge","code":"unknown-challenge"}"#;

/// Layer for [`Http01`].
#[derive(Clone, Debug)]
pub struct Http01Layer {
    responder: ChallengeResponder,
}

impl Http01Layer {
    /// Answers challenge paths from `responder` (shared with the ACME manager).
    pub fn new(responder: ChallengeResponder) -> Self {
        Http01Layer { responder }
    }
}

impl<S> Layer<S> for Http01Layer {
    type Service = Http01<S>;
    fn layer(&self, inner: S) -> Http01<S> {
        Http01 {
            inner,
            responder: self.responder.clone(),
        }
    }
}

/// Answers HTTP-01 challenge paths; passes everything else to the inner service.
#[derive(Clone, Debug)]
pub struct Http01<S> {
    inner: S,
    responder: ChallengeResponder,
}

/// The response future of [`Http01`]. Boxed: a challenge answer may need the shared store, and
/// validations are rare next to the traffic the inner service carries.
pub type Http01Future<RB> = Pin<Box<dyn Future<Output = Result<Response<RB>, Infallible>> + Send>>;

impl<S, B, RB> Service<Request<B>> for Http01<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: From<Bytes> + Send + 'static,
{
    type Response = Response<RB>;
    type Error = Infallible;
    type Future = Http01Future<RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let path = req.uri().path();
        if !ChallengeResponder::is_challenge_path(path) {
            return Box::pin(self.inner.call(req));
        }
        let responder = self.responder.clone();
        let path = path.to_owned();
        Box::pin(async move {
            let (status, content_type, body) = match responder.respond_shared(&path).await {
                Some(key_auth) => (StatusCode::OK, "text/plain", Bytes::from(key_auth)),
                None => (
                    StatusCode::NOT_FOUND,
                    "application/json",
                    Bytes::from_static(UNKNOWN_CHALLENGE.as_bytes()),
                ),
            };
            let mut res = Response::new(RB::from(body));
            *res.status_mut() = status;
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            Ok(res)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn challenges_are_answered_here_and_the_rest_passes() {
        let responder = ChallengeResponder::new();
        responder.insert("tok", "tok.thumb");
        let inner =
            tower_service_fn(|_req: Request<()>| Response::new(Bytes::from_static(b"inner")));
        let mut svc = Http01Layer::new(responder).layer(inner);
        let get = |p: &str| Request::builder().uri(p).body(()).unwrap();
        let res = svc
            .call(get("/.well-known/acme-challenge/tok"))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.body().as_ref(), b"tok.thumb");
        let res = svc
            .call(get("/.well-known/acme-challenge/other"))
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
        assert_eq!(res.body().as_ref(), UNKNOWN_CHALLENGE.as_bytes());
        let (status, code, message) = REJECTIONS[0];
        let want = format!(r#"{{"error":"{message}","code":"{code}"}}"#);
        assert_eq!(
            (res.status().as_u16(), UNKNOWN_CHALLENGE),
            (status, want.as_str())
        );
        let res = svc.call(get("/anything")).await.unwrap();
        assert_eq!(res.body().as_ref(), b"inner");
    }

    /// A cloneable service from a function: tower's `service_fn` without the dependency.
    fn tower_service_fn<F>(f: F) -> Fn1<F> {
        Fn1(f)
    }

    #[derive(Clone)]
    struct Fn1<F>(F);

    impl<F, B> Service<Request<B>> for Fn1<F>
    where
        F: Fn(Request<B>) -> Response<Bytes>,
    {
        type Response = Response<Bytes>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<Bytes>, Infallible>>;
        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, req: Request<B>) -> Self::Future {
            std::future::ready(Ok((self.0)(req)))
        }
    }
}
