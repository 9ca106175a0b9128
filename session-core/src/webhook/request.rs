//! What the webhook is sent, and the cache key that stands for it.

use http::header::{
    ACCEPT_ENCODING, AUTHORIZATION, CONTENT_LENGTH, COOKIE, EXPECT, HOST, IF_MATCH,
    IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, RANGE,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The header that tells the webhook which role the client asked for, as Hasura sends it.
pub(super) const ROLE_HEADER: HeaderName = HeaderName::from_static("x-hasura-role");

/// Client headers that are not hop-by-hop but are still never sent to the webhook (see
/// [`forwarded_headers`]).
const NOT_FORWARDED: [HeaderName; 10] = [
    HOST,
    CONTENT_LENGTH,
    EXPECT,
    ACCEPT_ENCODING,
    RANGE,
    IF_RANGE,
    IF_MATCH,
    IF_NONE_MATCH,
    IF_MODIFIED_SINCE,
    IF_UNMODIFIED_SINCE,
];

/// The client's headers as the webhook sees them: hop-by-hop headers (`Connection` and the
/// names it lists, `Keep-Alive`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`, every
/// `Proxy-*`) removed, as are `Host` and `Content-Length`, `Expect` (the webhook gets no body),
/// and the headers that ask for a different form of the client's resource (`Accept-Encoding`,
/// `Range`, `If-Range`, the conditional `If-*`): sent on, they would make the webhook answer a
/// compressed body, a `206` or a `304`, none of which is an identity. The requested role is
/// added as `X-Hasura-Role`, so that the webhook chooses the role.
///
/// The session layer has already stripped every client `X-Hasura-*` header, so the role header
/// here is only ever the one added from `requested_role`.
pub(super) fn forwarded_headers(headers: &HeaderMap, requested_role: Option<&str>) -> HeaderMap {
    let mut out = headers.clone();
    // One rule for what is hop-by-hop: the proxy's (route-core).
    route_core::strip_hop_by_hop(&mut out);
    for name in NOT_FORWARDED {
        out.remove(name);
    }
    // An embedder whose stack did not strip identity headers must not let the client speak
    // for the role.
    out.remove(ROLE_HEADER);
    if let Some(role) = requested_role.and_then(|r| HeaderValue::from_str(r).ok()) {
        out.insert(ROLE_HEADER, role);
    }
    out
}

/// The `POST` mode's body: `{"headers": {name: value}, "request": {"method": ..., "url": ...}}`.
///
/// Header names are lowercase (as HTTP/2 writes them; the gateway does not keep the client's
/// spelling). A header sent more than once becomes one value, joined as HTTP joins list values (`, `;
/// `; ` for `Cookie`, as a browser writes them). A value that is not UTF-8 is sent with the
/// replacement character (the webhook can only refuse it).
pub(super) fn post_body(headers: &HeaderMap, method: &Method, uri: Option<&Uri>) -> Vec<u8> {
    let mut map = Map::new();
    for name in headers.keys() {
        let sep = if name == COOKIE { "; " } else { ", " };
        let mut joined = String::new();
        for (i, value) in headers.get_all(name).iter().enumerate() {
            if i > 0 {
                joined.push_str(sep);
            }
            joined.push_str(&String::from_utf8_lossy(value.as_bytes()));
        }
        map.insert(name.as_str().to_owned(), Value::String(joined));
    }
    let body = serde_json::json!({
        "headers": map,
        "request": {
            "method": method.as_str(),
            "url": uri.map(|u| u.to_string()),
        },
    });
    // Serializing a `Value` built from strings cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The cache key of one request: SHA-256 over every `Authorization` and `Cookie` value, the
/// requested role and each of `key_headers`' values, each part tagged and length-prefixed so
/// that no two different requests hash the same bytes (`Cookie: a=1` + role `b` never meets
/// `Cookie: a=1b`). Only the digest is kept, never a credential.
///
/// `post` is the request's method and URL in the `POST` mode: the webhook sees them there, so
/// they are part of the key (in the `GET` mode it never does).
pub(super) fn cache_key(
    headers: &HeaderMap,
    requested_role: Option<&str>,
    key_headers: &[HeaderName],
    post: Option<(&Method, Option<&Uri>)>,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"gateway webhook cache key v1");
    for (tag, name) in [(b'A', &AUTHORIZATION), (b'C', &COOKIE)] {
        for value in headers.get_all(name) {
            h.update([tag]);
            part(&mut h, value.as_bytes());
        }
    }
    match requested_role {
        Some(role) => {
            h.update(b"R");
            part(&mut h, role.as_bytes());
        }
        None => h.update(b"r"),
    }
    for (i, name) in key_headers.iter().enumerate() {
        // The index says which configured header the values belong to; a header without a
        // value still counts (absent and present are different requests).
        h.update(b"H");
        h.update((i as u64).to_be_bytes());
        for value in headers.get_all(name) {
            h.update(b"v");
            part(&mut h, value.as_bytes());
        }
    }
    if let Some((method, uri)) = post {
        h.update(b"P");
        part(&mut h, method.as_str().as_bytes());
        part(
            &mut h,
            uri.map(|u| u.to_string()).unwrap_or_default().as_bytes(),
        );
    }
    h.finalize().into()
}

fn part(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}
