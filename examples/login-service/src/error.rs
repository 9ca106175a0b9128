//! The crate's error type.

/// Why a users file (or a password hash) could not be turned into [`Users`](crate::Users).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The users file is not valid TOML, or does not have the expected fields.
    #[error("users file is not valid: {0}")]
    Parse(#[from] toml::de::Error),

    /// A user's `password_hash` is not an argon2 PHC string this service can verify.
    #[error("user {username:?}: password_hash is not a valid argon2 PHC string: {source}")]
    InvalidPasswordHash {
        /// The user whose entry is wrong.
        username: String,
        /// What the PHC parser or argon2 rejected.
        #[source]
        source: argon2::password_hash::Error,
    },

    /// The same username appears more than once.
    #[error("user {username:?} appears more than once")]
    DuplicateUser {
        /// The repeated username.
        username: String,
    },

    /// A user entry is inconsistent (empty roles, a default role that is not one of
    /// the roles, a user id or role that cannot be sent in a header, ...).
    #[error("user {username:?}: {reason}")]
    InvalidUser {
        /// The user whose entry is wrong.
        username: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// `session_ttl_secs` is zero.
    #[error("session_ttl_secs must be greater than zero")]
    ZeroSessionTtl,

    /// Hashing a password failed (for example, the OS random generator failed
    /// while making a salt).
    #[error("could not hash password: {0}")]
    Hash(String),
}
