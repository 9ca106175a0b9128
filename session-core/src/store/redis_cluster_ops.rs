//! [`RedisStore`]'s operations in a Redis Cluster, where a session and its user's index may live
//! on different nodes, so that what one script does elsewhere is done in steps here, the
//! session first (the module docs of `redis` say what that weakens and why it is safe).

use std::sync::Arc;

use futures_util::future::join_all;

use super::redis::RedisStore;
use super::redis_exec::{evalsha, Confirmed};
use super::redis_record::NewRecord;
use super::revocations::Revocation;
use super::StoreError;
use crate::token::TokenHash;

/// The most index members one `ZREM` names (Lua's `unpack` has a limit of a few thousand).
const REMOVE_CHUNK: usize = 1000;

impl RedisStore {
    /// Writes the session, indexes it, then evicts the oldest beyond the bound. Returns
    /// (created_at, expires_at) in Unix ms.
    pub(super) async fn cluster_create(
        &self,
        id: &TokenHash,
        r: &NewRecord,
    ) -> Result<(u64, u64), StoreError> {
        let skey = self.session_key(id);
        let ukey = self.user_key(&r.user_id);
        let script = &self.scripts().cluster_session_create;
        let mut cmd = evalsha(script, &[&skey]);
        cmd.arg(&r.user_id)
            .arg(&r.roles)
            .arg(&r.default_role)
            .arg(r.ttl_ms)
            .arg(&r.variables);
        let ((created, expires), confirmed): ((u64, u64), _) =
            self.eval_confirmed("create", Some(script), &cmd).await?;
        let script = &self.scripts().cluster_index_add;
        let mut cmd = evalsha(script, &[&ukey]);
        cmd.arg(&r.hex).arg(expires);
        let size: usize = match self.eval("create: index", script, cmd).await {
            Ok(n) => n,
            Err(e) => {
                // An unindexed session could not be listed, bounded or revoked with its user's
                // others: take it back. If that fails too it expires by itself, and nobody
                // holds its token (the caller gets the error, not the token).
                let mut del = redis::cmd("DEL");
                del.arg(&skey);
                if let Err(undo) = self.query::<i64>("create: undo", del).await {
                    tracing::warn!(error = %undo, "a session that could not be indexed was not deleted either; it expires unused");
                }
                return Err(e);
            }
        };
        confirmed.warn_for_new_session();
        if size > self.max_per_user() {
            self.cluster_trim(&ukey, &r.hex).await?;
        }
        Ok((created, expires))
    }

    /// Brings the user's index back within the bound: drops members whose session is gone and
    /// revokes the oldest live ones beyond it (never `keep`, the session just created).
    async fn cluster_trim(&self, ukey: &str, keep: &str) -> Result<(), StoreError> {
        let members = self.cluster_members(ukey).await?;
        let checks = members.iter().map(|hex| {
            let mut cmd = redis::cmd("EXISTS");
            cmd.arg(self.session_key_hex(hex));
            async move {
                // A node that does not answer: count its session as live, so that the bound
                // errs towards fewer sessions.
                self.query::<i64>("create: check", cmd)
                    .await
                    .map_or(true, |n| n == 1)
            }
        });
        let alive = join_all(checks).await;
        let mut dead = Vec::new();
        let mut live = Vec::new();
        for (hex, alive) in members.iter().zip(alive) {
            if alive {
                live.push(hex.as_str());
            } else {
                dead.push(hex.as_str());
            }
        }
        let excess = live.len().saturating_sub(self.max_per_user());
        // The oldest beyond the bound, except `keep`: when logins race, the one just made
        // may already be among the oldest in this snapshot. Skipping it without taking the
        // next one instead is what keeps concurrent trims from evicting one too many: a later
        // login, whose snapshot includes this one, evicts it.
        let victims: Vec<&str> = live
            .iter()
            .copied()
            .take(excess)
            .filter(|h| *h != keep)
            .collect();
        let results = join_all(victims.iter().map(|hex| self.cluster_revoke_session(hex))).await;
        let mut gone = dead;
        let mut failure = None;
        for (hex, result) in victims.iter().zip(results) {
            if let Some(id) = TokenHash::from_hex(hex) {
                self.tell_local(&Revocation::Session(id));
            }
            match result.and_then(|(_, _, c)| {
                c.require("eviction of the oldest sessions beyond max_per_user")
            }) {
                Ok(()) => gone.push(hex),
                Err(e) => failure = Some(e),
            }
        }
        self.cluster_unindex(ukey, &gone).await?;
        failure.map_or(Ok(()), Err)
    }

    /// Deletes one session and publishes it (with `WAIT` when this store waits). Returns
    /// whether it existed, its user id ('' when it did not) and the replicas' confirmation.
    async fn cluster_revoke_session(
        &self,
        hex: &str,
    ) -> Result<(bool, String, Confirmed), StoreError> {
        let script = &self.scripts().cluster_session_revoke;
        let mut cmd = evalsha(script, &[&self.session_key_hex(hex)]);
        cmd.arg(hex).arg(self.channel());
        let ((n, user), confirmed): ((i64, String), _) =
            self.eval_confirmed("revoke", Some(script), &cmd).await?;
        Ok((n == 1, user, confirmed))
    }

    /// Revokes one session, then removes it from its user's index.
    pub(super) async fn cluster_revoke(&self, hex: &str) -> Result<bool, StoreError> {
        let (existed, user, confirmed) = self.cluster_revoke_session(hex).await?;
        if !user.is_empty() {
            // A member left behind is harmless (its session is gone): the next trim or
            // listing drops it.
            if let Err(e) = self.cluster_unindex(&self.user_key(&user), &[hex]).await {
                tracing::debug!(error = %e, "a revoked session stays in its user's index until the next trim");
            }
        }
        confirmed.require("revocation")?;
        Ok(existed)
    }

    /// Deletes every indexed session of the user, unindexes those deleted, publishes
    /// `user:<id>`. Members whose node did not answer stay indexed and the call fails, so that
    /// repeating it finishes the work.
    pub(super) async fn cluster_revoke_user(&self, user_id: &str) -> Result<usize, StoreError> {
        let ukey = self.user_key(user_id);
        let members = self.cluster_members(&ukey).await?;
        let deletes = members.iter().map(|hex| {
            let mut cmd = redis::cmd("DEL");
            cmd.arg(self.session_key_hex(hex));
            async move { self.eval_confirmed::<i64>("revoke_user", None, &cmd).await }
        });
        let results = join_all(deletes).await;
        let mut live = 0;
        let mut done = Vec::new();
        let mut failure = None;
        for (hex, result) in members.iter().zip(results) {
            match result.and_then(|(n, c)| c.require("revocation").map(|()| n)) {
                Ok(n) => {
                    live += usize::try_from(n).unwrap_or(0);
                    done.push(hex.as_str());
                }
                Err(e) => failure = Some(e),
            }
        }
        let unindexed = self.cluster_unindex(&ukey, &done).await;
        let published = self.publish(&Revocation::User(Arc::from(user_id))).await;
        if let Some(e) = failure {
            return Err(e);
        }
        unindexed?;
        published?;
        Ok(live)
    }

    /// The user's sessions as `LIST_USER` returns them: hex and six fields per session.
    pub(super) async fn cluster_list_user(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
        let ukey = self.user_key(user_id);
        let members = self.cluster_members(&ukey).await?;
        let reads = members.iter().map(|hex| {
            let mut cmd = redis::cmd("HMGET");
            cmd.arg(self.session_key_hex(hex))
                .arg(&super::redis_record::FIELDS);
            async move { self.query::<Vec<Option<String>>>("list_user", cmd).await }
        });
        let mut out = Vec::new();
        let mut dead = Vec::new();
        for (hex, fields) in members.iter().zip(join_all(reads).await) {
            let fields = fields?;
            if fields.first().is_some_and(Option::is_some) {
                out.push(hex.clone());
                out.extend(fields.into_iter().map(Option::unwrap_or_default));
            } else {
                dead.push(hex.as_str());
            }
        }
        if let Err(e) = self.cluster_unindex(&ukey, &dead).await {
            tracing::debug!(error = %e, "expired sessions stay in the user's index until the next trim");
        }
        Ok(out)
    }

    /// The index's members, oldest first.
    async fn cluster_members(&self, ukey: &str) -> Result<Vec<String>, StoreError> {
        let script = &self.scripts().cluster_index_members;
        let flat: Vec<String> = self
            .eval("read user index", script, evalsha(script, &[ukey]))
            .await?;
        Ok(flat.chunks_exact(2).map(|p| p[0].clone()).collect())
    }

    async fn cluster_unindex(&self, ukey: &str, members: &[&str]) -> Result<(), StoreError> {
        let script = &self.scripts().cluster_index_remove;
        for chunk in members.chunks(REMOVE_CHUNK) {
            let mut cmd = evalsha(script, &[ukey]);
            cmd.arg(chunk);
            self.eval::<i64>("unindex", script, cmd).await?;
        }
        Ok(())
    }
}
