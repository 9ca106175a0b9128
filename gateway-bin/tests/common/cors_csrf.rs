//! The gateway the CORS and CSRF tests (cors.rs, csrf_redirects.rs) run against, and the raw
//! requests and header reading both use, so that both files test one configuration.

use super::*;

/// The standard services plus: `nocors` (admin only, `cors = false`), `partner` (extra origin,
/// methods and headers), `portal` (admin only, with both redirects); and one trusted CSRF origin.
pub fn config(up: &str) -> String {
    let extra = format!(
        r#"
[[services]]
name = "nocors"
upstreams = ["{up}"]
allowed_roles = ["admin"]
cors = false

[[services]]
name = "partner"
upstreams = ["{up}"]
cors_allowed_origins = ["https://partner.example.org"]
cors_allowed_methods = ["GET", "put"]
cors_allowed_headers = ["X-Custom"]

[[services]]
name = "portal"
upstreams = ["{up}"]
allowed_roles = ["admin"]
no_session_redirect = "https://auth.{DOMAIN}/login"
no_access_redirect = "https://auth.{DOMAIN}/denied"

[csrf]
trusted_origins = ["https://partner.example.org"]
"#
    );
    standard_config(0, 0, up, &extra)
}

pub async fn gateway() -> (Upstream, Gateway) {
    let up = Upstream::start().await;
    let g = Gateway::start(&config(&up.url()), 0, 0);
    (up, g)
}

/// A raw request to `sub.<domain>` on the gateway, `Connection: close`.
pub fn send(g: &Gateway, method: &str, sub: &str, path: &str, headers: &str) -> String {
    let body = if matches!(method, "POST" | "PUT" | "PATCH" | "DELETE") {
        "Content-Length: 0\r\n"
    } else {
        ""
    };
    raw(
        g.http,
        format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{headers}{body}Connection: close\r\n\r\n",
            host(sub)
        )
        .as_bytes(),
    )
}

/// The values of a response header, lowercase name, in order.
pub fn header_values(response: &str, name: &str) -> Vec<String> {
    let head = response.split("\r\n\r\n").next().unwrap_or("");
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
        .collect()
}

pub fn header(response: &str, name: &str) -> Option<String> {
    let v = header_values(response, name);
    assert!(v.len() <= 1, "{name} appears {} times: {response}", v.len());
    v.into_iter().next()
}
