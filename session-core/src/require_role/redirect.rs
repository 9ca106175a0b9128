//! Redirects instead of errors for browser navigations: an option of [`RequireRole`]
//! ([`RequireRoleLayer::redirect_browsers`]).
//!
//! A person who opens `https://admin.<domain>/` without a session should land on the login page,
//! not on a JSON 401. With [`BrowserRedirects::no_session`] such a navigation goes there, with
//! `redirect_to` holding the URL that was asked for; [`BrowserRedirects::no_access`] does the
//! same for a session that lacks the route's role. API calls keep their 401/403 JSON.
//!
//! [`RequireRole`]: crate::RequireRole
//! [`RequireRoleLayer::redirect_browsers`]: crate::RequireRoleLayer::redirect_browsers
//!
//! - A request is a navigation when `Sec-Fetch-Mode` is `navigate`, or, from a client that sends
//!   no `Sec-Fetch-Mode`, when `Accept` contains `text/html`. A `fetch()` (mode `cors`,
//!   `same-origin`, `no-cors`) is never one, whatever it accepts.
//! - Only refusals of the role check are redirected, decided by the same role test; an
//!   upstream's own 401 passes through.
//! - `redirect_to` is only added when the origin of the URL that was asked for (the request's
//!   scheme and `Host`) belongs to the project, by the rule CORS and the CSRF check use
//!   ([`ProjectOrigins::allows`]), so the login page is never handed a foreign URL (no open
//!   redirect). The targets themselves come from the config file.
//! - `GET` and `HEAD` get 302; other methods (a form post) get 303, so the browser follows with a
//!   `GET`.

use http::header::{ACCEPT, CACHE_CONTROL, HOST, LOCATION};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use route_core::ProjectOrigins;

use crate::Identity;

/// Where a role check sends browser navigations it refuses, instead of a JSON 401/403.
/// `Default` redirects nothing and hands no URL on (an empty project).
#[derive(Clone, Debug, Default)]
pub struct BrowserRedirects {
    /// The login page, for a caller without a session. `None`: keep the 401.
    pub no_session: Option<String>,
    /// The page for a session without the route's role. `None`: keep the refusal.
    pub no_access: Option<String>,
    /// The project, whose URLs alone are handed on in `redirect_to`.
    pub origins: ProjectOrigins,
}

impl BrowserRedirects {
    /// Where this refused request goes, or `None` to keep the refusal.
    pub(crate) fn location<B>(
        &self,
        req: &Request<B>,
        identity: &Identity,
    ) -> Option<Response<()>> {
        let target = if identity.is_authenticated() {
            self.no_access.as_deref()?
        } else {
            self.no_session.as_deref()?
        };
        if !is_navigation(req) {
            return None;
        }
        let mut url = target.to_owned();
        if let Some(original) = self.original_url(req) {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str("redirect_to=");
            percent_encode_into(&mut url, &original);
        }
        let status = if matches!(*req.method(), Method::GET | Method::HEAD) {
            StatusCode::FOUND
        } else {
            StatusCode::SEE_OTHER
        };
        let location = HeaderValue::try_from(url).ok()?;
        let mut redirect = Response::new(());
        *redirect.status_mut() = status;
        redirect.headers_mut().insert(LOCATION, location);
        redirect
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Some(redirect)
    }

    /// `scheme://host[:port]/path?query` of the request, when that origin is the project's.
    fn original_url<B>(&self, req: &Request<B>) -> Option<String> {
        let authority = req
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))?;
        let site = self.origins.site(req.headers(), req.extensions());
        let scheme = if site.https { "https" } else { "http" };
        let origin = format!("{scheme}://{}", authority.to_ascii_lowercase());
        if !self.origins.allows(&origin, site, &[]) {
            return None;
        }
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        Some(format!("{origin}{path}"))
    }
}

/// A browser navigation: `Sec-Fetch-Mode: navigate`, or `Accept: text/html` from a client that
/// sends no `Sec-Fetch-Mode`.
fn is_navigation<B>(req: &Request<B>) -> bool {
    match req.headers().get("sec-fetch-mode") {
        Some(mode) => mode.as_bytes().eq_ignore_ascii_case(b"navigate"),
        None => req
            .headers()
            .get_all(ACCEPT)
            .iter()
            .any(|a| contains_ignore_case(a.as_bytes(), b"text/html")),
    }
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode_into(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body_util::Full;
    use route_core::ConnectionInfo;
    use tower::{ServiceBuilder, ServiceExt};

    use super::*;
    use crate::{AnonymousConfig, RequireRoleLayer};

    type Body = Full<Bytes>;

    fn layer(no_access: bool) -> RequireRoleLayer {
        RequireRoleLayer::new(["admin"]).redirect_browsers(BrowserRedirects {
            no_session: Some("https://auth.example.com/login".to_owned()),
            no_access: no_access.then(|| "https://auth.example.com/denied".to_owned()),
            origins: ProjectOrigins::new(&["example.com".to_owned()], &[]),
        })
    }

    async fn call(layer: RequireRoleLayer, req: Request<()>) -> Response<Body> {
        let svc = ServiceBuilder::new()
            .layer(layer)
            .service(tower::service_fn(|_req: Request<()>| async {
                Ok::<_, Infallible>(Response::new(Body::from("inner")))
            }));
        svc.oneshot(req).await.unwrap()
    }

    fn req(host: &str, headers: &[(&str, &str)], identity: Identity) -> Request<()> {
        let mut b = Request::builder().uri("/a/b?x=1&y=%20").header(HOST, host);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let mut r = b.body(()).unwrap();
        r.extensions_mut().insert(identity);
        // A plain-HTTP listener on 8443.
        r.extensions_mut().insert(ConnectionInfo {
            remote_addr: "192.0.2.1:5000".parse().unwrap(),
            local_addr: "127.0.0.1:8443".parse().unwrap(),
            tls: false,
            sni: None,
        });
        r
    }

    fn anonymous() -> Identity {
        Identity::anonymous(&AnonymousConfig::default())
    }

    fn location(res: &Response<Body>) -> &str {
        res.headers()[LOCATION].to_str().unwrap()
    }

    #[tokio::test]
    async fn navigation_without_a_session_is_redirected_with_redirect_to() {
        let nav = [("sec-fetch-mode", "navigate")];
        let res = call(
            layer(false),
            req("Admin.Example.com:8443", &nav, anonymous()),
        )
        .await;
        assert_eq!(res.status(), StatusCode::FOUND);
        assert_eq!(
            location(&res),
            "https://auth.example.com/login?redirect_to=http%3A%2F%2Fadmin.example.com%3A8443%2Fa%2Fb%3Fx%3D1%26y%3D%2520"
        );
        // Accept: text/html without Sec-Fetch-Mode is a navigation too.
        let html = [("accept", "text/html,application/xhtml+xml")];
        let res = call(layer(false), req("admin.example.com", &html, anonymous())).await;
        assert_eq!(res.status(), StatusCode::FOUND);
    }

    #[tokio::test]
    async fn api_calls_keep_their_401() {
        for headers in [
            &[][..],
            &[("accept", "application/json")][..],
            // fetch() that accepts HTML is still not a navigation.
            &[("sec-fetch-mode", "cors"), ("accept", "text/html")][..],
        ] {
            let res = call(layer(false), req("admin.example.com", headers, anonymous())).await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{headers:?}");
        }
    }

    #[tokio::test]
    async fn foreign_host_gets_no_redirect_to() {
        let nav = [("sec-fetch-mode", "navigate")];
        for host in [
            "evil.test",
            "admin.example.com@evil.test",
            "example.com.evil.test",
            // A port that is not the listener's (SECURITY-CASES 41).
            "admin.example.com:8444",
        ] {
            let res = call(layer(false), req(host, &nav, anonymous())).await;
            assert_eq!(res.status(), StatusCode::FOUND);
            assert_eq!(location(&res), "https://auth.example.com/login", "{host}");
        }
    }

    #[tokio::test]
    async fn session_without_the_role() {
        let nav = [("sec-fetch-mode", "navigate")];
        let user = || Identity::new("7", "user", ["user"]);
        // No no_access_redirect: the refusal stays.
        let res = call(layer(false), req("admin.example.com", &nav, user())).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let res = call(layer(true), req("admin.example.com", &nav, user())).await;
        assert_eq!(res.status(), StatusCode::FOUND);
        assert!(location(&res).starts_with("https://auth.example.com/denied?redirect_to="));
        // An allowed role reaches the service.
        let admin = Identity::new("8", "admin", ["admin"]);
        let res = call(layer(true), req("admin.example.com", &nav, admin)).await;
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn form_posts_get_303() {
        let mut r = req(
            "admin.example.com",
            &[("sec-fetch-mode", "navigate")],
            anonymous(),
        );
        *r.method_mut() = Method::POST;
        let res = call(layer(false), r).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
    }
}
