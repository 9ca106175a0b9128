//! A session as [`RedisStore`](super::RedisStore) keeps it in a Redis hash: the fields in
//! the order every script and `HMGET` returns them, the checks a hash read back must pass
//! before it is served (the session rules, the expiry), and the record a create writes. Kept
//! apart from the store's operations because this is what every hash is held to, including
//! those written by another service or an older version (the key schema is in the store's
//! module docs).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::identity::{Identity, RoleHeaders};
use crate::session::{
    validate_role, validate_user_id, variable_headers, variables_of, Session, Variables,
};
use crate::token::TokenHash;

/// One session as read for the request path: its identity and when it expires.
#[derive(Clone, Debug)]
pub(crate) struct Found {
    pub(crate) identity: Identity,
    pub(crate) expires_ms: u64,
}

/// The hash fields, in the order every script and `HMGET` returns them.
pub(super) const FIELDS: [&str; 6] = [
    "user_id",
    "roles",
    "default_role",
    "created_at",
    "expires_at",
    "variables",
];

/// A session hash as read from Redis, not yet checked.
pub(super) struct Fields {
    user_id: String,
    roles: String,
    default_role: String,
    created_ms: u64,
    expires_ms: u64,
    /// The JSON object; `None` for a session without variables (and every hash written before
    /// they existed).
    variables: Option<String>,
}

impl Fields {
    pub(super) fn from_raw(raw: Vec<Option<String>>) -> Option<Fields> {
        let mut it = raw.into_iter();
        let user_id = it.next()??;
        let roles = it.next()??;
        let default_role = it.next()??;
        let created_ms = it
            .next()
            .flatten()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let expires_ms = it.next()??.parse().ok()?;
        let variables = it.next().flatten().filter(|v| !v.is_empty());
        Some(Fields {
            user_id,
            roles,
            default_role,
            created_ms,
            expires_ms,
            variables,
        })
    }

    /// The identity and the session record, if the fields pass the session rules and the
    /// session has not expired.
    pub(super) fn found(self, id: &TokenHash) -> Option<(Found, Session)> {
        if self.expires_ms <= now_ms() {
            return None;
        }
        let valid = validate_user_id(&self.user_id).is_ok()
            && !self.roles.is_empty()
            && self.roles.split(',').all(|r| validate_role(r).is_ok());
        let variables = match self.variables.as_deref() {
            None => Some(None),
            Some(json) => serde_json::from_str::<Variables>(json)
                .ok()
                .and_then(|v| variable_headers(&v).ok()),
        };
        let role_list: Arc<[Arc<str>]> = self.roles.split(',').map(Arc::from).collect();
        let default = role_list
            .iter()
            .find(|r| ***r == *self.default_role)
            .cloned();
        let (Some(role), true, Some(variables)) = (default, valid, variables) else {
            tracing::warn!(
                session = %id.to_hex(),
                "a Redis session record breaks the session rules; refusing it"
            );
            return None;
        };
        let headers = Arc::new(RoleHeaders::build(role_list)?);
        let identity =
            Identity::with_role_headers(Arc::from(self.user_id.as_str()), role, &headers)
                .with_variable_headers(variables.clone());
        let session = Session {
            id: *id,
            user_id: self.user_id,
            roles: self.roles.split(',').map(str::to_owned).collect(),
            default_role: self.default_role,
            created_at: UNIX_EPOCH + Duration::from_millis(self.created_ms),
            expires_at: UNIX_EPOCH + Duration::from_millis(self.expires_ms),
            variables: variables_of(variables.as_ref()),
        };
        Some((
            Found {
                identity,
                expires_ms: self.expires_ms,
            },
            session,
        ))
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, duration_ms)
}

pub(super) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The session to write, as the scripts take it.
pub(super) struct NewRecord {
    pub(super) hex: String,
    pub(super) user_id: String,
    pub(super) roles: String,
    pub(super) default_role: String,
    pub(super) ttl_ms: u64,
    /// A JSON object, or empty for none (then the hash gets no `variables` field, exactly as
    /// before variables existed).
    pub(super) variables: String,
}
