//! Starting, reloading and stopping a gateway.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use route_core::ConnectionInfo;
use session_core::tunnels::Tunnels;
use session_core::{MemoryStore, Resolver, Revocations, SessionStore, StoreResolver};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::admin::{self, AdminState, Secret};
use crate::config::{AdminSecretSource, Config, StoreKind};
use crate::server::{self, ConnSettings};
use crate::stack::{self, RouteParts};
use crate::state::GatewayState;

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The admin secret file could not be read.
    #[error("cannot read the admin secret file {path}: {source}")]
    Secret {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A JWT or webhook resolver could not be set up.
    #[error("[auth]: {0}")]
    Auth(String),
    /// A configured feature is not available.
    #[error("{0}")]
    Unsupported(&'static str),
    /// The Redis session store could not be set up.
    #[error(transparent)]
    Redis(#[from] crate::redis::RedisSetupError),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The routes could not be built.
    #[error(transparent)]
    Build(#[from] stack::BuildError),
    /// The services added through the admin API could not be loaded.
    #[error(transparent)]
    Services(#[from] crate::services::StateError),
    /// The OTLP span exporter could not be set up.
    #[error("[telemetry]: {0}")]
    Telemetry(String),
    /// A serving thread could not be started.
    #[error("cannot start a serving thread: {0}")]
    Thread(std::io::Error),
}

/// A running gateway.
pub struct Running {
    /// The bound plain HTTP address.
    pub http_addr: Option<SocketAddr>,
    /// The bound HTTPS address.
    pub https_addr: Option<SocketAddr>,
    /// The bound admin address.
    pub admin_addr: Option<SocketAddr>,
    /// What a reload replaces.
    pub shared: GatewayState,
    /// The admin secret in force (quickstart prints it).
    pub admin_secret: Option<Secret>,
    /// The services admin API (its version, its state file, the certificate names watch).
    pub services: crate::services::ServicesApi,
    shutdown: watch::Sender<bool>,
    permits: Arc<Semaphore>,
    admin_permits: Arc<Semaphore>,
    max_connections: usize,
    grace: Duration,
    tasks: JoinSet<()>,
    serving: server::ServingThreads,
    otlp: Option<crate::telemetry::otlp::Exporter>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish within the grace period, then stops.
    /// Returns how many connections were still open when the grace period ended.
    pub async fn shutdown(mut self) -> usize {
        let _ = self.shutdown.send(true);
        let (left, _) = tokio::join!(
            server::drain(&self.permits, self.max_connections, self.grace),
            server::drain(&self.admin_permits, self.max_connections, self.grace),
        );
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        self.serving.stop().await;
        // Every request has been answered (or cut off): the spans queued are all there are.
        if let Some(otlp) = self.otlp.take() {
            otlp.shutdown().await;
        }
        left
    }
}

fn load_secret(source: &AdminSecretSource) -> Result<Option<Secret>, StartError> {
    match source {
        AdminSecretSource::Env(name) => Ok(std::env::var(name).ok().and_then(|s| Secret::new(&s))),
        AdminSecretSource::File(path) => read_secret_file(path),
        AdminSecretSource::Credential(name) => match AdminSecretSource::credential_path(name) {
            Some(path) => read_secret_file(&path),
            // Configured to come from systemd but not started by it: refusing to start says
            // so, where running without a secret would only refuse every admin request.
            None => Err(StartError::Secret {
                path: PathBuf::from(format!("$CREDENTIALS_DIRECTORY/{name}")),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "CREDENTIALS_DIRECTORY is not set (systemd sets it for LoadCredential=)",
                ),
            }),
        },
    }
}

fn read_secret_file(path: &std::path::Path) -> Result<Option<Secret>, StartError> {
    let text = std::fs::read_to_string(path).map_err(|source| StartError::Secret {
        path: path.to_owned(),
        source,
    })?;
    Ok(text.lines().next().and_then(Secret::new))
}

/// Options for [`start`].
#[derive(Default)]
pub struct StartOptions {
    /// The config file, watched for changes and re-read on SIGHUP.
    pub config_path: Option<PathBuf>,
    /// An admin secret that overrides the configured source (the quickstart's).
    pub admin_secret: Option<Secret>,
    /// How many threads serve the public listeners: the runtime that calls [`start`] and
    /// `serving_threads - 1` more, each with a current-thread runtime accepting on the same
    /// listening sockets ([`server::ServingThreads`]). 0 and 1 both mean the calling runtime
    /// alone.
    pub serving_threads: usize,
}

/// Binds every listener and starts serving. Returns once the gateway is ready.
pub async fn start(config: Config, opts: StartOptions) -> Result<Running, StartError> {
    // The recorder goes in before anything that counts. A metric recorded while no recorder
    // is installed is dropped, and TLS below starts the ACME manager, which can count its
    // first order before the admin listener is built (issue 13, item 14).
    let recorder = crate::telemetry::metrics_handle();
    let admin_secret = match opts.admin_secret {
        Some(s) => Some(s),
        None => load_secret(&config.admin)?,
    };
    if admin_secret.is_none() && config.listen.admin.is_some() {
        tracing::warn!("no admin secret is configured: the admin /v1 API refuses every request");
    }
    let sessions = Sessions::start(&config)?;
    let parts = RouteParts::new(&config, sessions.store.clone(), sessions.resolver.clone());
    let table = Arc::new(ArcSwap::from_pointee(stack::route_table(&config, &parts)?));
    // WebSockets opened with a session are closed when it is revoked (with Redis, on any
    // replica).
    let tunnels = Tunnels::new(sessions.store.clone(), &sessions.revocations);
    let service = stack::gateway_service(table.clone(), &tunnels, &config);
    let otlp = match &config.telemetry.otlp {
        Some(settings) => Some(
            crate::telemetry::otlp::start(settings)
                .map_err(|e| StartError::Telemetry(e.to_string()))?,
        ),
        None => None,
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(config.limits.max_connections));
    let settings = ConnSettings {
        limits: config.limits.clone(),
        permits: permits.clone(),
        shutdown: shutdown_rx.clone(),
        admin: false,
    };
    let mut tasks = JoinSet::new();
    let ready = Arc::new(AtomicBool::new(false));
    let bound = |addr: SocketAddr| move |source| StartError::Bind { addr, source };

    // The public listeners: each is served by this runtime and by every serving thread.
    let mut public = server::PublicListeners::new(opts.serving_threads);
    let tls = crate::tls::TlsRuntime::start(&config).await?;
    let mut https_addr = None;
    if let (Some(addr), Some(rt)) = (config.listen.https, &tls) {
        // Only the HTTPS listener sets Strict-Transport-Security (SECURITY-CASES 44).
        let svc = stack::https_service(service.clone(), config.tls.hsts.clone());
        let make = move |_: &ConnectionInfo| svc.clone();
        let (acceptor, settings) = (rt.acceptor.clone(), settings.clone());
        let serve =
            move |l| crate::tls::serve_tls(l, acceptor.clone(), make.clone(), settings.clone());
        https_addr = Some(public.serve(addr, &mut tasks, serve).map_err(bound(addr))?);
        tracing::info!(addr = %https_addr.unwrap_or(addr), "listening for HTTPS");
    }
    let mut http_addr = None;
    if let Some(addr) = config.listen.http {
        let responder = tls.as_ref().and_then(|t| t.responder.clone());
        let redirect = https_addr
            .filter(|_| config.listen.redirect_http_to_https)
            .map(|a| a.port());
        let bound_addr = if responder.is_some() || redirect.is_some() {
            // The plain listener also answers ACME HTTP-01 and redirects to HTTPS.
            let svc = stack::plain_service(service.clone(), responder, redirect, &config);
            let make = move |_: &ConnectionInfo| svc.clone();
            public.serve_plain(addr, &mut tasks, make, settings.clone())
        } else {
            let svc = service.clone();
            let make = move |_: &ConnectionInfo| svc.clone();
            public.serve_plain(addr, &mut tasks, make, settings.clone())
        };
        http_addr = Some(bound_addr.map_err(bound(addr))?);
        tracing::info!(addr = %http_addr.unwrap_or(addr), "listening for HTTP");
    }
    let serving = public.start().map_err(StartError::Thread)?;
    if !serving.is_empty() {
        tracing::info!(
            threads = serving.len() + 1,
            "serving on one event loop per thread"
        );
    }

    let shared = GatewayState {
        config: Arc::new(ArcSwap::from_pointee(config.clone())),
        file_config: Arc::new(ArcSwap::from_pointee(config.clone())),
        api_services: Arc::new(ArcSwap::from_pointee(Vec::new())),
        rebuild_lock: Arc::new(parking_lot::Mutex::new(())),
        tls: tls.clone(),
        table,
        parts,
        store: sessions.store.clone(),
    };
    // The API's services are in force before the admin listener (and readiness) comes up.
    let services = crate::services::ServicesApi::open(
        shared.clone(),
        config.services_file.clone().or_else(|| {
            opts.config_path
                .as_deref()
                .map(crate::services::state_path_for)
        }),
    )?;
    // The admin listener has the same limits and a cap of its own: a flood of public
    // connections cannot lock operators out, nor the reverse.
    let admin_permits = Arc::new(Semaphore::new(config.limits.max_connections));
    let mut admin_addr = None;
    if let Some(addr) = config.listen.admin {
        let listener = server::bind(addr).map_err(bound(addr))?;
        admin_addr = listener.local_addr().ok();
        let state = AdminState {
            store: sessions.store.clone(),
            secret: admin_secret.clone(),
            default_ttl: config.sessions.ttl,
            session: stack::session_config(&config),
            metrics: recorder.clone(),
            ready: ready.clone(),
            extra: Some(services.router(admin_secret.clone())),
            acme: tls.as_ref().and_then(|t| t.acme.clone()),
            readiness: Some(crate::auth::readiness(
                sessions.redis.as_ref().map(|r| r.readiness()),
                shared.parts.resolver.clone(),
            )),
            metrics_require_secret: config.metrics_require_secret,
            guard: admin::AdminGuard {
                hosts: config.listen.admin_hosts.clone().into(),
                max_body_bytes: config.limits.max_body_bytes,
            },
            routes: Some(shared.table.clone()),
        };
        let app = admin::router(state);
        let admin_settings = ConnSettings {
            permits: admin_permits.clone(),
            admin: true,
            ..settings.clone()
        };
        tasks.spawn(server::serve_plain(
            listener,
            move |_: &ConnectionInfo| {
                tower::ServiceExt::<http::Request<hyper::body::Incoming>>::map_response(
                    app.clone(),
                    |res: axum::response::Response| res.map(route_core::Body::new),
                )
            },
            admin_settings,
        ));
        tracing::info!(addr = %admin_addr.unwrap_or(addr), "listening for the admin API");
    }
    if let Some(path) = opts.config_path {
        tasks.spawn(crate::reload::watch(
            path,
            shared.clone(),
            shutdown_rx.clone(),
        ));
    }
    ready.store(true, Ordering::Release);
    Ok(Running {
        http_addr,
        https_addr,
        admin_addr,
        shared,
        admin_secret,
        services,
        shutdown: shutdown_tx,
        permits,
        admin_permits,
        max_connections: config.limits.max_connections,
        grace: config.limits.shutdown_grace,
        tasks,
        serving,
        otlp,
    })
}

/// The session store and what reads it: the configured store (memory or Redis), its
/// revocation notices, and the resolver chain (sessions, then `[auth]`'s JWT and webhook
/// resolvers).
struct Sessions {
    store: Arc<dyn SessionStore>,
    revocations: Revocations,
    resolver: Arc<dyn Resolver>,
    /// Kept for the readiness check of the Redis connections.
    redis: Option<crate::redis::RedisSessions>,
}

impl Sessions {
    fn start(config: &Config) -> Result<Self, StartError> {
        let mut redis = None;
        let (store, revocations): (Arc<dyn SessionStore>, Revocations) =
            match &config.sessions.store {
                StoreKind::Redis(settings) => {
                    let slide =
                        Some(config.sessions.ttl).filter(|_| config.sessions.sliding_expiry);
                    let sessions = crate::redis::RedisSessions::start(
                        settings,
                        slide,
                        config.sessions.max_per_user,
                    )?;
                    let parts = (sessions.store(), sessions.revocations().clone());
                    redis = Some(sessions);
                    parts
                }
                StoreKind::Memory => {
                    let memory = MemoryStore::with_max_per_user(config.sessions.max_per_user);
                    // Expired sessions are also refused on read; the sweeper only returns
                    // their memory.
                    memory.spawn_sweeper(Duration::from_secs(1));
                    let revocations = memory.revocations().clone();
                    (Arc::new(memory), revocations)
                }
            };
        let resolver: Arc<dyn Resolver> = match &redis {
            Some(r) => r.resolver(),
            None => {
                let mut resolver = StoreResolver::new(store.clone());
                if config.sessions.sliding_expiry {
                    resolver = resolver.with_sliding_expiry(config.sessions.ttl);
                }
                Arc::new(resolver)
            }
        };
        let resolver = crate::auth::resolver(&config.auth, resolver)?;
        Ok(Sessions {
            store,
            revocations,
            resolver,
            redis,
        })
    }
}

/// Runs until SIGTERM or SIGINT, then drains.
pub async fn run(config: Config, opts: StartOptions) -> Result<(), StartError> {
    let running = start(config, opts).await?;
    server::shutdown_signal().await;
    tracing::info!("shutting down: draining connections");
    let left = running.shutdown().await;
    if left > 0 {
        tracing::warn!(
            connections = left,
            "grace period over; closing the connections still open"
        );
    }
    tracing::info!("stopped");
    Ok(())
}
