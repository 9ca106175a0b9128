//! The one error vocabulary of the workspace: [`Rejection`], and this crate's table of them.
//!
//! Every refusal any crate answers by itself is a `Rejection`: a status, a kebab-case `code`
//! and one fixed message, sent as `{"error": message, "code": code}` with
//! `content-type: application/json`. Each crate declares its table with [`rejections!`]
//! (route-core: [`Rejection::ALL`]; session-core: `session_core::rejection::ALL`; the gateway
//! binary: its `reject` module), and a test of the binary checks that across all of them each
//! code has exactly one status and one message. Bodies are `'static` JSON strings, so a
//! rejection allocates nothing but the response.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};

/// A rejection: a status plus a fixed JSON body `{"error": …, "code": …}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The HTTP status of the answer.
    pub status: StatusCode,
    /// The machine-readable kebab-case code (also in the body).
    pub code: &'static str,
    /// The human-readable message (the body's `error`).
    pub message: &'static str,
    body: &'static str,
}

/// Declares `pub const` [`Rejection`]s and `pub const ALL: &[Rejection]` listing them, in the
/// module where it is used. The message and code are literals: the JSON body is built at
/// compile time (they must need no JSON escaping).
///
/// ```
/// mod rejection {
///     route_core::rejections! {
///         /// The teapot refuses.
///         TEAPOT = (IM_A_TEAPOT, "teapot", "I am a teapot");
///     }
/// }
/// assert_eq!(rejection::TEAPOT.body(), r#"{"error":"I am a teapot","code":"teapot"}"#);
/// assert_eq!(rejection::ALL.len(), 1);
/// ```
#[macro_export]
macro_rules! rejections {
    ($( $(#[$doc:meta])* $name:ident = ($status:ident, $code:literal, $msg:literal); )*) => {
        $(
            $(#[$doc])*
            pub const $name: $crate::Rejection = $crate::Rejection::__from_parts(
                $crate::__http::StatusCode::$status,
                $code,
                $msg,
                concat!("{\"error\":\"", $msg, "\",\"code\":\"", $code, "\"}"),
            );
        )*
        /// Every rejection this module declares, for the vocabulary test.
        pub const ALL: &[$crate::Rejection] = &[$($name),*];
    };
}

macro_rules! own_rejections {
    ($( $(#[$doc:meta])* $name:ident = ($status:ident, $code:literal, $msg:literal); )*) => {
        impl Rejection {
            $(
                $(#[$doc])*
                pub const $name: Rejection = Rejection {
                    status: StatusCode::$status,
                    code: $code,
                    message: $msg,
                    body: concat!("{\"error\":\"", $msg, "\",\"code\":\"", $code, "\"}"),
                };
            )*
            /// Every rejection route-core makes, for the vocabulary test.
            pub const ALL: &'static [Rejection] = &[$(Rejection::$name),*];
        }
    };
}

own_rejections! {
    /// No `Host` header and no URI authority.
    MISSING_HOST = (BAD_REQUEST, "missing-host", "the request has no Host");
    /// Two `Host` headers.
    DUPLICATE_HOST = (BAD_REQUEST, "duplicate-host", "the request has more than one Host header");
    /// Absolute-form URI authority differs from `Host`.
    HOST_MISMATCH = (BAD_REQUEST, "host-mismatch", "the request URI authority differs from the Host header");
    /// A syntactically invalid host.
    INVALID_HOST = (BAD_REQUEST, "invalid-host", "the Host header is not a valid host name");
    /// An IP literal as host: this gateway only serves names.
    IP_HOST = (MISDIRECTED_REQUEST, "misdirected-request", "this connection does not serve this host");
    /// A TLS request whose host is not the connection's SNI name.
    SNI_MISMATCH = (MISDIRECTED_REQUEST, "misdirected-request", "this connection does not serve this host");
    /// No route for the host.
    UNKNOWN_HOST = (NOT_FOUND, "unknown-host", "no route for this host");
    /// The host is known but no path prefix of it matches.
    NO_ROUTE = (NOT_FOUND, "no-route", "no route for this path");
    /// A path the gateway refuses to interpret (encoded slash, backslash, NUL, control bytes…).
    INVALID_PATH = (BAD_REQUEST, "invalid-path", "the request path is not acceptable");
    /// A path that a server dropping `;` parameters, folding case or decoding first would send
    /// to a route with another policy (SECURITY-CASES 37).
    AMBIGUOUS_PATH = (BAD_REQUEST, "ambiguous-path", "the request path is ambiguous: another reading of it leads to a different route");
    /// The client's request body was malformed (a bad chunk) or broke off.
    INVALID_BODY = (BAD_REQUEST, "invalid-body", "the request body could not be read");
    /// The request body is larger than the route allows.
    BODY_TOO_LARGE = (PAYLOAD_TOO_LARGE, "payload-too-large", "the request body is too large");
    /// The upstream refused or reset the connection, or answered something unusable.
    BAD_GATEWAY = (BAD_GATEWAY, "bad-gateway", "the upstream service failed");
    /// Connecting to the upstream failed (refused, unreachable).
    UPSTREAM_UNREACHABLE = (BAD_GATEWAY, "upstream-unreachable", "the upstream service is unreachable");
    /// Connecting to the upstream took longer than its connect timeout.
    CONNECT_TIMEOUT = (GATEWAY_TIMEOUT, "upstream-connect-timeout", "connecting to the upstream service timed out");
    /// The upstream did not answer (headers) within its response timeout.
    RESPONSE_TIMEOUT = (GATEWAY_TIMEOUT, "upstream-timeout", "the upstream service did not answer in time");
}

static JSON: HeaderValue = HeaderValue::from_static("application/json");

impl Rejection {
    /// Used by [`rejections!`]; build rejections with that macro.
    #[doc(hidden)]
    pub const fn __from_parts(
        status: StatusCode,
        code: &'static str,
        message: &'static str,
        body: &'static str,
    ) -> Rejection {
        Rejection {
            status,
            code,
            message,
            body,
        }
    }

    /// The JSON body of this rejection.
    pub fn body(&self) -> &'static str {
        self.body
    }

    /// Builds the response, in any body type that can be made from `Bytes`. It carries its
    /// code as a [`Refused`](crate::decision::Refused) extension, for the decision record.
    pub fn response<B: From<Bytes>>(&self) -> Response<B> {
        let mut res = Response::new(B::from(Bytes::from_static(self.body.as_bytes())));
        *res.status_mut() = self.status;
        res.headers_mut().insert(CONTENT_TYPE, JSON.clone());
        res.extensions_mut().insert(crate::decision::Refused {
            code: self.code,
            message: self.message,
        });
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_json_with_code() {
        let r = Rejection::IP_HOST;
        assert_eq!(r.status, StatusCode::MISDIRECTED_REQUEST);
        assert_eq!(
            r.body(),
            r#"{"error":"this connection does not serve this host","code":"misdirected-request"}"#
        );
        let res: Response<Bytes> = Rejection::UNKNOWN_HOST.response();
        assert_eq!(res.status(), 404);
        assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
    }
}
