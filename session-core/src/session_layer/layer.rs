use std::sync::Arc;

use tower_layer::Layer;

use super::service::{Prepared, SessionService};
use crate::config::{ConfigError, SessionConfig};
use crate::resolver::Resolver;

/// Applies [`SessionService`] to a service. Holds the resolver and the configuration, with
/// every header value precomputed; cloning is an `Arc` clone.
#[derive(Clone)]
pub struct SessionLayer {
    shared: Arc<Prepared>,
}

impl SessionLayer {
    /// Builds the layer.
    ///
    /// # Panics
    ///
    /// If [`SessionConfig::validate`] fails: a configuration error found at startup. Use
    /// [`SessionLayer::try_new`] to get the error instead.
    pub fn new(resolver: Arc<dyn Resolver>, config: SessionConfig) -> Self {
        match SessionLayer::try_new(resolver, config) {
            Ok(layer) => layer,
            Err(e) => panic!("invalid session layer config: {e}"),
        }
    }

    /// Builds the layer, reporting an invalid configuration.
    pub fn try_new(
        resolver: Arc<dyn Resolver>,
        config: SessionConfig,
    ) -> Result<Self, ConfigError> {
        Ok(SessionLayer {
            shared: Arc::new(Prepared::new(resolver, &config)?),
        })
    }
}

impl std::fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService::from_shared(inner, self.shared.clone())
    }
}
