//! Where sessions live: the [`SessionStore`] trait and the in-memory [`MemoryStore`].
//!
//! The trait is async and fallible because a networked store (Redis, a later feature) can be
//! unreachable; callers fail closed on [`StoreError::Unavailable`]. Stores only ever see
//! [`TokenHash`]es: [`SessionStore::create`] mints the token, hands it back once, and keeps its
//! hash.

use std::num::NonZeroUsize;
use std::time::Duration;

use crate::identity::Identity;
use crate::session::{variable_headers, NewSession, Session, SessionValidationError};
use crate::token::{Token, TokenHash};
use crate::BoxFuture;

mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod redis_cache;
#[cfg(feature = "redis")]
mod redis_cluster_ops;
#[cfg(feature = "redis")]
mod redis_conn;
#[cfg(feature = "redis")]
mod redis_exec;
#[cfg(feature = "redis")]
mod redis_record;
#[cfg(feature = "redis")]
mod redis_scripts;
#[cfg(feature = "redis")]
mod redis_target;
mod revocations;

pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::{RedisConfig, RedisStore};
#[cfg(feature = "redis")]
pub use redis_cache::{CacheConfig, CachingResolver, PROPAGATION_METRIC};
#[cfg(feature = "redis")]
pub use redis_conn::RedisConn;
#[cfg(feature = "redis")]
pub use redis_target::{ClusterTarget, RedisAuth, RedisNode, RedisTarget, SentinelTarget};
pub use revocations::{Revocation, Revocations};

/// How many live sessions one user may hold unless the store is told otherwise
/// ([`MemoryStore::with_max_per_user`], `RedisConfig::max_per_user`): 100. Creating one more
/// revokes the user's oldest session, so one account cannot grow the store without end by
/// logging in again and again (SECURITY-CASES 40).
pub const DEFAULT_MAX_PER_USER: NonZeroUsize = match NonZeroUsize::new(100) {
    Some(n) => n,
    None => panic!("100 is not zero"),
};

/// A store failure.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The store cannot be reached or did not answer in time. Callers fail closed (503).
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// The session to create breaks a validation rule.
    #[error("invalid session: {0}")]
    Invalid(#[from] SessionValidationError),
}

/// Session storage, object safe (`Arc<dyn SessionStore>`).
///
/// Every method takes a [`TokenHash`], never a token (except `create`, which returns the one it
/// minted). Implementations must make revocation effective for the next `resolve` on any
/// replica that shares the store.
pub trait SessionStore: Send + Sync + 'static {
    /// Validates `new` ([`NewSession::validate`]), mints a fresh [`Token`], stores the session
    /// under the token's hash and returns both. Every call mints a new token: an existing token
    /// is never promoted to a new session.
    ///
    /// A user holds at most the store's `max_per_user` live sessions: when the new one would
    /// exceed it, the user's oldest sessions are revoked through the same path as
    /// [`revoke`](SessionStore::revoke), so whatever hears of a revocation (other replicas'
    /// caches, WebSocket tunnels) hears of these. Expired sessions do not count. Concurrent
    /// creates for one user never leave more than the bound.
    fn create<'a>(&'a self, new: NewSession)
        -> BoxFuture<'a, Result<(Token, Session), StoreError>>;

    /// The live session for `id`; `None` if it is unknown, expired or revoked.
    fn resolve<'a>(
        &'a self,
        id: &'a TokenHash,
    ) -> BoxFuture<'a, Result<Option<Session>, StoreError>>;

    /// Sliding expiry: moves the expiry to at least now + `ttl` (it never shortens a session).
    /// `false` if the session is unknown, expired or revoked.
    fn touch<'a>(
        &'a self,
        id: &'a TokenHash,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Ends one session. `false` if there was none.
    fn revoke<'a>(&'a self, id: &'a TokenHash) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Ends every session of a user; returns how many were live.
    fn revoke_user<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<usize, StoreError>>;

    /// The user's live sessions.
    fn list_user<'a>(&'a self, user_id: &'a str)
        -> BoxFuture<'a, Result<Vec<Session>, StoreError>>;

    /// Resolves straight to the [`Identity`] the session layer needs (role = the default role),
    /// touching the session first when `slide` is set.
    ///
    /// The provided implementation calls [`resolve`](SessionStore::resolve) and
    /// [`touch`](SessionStore::touch); stores override it to do both in one round trip.
    fn resolve_identity<'a>(
        &'a self,
        id: &'a TokenHash,
        slide: Option<Duration>,
    ) -> BoxFuture<'a, Result<Option<Identity>, StoreError>> {
        Box::pin(async move {
            let Some(session) = self.resolve(id).await? else {
                return Ok(None);
            };
            if let Some(ttl) = slide {
                if !self.touch(id, ttl).await? {
                    return Ok(None);
                }
            }
            Ok(Some(identity_of(&session)?))
        })
    }

    /// Answers [`resolve_identity`](SessionStore::resolve_identity) without waiting when the
    /// answer is already at hand (an in-memory store, a local cache). `None` means "not at hand:
    /// call `resolve_identity`". The provided implementation always returns `None`.
    ///
    /// The session layer calls this first so that an in-memory hit costs no allocation.
    fn resolve_identity_now(
        &self,
        id: &TokenHash,
        slide: Option<Duration>,
    ) -> Option<Result<Option<Identity>, StoreError>> {
        let _ = (id, slide);
        None
    }
}

/// The identity of a session record: its user, its default role, all its roles, its
/// variables. A store that hands back variables breaking the rules fails the resolution (500)
/// rather than serving the session without them.
pub(crate) fn identity_of(session: &Session) -> Result<Identity, StoreError> {
    let variables = variable_headers(&session.variables)?;
    Ok(Identity::new(
        session.user_id.as_str(),
        session.default_role.as_str(),
        session.roles.iter().map(String::as_str),
    )
    .with_variable_headers(variables))
}
