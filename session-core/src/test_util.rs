//! Test helpers for this crate and its users (feature `test-util`).

use std::collections::HashMap;
use std::time::Duration;

use crate::identity::Identity;
use crate::resolver::{ResolveError, ResolveRequest, Resolver};
use crate::session::{NewSession, Session};
use crate::store::{SessionStore, StoreError};
use crate::token::{Token, TokenHash};
use crate::BoxFuture;

/// A store whose every call fails with [`StoreError::Unavailable`] (an unreachable Redis).
#[derive(Clone, Copy, Debug, Default)]
pub struct FailingStore;

fn down<T: Send + 'static>() -> BoxFuture<'static, Result<T, StoreError>> {
    Box::pin(async { Err(StoreError::Unavailable("store is down (test)".into())) })
}

impl SessionStore for FailingStore {
    fn create<'a>(&'a self, _: NewSession) -> BoxFuture<'a, Result<(Token, Session), StoreError>> {
        down()
    }
    fn resolve<'a>(
        &'a self,
        _: &'a TokenHash,
    ) -> BoxFuture<'a, Result<Option<Session>, StoreError>> {
        down()
    }
    fn touch<'a>(
        &'a self,
        _: &'a TokenHash,
        _: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        down()
    }
    fn revoke<'a>(&'a self, _: &'a TokenHash) -> BoxFuture<'a, Result<bool, StoreError>> {
        down()
    }
    fn revoke_user<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<usize, StoreError>> {
        down()
    }
    fn list_user<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Vec<Session>, StoreError>> {
        down()
    }
}

/// A resolver answering from a fixed table of raw tokens, or failing as configured.
///
/// By default it answers through [`Resolver::resolve_now`]; [`StaticResolver::deferred`] makes
/// it answer only through the async [`Resolver::resolve`] (a networked resolver), so both paths
/// of the layer can be tested.
#[derive(Clone, Debug, Default)]
pub struct StaticResolver {
    identities: HashMap<String, Identity>,
    deferred: bool,
    error: Option<ResolveError>,
}

impl StaticResolver {
    /// An empty table: every token is unknown.
    pub fn new() -> Self {
        StaticResolver::default()
    }

    /// Adds `token` resolving to `identity`.
    pub fn with(mut self, token: &str, identity: Identity) -> Self {
        self.identities.insert(token.to_owned(), identity);
        self
    }

    /// Answers only through the async path.
    pub fn deferred(mut self) -> Self {
        self.deferred = true;
        self
    }

    /// Every resolution fails with `error`.
    pub fn failing(mut self, error: ResolveError) -> Self {
        self.error = Some(error);
        self
    }

    fn answer(&self, token: Option<&Token>) -> Result<Option<Identity>, ResolveError> {
        match (&self.error, token) {
            (Some(e), _) => Err(e.clone()),
            (None, Some(token)) => Ok(self.identities.get(token.expose()).cloned()),
            (None, None) => Ok(None),
        }
    }
}

impl Resolver for StaticResolver {
    fn resolve<'a>(
        &'a self,
        request: &'a ResolveRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<Identity>, ResolveError>> {
        Box::pin(async move {
            // Really suspend once, like a network round trip.
            tokio::task::yield_now().await;
            self.answer(request.token())
        })
    }

    fn resolve_now(
        &self,
        request: &ResolveRequest<'_>,
    ) -> Option<Result<Option<Identity>, ResolveError>> {
        (!self.deferred).then(|| self.answer(request.token()))
    }
}
