//! Fuzz entry points, compiled only with `--cfg fuzzing` (cargo-fuzz sets it), so they never
//! ship. Each takes raw fuzzer bytes, runs a parser, and panics if an invariant breaks.
//! See `fuzz/README.md` at the workspace root.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONNECTION, COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use tower_service::Service;

use crate::credential::{extract, remove_cookie, CookieState};
use crate::token::is_token68;
use crate::{
    extract_credential, CredentialSource, Identity, ResolveError, Resolver, SessionConfig,
    SessionLayer, Token,
};

const COOKIE_NAME: &str = "sid";

/// Up to 4 header values, one per `\n`-separated chunk, skipping chunks that are not legal
/// header values.
fn values(data: &[u8]) -> impl Iterator<Item = HeaderValue> + '_ {
    data.split(|&b| b == b'\n')
        .take(4)
        .filter_map(|chunk| HeaderValue::from_bytes(chunk).ok())
}

/// `Authorization` header parsing: no panic; a credential found is a valid token that appears
/// in the input; errors are 400.
pub fn authorization(data: &[u8]) {
    let mut headers = HeaderMap::new();
    for v in values(data) {
        headers.append(AUTHORIZATION, v);
    }
    match extract_credential(&headers, COOKIE_NAME) {
        Ok(Some(c)) => {
            assert_eq!(c.source, CredentialSource::Bearer);
            assert!(is_token68(c.token.expose().as_bytes()));
            assert_eq!(Token::parse(c.token.expose()).ok(), Some(c.token.clone()));
            assert_eq!(headers.get_all(AUTHORIZATION).iter().count(), 1);
            let raw = headers
                .get(AUTHORIZATION)
                .map(HeaderValue::as_bytes)
                .unwrap_or_default();
            assert!(raw
                .windows(c.token.expose().len())
                .any(|w| w == c.token.expose().as_bytes()));
        }
        Ok(None) => {}
        Err(e) => assert_eq!(e.status(), StatusCode::BAD_REQUEST),
    }
}

/// `Cookie` header parsing and removal: no panic; a credential found is a valid token; after
/// removal the session cookie is gone and every other pair is kept.
pub fn cookie(data: &[u8]) {
    let mut headers = HeaderMap::new();
    for v in values(data) {
        headers.append(COOKIE, v);
    }
    let before = extract(&headers, COOKIE_NAME);
    if let Ok(found) = &before {
        if let Some(c) = &found.credential {
            assert_eq!(c.source, CredentialSource::Cookie);
            assert!(is_token68(c.token.expose().as_bytes()));
        }
    }
    let mut stripped = headers.clone();
    let removed = remove_cookie(&mut stripped, COOKIE_NAME);
    match extract(&stripped, COOKIE_NAME) {
        Ok(after) => assert_eq!(after.cookie, CookieState::Absent, "session cookie survived"),
        Err(e) => panic!("removal left an ambiguous cookie: {e:?}"),
    }
    match before {
        Ok(found) if found.cookie == CookieState::Absent => {}
        _ => assert!(removed, "a session cookie was seen but not removed"),
    }
    let pairs = |h: &HeaderMap| -> usize {
        h.get_all(COOKIE)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
            .filter(|p| p.contains(&b'='))
            .count()
    };
    assert!(pairs(&stripped) <= pairs(&headers));
}

/// Resolves `tok` to a fixed identity.
struct FixedResolver;

impl Resolver for FixedResolver {
    fn resolve<'a>(
        &'a self,
        request: &'a crate::ResolveRequest<'a>,
    ) -> crate::BoxFuture<'a, Result<Option<Identity>, ResolveError>> {
        let answer = self.resolve_now(request);
        Box::pin(async move { answer.unwrap_or(Ok(None)) })
    }

    fn resolve_now(
        &self,
        request: &crate::ResolveRequest<'_>,
    ) -> Option<Result<Option<Identity>, ResolveError>> {
        Some(Ok(request
            .token()
            .filter(|t| t.expose() == "tok")
            .map(|_| Identity::new("alice", "user", ["user", "editor"]))))
    }
}

/// Hands the request headers back in the response extensions.
#[derive(Clone)]
struct Echo;

impl Service<Request<()>> for Echo {
    type Response = Response<Bytes>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<Bytes>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<()>) -> Self::Future {
        let mut res = Response::new(Bytes::new());
        res.extensions_mut().insert(req.headers().clone());
        std::future::ready(Ok(res))
    }
}

/// The whole session layer over arbitrary request headers (`name: value` lines): whatever the
/// client sends, a forwarded request carries exactly one of each identity header with the
/// anonymous or the resolved values, no other identity-prefixed header, no identity name in
/// `Connection`, and no session credential.
pub fn session_headers(data: &[u8]) {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n').take(32) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let mut config = SessionConfig::default();
    config.cookie.name = COOKIE_NAME.to_owned();
    let layer = SessionLayer::new(Arc::new(FixedResolver), config);
    let mut svc = tower_layer::Layer::layer(&layer, Echo);
    let mut req = Request::new(());
    *req.headers_mut() = headers;

    let mut cx = Context::from_waker(Waker::noop());
    let mut fut = std::pin::pin!(svc.call(req));
    let Poll::Ready(Ok(res)) = fut.as_mut().poll(&mut cx) else {
        panic!("the session layer did not answer at once with a synchronous resolver");
    };
    let status = res.status();
    let Some(seen) = res.extensions().get::<HeaderMap>() else {
        assert!(
            [400, 401, 403].contains(&status.as_u16()),
            "unexpected rejection {status}"
        );
        return;
    };
    assert_eq!(status, StatusCode::OK);
    let one = |name: &str| -> Vec<u8> {
        let all: Vec<_> = seen.get_all(name).iter().collect();
        assert_eq!(all.len(), 1, "{name} must appear exactly once");
        all[0].as_bytes().to_vec()
    };
    let (user, role, allowed) = (
        one("x-hasura-user-id"),
        one("x-hasura-role"),
        one("x-hasura-allowed-roles"),
    );
    let anonymous = user == b"0" && role == b"anonymous" && allowed == b"anonymous";
    let alice =
        user == b"alice" && (role == b"user" || role == b"editor") && allowed == b"user,editor";
    assert!(anonymous || alice, "unexpected identity headers");
    let loose = |n: &[u8]| {
        n.len() >= 9
            && n[..9]
                .iter()
                .map(|b| {
                    if *b == b'_' {
                        b'-'
                    } else {
                        b.to_ascii_lowercase()
                    }
                })
                .eq(b"x-hasura-".iter().copied())
    };
    for name in seen.keys() {
        let n = name.as_str();
        if loose(n.as_bytes()) {
            assert!(
                [
                    "x-hasura-user-id",
                    "x-hasura-role",
                    "x-hasura-allowed-roles"
                ]
                .contains(&n),
                "client identity header {n} survived"
            );
        }
    }
    for v in seen.get_all(CONNECTION) {
        for token in v.as_bytes().split(|&b| b == b',') {
            assert!(
                !loose(token.trim_ascii()),
                "identity name left in Connection"
            );
        }
    }
    if let Ok(found) = extract(seen, COOKIE_NAME) {
        assert_eq!(
            found.cookie,
            CookieState::Absent,
            "session cookie forwarded"
        );
        assert!(!found.bearer, "bearer forwarded");
    }
}

/// JWT parsing and claims extraction (feature `jwt`): no panic on any token or payload, and an
/// identity built from claims holds its role.
///
/// The input also goes through a [`JwtResolver`](crate::jwt::JwtResolver) with a static HS256
/// key, twice: as a bearer token (anything but a token signed with the key is not valid), and,
/// when it is a JSON object, as the claims of a token signed with that key, so the fuzzer
/// reaches the claims rules through the real verification path. An identity that comes out
/// holds its role and expires.
#[cfg(feature = "jwt")]
pub fn jwt_claims(data: &[u8]) {
    use std::sync::OnceLock;

    use crate::jwt::{JwtConfig, JwtResolver};
    use crate::{Credential, CredentialSource, ResolveRequest};

    const KEY: &str = "fuzzing-key-of-at-least-thirty-two-bytes";
    static RESOLVER: OnceLock<JwtResolver> = OnceLock::new();

    crate::jwt::fuzz_claims(data);
    // A fixed config that must build: failing here is a bug of the harness, and a crash is
    // how a fuzz target reports it.
    let resolver = RESOLVER.get_or_init(|| {
        let built = JwtConfig::from_json(&format!(r#"{{"type": "HS256", "key": "{KEY}"}}"#))
            .map_err(|e| e.to_string())
            .and_then(|config| {
                let client = crate::http_client::HttpClient::new(Default::default())
                    .map_err(|e| e.to_string())?;
                JwtResolver::new(vec![config], client).map_err(|e| e.to_string())
            });
        match built {
            Ok(resolver) => resolver,
            Err(e) => panic!("the fuzzing resolver: {e}"),
        }
    });
    let check = |token: Token| {
        let credential = Credential {
            token,
            source: CredentialSource::Bearer,
        };
        let answer = resolver.resolve_now(&ResolveRequest::for_credential(&credential));
        match answer {
            Some(Ok(Some(identity))) => {
                assert!(
                    identity.has_role(&identity.role),
                    "role outside allowed roles"
                );
                assert!(
                    identity.expires_at().is_some(),
                    "a JWT identity must expire"
                );
                true
            }
            Some(Ok(None)) => false,
            other => panic!("a static-key resolver answered {other:?}"),
        }
    };
    if let Some(token) = std::str::from_utf8(data)
        .ok()
        .and_then(|t| Token::parse(t).ok())
    {
        // Nobody but the key holder can sign: an arbitrary input does not verify, unless it is
        // (by chance of the corpus) a token signed with the key.
        let _ = check(token);
    }
    if let Ok(claims @ serde_json::Value::Object(_)) = serde_json::from_slice(data) {
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        let key = jsonwebtoken::EncodingKey::from_secret(KEY.as_bytes());
        if let Ok(jwt) = jsonwebtoken::encode(&header, &claims, &key) {
            if let Ok(token) = Token::parse(&jwt) {
                let _ = check(token);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEEDS: &[&[u8]] = &[
        b"",
        b"Bearer tok",
        b"bearer tok\nBearer tok",
        b"Bearer a, Bearer b",
        b"Basic x, Bearer y",
        b"Bearer \xff",
        b"sid=tok; a=1",
        b"sid=tok\nsid=tok",
        b"a=1; \xc2\xa0sid=tok; b",
        b" sid = x ;;; =; sid",
    ];

    #[test]
    fn parsers_hold_their_invariants_on_seeds() {
        for seed in SEEDS {
            authorization(seed);
            cookie(seed);
        }
    }

    #[test]
    fn session_layer_holds_its_invariants_on_seeds() {
        for seed in [
            &b""[..],
            b"authorization: Bearer tok\nx-hasura-role: editor",
            b"authorization: Bearer tok\nx-hasura-role: admin",
            b"cookie: a=1; sid=tok\nX_Hasura_User_Id: 1\nconnection: close, X-Hasura-Role",
            b"cookie: sid=nope\nx-hasura-user-id: 1\nx-hasura-user-id: 2",
            b"authorization: Basic abc\nconnection: x_hasura_role",
            b"authorization: Bearer bad\nx-hasura-role: admin",
        ] {
            session_headers(seed);
        }
    }

    #[cfg(feature = "jwt")]
    #[test]
    fn jwt_claims_hold_their_invariants_on_seeds() {
        let claims = br#"{"https://hasura.io/jwt/claims": {"x-hasura-allowed-roles": ["u"], "x-hasura-default-role": "u", "x-hasura-a": [1]}}"#;
        let good = br#"{"exp": 4000000000, "https://hasura.io/jwt/claims": {"x-hasura-allowed-roles": ["u", "v"], "x-hasura-default-role": "v", "x-hasura-user-id": "7", "x-hasura-org": ["a", "b"]}}"#;
        for seed in [
            &b""[..],
            b"a.b.c",
            b"eyJhbGciOiJub25lIn0.e30.",
            b"$.a['b.c'][0]",
            &claims[..],
            &good[..],
        ] {
            jwt_claims(seed);
        }
    }
}
