//! The parts of a running gateway that a config reload or the services API replaces: the
//! config in force, the route table and what it is rebuilt from.
//!
//! Its own module because both the reload watcher and the services API change it, and
//! [`crate::app`] starts both: neither needs the other, nor the start-up code.

use std::sync::Arc;

use arc_swap::ArcSwap;
use route_core::SharedRouteTable;
use session_core::SessionStore;

use crate::config::{Config, Service};
use crate::stack::{self, RouteParts, RouteService};

/// The parts of a running gateway that a reload replaces or reads.
#[derive(Clone)]
pub struct GatewayState {
    /// The config in force: the file's, plus the services added through the admin API.
    pub config: Arc<ArcSwap<Config>>,
    /// The config file as last loaded.
    pub file_config: Arc<ArcSwap<Config>>,
    /// Services added through the admin API (they survive reloads of the file).
    pub api_services: Arc<ArcSwap<Vec<Service>>>,
    /// Serialises rebuilds, so that a file reload and an API change never lose each other.
    pub rebuild_lock: Arc<parking_lot::Mutex<()>>,
    /// TLS, when on: told about new names on every change.
    pub tls: Option<Arc<crate::tls::TlsRuntime>>,
    /// The route table in force.
    pub table: SharedRouteTable<RouteService>,
    /// What the routes are rebuilt from.
    pub parts: RouteParts,
    /// The session store.
    pub store: Arc<dyn SessionStore>,
}

impl GatewayState {
    /// The config in force for a file config and the API's services: file services first; an
    /// API service whose name the file also uses is left out (the file wins).
    pub fn effective(file: &Config, api: &[Service]) -> Config {
        let mut config = file.clone();
        for s in api {
            if !config.services.iter().any(|f| f.name == s.name) {
                config.services.push(s.clone());
            }
        }
        config
    }

    /// Validates and applies a new config file: routes, roles and upstreams are swapped
    /// atomically. Settings that need new sockets or a new store (listeners, sessions) keep
    /// their old values until a restart, and a log line says so.
    pub fn apply(&self, new_file: Config) -> Result<(), stack::BuildError> {
        let _guard = self.rebuild_lock.lock();
        let api = self.api_services.load_full();
        self.swap(Self::effective(&new_file, &api))?;
        self.file_config.store(Arc::new(new_file));
        Ok(())
    }

    /// Replaces the API's services and applies the result atomically. `update` gets the current
    /// list and returns the new one, or an error that is passed back unchanged.
    pub fn update_api_services<E>(
        &self,
        update: impl FnOnce(&[Service]) -> Result<Vec<Service>, E>,
    ) -> Result<Result<(), stack::BuildError>, E> {
        let _guard = self.rebuild_lock.lock();
        let current = self.api_services.load_full();
        let next = update(&current)?;
        let file = self.file_config.load_full();
        let applied = self.swap(Self::effective(&file, &next));
        if applied.is_ok() {
            self.api_services.store(Arc::new(next));
        }
        Ok(applied)
    }

    fn swap(&self, new: Config) -> Result<(), stack::BuildError> {
        let table = stack::route_table(&new, &self.parts)?;
        let old = self.config.load();
        if old.listen.http != new.listen.http
            || old.listen.https != new.listen.https
            || old.listen.admin != new.listen.admin
            || old.listen.admin_hosts != new.listen.admin_hosts
            || old.metrics_require_secret != new.metrics_require_secret
        {
            tracing::warn!("listener changes need a restart; the old listeners keep serving");
        }
        if old.auth != new.auth {
            tracing::warn!("[auth] changes need a restart; the old resolvers stay in force");
        }
        if old.telemetry != new.telemetry {
            tracing::warn!("[telemetry] changes need a restart; the old settings stay in force");
        }
        if old.tls.hsts != new.tls.hsts {
            tracing::warn!("tls.hsts changes need a restart; the old value stays in force");
        }
        if old.sessions.cookie_name != new.sessions.cookie_name
            || old.sessions.identity_prefix != new.sessions.identity_prefix
            || old.sessions.max_per_user != new.sessions.max_per_user
        {
            tracing::warn!("session settings need a restart; the old ones stay in force");
        }
        self.table.store(Arc::new(table));
        if let Some(tls) = &self.tls {
            tls.on_config(&new);
        }
        self.config.store(Arc::new(new));
        metrics::counter!("gateway_config_reloads_total", "result" => "ok").increment(1);
        Ok(())
    }
}
