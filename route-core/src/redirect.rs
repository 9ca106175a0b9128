//! The plain listener's redirect to HTTPS.
//!
//! [`HttpsRedirectLayer`] answers every request with `308 Permanent Redirect` to the same path
//! and query over `https`, on the HTTPS listener's port. `308` keeps the method and body, so a
//! form post that reached the plain port by mistake is not turned into a `GET`.
//!
//! Only a host the router would accept ([`request_host`](crate::request_host)) that belongs to
//! the project ([`ProjectOrigins::allows_host`]) is echoed into `Location`: no open redirect to
//! another site and no header injection. Other hosts get the router's own answers (400
//! `invalid-host`, 404 `unknown-host`).

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::LOCATION;
use http::{HeaderValue, Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::{request_host, Body, ProjectOrigins, Rejection};

/// Layer for [`HttpsRedirect`]: the project's hosts and the HTTPS port to send them to.
#[derive(Clone, Debug)]
pub struct HttpsRedirectLayer {
    origins: ProjectOrigins,
    port: u16,
}

impl HttpsRedirectLayer {
    /// Redirects the hosts of `origins` to `https://host[:port]`; port 443 is left out of the
    /// URL.
    pub fn new(origins: ProjectOrigins, port: u16) -> Self {
        HttpsRedirectLayer { origins, port }
    }
}

impl<S> Layer<S> for HttpsRedirectLayer {
    type Service = HttpsRedirect;
    fn layer(&self, _inner: S) -> HttpsRedirect {
        // Nothing is served over plain HTTP once this layer is on: the inner service is dropped.
        HttpsRedirect {
            origins: self.origins.clone(),
            port: self.port,
        }
    }
}

/// Redirects every request to HTTPS (see the module docs).
#[derive(Clone, Debug)]
pub struct HttpsRedirect {
    origins: ProjectOrigins,
    port: u16,
}

impl HttpsRedirect {
    /// The answer to `req`.
    pub fn redirect<B, RB: From<Bytes>>(&self, req: &Request<B>) -> Response<RB> {
        let host = match request_host(req) {
            Ok(host) => host,
            Err(e) => return e.rejection().response(),
        };
        if !self.origins.allows_host(&host) {
            return Rejection::UNKNOWN_HOST.response();
        }
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let location = if self.port == 443 {
            format!("https://{host}{path}")
        } else {
            format!("https://{host}:{}{path}", self.port)
        };
        // The host is normalised ([a-z0-9.-]) and hyper accepted the path: a legal value. The
        // fallback is for a path hyper took that a header may not hold.
        let Ok(location) = HeaderValue::try_from(location) else {
            return Rejection::INVALID_PATH.response();
        };
        let mut res = Response::new(RB::from(Bytes::new()));
        *res.status_mut() = StatusCode::PERMANENT_REDIRECT;
        res.headers_mut().insert(LOCATION, location);
        res
    }
}

impl<B> Service<Request<B>> for HttpsRedirect {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ready(Ok(self.redirect(&req)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn redirect(host: &str, uri: &str, port: u16) -> Response<Bytes> {
        let layer =
            HttpsRedirectLayer::new(ProjectOrigins::new(&["example.com".to_owned()], &[]), port);
        let svc = layer.layer(());
        let req = Request::builder()
            .uri(uri)
            .header("host", host)
            .body(())
            .unwrap();
        svc.redirect(&req)
    }

    #[test]
    fn project_hosts_are_redirected_others_are_not() {
        let res = redirect("App.Example.com.:80", "/a/b?c=d", 443);
        assert_eq!(res.status(), 308);
        assert_eq!(res.headers()[LOCATION], "https://app.example.com/a/b?c=d");
        let res = redirect("example.com", "/", 8443);
        assert_eq!(res.headers()[LOCATION], "https://example.com:8443/");
        assert_eq!(redirect("evil.test", "/", 443).status(), 404);
        assert_eq!(redirect("example.com.evil.test", "/", 443).status(), 404);
        assert_eq!(redirect("127.0.0.1", "/", 443).status(), 421);
        assert_eq!(redirect("a b", "/", 443).status(), 400);
    }
}
