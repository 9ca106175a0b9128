use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::SessionLayer;
use super::strip::{IdentityNames, RequestedRole};
use crate::config::{ConfigError, SessionConfig};
use crate::credential::{extract, remove_cookie, CookieState, Credential, CredentialSource};
use crate::identity::{join_roles, Identity};
use crate::rejection;
use crate::resolver::{ResolveError, ResolveRequest, Resolver};
use crate::BoxFuture;
use route_core::decision::{CredentialKind, DecisionRecord};

/// The session middleware (see the [module docs](crate::session_layer)).
#[derive(Clone)]
pub struct SessionService<S> {
    inner: S,
    shared: Arc<Prepared>,
}

impl<S> SessionService<S> {
    /// Wraps `inner`.
    ///
    /// # Panics
    ///
    /// If [`SessionConfig::validate`] fails (see [`SessionLayer::new`]).
    pub fn new(inner: S, resolver: Arc<dyn Resolver>, config: SessionConfig) -> Self {
        tower_layer::Layer::layer(&SessionLayer::new(resolver, config), inner)
    }

    /// A [`SessionLayer`] with this resolver and configuration.
    pub fn layer(resolver: Arc<dyn Resolver>, config: SessionConfig) -> SessionLayer {
        SessionLayer::new(resolver, config)
    }

    pub(crate) fn from_shared(inner: S, shared: Arc<Prepared>) -> Self {
        SessionService { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> std::fmt::Debug for SessionService<S>
where
    S: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let shared = &self.shared;
        let pending = match shared.begin(&mut req) {
            Begin::Reject(response) => return ResponseFuture::rejected(response),
            Begin::Anonymous { clear_cookie } => {
                if let Some(record) = req.extensions().get::<DecisionRecord>() {
                    note(record, CredentialKind::None, &shared.anonymous, None);
                }
                shared.admit_anonymous(&mut req);
                return ResponseFuture::inner(
                    self.inner.call(req),
                    shared.clear_cookie(clear_cookie),
                );
            }
            Begin::Resolve(pending) => pending,
        };
        let now = shared.resolver.resolve_now(&pending.request(&req));
        match now {
            // Answered at once (in-memory stores, cache hits): the inner service is called now,
            // so no clone of it is needed.
            Some(result) => match shared.decide(result, pending, &mut req) {
                Ok(clear_cookie) => {
                    ResponseFuture::inner(self.inner.call(req), shared.clear_cookie(clear_cookie))
                }
                Err(response) => ResponseFuture::rejected(response),
            },
            None => {
                // The inner service is called once the resolver answers: the future takes the
                // one that was polled ready and leaves a fresh clone in its place.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                // The resolver borrows the request head while it waits, so the head travels
                // inside its future and comes back with the answer; the body waits here.
                let (head, body) = req.into_parts();
                let fut = resolve_owned(shared.resolver.clone(), head, pending);
                ResponseFuture::resolving(fut, body, inner, shared.clone())
            }
        }
    }
}

/// What the boxed resolution hands back: the answer, and the head and pending state it borrowed.
pub(crate) struct Resolved {
    pub(crate) result: Result<Option<Identity>, ResolveError>,
    pub(crate) head: Parts,
    pub(crate) pending: Pending,
}

fn resolve_owned(
    resolver: Arc<dyn Resolver>,
    head: Parts,
    pending: Pending,
) -> BoxFuture<'static, Resolved> {
    Box::pin(async move {
        let result = {
            let request =
                ResolveRequest::new(&head, pending.credential.as_ref(), pending.requested_role())
                    .with_dry_run(is_dry_run(&head.extensions));
            resolver.resolve(&request).await
        };
        Resolved {
            result,
            head,
            pending,
        }
    })
}

/// What [`Prepared::begin`] found, waiting for the resolver's answer.
pub(crate) struct Pending {
    /// The bearer token or session cookie; `None` when the resolver is asked without one.
    pub(crate) credential: Option<Credential>,
    requested: RequestedRole,
    /// An `Authorization: Bearer` header is present (removed before forwarding, if so set).
    bearer: bool,
    /// The session cookie is present, usable or not.
    cookie: CookieState,
}

impl Pending {
    /// How the request presented its identity.
    fn credential_kind(&self) -> CredentialKind {
        match self.credential.as_ref().map(|c| c.source) {
            Some(CredentialSource::Bearer) => CredentialKind::Bearer,
            Some(CredentialSource::Cookie) => CredentialKind::Cookie,
            None if self.bearer => CredentialKind::Bearer,
            None if self.cookie != CookieState::Absent => CredentialKind::Cookie,
            None => CredentialKind::None,
        }
    }

    fn requested_role(&self) -> Option<&str> {
        match &self.requested {
            RequestedRole::One(v) => v.to_str().ok(),
            _ => None,
        }
    }

    /// What the resolver is asked about `req`.
    fn request<'a, B>(&'a self, req: &'a Request<B>) -> ResolveRequest<'a> {
        ResolveRequest::from_request(req, self.credential.as_ref(), self.requested_role())
            .with_dry_run(is_dry_run(req.extensions()))
    }
}

pub(crate) enum Begin<B> {
    Reject(Response<B>),
    Anonymous { clear_cookie: bool },
    Resolve(Pending),
}

/// Everything the layer precomputes once: names, header values, the anonymous identity.
pub(crate) struct Prepared {
    pub(crate) resolver: Arc<dyn Resolver>,
    names: IdentityNames,
    user_id_header: HeaderName,
    role_header: HeaderName,
    allowed_roles_header: HeaderName,
    cookie_name: String,
    clear_cookie: HeaderValue,
    pub(crate) anonymous: Identity,
    anonymous_user_id: HeaderValue,
    anonymous_role: HeaderValue,
    forward_credentials: bool,
    retry_after: HeaderValue,
    /// The resolver wants requests without a bearer token or session cookie too.
    ask_without_credential: bool,
    /// The resolver's own credential cookies (removed with the session cookie).
    resolver_cookies: Box<[String]>,
}

impl Prepared {
    pub(crate) fn new(
        resolver: Arc<dyn Resolver>,
        config: &SessionConfig,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let anonymous = Identity::anonymous(&config.anonymous);
        // validate() checked the anonymous identity against the header-safe rules.
        let anonymous_user_id = HeaderValue::from_str(&anonymous.user_id)
            .map_err(|_| ConfigError::Anonymous(crate::SessionValidationError::InvalidUserId(0)))?;
        let anonymous_role = HeaderValue::from_str(&anonymous.role)
            .map_err(|_| ConfigError::Anonymous(crate::SessionValidationError::InvalidRole(0)))?;
        let retry_secs = config.retry_after.as_secs().max(1);
        Ok(Prepared {
            ask_without_credential: resolver.resolves_without_credential(),
            resolver_cookies: resolver.credential_cookies().into(),
            resolver,
            names: IdentityNames::from_config(config),
            user_id_header: config.user_id_header.clone(),
            role_header: config.role_header.clone(),
            allowed_roles_header: config.allowed_roles_header.clone(),
            cookie_name: config.cookie.name.clone(),
            clear_cookie: config.cookie.try_clearing_cookie()?,
            anonymous,
            anonymous_user_id,
            anonymous_role,
            forward_credentials: config.forward_credentials,
            retry_after: HeaderValue::from(retry_secs),
        })
    }

    pub(crate) fn clear_cookie(&self, clear: bool) -> Option<HeaderValue> {
        clear.then(|| self.clear_cookie.clone())
    }

    /// Steps 1–3 of the module docs: strip, extract, and (for requests that go on as anonymous
    /// without asking the resolver) remove credentials not forwarded.
    pub(crate) fn begin<B, ReqBody>(&self, req: &mut Request<ReqBody>) -> Begin<B>
    where
        B: From<Bytes>,
    {
        let headers = req.headers_mut();
        let requested = self.names.strip(headers, &self.role_header);
        let found = match extract(headers, &self.cookie_name) {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!(code = e.code(), "credential rejected");
                return Begin::Reject(rejection::credential(e));
            }
        };
        if found.credential.is_none() && !self.ask_without_credential {
            self.remove_credentials(headers, found.bearer, found.cookie);
            return Begin::Anonymous {
                clear_cookie: found.cookie == CookieState::Malformed,
            };
        }
        if let RequestedRole::Ambiguous = requested {
            // Refused before the resolver runs: a webhook would have to pick one of them.
            return Begin::Reject(rejection::AMBIGUOUS_ROLE.response());
        }
        Begin::Resolve(Pending {
            credential: found.credential,
            requested,
            bearer: found.bearer,
            cookie: found.cookie,
        })
    }

    /// Removes the credentials the resolver saw, unless this route forwards them: the bearer
    /// header, the session cookie and the resolvers' own cookies.
    fn remove_credentials(&self, headers: &mut HeaderMap, bearer: bool, cookie: CookieState) {
        if self.forward_credentials {
            return;
        }
        if bearer {
            headers.remove(AUTHORIZATION);
        }
        if cookie != CookieState::Absent {
            remove_cookie(headers, &self.cookie_name);
        }
        for name in self.resolver_cookies.iter() {
            remove_cookie(headers, name);
        }
    }

    /// Steps 5–6 for a resolved request. `Ok(clear_cookie)`: forward the request.
    pub(crate) fn decide<B, ReqBody>(
        &self,
        result: Result<Option<Identity>, ResolveError>,
        pending: Pending,
        req: &mut Request<ReqBody>,
    ) -> Result<bool, Response<B>>
    where
        B: From<Bytes>,
    {
        let malformed_cookie = pending.cookie == CookieState::Malformed;
        let record = req.extensions().get::<DecisionRecord>().cloned();
        if let Some(record) = &record {
            let kind = pending.credential_kind();
            match &result {
                Ok(Some(identity)) => {
                    note(record, kind, identity, pending.requested_role());
                }
                Ok(None)
                    if pending.credential.as_ref().map(|c| c.source)
                        != Some(CredentialSource::Bearer) =>
                {
                    note(record, kind, &self.anonymous, None);
                }
                _ => record.update(|d| d.credential = kind),
            }
        }
        match result {
            Ok(Some(identity)) => {
                let identity = select_role(identity, &pending.requested)?;
                if let (Some(record), RequestedRole::One(_)) = (&record, &pending.requested) {
                    record.update(|d| d.role = Some(identity.role.clone()));
                }
                let headers = req.headers_mut();
                self.remove_credentials(headers, pending.bearer, pending.cookie);
                if self.inject(headers, &identity).is_none() {
                    tracing::error!(
                        "the resolver returned an identity that is not a legal header value, or a variable outside the identity prefix; refusing the request"
                    );
                    return Err(rejection::INTERNAL_ERROR.response());
                }
                req.extensions_mut().insert(identity);
                if let Some(credential) = pending.credential {
                    req.extensions_mut().insert(credential);
                }
                Ok(malformed_cookie)
            }
            Ok(None) => {
                let clear = match pending.credential.as_ref().map(|c| c.source) {
                    Some(CredentialSource::Bearer) => {
                        tracing::debug!("unknown, expired or revoked bearer token");
                        return Err(rejection::invalid_token());
                    }
                    Some(CredentialSource::Cookie) => {
                        tracing::debug!("unknown, expired or revoked session cookie; clearing it");
                        true
                    }
                    // A credential the resolver read itself (a JWT cookie): not ours to clear.
                    None => malformed_cookie,
                };
                self.remove_credentials(req.headers_mut(), pending.bearer, pending.cookie);
                self.admit_anonymous(req);
                Ok(clear)
            }
            Err(ResolveError::Unavailable(reason)) => {
                tracing::warn!(%reason, "session resolver unavailable; failing closed");
                Err(rejection::unavailable(&self.retry_after))
            }
            Err(ResolveError::Unauthorized(reason)) => {
                tracing::debug!(%reason, "the resolver refused the request");
                Err(rejection::authentication_refused())
            }
            Err(e) => {
                tracing::error!(error = %e, "session resolver failed");
                Err(rejection::INTERNAL_ERROR.response())
            }
        }
    }

    pub(crate) fn admit_anonymous<ReqBody>(&self, req: &mut Request<ReqBody>) {
        let headers = req.headers_mut();
        headers.insert(&self.user_id_header, self.anonymous_user_id.clone());
        headers.insert(&self.role_header, self.anonymous_role.clone());
        headers.insert(&self.allowed_roles_header, self.anonymous_role.clone());
        req.extensions_mut().insert(self.anonymous.clone());
    }

    /// Writes the three identity headers and the variables; `None` if a value is not a legal
    /// header value or a variable's name is not one the layer owns.
    fn inject(&self, headers: &mut HeaderMap, identity: &Identity) -> Option<()> {
        // Checked on every request, not only when the session was created: a store shared with
        // other writers, or a prefix changed since, must never turn a variable into a header
        // the client could also send (or into the identity headers themselves). Sessions
        // without variables pay for an empty loop.
        let variables = identity.variables();
        if !variables
            .iter()
            .all(|(name, _)| self.names.admits_variable(name.as_str().as_bytes()))
        {
            return None;
        }
        let user_id = HeaderValue::from_str(&identity.user_id).ok()?;
        let (role, allowed) = match identity.role_headers() {
            Some(prebuilt) => {
                let role = match identity
                    .allowed_roles
                    .iter()
                    .position(|r| Arc::ptr_eq(r, &identity.role) || *r == identity.role)
                    .and_then(|i| prebuilt.each.get(i))
                {
                    Some(v) => v.clone(),
                    None => HeaderValue::from_str(&identity.role).ok()?,
                };
                (role, prebuilt.allowed.clone())
            }
            None => (
                HeaderValue::from_str(&identity.role).ok()?,
                HeaderValue::from_str(&join_roles(&identity.allowed_roles)).ok()?,
            ),
        };
        headers.insert(&self.user_id_header, user_id);
        headers.insert(&self.role_header, role);
        headers.insert(&self.allowed_roles_header, allowed);
        for (name, value) in variables {
            headers.insert(name, value.clone());
        }
        Some(())
    }
}

/// Whether the request is only explained (a dry-run decision record).
fn is_dry_run(extensions: &http::Extensions) -> bool {
    extensions
        .get::<DecisionRecord>()
        .is_some_and(DecisionRecord::is_dry_run)
}

/// Writes who the request is into its decision record. The role is the identity's default;
/// a requested role replaces it once the layer has checked it.
fn note(
    record: &DecisionRecord,
    credential: CredentialKind,
    identity: &Identity,
    requested: Option<&str>,
) {
    record.update(|d| {
        d.credential = credential;
        d.resolver = Some(identity.resolver_kind());
        d.user_id = Some(identity.user_id.clone());
        d.role = Some(identity.role.clone());
        d.allowed_roles = Some(identity.allowed_roles.clone());
        // A role header that is not a legal role is not echoed into logs.
        d.requested_role = requested
            .filter(|r| crate::session::validate_role(r).is_ok())
            .map(Arc::from);
    });
}

/// The session's default role, or the requested one if it is allowed.
fn select_role<B: From<Bytes>>(
    mut identity: Identity,
    requested: &RequestedRole,
) -> Result<Identity, Response<B>> {
    match requested {
        RequestedRole::None => Ok(identity),
        RequestedRole::Ambiguous => Err(rejection::AMBIGUOUS_ROLE.response()),
        RequestedRole::One(asked) => {
            match identity
                .allowed_roles
                .iter()
                .find(|r| r.as_bytes() == asked.as_bytes())
            {
                Some(role) => {
                    identity.role = role.clone();
                    Ok(identity)
                }
                None => {
                    tracing::debug!("requested role is not one of the session's roles");
                    Err(rejection::ROLE_NOT_ALLOWED.response())
                }
            }
        }
    }
}
