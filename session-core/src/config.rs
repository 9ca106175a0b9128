//! The session layer's configuration.

use std::time::Duration;

use http::HeaderName;

use crate::identity::AnonymousConfig;
use crate::session::{validate_role, validate_user_id, SessionValidationError};
use crate::set_cookie::CookieConfig;

/// Configuration of the [`SessionLayer`](crate::SessionLayer). `Default` gives the
/// `X-Hasura-*` names, the default cookie, user `0` / role `anonymous`, and no credential
/// forwarding.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Every client header starting with this prefix (case-insensitive, `_` matching `-`) is
    /// removed before injection. Default `x-hasura-`.
    pub identity_prefix: String,
    /// Header carrying the user id. Default `x-hasura-user-id`.
    pub user_id_header: HeaderName,
    /// Header carrying the selected role; the client may send it to ask for a role. Default
    /// `x-hasura-role`.
    pub role_header: HeaderName,
    /// Header carrying the comma-separated allowed roles. Default `x-hasura-allowed-roles`.
    pub allowed_roles_header: HeaderName,
    /// The session cookie.
    pub cookie: CookieConfig,
    /// The identity of requests without a credential.
    pub anonymous: AnonymousConfig,
    /// `false` (the default): the bearer `Authorization` header and the session cookie are
    /// removed before the inner service sees the request (other cookies and non-Bearer
    /// `Authorization` headers stay).
    pub forward_credentials: bool,
    /// `Retry-After` sent with the 503 answered when the resolver is unavailable (whole seconds,
    /// at least 1). Default 1 s.
    pub retry_after: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            identity_prefix: "x-hasura-".to_owned(),
            user_id_header: HeaderName::from_static("x-hasura-user-id"),
            role_header: HeaderName::from_static("x-hasura-role"),
            allowed_roles_header: HeaderName::from_static("x-hasura-allowed-roles"),
            cookie: CookieConfig::default(),
            anonymous: AnonymousConfig::default(),
            forward_credentials: false,
            retry_after: Duration::from_secs(1),
        }
    }
}

impl SessionConfig {
    /// Checks the prefix, the cookie and the anonymous identity.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.identity_prefix.is_empty()
            || HeaderName::from_bytes(self.identity_prefix.as_bytes()).is_err()
        {
            return Err(ConfigError::IdentityPrefix);
        }
        self.cookie.validate()?;
        validate_user_id(&self.anonymous.user_id).map_err(ConfigError::Anonymous)?;
        validate_role(&self.anonymous.role).map_err(ConfigError::Anonymous)?;
        Ok(())
    }
}

/// A configuration value that cannot be used.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The identity prefix is empty or not a legal header-name prefix.
    #[error("the identity header prefix must be a non-empty header-name prefix")]
    IdentityPrefix,
    /// The cookie name is not an RFC 6265 token.
    #[error("the cookie name must be a non-empty RFC 6265 token")]
    CookieName,
    /// The cookie domain holds something other than letters, digits, `-` and `.`.
    #[error("the cookie domain may hold only letters, digits, '-' and '.'")]
    CookieDomain,
    /// The cookie path does not start with `/` or holds `;`, spaces or control bytes.
    #[error("the cookie path must start with '/' and hold visible ASCII other than ';'")]
    CookiePath,
    /// `SameSite=None` without `Secure` (browsers reject such cookies).
    #[error("SameSite=None requires Secure")]
    SameSiteNoneWithoutSecure,
    /// The anonymous user id or role breaks the user id / role rules.
    #[error("invalid anonymous identity: {0}")]
    Anonymous(SessionValidationError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(SessionConfig::default().validate(), Ok(()));
    }

    #[test]
    fn invalid_values_are_refused() {
        let with = |f: fn(&mut SessionConfig)| {
            let mut c = SessionConfig::default();
            f(&mut c);
            c.validate()
        };
        assert_eq!(
            with(|c| c.identity_prefix = String::new()),
            Err(ConfigError::IdentityPrefix)
        );
        assert_eq!(
            with(|c| c.identity_prefix = "x hasura".into()),
            Err(ConfigError::IdentityPrefix)
        );
        assert!(matches!(
            with(|c| c.anonymous.role = "a\r\nb".into()),
            Err(ConfigError::Anonymous(_))
        ));
        assert_eq!(
            with(|c| c.cookie.name = "bad name".into()),
            Err(ConfigError::CookieName)
        );
    }
}
