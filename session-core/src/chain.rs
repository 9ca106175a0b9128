//! [`ResolverChain`]: several resolvers as one, choosing by the credential's shape.
//!
//! # The order
//!
//! For a request whose credential the layer found (a bearer token, the session cookie):
//!
//! 1. shaped like a JWT (three dot-separated segments, the last one possibly empty so that
//!    `alg: none` tokens are refused by the JWT resolver, not passed on) → the JWT resolver;
//! 2. shaped like one of our session tokens (43 characters without a dot, 256 bits in
//!    base64url) → the session store;
//! 3. anything else → the webhook; without one, the session store (which does not know it: a
//!    bearer gets 401, a cookie is cleared).
//!
//! For a request without one (asked only when a member wants it): a cookie of the JWT
//! resolver's present → the JWT resolver; otherwise the webhook; otherwise anonymous.
//!
//! A member missing from the chain is skipped in that order (a JWT-shaped token without a JWT
//! resolver goes to the webhook, then the store). A chain with only a webhook sends it
//! everything. The order never depends on what a token claims about itself, only on its
//! shape and where it was found, so a client cannot steer its credential to a weaker check.

use std::sync::Arc;

use crate::identity::Identity;
use crate::resolver::{ResolveError, ResolveRequest, Resolver};
use crate::token::Token;
use crate::BoxFuture;

/// Several resolvers as one [`Resolver`], choosing by the credential's shape: a JWT → the JWT
/// resolver, a 43-character token → the session store, anything else or nothing → the webhook
/// (the README's "JWTs and auth webhooks" gives the whole order).
#[derive(Clone, Default)]
pub struct ResolverChain {
    jwt: Option<Arc<dyn Resolver>>,
    sessions: Option<Arc<dyn Resolver>>,
    webhook: Option<Arc<dyn Resolver>>,
    /// The JWT resolver's cookies, asked once.
    jwt_cookies: Arc<[String]>,
}

impl std::fmt::Debug for ResolverChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolverChain")
            .field("jwt", &self.jwt.is_some())
            .field("sessions", &self.sessions.is_some())
            .field("webhook", &self.webhook.is_some())
            .finish()
    }
}

impl ResolverChain {
    /// An empty chain: every credential is unknown.
    pub fn new() -> Self {
        ResolverChain::default()
    }

    /// The session store's resolver ([`StoreResolver`](crate::StoreResolver),
    /// `CachingResolver` with the `redis` feature).
    pub fn sessions(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.sessions = Some(resolver);
        self
    }

    /// The JWT resolver (one resolver holding every JWT configuration).
    pub fn jwt(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.jwt_cookies = resolver.credential_cookies().into();
        self.jwt = Some(resolver);
        self
    }

    /// The auth webhook.
    pub fn webhook(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.webhook = Some(resolver);
        self
    }

    /// The member that decides `request`, or `None` (not valid / anonymous).
    fn pick(&self, request: &ResolveRequest<'_>) -> Option<&Arc<dyn Resolver>> {
        match request.token() {
            Some(token) => {
                let shape = Shape::of(token);
                let by_shape = match shape {
                    Shape::Jwt => self.jwt.as_ref(),
                    Shape::Session => self.sessions.as_ref(),
                    Shape::Other => None,
                };
                by_shape
                    .or(self.webhook.as_ref())
                    .or(self.sessions.as_ref())
            }
            None => {
                let jwt_cookie = self
                    .jwt_cookies
                    .iter()
                    .any(|name| request.cookie(name).map_or(true, |v| v.is_some()));
                if jwt_cookie {
                    self.jwt.as_ref()
                } else {
                    self.webhook.as_ref()
                }
            }
        }
    }

    fn members(&self) -> impl Iterator<Item = &Arc<dyn Resolver>> {
        [&self.jwt, &self.sessions, &self.webhook]
            .into_iter()
            .flatten()
    }
}

/// What a token looks like, which is all the chain chooses by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Jwt,
    Session,
    Other,
}

impl Shape {
    /// Two dots with something before each is a JWT, 43 characters without a dot one of our
    /// tokens. The token is already `token68` (the layer checked it), so counting dots is
    /// enough to route it, and it is one pass over a token that may be kilobytes long; whether
    /// the segments are really base64url is the JWT resolver's business (it refuses them).
    fn of(token: &Token) -> Shape {
        let b = token.expose().as_bytes();
        let dots = b.iter().filter(|&&c| c == b'.').count();
        match dots {
            2 => {
                let first = b.iter().position(|&c| c == b'.').unwrap_or(0);
                let second_empty = b.get(first + 1) == Some(&b'.');
                if first == 0 || second_empty {
                    Shape::Other
                } else {
                    Shape::Jwt
                }
            }
            0 if b.len() == 43 => Shape::Session,
            _ => Shape::Other,
        }
    }
}

impl Resolver for ResolverChain {
    fn resolve<'a>(
        &'a self,
        request: &'a ResolveRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<Identity>, ResolveError>> {
        match self.pick(request) {
            Some(member) => member.resolve(request),
            None => Box::pin(async { Ok(None) }),
        }
    }

    fn resolve_now(
        &self,
        request: &ResolveRequest<'_>,
    ) -> Option<Result<Option<Identity>, ResolveError>> {
        match self.pick(request) {
            Some(member) => member.resolve_now(request),
            None => Some(Ok(None)),
        }
    }

    fn resolves_without_credential(&self) -> bool {
        self.members().any(|m| m.resolves_without_credential())
    }

    fn credential_cookies(&self) -> Vec<String> {
        self.members()
            .flat_map(|m| m.credential_cookies())
            .collect()
    }

    fn not_ready(&self) -> Option<String> {
        self.members().find_map(|m| m.not_ready())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Credential, CredentialSource};

    /// Answers with an identity whose user id names the member.
    struct Named {
        name: &'static str,
        without_credential: bool,
        cookies: Vec<String>,
    }

    impl Named {
        fn arc(name: &'static str) -> Arc<dyn Resolver> {
            Arc::new(Named {
                name,
                without_credential: false,
                cookies: Vec::new(),
            })
        }
    }

    impl Resolver for Named {
        fn resolve<'a>(
            &'a self,
            request: &'a ResolveRequest<'a>,
        ) -> BoxFuture<'a, Result<Option<Identity>, ResolveError>> {
            let answer = self.resolve_now(request);
            Box::pin(async move { answer.unwrap_or(Ok(None)) })
        }

        fn resolve_now(
            &self,
            _: &ResolveRequest<'_>,
        ) -> Option<Result<Option<Identity>, ResolveError>> {
            Some(Ok(Some(Identity::new(self.name, "user", ["user"]))))
        }

        fn resolves_without_credential(&self) -> bool {
            self.without_credential
        }

        fn credential_cookies(&self) -> Vec<String> {
            self.cookies.clone()
        }
    }

    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
    const NONE_JWT: &str = "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.";
    const SESSION: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    fn who(chain: &ResolverChain, token: Option<&str>, cookie: Option<&str>) -> Option<String> {
        let (mut head, ()) = http::Request::new(()).into_parts();
        if let Some(c) = cookie {
            head.headers
                .insert(http::header::COOKIE, c.parse().unwrap());
        }
        let credential = token.map(|t| Credential {
            token: Token::parse(t).unwrap(),
            source: CredentialSource::Bearer,
        });
        let request = ResolveRequest::new(&head, credential.as_ref(), None);
        let now = chain.resolve_now(&request).unwrap().unwrap();
        now.map(|i| i.user_id.to_string())
    }

    #[test]
    fn shapes() {
        let t = |s: &str| Shape::of(&Token::parse(s).unwrap());
        assert_eq!(t(JWT), Shape::Jwt);
        assert_eq!(t(NONE_JWT), Shape::Jwt);
        assert_eq!(t(SESSION), Shape::Session);
        assert_eq!(t(Token::generate().expose()), Shape::Session);
        assert_eq!(t("a.b"), Shape::Other);
        assert_eq!(t("a.b.c.d"), Shape::Other);
        assert_eq!(t(".b.c"), Shape::Other);
        assert_eq!(t("short"), Shape::Other);
        assert_eq!(t("a..c"), Shape::Other);
        assert_eq!(t("a.b."), Shape::Jwt);
    }

    #[test]
    fn each_credential_goes_to_its_resolver() {
        let all = ResolverChain::new()
            .jwt(Named::arc("jwt"))
            .sessions(Named::arc("sessions"))
            .webhook(Named::arc("webhook"));
        assert_eq!(who(&all, Some(JWT), None).as_deref(), Some("jwt"));
        assert_eq!(who(&all, Some(NONE_JWT), None).as_deref(), Some("jwt"));
        assert_eq!(who(&all, Some(SESSION), None).as_deref(), Some("sessions"));
        assert_eq!(
            who(&all, Some("opaque-api-key"), None).as_deref(),
            Some("webhook")
        );
        assert_eq!(who(&all, None, None).as_deref(), Some("webhook"));

        // Without a webhook: the rest goes to the store, and no credential is anonymous.
        let no_hook = ResolverChain::new()
            .jwt(Named::arc("jwt"))
            .sessions(Named::arc("sessions"));
        assert_eq!(
            who(&no_hook, Some("opaque-api-key"), None).as_deref(),
            Some("sessions")
        );
        assert_eq!(who(&no_hook, None, None), None);
        assert!(!no_hook.resolves_without_credential());

        // Without a JWT resolver, a JWT goes to the webhook; a webhook alone gets everything.
        let hook_only = ResolverChain::new().webhook(Named::arc("webhook"));
        for t in [Some(JWT), Some(SESSION), Some("x"), None] {
            assert_eq!(
                who(&hook_only, t, None).as_deref(),
                Some("webhook"),
                "{t:?}"
            );
        }
        let empty = ResolverChain::new();
        assert_eq!(who(&empty, Some(SESSION), None), None);
    }

    #[test]
    fn a_jwt_cookie_goes_to_the_jwt_resolver_and_is_reported() {
        let jwt = Arc::new(Named {
            name: "jwt",
            without_credential: true,
            cookies: vec!["idp".into()],
        });
        let chain = ResolverChain::new()
            .jwt(jwt)
            .sessions(Named::arc("sessions"))
            .webhook(Named::arc("webhook"));
        assert_eq!(who(&chain, None, Some("idp=x.y.z")).as_deref(), Some("jwt"));
        assert_eq!(
            who(&chain, None, Some("other=1")).as_deref(),
            Some("webhook")
        );
        assert_eq!(chain.credential_cookies(), ["idp"]);
        assert!(chain.resolves_without_credential());
    }
}
