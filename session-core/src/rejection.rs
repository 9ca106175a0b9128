//! Every response this crate answers by itself, built in one place.
//!
//! A rejection is a JSON body `{"error": "<human message>", "code": "<kebab-code>"}` with
//! `content-type: application/json`, never a service error.
//!
//! | status | code | when |
//! |---|---|---|
//! | 400 | `duplicate-authorization`, `malformed-authorization`, `duplicate-cookie` | see [`CredentialError`] |
//! | 400 | `ambiguous-role` | an authenticated request carries `X-Hasura-Role` twice |
//! | 401 | `invalid-token` | unknown, expired or revoked bearer token (with `WWW-Authenticate: Bearer error="invalid_token"`) |
//! | 401 | `authorization-required` | [`RequireRole`](crate::RequireRole): role not allowed (with `WWW-Authenticate: Bearer`) |
//! | 403 | `role-not-allowed` | `X-Hasura-Role` asks for a role outside the session's allowed roles |
//! | 403 | `insufficient-role` | [`RequireRole`](crate::RequireRole) with `forbid_authenticated(true)`: valid session, role not allowed |
//! | 500 | `internal-error` | no `Identity` in extensions, a resolver error other than unavailability, an identity that is not a legal header value |
//! | 503 | `session-store-unavailable` | the resolver could not answer (with `Retry-After`) |

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

use crate::credential::CredentialError;

/// A JSON rejection `{"error": message, "code": code}` with `content-type: application/json`.
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

/// `{"error": $msg, "code": $code}` as a `&'static str`; the literals contain nothing that needs
/// JSON escaping.
macro_rules! json_body {
    ($code:literal, $msg:literal) => {
        concat!("{\"error\":\"", $msg, "\",\"code\":\"", $code, "\"}")
    };
}
pub(crate) use json_body;

/// A rejection with a prebuilt body: no allocation beyond the response itself.
pub(crate) fn prebuilt<B: From<Bytes>>(status: StatusCode, body: &'static str) -> Response<B> {
    let mut response = Response::new(B::from(Bytes::from_static(body.as_bytes())));
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
    prebuilt(err.status(), err.json_body())
}

pub(crate) fn invalid_token<B: From<Bytes>>() -> Response<B> {
    let mut r = prebuilt(
        StatusCode::UNAUTHORIZED,
        json_body!(
            "invalid-token",
            "the bearer token is invalid, expired or revoked"
        ),
    );
    r.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    r
}

pub(crate) fn ambiguous_role<B: From<Bytes>>() -> Response<B> {
    prebuilt(
        StatusCode::BAD_REQUEST,
        json_body!("ambiguous-role", "the role header appears more than once"),
    )
}

pub(crate) fn role_not_allowed<B: From<Bytes>>() -> Response<B> {
    prebuilt(
        StatusCode::FORBIDDEN,
        json_body!(
            "role-not-allowed",
            "the requested role is not one of the session's roles"
        ),
    )
}

pub(crate) fn unavailable<B: From<Bytes>>(retry_after: &HeaderValue) -> Response<B> {
    let mut r = prebuilt(
        StatusCode::SERVICE_UNAVAILABLE,
        json_body!(
            "session-store-unavailable",
            "the session store is unavailable"
        ),
    );
    r.headers_mut().insert(RETRY_AFTER, retry_after.clone());
    r
}

pub(crate) fn internal<B: From<Bytes>>() -> Response<B> {
    prebuilt(
        StatusCode::INTERNAL_SERVER_ERROR,
        json_body!("internal-error", "internal error"),
    )
}

pub(crate) fn authorization_required<B: From<Bytes>>() -> Response<B> {
    let mut r = prebuilt(
        StatusCode::UNAUTHORIZED,
        json_body!(
            "authorization-required",
            "this resource requires a role the caller does not have"
        ),
    );
    r.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

pub(crate) fn insufficient_role<B: From<Bytes>>() -> Response<B> {
    prebuilt(
        StatusCode::FORBIDDEN,
        json_body!(
            "insufficient-role",
            "the session's role is not allowed here"
        ),
    )
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
