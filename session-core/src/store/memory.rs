//! [`MemoryStore`]: sessions in process memory.
//!
//! # Layout
//!
//! - Sessions live in 64 `DashMap`s ("parts", 4 lock shards each) keyed by [`TokenHash`] and
//!   holding an `Arc<Record>`. The record keeps the user id, an interned role set, the index of
//!   the default role and the expiry (an atomic, so sliding expiry needs no write lock).
//! - A per-user index (`user id → token hashes`, oldest first) serves `revoke_user` and
//!   `list_user`, and bounds each user's sessions: a create that would exceed `max_per_user`
//!   revokes the oldest. Its key shares the record's `Arc<str>`.
//! - Role sets are interned: every session with the same roles shares one allocation holding
//!   the roles as `Arc<str>` and their prebuilt header values, so resolving a session copies no
//!   string.
//! - A session's variables (most have none) are built into header names and values once, when
//!   it is created, and shared by every identity resolved from it.
//!
//! # Expiry without a global pause
//!
//! An expired session never resolves: reads check the expiry and evict the entry they found
//! expired. Entries nobody reads again are removed by [`MemoryStore::sweep_expired`], which walks
//! one part at a time and holds one shard lock at a time (about 4,000 entries per lock with a
//! million sessions); [`MemoryStore::spawn_sweeper`] runs it from a tokio task.
//!
//! # Revocations
//!
//! Every revocation is reported to the store's [`Revocations`] listeners before the revoking
//! call returns, as the Redis store does, so whatever holds on to a session beyond one request
//! (the gateway's WebSocket tunnels) can end with it.
//!
//! # Hashing
//!
//! The map hashes a `TokenHash` by taking 8 of its bytes (XOR a per-store random seed) instead
//! of running SipHash over it: keys are SHA-256 outputs of server-minted random tokens, so an
//! attacker cannot choose colliding stored keys.

use std::hash::{BuildHasher, Hasher};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;

use super::{Revocation, Revocations, SessionStore, StoreError, DEFAULT_MAX_PER_USER};
use crate::identity::{Identity, RoleHeaders};
use crate::session::{
    variable_headers, variables_of, NewSession, Session, SessionValidationError, VariableHeaders,
};
use crate::token::{Token, TokenHash};
use crate::BoxFuture;

/// Number of independent maps; a sweep step handles one.
const PARTS: usize = 64;
/// Lock shards per part (power of two).
const SHARDS_PER_PART: usize = 4;
/// Sliding expiry only writes when it moves the expiry by more than this, so that a hot session
/// does not bounce a cache line between cores on every request.
const SLIDE_GRANULARITY_MS: u64 = 1_000;

/// In-memory [`SessionStore`]: DashMap, TTL, per-user index, immediate revocation, at most
/// `max_per_user` live sessions per user (the oldest is revoked first).
///
/// Cloning is cheap and every clone shares the same sessions. Sessions do not survive a restart
/// and are not shared between replicas (use the Redis store for that).
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<SessionTable>,
}

struct SessionTable {
    parts: Box<[Part]>,
    /// Each user's sessions in creation order (oldest first).
    users: DashMap<Arc<str>, Vec<TokenHash>>,
    /// The most live sessions one user holds (at least 1).
    max_per_user: usize,
    role_sets: DashMap<Vec<String>, Arc<RoleHeaders>>,
    cursor: AtomicUsize,
    revocations: Revocations,
    #[cfg(any(test, feature = "test-util"))]
    skew_ms: AtomicU64,
}

type Part = DashMap<TokenHash, Arc<Record>, BuildTokenHasher>;

struct Record {
    user_id: Arc<str>,
    roles: Arc<RoleHeaders>,
    variables: Option<VariableHeaders>,
    default_role: u8,
    created_ms: u64,
    expires_ms: AtomicU64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.len())
            .finish()
    }
}

impl MemoryStore {
    /// An empty store that keeps at most [`DEFAULT_MAX_PER_USER`] live sessions per user.
    pub fn new() -> Self {
        MemoryStore::with_max_per_user(DEFAULT_MAX_PER_USER)
    }

    /// An empty store that keeps at most `max` live sessions per user: creating one more
    /// revokes the user's oldest.
    pub fn with_max_per_user(max: NonZeroUsize) -> Self {
        let mut seed = [0u8; 8];
        // A fixed seed only weakens the (already collision-resistant) map hashing; it is not a
        // reason to fail.
        let _ = getrandom::fill(&mut seed);
        let build = BuildTokenHasher {
            seed: u64::from_le_bytes(seed),
        };
        let parts = (0..PARTS)
            .map(|_| DashMap::with_hasher_and_shard_amount(build.clone(), SHARDS_PER_PART))
            .collect();
        MemoryStore {
            inner: Arc::new(SessionTable {
                parts,
                users: DashMap::new(),
                max_per_user: max.get(),
                role_sets: DashMap::new(),
                cursor: AtomicUsize::new(0),
                revocations: Revocations::default(),
                #[cfg(any(test, feature = "test-util"))]
                skew_ms: AtomicU64::new(0),
            }),
        }
    }

    /// The listeners told about every revocation made through this store (expiry is not a
    /// revocation).
    pub fn revocations(&self) -> &Revocations {
        &self.inner.revocations
    }

    /// Number of stored sessions, including expired ones not evicted yet.
    pub fn len(&self) -> usize {
        self.inner.parts.iter().map(DashMap::len).sum()
    }

    /// True when no session is stored.
    pub fn is_empty(&self) -> bool {
        self.inner.parts.iter().all(DashMap::is_empty)
    }

    /// Evicts expired sessions from the next `parts` parts (of 64) and returns how many it
    /// removed. Each part is walked one lock shard at a time, so readers wait at most for one
    /// shard's walk. After a full cycle, role sets no session uses any more are dropped.
    pub fn sweep_expired(&self, parts: usize) -> usize {
        let now = self.now_ms();
        let mut evicted = Vec::new();
        for _ in 0..parts.min(PARTS) {
            let i = self.inner.cursor.fetch_add(1, Ordering::Relaxed) % PARTS;
            self.inner.parts[i].retain(|id, rec| {
                let live = rec.expires_ms.load(Ordering::Relaxed) > now;
                if !live {
                    evicted.push((rec.user_id.clone(), *id));
                }
                live
            });
            if i == PARTS - 1 {
                self.inner
                    .role_sets
                    .retain(|_, set| Arc::strong_count(set) > 1);
            }
        }
        for (user_id, id) in &evicted {
            self.unindex(user_id, id);
        }
        evicted.len()
    }

    /// Spawns a tokio task that calls [`sweep_expired`](MemoryStore::sweep_expired) for one part
    /// every `every` (a full pass takes 64 × `every`). The task ends when every clone of the
    /// store is dropped. Must be called from within a tokio runtime.
    pub fn spawn_sweeper(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<SessionTable> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                MemoryStore { inner }.sweep_expired(1);
            }
        })
    }

    /// Moves this store's clock forward (tests of expiry).
    #[cfg(any(test, feature = "test-util"))]
    pub fn advance_clock(&self, by: Duration) {
        self.inner
            .skew_ms
            .fetch_add(duration_ms(by), Ordering::Relaxed);
    }

    fn now_ms(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, duration_ms);
        #[cfg(any(test, feature = "test-util"))]
        let now = now + self.inner.skew_ms.load(Ordering::Relaxed);
        now
    }

    fn part(&self, id: &TokenHash) -> &Part {
        // Byte 31 is independent of the bytes the map hasher uses (0..8).
        &self.inner.parts[id.0[31] as usize % PARTS]
    }

    fn intern_roles(&self, roles: &[String]) -> Result<Arc<RoleHeaders>, StoreError> {
        if let Some(set) = self.inner.role_sets.get(roles) {
            return Ok(set.clone());
        }
        let list: Arc<[Arc<str>]> = roles.iter().map(|r| Arc::from(r.as_str())).collect();
        // Validated roles are legal header values, so this only fails on a bug.
        let built = RoleHeaders::build(list).ok_or(SessionValidationError::InvalidRole(0))?;
        Ok(self
            .inner
            .role_sets
            .entry(roles.to_vec())
            .or_insert_with(|| Arc::new(built))
            .clone())
    }

    fn create_now(&self, new: NewSession) -> Result<(Token, Session), StoreError> {
        new.validate()?;
        let token = Token::try_generate()
            .map_err(|e| StoreError::Unavailable(format!("OS random source failed: {e}")))?;
        let id = token.hash();
        let roles = self.intern_roles(&new.roles)?;
        let variables = variable_headers(&new.variables)?;
        let default_role = new.default_role_index();
        let now = self.now_ms();
        let expires = now.saturating_add(duration_ms(new.ttl));

        // Lock order: user index entry, then the part. `revoke_user` takes the index entry
        // first too, so a session being created is either seen by it or created after it.
        let mut user = match self.inner.users.get_mut(new.user_id.as_str()) {
            Some(user) => user,
            None => self
                .inner
                .users
                .entry(Arc::from(new.user_id.as_str()))
                .or_insert_with(|| Vec::with_capacity(1)),
        };
        let record = Arc::new(Record {
            user_id: user.key().clone(),
            roles,
            variables,
            // validate() caps roles at MAX_ROLES (64), so the index fits.
            default_role: u8::try_from(default_role).unwrap_or(0),
            created_ms: now,
            expires_ms: AtomicU64::new(expires),
        });
        let session = record.session(id);
        self.part(&id).insert(id, record);
        user.push(id);
        let excess = self.beyond_the_bound(&mut user, now);
        drop(user);
        // The oldest sessions beyond the bound end exactly as a revoked one does (the same
        // function), after the user's lock is released because revoking takes it again. They
        // were picked under that lock as a prefix of the oldest-first index, so concurrent
        // creates pick overlapping prefixes and together leave the newest `max_per_user`.
        for old in &excess {
            self.revoke_now(old);
        }
        Ok((token, session))
    }

    /// The sessions a create must revoke, oldest first, from a user's index `ids` (called under
    /// the user's lock). Below the bound, none. Above it, the index first forgets (and the store
    /// evicts) the expired sessions, which must not cost a live session its place, then the
    /// oldest beyond the bound are returned. The walk is O(`max_per_user`) and only happens
    /// when the bound is exceeded.
    fn beyond_the_bound(&self, ids: &mut Vec<TokenHash>, now: u64) -> Vec<TokenHash> {
        let max = self.inner.max_per_user;
        if ids.len() <= max {
            return Vec::new();
        }
        let is_live = |r: &Arc<Record>| r.expires_ms.load(Ordering::Relaxed) > now;
        ids.retain(|id| {
            // Lock order: the user's index entry (held by the caller), then the part.
            let live = self.part(id).get(id).is_some_and(|r| is_live(r.value()));
            if !live {
                self.part(id).remove_if(id, |_, r| !is_live(r));
            }
            live
        });
        let over = ids.len().saturating_sub(max);
        ids[..over].to_vec()
    }

    /// The live record for `id`, evicting it if it expired.
    fn live(&self, id: &TokenHash, now: u64) -> Option<Arc<Record>> {
        let found = self.part(id).get(id).map(|r| r.value().clone())?;
        if found.expires_ms.load(Ordering::Relaxed) > now {
            return Some(found);
        }
        self.evict_if_expired(id, now);
        None
    }

    fn evict_if_expired(&self, id: &TokenHash, now: u64) {
        let removed = self
            .part(id)
            .remove_if(id, |_, r| r.expires_ms.load(Ordering::Relaxed) <= now);
        if let Some((_, rec)) = removed {
            self.unindex(&rec.user_id, id);
        }
    }

    fn unindex(&self, user_id: &str, id: &TokenHash) {
        let Some(mut ids) = self.inner.users.get_mut(user_id) else {
            return;
        };
        ids.retain(|h| h != id);
        if ids.is_empty() {
            drop(ids);
            self.inner.users.remove_if(user_id, |_, ids| ids.is_empty());
        } else if ids.capacity() > 8 && ids.len() * 4 < ids.capacity() {
            ids.shrink_to_fit();
        }
    }

    /// The synchronous heart of `resolve_identity`.
    fn identity_now(&self, id: &TokenHash, slide: Option<Duration>) -> Option<Identity> {
        let now = self.now_ms();
        let guard = self.part(id).get(id)?;
        let rec = guard.value();
        let expires = rec.expires_ms.load(Ordering::Relaxed);
        if expires <= now {
            drop(guard);
            self.evict_if_expired(id, now);
            return None;
        }
        if let Some(ttl) = slide {
            let wanted = now.saturating_add(duration_ms(ttl));
            if wanted > expires.saturating_add(SLIDE_GRANULARITY_MS) {
                rec.expires_ms.fetch_max(wanted, Ordering::Relaxed);
            }
        }
        let role = rec.roles.roles.get(usize::from(rec.default_role))?.clone();
        Some(
            Identity::with_role_headers(rec.user_id.clone(), role, &rec.roles)
                .with_variable_headers(rec.variables.clone()),
        )
    }

    fn touch_now(&self, id: &TokenHash, ttl: Duration) -> bool {
        let now = self.now_ms();
        match self.live(id, now) {
            Some(rec) => {
                rec.expires_ms
                    .fetch_max(now.saturating_add(duration_ms(ttl)), Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    fn revoke_now(&self, id: &TokenHash) -> bool {
        let now = self.now_ms();
        let live = match self.part(id).remove(id) {
            Some((_, rec)) => {
                self.unindex(&rec.user_id, id);
                rec.expires_ms.load(Ordering::Relaxed) > now
            }
            None => false,
        };
        // Told even when nothing was stored (as the Redis store does): the caller meant to end
        // the session, and a listener holding on to it must not outlive that.
        self.inner.revocations.notify(&Revocation::Session(*id));
        live
    }

    fn revoke_user_now(&self, user_id: &str) -> usize {
        let now = self.now_ms();
        let live = match self.inner.users.remove(user_id) {
            Some((_, ids)) => ids
                .iter()
                .filter_map(|id| self.part(id).remove(id))
                .filter(|(_, rec)| rec.expires_ms.load(Ordering::Relaxed) > now)
                .count(),
            None => 0,
        };
        self.inner
            .revocations
            .notify(&Revocation::User(Arc::from(user_id)));
        live
    }

    fn list_user_now(&self, user_id: &str) -> Vec<Session> {
        let now = self.now_ms();
        let ids = match self.inner.users.get(user_id) {
            Some(ids) => ids.clone(),
            None => return Vec::new(),
        };
        ids.iter()
            .filter_map(|id| self.live(id, now).map(|rec| rec.session(*id)))
            .collect()
    }
}

impl Record {
    fn session(&self, id: TokenHash) -> Session {
        let roles: Vec<String> = self.roles.roles.iter().map(|r| r.to_string()).collect();
        Session {
            id,
            user_id: self.user_id.to_string(),
            default_role: roles
                .get(usize::from(self.default_role))
                .cloned()
                .unwrap_or_default(),
            roles,
            created_at: UNIX_EPOCH + Duration::from_millis(self.created_ms),
            expires_at: UNIX_EPOCH + Duration::from_millis(self.expires_ms.load(Ordering::Relaxed)),
            variables: variables_of(self.variables.as_ref()),
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl SessionStore for MemoryStore {
    fn create<'a>(
        &'a self,
        new: NewSession,
    ) -> BoxFuture<'a, Result<(Token, Session), StoreError>> {
        let result = self.create_now(new);
        Box::pin(async move { result })
    }

    fn resolve<'a>(
        &'a self,
        id: &'a TokenHash,
    ) -> BoxFuture<'a, Result<Option<Session>, StoreError>> {
        let now = self.now_ms();
        let result = self.live(id, now).map(|rec| rec.session(*id));
        Box::pin(async move { Ok(result) })
    }

    fn touch<'a>(
        &'a self,
        id: &'a TokenHash,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let result = self.touch_now(id, ttl);
        Box::pin(async move { Ok(result) })
    }

    fn revoke<'a>(&'a self, id: &'a TokenHash) -> BoxFuture<'a, Result<bool, StoreError>> {
        let result = self.revoke_now(id);
        Box::pin(async move { Ok(result) })
    }

    fn revoke_user<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<usize, StoreError>> {
        let result = self.revoke_user_now(user_id);
        Box::pin(async move { Ok(result) })
    }

    fn list_user<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Session>, StoreError>> {
        let result = self.list_user_now(user_id);
        Box::pin(async move { Ok(result) })
    }

    fn resolve_identity<'a>(
        &'a self,
        id: &'a TokenHash,
        slide: Option<Duration>,
    ) -> BoxFuture<'a, Result<Option<Identity>, StoreError>> {
        let result = self.identity_now(id, slide);
        Box::pin(async move { Ok(result) })
    }

    fn resolve_identity_now(
        &self,
        id: &TokenHash,
        slide: Option<Duration>,
    ) -> Option<Result<Option<Identity>, StoreError>> {
        Some(Ok(self.identity_now(id, slide)))
    }
}

/// Hashes a [`TokenHash`] by folding its first 8 bytes with a seed (see the module docs).
#[derive(Clone)]
struct BuildTokenHasher {
    seed: u64,
}

impl BuildHasher for BuildTokenHasher {
    type Hasher = TokenHasher;

    fn build_hasher(&self) -> TokenHasher {
        TokenHasher(self.seed)
    }
}

struct TokenHasher(u64);

impl Hasher for TokenHasher {
    fn write(&mut self, bytes: &[u8]) {
        // `TokenHash` writes its 32 bytes in one call; anything else still hashes its bytes.
        match bytes.first_chunk::<8>() {
            Some(first) => self.0 ^= u64::from_le_bytes(*first),
            None => {
                for &b in bytes {
                    self.0 = self.0.rotate_left(8) ^ u64::from(b);
                }
            }
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests;
