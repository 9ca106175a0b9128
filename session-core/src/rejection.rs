//! Every response this crate answers by itself, declared in one table ([`ALL`]) of
//! route-core's [`Rejection`]s: the workspace's one error vocabulary.
//!
//! A rejection is a JSON body `{"error": "<human message>", "code": "<kebab-code>"}` with
//! `content-type: application/json`, never a service error.
//!
//! | status | code | when |
//! |---|---|---|
//! | 400 | `duplicate-authorization`, `malformed-authorization`, `duplicate-cookie` | see [`CredentialError`] |
//! | 400 | `ambiguous-role` | an authenticated request carries `X-Hasura-Role` twice |
//! | 401 | `invalid-token` | unknown, expired or revoked bearer token (with `WWW-Authenticate: Bearer error="invalid_token"`) |
//! | 401 | `authentication-refused` | the resolver refused the request: an auth webhook answered 401 (with `WWW-Authenticate: Bearer`) |
//! | 401 | `authorization-required` | [`RequireRole`](crate::RequireRole): role not allowed (with `WWW-Authenticate: Bearer`) |
//! | 403 | `role-not-allowed` | `X-Hasura-Role` asks for a role outside the session's allowed roles |
//! | 403 | `insufficient-role` | [`RequireRole`](crate::RequireRole) with `forbid_authenticated(true)`: valid session, role not allowed |
//! | 403 | `cross-site-request`, `origin-required` | the [CSRF check](crate::csrf) |
//! | 500 | `internal-error` | no `Identity` in extensions, a resolver error other than unavailability, an identity that is not a legal header value |
//! | 502 | `bad-session-issue` | an [issuer](crate::issuer) asked for a session that cannot be made |
//! | 503 | `session-store-unavailable` | the session store, the JWKS or the auth webhook could not answer (with `Retry-After`) |
//!
//! [`CredentialError`]: crate::CredentialError

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
pub use route_core::Rejection;

use crate::credential::CredentialError;

route_core::rejections! {
    /// Two credentials in `Authorization`.
    DUPLICATE_AUTHORIZATION = (BAD_REQUEST, "duplicate-authorization", "more than one credential in the Authorization header");
    /// A bearer credential that is not a token.
    MALFORMED_AUTHORIZATION = (BAD_REQUEST, "malformed-authorization", "malformed bearer credential");
    /// The session cookie twice.
    DUPLICATE_COOKIE = (BAD_REQUEST, "duplicate-cookie", "the session cookie appears more than once");
    /// A session cookie that is not a token (the session layer clears it instead).
    MALFORMED_COOKIE = (BAD_REQUEST, "malformed-cookie", "malformed session cookie");
    /// A string that is not a token.
    MALFORMED_TOKEN = (BAD_REQUEST, "malformed-token", "malformed token");
    /// `X-Hasura-Role` twice on an authenticated request.
    AMBIGUOUS_ROLE = (BAD_REQUEST, "ambiguous-role", "the role header appears more than once");
    /// Unknown, expired or revoked bearer token.
    INVALID_TOKEN = (UNAUTHORIZED, "invalid-token", "the bearer token is invalid, expired or revoked");
    /// The resolver refused the request (an auth webhook answered 401).
    AUTHENTICATION_REFUSED = (UNAUTHORIZED, "authentication-refused", "the authentication service refused the request");
    /// [`RequireRole`](crate::RequireRole): the caller's role is not allowed.
    AUTHORIZATION_REQUIRED = (UNAUTHORIZED, "authorization-required", "this resource requires a role the caller does not have");
    /// The requested role is not among the session's.
    ROLE_NOT_ALLOWED = (FORBIDDEN, "role-not-allowed", "the requested role is not one of the session's roles");
    /// The role check refused a valid session (`forbid_authenticated`).
    INSUFFICIENT_ROLE = (FORBIDDEN, "insufficient-role", "the session's role is not allowed here");
    /// The CSRF check: a foreign origin or a cross-site fetch.
    CROSS_SITE_REQUEST = (FORBIDDEN, "cross-site-request", "a cross-site request may not use the session cookie or log in");
    /// The CSRF check: a cookie request with no origin information.
    ORIGIN_REQUIRED = (FORBIDDEN, "origin-required", "a state-changing request with the session cookie needs an Origin, Sec-Fetch-Site or Referer header");
    /// A bug: a layer missing, or a value that cannot be sent.
    INTERNAL_ERROR = (INTERNAL_SERVER_ERROR, "internal-error", "internal error");
    /// An issuer asked for an invalid session.
    BAD_SESSION_ISSUE = (BAD_GATEWAY, "bad-session-issue", "the login service sent an invalid session request");
    /// The session store could not answer.
    SESSION_STORE_UNAVAILABLE = (SERVICE_UNAVAILABLE, "session-store-unavailable", "the session store or identity provider is unavailable; try again shortly");
}

/// A JSON rejection `{"error": message, "code": code}` with `content-type: application/json`,
/// for a code outside the vocabulary (an embedder's own handler). The gateway's crates never
/// use it: their refusals are [`ALL`].
pub fn json_rejection<B: From<Bytes>>(
    status: StatusCode,
    code: &str,
    message: &str,
) -> Response<B> {
    let mut body = String::with_capacity(24 + code.len() + message.len());
    body.push_str("{\"error\":\"");
    escape_json_into(&mut body, message);
    body.push_str("\",\"code\":\"");
    escape_json_into(&mut body, code);
    body.push_str("\"}");
    let mut response = Response::new(B::from(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn escape_json_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

pub(crate) fn credential<B: From<Bytes>>(err: CredentialError) -> Response<B> {
    err.rejection().response()
}

pub(crate) fn invalid_token<B: From<Bytes>>() -> Response<B> {
    let mut r = INVALID_TOKEN.response();
    r.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    r
}

pub(crate) fn unavailable<B: From<Bytes>>(retry_after: &HeaderValue) -> Response<B> {
    let mut r = SESSION_STORE_UNAVAILABLE.response();
    r.headers_mut().insert(RETRY_AFTER, retry_after.clone());
    r
}

pub(crate) fn authentication_refused<B: From<Bytes>>() -> Response<B> {
    let mut r = AUTHENTICATION_REFUSED.response();
    r.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

pub(crate) fn authorization_required<B: From<Bytes>>() -> Response<B> {
    let mut r = AUTHORIZATION_REQUIRED.response();
    r.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    #[test]
    fn json_shape_and_escaping() {
        let r: Response<Full<Bytes>> =
            json_rejection(StatusCode::IM_A_TEAPOT, "c\"ode", "a \\ \"b\"\n");
        assert_eq!(r.status(), StatusCode::IM_A_TEAPOT);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        let body =
            futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(r.into_body()))
                .unwrap()
                .unwrap()
                .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["code"], "c\"ode");
        assert_eq!(v["error"], "a \\ \"b\"\n");
        assert_eq!(v.as_object().unwrap().len(), 2);
    }
}
