use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::{Policy, RequireRoleLayer};
use crate::identity::Identity;
use crate::rejection;
use route_core::decision::DecisionRecord;

/// The role-authorization middleware (see the [module docs](crate::require_role)).
#[derive(Clone, Debug)]
pub struct RequireRole<S> {
    inner: S,
    policy: Arc<Policy>,
}

impl<S> RequireRole<S> {
    /// Wraps `inner`, allowing `roles` (empty = any role).
    pub fn new<I, R>(inner: S, roles: I) -> Self
    where
        I: IntoIterator<Item = R>,
        R: Into<String>,
    {
        tower_layer::Layer::layer(&RequireRoleLayer::new(roles), inner)
    }

    /// A [`RequireRoleLayer`] allowing `roles`.
    pub fn layer<I, R>(roles: I) -> RequireRoleLayer
    where
        I: IntoIterator<Item = R>,
        R: Into<String>,
    {
        RequireRoleLayer::new(roles)
    }

    pub(crate) fn from_policy(inner: S, policy: Arc<Policy>) -> Self {
        RequireRole { inner, policy }
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireRole<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The decision is synchronous: the service polled ready is called right here.
        let Some(identity) = req.extensions().get::<Identity>() else {
            tracing::error!(
                "RequireRole saw a request without an Identity; the SessionLayer must run before it"
            );
            return ResponseFuture::rejected(rejection::INTERNAL_ERROR.response());
        };
        if self.policy.allows(&identity.role) {
            // Nothing written: an allowed request costs no record lookup here.
            return ResponseFuture::inner(self.inner.call(req));
        }
        let refusal = if self.policy.forbid_authenticated && identity.is_authenticated() {
            rejection::INSUFFICIENT_ROLE
        } else {
            rejection::AUTHORIZATION_REQUIRED
        };
        if let Some(record) = req.extensions().get::<DecisionRecord>() {
            // Recorded here, not only by the rejection: a browser may get a redirect instead.
            let detail = format!(
                "the role {} is not allowed here; allowed roles: {}",
                identity.role,
                self.policy.roles.join(", ")
            );
            record.update(|d| {
                d.refusal = Some(refusal.code);
                d.detail = Some(detail.into());
                d.service_roles = Some(self.policy.roles.clone());
            });
        }
        if let Some(redirect) = self
            .policy
            .redirects
            .as_ref()
            .and_then(|r| r.location(&req, identity))
        {
            return ResponseFuture::rejected(redirect.map(|()| ResBody::from(Bytes::new())));
        }
        let response = if self.policy.forbid_authenticated && identity.is_authenticated() {
            rejection::INSUFFICIENT_ROLE.response()
        } else {
            rejection::authorization_required()
        };
        tracing::debug!(role = %identity.role, "role not allowed on this route");
        ResponseFuture::rejected(response)
    }
}
