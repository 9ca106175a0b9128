use std::sync::Arc;

use tower_layer::Layer;

use super::service::RequireRole;

/// Configuration of [`RequireRole`]: the allowed roles and the 401/403 choice.
#[derive(Clone, Debug)]
pub struct RequireRoleLayer {
    pub(crate) policy: Arc<Policy>,
}

#[derive(Debug)]
pub(crate) struct Policy {
    pub(crate) roles: std::sync::Arc<[Box<str>]>,
    pub(crate) forbid_authenticated: bool,
    pub(crate) redirects: Option<super::BrowserRedirects>,
}

impl Policy {
    pub(crate) fn allows(&self, role: &str) -> bool {
        self.roles.is_empty() || self.roles.iter().any(|r| &**r == role)
    }
}

impl RequireRoleLayer {
    /// Allows these roles (exact, case-sensitive). An empty set allows any role, anonymous
    /// included.
    pub fn new<I, R>(roles: I) -> Self
    where
        I: IntoIterator<Item = R>,
        R: Into<String>,
    {
        RequireRoleLayer {
            policy: Arc::new(Policy {
                roles: roles
                    .into_iter()
                    .map(|r| r.into().into_boxed_str())
                    .collect(),
                forbid_authenticated: false,
                redirects: None,
            }),
        }
    }

    /// `true`: a caller with a valid session whose role is not allowed gets 403 instead of 401
    /// (anonymous callers still get 401).
    pub fn forbid_authenticated(self, yes: bool) -> Self {
        RequireRoleLayer {
            policy: Arc::new(Policy {
                roles: self.policy.roles.clone(),
                forbid_authenticated: yes,
                redirects: self.policy.redirects.clone(),
            }),
        }
    }

    /// Sends browser navigations that the check refuses to a login or "no access" page
    /// instead of answering 401/403 (see [`BrowserRedirects`](super::BrowserRedirects)). API
    /// calls keep their JSON refusals.
    pub fn redirect_browsers(self, redirects: super::BrowserRedirects) -> Self {
        let nothing = redirects.no_session.is_none() && redirects.no_access.is_none();
        RequireRoleLayer {
            policy: Arc::new(Policy {
                roles: self.policy.roles.clone(),
                forbid_authenticated: self.policy.forbid_authenticated,
                redirects: (!nothing).then_some(redirects),
            }),
        }
    }
}

impl<S> Layer<S> for RequireRoleLayer {
    type Service = RequireRole<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireRole::from_policy(inner, self.policy.clone())
    }
}
