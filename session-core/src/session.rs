//! Session records and the rules for creating one.
//!
//! # What a user id and a role may contain
//!
//! Both end up in request headers, so they are checked once, when the session is created, and
//! a value that fails is refused ([`SessionValidationError`]):
//!
//! - **user id**: 1 to [`MAX_USER_ID_LEN`] bytes of visible ASCII (`0x21..=0x7E`). No space, no
//!   control byte (CR, LF, NUL, TAB, DEL…), nothing outside ASCII.
//! - **role**: 1 to [`MAX_ROLE_LEN`] bytes of visible ASCII except `,` (the allowed-roles header
//!   is a comma-separated list). A session has 1 to [`MAX_ROLES`] distinct roles, and its default
//!   role (the first role when none is given) must be one of them.
//! - **ttl**: more than zero and at most [`MAX_TTL`] (400 days, the longest cookie lifetime
//!   browsers honour).
//! - **variables** (optional): at most [`MAX_VARIABLES`] extra identity headers, forwarded to the
//!   upstream with their own names (`x-hasura-org-id: 42`). A name is 1 to
//!   [`MAX_VARIABLE_NAME_LEN`] bytes of lowercase ASCII letters, digits and `-`; a value follows
//!   the user id rule (1 to [`MAX_VARIABLE_VALUE_LEN`] bytes of visible ASCII).
//!   [`NewSession::validate_for`] also requires each name to start with the session layer's
//!   identity prefix (`x-hasura-` by default) and to be none of its user id, role and allowed
//!   roles headers: the layer strips every client header under that prefix, so a client can
//!   never send a variable of its own, and a variable can never replace the identity. The layer
//!   checks it again before it injects a variable (a session that breaks it gets 500).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderName, HeaderValue};
use serde::{Serialize, Serializer};

use crate::config::SessionConfig;
use crate::session_layer::IdentityNames;
use crate::token::TokenHash;

/// Longest user id, in bytes.
pub const MAX_USER_ID_LEN: usize = 256;
/// Longest role name, in bytes.
pub const MAX_ROLE_LEN: usize = 128;
/// Most roles one session may hold.
pub const MAX_ROLES: usize = 64;
/// Longest session lifetime (400 days).
pub const MAX_TTL: Duration = Duration::from_secs(400 * 24 * 3600);
/// Most variables one session may hold.
pub const MAX_VARIABLES: usize = 32;
/// Longest variable name, in bytes (identity prefix included).
pub const MAX_VARIABLE_NAME_LEN: usize = 128;
/// Longest variable value, in bytes (as long as a user id).
pub const MAX_VARIABLE_VALUE_LEN: usize = MAX_USER_ID_LEN;

/// A session's variables: header name → value, in name order.
pub type Variables = BTreeMap<String, String>;

/// A stored session, as stores return it. It never contains the token, only its hash.
///
/// Serializes `id` as lowercase hex and the times as whole seconds since the Unix epoch.
#[derive(Clone, Debug, Serialize)]
pub struct Session {
    /// SHA-256 of the session's token.
    pub id: TokenHash,
    /// The user the session belongs to.
    pub user_id: String,
    /// Every role the session may use.
    pub roles: Vec<String>,
    /// The role used when the client asks for none.
    pub default_role: String,
    /// When the session was created.
    #[serde(serialize_with = "unix_seconds")]
    pub created_at: SystemTime,
    /// When the session stops resolving (sliding expiry may push it later).
    #[serde(serialize_with = "unix_seconds")]
    pub expires_at: SystemTime,
    /// Extra identity headers forwarded with every request of the session (empty for most).
    pub variables: Variables,
}

fn unix_seconds<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

/// What a caller asks a store to create.
///
/// `Default` is the empty request (no user, no role, zero ttl), which does not validate: it is
/// there so that callers can write `..Default::default()` for the optional fields.
#[derive(Clone, Debug, Default)]
pub struct NewSession {
    /// The user id (see the module docs for what is allowed).
    pub user_id: String,
    /// The roles the session may use, in the order they are injected.
    pub roles: Vec<String>,
    /// The default role; `None` means the first of `roles`.
    pub default_role: Option<String>,
    /// How long the session lives.
    pub ttl: Duration,
    /// Extra identity headers (see the module docs); usually empty.
    pub variables: Variables,
}

impl NewSession {
    /// Checks every rule in the module docs that does not depend on the session layer's
    /// configuration. Stores call this before they mint a token.
    ///
    /// Whoever creates sessions on behalf of a gateway (its admin API, a login service's
    /// answer) calls [`validate_for`](NewSession::validate_for) instead, which also checks the
    /// variable names against the configured identity headers.
    pub fn validate(&self) -> Result<(), SessionValidationError> {
        validate_user_id(&self.user_id)?;
        if self.roles.is_empty() {
            return Err(SessionValidationError::NoRoles);
        }
        if self.roles.len() > MAX_ROLES {
            return Err(SessionValidationError::TooManyRoles);
        }
        for (i, role) in self.roles.iter().enumerate() {
            validate_role(role)?;
            if self.roles[..i].contains(role) {
                return Err(SessionValidationError::DuplicateRole);
            }
        }
        if let Some(default) = &self.default_role {
            if !self.roles.contains(default) {
                return Err(SessionValidationError::DefaultRoleNotInRoles);
            }
        }
        if self.ttl.is_zero() || self.ttl > MAX_TTL {
            return Err(SessionValidationError::InvalidTtl);
        }
        validate_variables(&self.variables)
    }

    /// [`validate`](NewSession::validate), and every variable name under `config`'s identity
    /// prefix and none of its three identity headers (the rule the session layer enforces when
    /// it injects them).
    pub fn validate_for(&self, config: &SessionConfig) -> Result<(), SessionValidationError> {
        self.validate_with(&IdentityNames::from_config(config))
    }

    /// [`validate_for`](NewSession::validate_for) with the names already built.
    pub(crate) fn validate_with(
        &self,
        names: &IdentityNames,
    ) -> Result<(), SessionValidationError> {
        self.validate()?;
        check_variable_names(names, &self.variables)
    }

    /// Index of the default role in `roles` (0 when none is given or it is not found).
    pub(crate) fn default_role_index(&self) -> usize {
        self.default_role
            .as_ref()
            .and_then(|d| self.roles.iter().position(|r| r == d))
            .unwrap_or(0)
    }
}

/// Why a session (or an identity built with [`Identity::try_new`](crate::Identity::try_new)) was
/// refused. Messages never echo the offending value.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum SessionValidationError {
    /// The user id is empty.
    #[error("the user id is empty")]
    EmptyUserId,
    /// The user id is longer than [`MAX_USER_ID_LEN`].
    #[error("the user id is longer than {MAX_USER_ID_LEN} bytes")]
    UserIdTooLong,
    /// The user id holds a byte outside visible ASCII (a control byte, CR, LF, space, non-ASCII).
    #[error("the user id holds a byte outside visible ASCII at offset {0}")]
    InvalidUserId(usize),
    /// The session has no role.
    #[error("a session needs at least one role")]
    NoRoles,
    /// The session has more than [`MAX_ROLES`] roles.
    #[error("a session may hold at most {MAX_ROLES} roles")]
    TooManyRoles,
    /// A role is empty.
    #[error("a role is empty")]
    EmptyRole,
    /// A role is longer than [`MAX_ROLE_LEN`].
    #[error("a role is longer than {MAX_ROLE_LEN} bytes")]
    RoleTooLong,
    /// A role holds `,` or a byte outside visible ASCII.
    #[error("a role holds ',' or a byte outside visible ASCII at offset {0}")]
    InvalidRole(usize),
    /// The same role is listed twice.
    #[error("a role is listed twice")]
    DuplicateRole,
    /// The default role is not one of the roles.
    #[error("the default role is not one of the session's roles")]
    DefaultRoleNotInRoles,
    /// The ttl is zero or longer than [`MAX_TTL`].
    #[error("the ttl must be more than zero and at most 400 days")]
    InvalidTtl,
    /// The session has more than [`MAX_VARIABLES`] variables.
    #[error("a session may hold at most {MAX_VARIABLES} variables")]
    TooManyVariables,
    /// A variable name is empty, longer than [`MAX_VARIABLE_NAME_LEN`], or holds something other
    /// than lowercase ASCII letters, digits and `-`.
    #[error(
        "a variable name must be 1 to {MAX_VARIABLE_NAME_LEN} bytes of lowercase ASCII letters, digits and '-'"
    )]
    InvalidVariableName,
    /// A variable name does not start with the identity prefix, or is one of the user id, role
    /// and allowed roles headers.
    #[error(
        "a variable name must start with the identity header prefix and must not be the user id, role or allowed roles header"
    )]
    VariableNameNotAllowed,
    /// A variable value is empty.
    #[error("a variable value is empty")]
    EmptyVariableValue,
    /// A variable value is longer than [`MAX_VARIABLE_VALUE_LEN`].
    #[error("a variable value is longer than {MAX_VARIABLE_VALUE_LEN} bytes")]
    VariableValueTooLong,
    /// A variable value holds a byte outside visible ASCII.
    #[error("a variable value holds a byte outside visible ASCII at offset {0}")]
    InvalidVariableValue(usize),
}

fn is_visible_ascii(b: u8) -> bool {
    (0x21..=0x7e).contains(&b)
}

/// The user id rule (see the module docs).
pub(crate) fn validate_user_id(user_id: &str) -> Result<(), SessionValidationError> {
    if user_id.is_empty() {
        return Err(SessionValidationError::EmptyUserId);
    }
    if user_id.len() > MAX_USER_ID_LEN {
        return Err(SessionValidationError::UserIdTooLong);
    }
    match user_id.bytes().position(|b| !is_visible_ascii(b)) {
        Some(i) => Err(SessionValidationError::InvalidUserId(i)),
        None => Ok(()),
    }
}

/// The role rule (see the module docs).
pub(crate) fn validate_role(role: &str) -> Result<(), SessionValidationError> {
    if role.is_empty() {
        return Err(SessionValidationError::EmptyRole);
    }
    if role.len() > MAX_ROLE_LEN {
        return Err(SessionValidationError::RoleTooLong);
    }
    match role.bytes().position(|b| !is_visible_ascii(b) || b == b',') {
        Some(i) => Err(SessionValidationError::InvalidRole(i)),
        None => Ok(()),
    }
}

/// The variable rules of the module docs that need no configuration: count, name form, value.
pub(crate) fn validate_variables(variables: &Variables) -> Result<(), SessionValidationError> {
    if variables.len() > MAX_VARIABLES {
        return Err(SessionValidationError::TooManyVariables);
    }
    for (name, value) in variables {
        // One spelling per name (lowercase, `-` never `_`): an upstream that folds case or reads
        // `_` as `-` then sees exactly the header the gateway injected, never two of them.
        let name_ok = !name.is_empty()
            && name.len() <= MAX_VARIABLE_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err(SessionValidationError::InvalidVariableName);
        }
        if value.is_empty() {
            return Err(SessionValidationError::EmptyVariableValue);
        }
        if value.len() > MAX_VARIABLE_VALUE_LEN {
            return Err(SessionValidationError::VariableValueTooLong);
        }
        if let Some(i) = value.bytes().position(|b| !is_visible_ascii(b)) {
            return Err(SessionValidationError::InvalidVariableValue(i));
        }
    }
    Ok(())
}

/// The rule of the module docs that depends on the session layer's names.
fn check_variable_names(
    names: &IdentityNames,
    variables: &Variables,
) -> Result<(), SessionValidationError> {
    if variables
        .keys()
        .all(|n| names.admits_variable(n.as_bytes()))
    {
        Ok(())
    } else {
        Err(SessionValidationError::VariableNameNotAllowed)
    }
}

/// A session's variables as header names and values, built once per session (when it is
/// created or read from a store) and shared by every request's [`Identity`](crate::Identity).
/// A thin pointer (the `Box` holds the slice's length), so that the many sessions without
/// variables pay 8 bytes for the field in each stored record and each `Identity`, not 16.
pub(crate) type VariableHeaders = Arc<Box<[(HeaderName, HeaderValue)]>>;

/// Validates `variables` ([`validate_variables`]) and builds their headers; `None` when there
/// are none, so that a session without variables costs nothing per request.
pub(crate) fn variable_headers(
    variables: &Variables,
) -> Result<Option<VariableHeaders>, SessionValidationError> {
    validate_variables(variables)?;
    if variables.is_empty() {
        return Ok(None);
    }
    variables
        .iter()
        .map(|(name, value)| {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SessionValidationError::InvalidVariableName)?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| SessionValidationError::InvalidVariableValue(0))?;
            Ok((name, value))
        })
        .collect::<Result<Box<[_]>, _>>()
        .map(|headers| Some(Arc::new(headers)))
}

/// The variables that `headers` were built from.
pub(crate) fn variables_of(headers: Option<&VariableHeaders>) -> Variables {
    headers
        .into_iter()
        .flat_map(|h| h.iter())
        .map(|(name, value)| {
            // Built from validated visible-ASCII strings, so `to_str` cannot fail.
            let value = value.to_str().unwrap_or_default();
            (name.as_str().to_owned(), value.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests;
