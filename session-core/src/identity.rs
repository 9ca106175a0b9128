//! Who is calling: [`Identity`] and the anonymous identity.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderName, HeaderValue};

use crate::session::{
    validate_role, validate_user_id, variable_headers, SessionValidationError, VariableHeaders,
    Variables,
};

/// The caller of one request, as the [`SessionLayer`](crate::SessionLayer) resolved it.
///
/// The layer puts exactly one `Identity` into every request's extensions that it lets through.
/// `role` is the role selected for this request (the session's default role, or the role the
/// client asked for with `X-Hasura-Role` if it is one of `allowed_roles`). A session may also
/// carry [`variables`](Identity::variables), injected as headers of their own.
#[derive(Clone)]
pub struct Identity {
    /// The user id, injected as `X-Hasura-User-Id`.
    pub user_id: Arc<str>,
    /// The role selected for this request, injected as `X-Hasura-Role`.
    pub role: Arc<str>,
    /// Every role the caller may ask for, injected comma-separated as `X-Hasura-Allowed-Roles`.
    pub allowed_roles: Arc<[Arc<str>]>,
    authenticated: bool,
    /// Precomputed header values for `allowed_roles`, shared by every session with the same role
    /// set. Only used while `Arc::ptr_eq(&allowed_roles, &headers.roles)`, so a caller that
    /// replaces `allowed_roles` can never make the layer inject stale values.
    headers: Option<Arc<RoleHeaders>>,
    /// The session's variables, built once per session and shared; `None` for the many
    /// sessions without any, so that they cost the request path one check.
    variables: Option<VariableHeaders>,
    /// What backs the identity: a stored session (revocable), or a self-contained credential.
    backing: Backing,
}

/// What an authenticated identity rests on, which decides how a WebSocket tunnel opened with it
/// ends: a stored session is watched for revocation; a JWT ends at its `exp`; a webhook's
/// answer has neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backing {
    Session,
    Until(SystemTime),
    Stateless,
}

impl Identity {
    /// An authenticated identity.
    ///
    /// This does not validate its input (the layer still refuses to inject a value that is not a
    /// legal header value); resolvers that read identities from untrusted sources should use
    /// [`Identity::try_new`].
    pub fn new<I, R>(
        user_id: impl Into<Arc<str>>,
        role: impl Into<Arc<str>>,
        allowed_roles: I,
    ) -> Self
    where
        I: IntoIterator<Item = R>,
        R: Into<Arc<str>>,
    {
        Identity {
            user_id: user_id.into(),
            role: role.into(),
            allowed_roles: allowed_roles.into_iter().map(Into::into).collect(),
            authenticated: true,
            headers: None,
            variables: None,
            backing: Backing::Session,
        }
    }

    /// An authenticated identity whose user id and roles pass the same rules as
    /// [`NewSession::validate`](crate::NewSession::validate).
    pub fn try_new<I, R>(
        user_id: impl Into<Arc<str>>,
        role: impl Into<Arc<str>>,
        allowed_roles: I,
    ) -> Result<Self, SessionValidationError>
    where
        I: IntoIterator<Item = R>,
        R: Into<Arc<str>>,
    {
        let identity = Identity::new(user_id, role, allowed_roles);
        validate_user_id(&identity.user_id)?;
        validate_role(&identity.role)?;
        for role in identity.allowed_roles.iter() {
            validate_role(role)?;
        }
        Ok(identity)
    }

    /// The identity of a request without a credential (user `0`, role `anonymous` by default).
    pub fn anonymous(cfg: &AnonymousConfig) -> Self {
        let role: Arc<str> = cfg.role.as_str().into();
        Identity {
            user_id: cfg.user_id.as_str().into(),
            allowed_roles: Arc::new([role.clone()]),
            role,
            authenticated: false,
            headers: None,
            variables: None,
            backing: Backing::Stateless,
        }
    }

    /// What kind of resolver answered, for the decision record: `sessions` (a stored,
    /// revocable session), `jwt` (a credential with its own expiry,
    /// [`Identity::with_expiry`]), `webhook` (neither, [`Identity::without_session`]), or
    /// `anonymous`.
    pub fn resolver_kind(&self) -> &'static str {
        match (self.authenticated, self.backing) {
            (false, _) => "anonymous",
            (true, Backing::Session) => "sessions",
            (true, Backing::Until(_)) => "jwt",
            (true, Backing::Stateless) => "webhook",
        }
    }

    /// True when the identity comes from a resolved credential, false for the anonymous one.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// True if `role` is one of the allowed roles (exact, case-sensitive match).
    pub fn has_role(&self, role: &str) -> bool {
        self.allowed_roles.iter().any(|r| &**r == role)
    }

    /// The session's variables (`x-hasura-org-id: 42`), in name order, each injected as a
    /// header of its own; empty for most sessions and for the anonymous identity.
    pub fn variables(&self) -> &[(HeaderName, HeaderValue)] {
        self.variables.as_deref().map_or(&[], |v| &v[..])
    }

    /// The same identity carrying `variables` instead of its own, checked by the rules of
    /// [`NewSession::validate`](crate::NewSession::validate) (the session layer also refuses,
    /// with 500, a name outside its identity prefix or one of its identity headers).
    pub fn with_variables(mut self, variables: &Variables) -> Result<Self, SessionValidationError> {
        self.variables = variable_headers(variables)?;
        Ok(self)
    }

    /// The same identity, not backed by a stored session but good until `at` (a JWT's `exp`):
    /// a WebSocket tunnel opened with it is closed at `at`, and never looked up in the session
    /// store.
    pub fn with_expiry(mut self, at: SystemTime) -> Self {
        self.backing = Backing::Until(at);
        self
    }

    /// The same identity, not backed by a stored session (an auth webhook's answer): a
    /// WebSocket tunnel opened with it is not checked against the session store.
    pub fn without_session(mut self) -> Self {
        self.backing = Backing::Stateless;
        self
    }

    /// When the identity stops being valid, if its credential says so ([`with_expiry`]).
    ///
    /// [`with_expiry`]: Identity::with_expiry
    pub fn expires_at(&self) -> Option<SystemTime> {
        match self.backing {
            Backing::Until(at) => Some(at),
            _ => None,
        }
    }

    /// Whether a session in the store backs this identity (so a revocation can end it).
    pub fn is_session(&self) -> bool {
        self.authenticated && self.backing == Backing::Session
    }

    /// An authenticated identity sharing prebuilt role header values (used by stores that
    /// intern role sets).
    pub(crate) fn with_role_headers(
        user_id: Arc<str>,
        role: Arc<str>,
        headers: &Arc<RoleHeaders>,
    ) -> Self {
        Identity {
            user_id,
            role,
            allowed_roles: headers.roles.clone(),
            authenticated: true,
            headers: Some(headers.clone()),
            variables: None,
            backing: Backing::Session,
        }
    }

    /// The same identity with prebuilt variable headers (stores build them once per session).
    pub(crate) fn with_variable_headers(mut self, variables: Option<VariableHeaders>) -> Self {
        self.variables = variables;
        self
    }

    /// The prebuilt header values, if they still describe `allowed_roles`.
    pub(crate) fn role_headers(&self) -> Option<&RoleHeaders> {
        self.headers
            .as_deref()
            .filter(|h| Arc::ptr_eq(&h.roles, &self.allowed_roles))
    }

    /// Drops the prebuilt header values (tests use it to exercise the slow path).
    #[cfg(test)]
    pub(crate) fn without_role_headers(mut self) -> Self {
        self.headers = None;
        self
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("user_id", &self.user_id)
            .field("role", &self.role)
            .field("allowed_roles", &self.allowed_roles)
            .field("variables", &self.variables())
            .field("authenticated", &self.authenticated)
            .finish()
    }
}

impl PartialEq for Identity {
    fn eq(&self, other: &Self) -> bool {
        self.authenticated == other.authenticated
            && self.user_id == other.user_id
            && self.role == other.role
            && self.allowed_roles == other.allowed_roles
            && self.variables() == other.variables()
    }
}

impl Eq for Identity {}

/// Header values for one role set, built once and shared.
#[derive(Debug)]
pub(crate) struct RoleHeaders {
    /// The role set these values describe.
    pub(crate) roles: Arc<[Arc<str>]>,
    /// `roles` joined with `,`.
    pub(crate) allowed: HeaderValue,
    /// One value per role, same order as `roles`.
    pub(crate) each: Box<[HeaderValue]>,
}

impl RoleHeaders {
    /// `None` if a role is not a legal header value.
    pub(crate) fn build(roles: Arc<[Arc<str>]>) -> Option<Self> {
        let each = roles
            .iter()
            .map(|r| HeaderValue::from_str(r).ok())
            .collect::<Option<Box<[_]>>>()?;
        let allowed = HeaderValue::from_str(&join_roles(&roles)).ok()?;
        Some(RoleHeaders {
            roles,
            allowed,
            each,
        })
    }
}

/// The `X-Hasura-Allowed-Roles` form of a role list.
pub(crate) fn join_roles(roles: &[Arc<str>]) -> String {
    let mut out = String::with_capacity(roles.iter().map(|r| r.len() + 1).sum());
    for (i, r) in roles.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r);
    }
    out
}

/// The identity given to requests without a credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnonymousConfig {
    /// User id injected for anonymous requests. Default `"0"`.
    pub user_id: String,
    /// Role injected for anonymous requests. Default `"anonymous"`.
    pub role: String,
}

impl Default for AnonymousConfig {
    fn default() -> Self {
        AnonymousConfig {
            user_id: "0".to_owned(),
            role: "anonymous".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_defaults() {
        let a = Identity::anonymous(&AnonymousConfig::default());
        assert_eq!(&*a.user_id, "0");
        assert_eq!(&*a.role, "anonymous");
        assert_eq!(a.allowed_roles.len(), 1);
        assert!(!a.is_authenticated());
        assert!(a.has_role("anonymous"));
    }

    #[test]
    fn anonymous_is_configurable() {
        let a = Identity::anonymous(&AnonymousConfig {
            user_id: "guest".into(),
            role: "public".into(),
        });
        assert_eq!(&*a.user_id, "guest");
        assert_eq!(&*a.role, "public");
    }

    #[test]
    fn new_is_authenticated() {
        let i = Identity::new("u1", "user", ["user", "admin"]);
        assert!(i.is_authenticated());
        assert!(i.has_role("admin"));
        assert!(!i.has_role("Admin"));
        assert_ne!(i, Identity::new("u1", "user", ["user"]));
    }

    #[test]
    fn try_new_refuses_header_breaking_values() {
        assert!(Identity::try_new("u1", "user", ["user"]).is_ok());
        assert!(Identity::try_new("u1\r\nx: y", "user", ["user"]).is_err());
        assert!(Identity::try_new("u1", "us\ner", ["user"]).is_err());
        assert!(Identity::try_new("u1", "user", ["a,b"]).is_err());
    }

    #[test]
    fn variables_are_shared_checked_and_compared() {
        let plain = Identity::new("u1", "user", ["user"]);
        assert!(plain.variables().is_empty());
        assert!(Identity::anonymous(&AnonymousConfig::default())
            .variables()
            .is_empty());
        let vars: Variables = [("x-hasura-org-id".to_owned(), "42".to_owned())].into();
        let with = plain.clone().with_variables(&vars).unwrap();
        assert_eq!(with.variables().len(), 1);
        assert_eq!(with.variables()[0].0.as_str(), "x-hasura-org-id");
        assert_eq!(with.variables()[0].1, "42");
        assert_ne!(with, plain, "variables are part of who the caller is");
        let copy = with.clone();
        assert!(std::ptr::eq(copy.variables(), with.variables()), "shared");
        let bad: Variables = [("x-hasura-org-id".to_owned(), "4\r\n2".to_owned())].into();
        assert_eq!(
            plain.with_variables(&bad).unwrap_err(),
            SessionValidationError::InvalidVariableValue(1)
        );
    }

    #[test]
    fn role_headers_are_ignored_once_roles_change() {
        let roles: Arc<[Arc<str>]> = Arc::new(["a".into(), "b".into()]);
        let headers = Arc::new(RoleHeaders::build(roles).unwrap());
        let mut i = Identity::with_role_headers("u".into(), "a".into(), &headers);
        assert_eq!(i.role_headers().unwrap().allowed, "a,b");
        i.allowed_roles = Arc::new(["c".into()]);
        assert!(i.role_headers().is_none());
    }
}
