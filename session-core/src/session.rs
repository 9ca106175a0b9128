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

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};

use crate::token::TokenHash;

/// Longest user id, in bytes.
pub const MAX_USER_ID_LEN: usize = 256;
/// Longest role name, in bytes.
pub const MAX_ROLE_LEN: usize = 128;
/// Most roles one session may hold.
pub const MAX_ROLES: usize = 64;
/// Longest session lifetime (400 days).
pub const MAX_TTL: Duration = Duration::from_secs(400 * 24 * 3600);

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
}

fn unix_seconds<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

/// What a caller asks a store to create.
#[derive(Clone, Debug)]
pub struct NewSession {
    /// The user id (see the module docs for what is allowed).
    pub user_id: String,
    /// The roles the session may use, in the order they are injected.
    pub roles: Vec<String>,
    /// The default role; `None` means the first of `roles`.
    pub default_role: Option<String>,
    /// How long the session lives.
    pub ttl: Duration,
}

impl NewSession {
    /// Checks every rule in the module docs. Stores call this before they mint a token.
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
        Ok(())
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

#[cfg(test)]
mod tests;
