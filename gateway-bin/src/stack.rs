//! The whole request path, built here and only here: every layer comes from a library crate
//! and is configured from the gateway's config by the functions below.
//!
//! ```text
//! HTTPS listener:  Hsts ─┐
//! plain listener:  [Http01 → HttpsRedirect, when TLS is on] ─┤
//!                                                            ▼
//! Front (decision record → access log, metrics)                  gateway-bin  front.rs
//!  → Tunnels (WebSocket upgrades get the revocation hook)        session-core tunnels
//!  → HopByHop (strip hop-by-hop headers first)                   route-core   hop
//!  → TracePropagation (traceparent kept or started → record)    route-core   trace
//!  → Router (host normalised once, SNI = Host, one lookup)       route-core   router
//!  → per route:
//!      Served (the service's name into the decision record)      gateway-bin  front.rs
//!      → RouteCors (preflights; CORS headers on every answer)    route-core   cors
//!      → SessionLayer (credential → identity headers)            session-core session_layer
//!      → Csrf (cookie requests; every login on issuer routes)    session-core csrf
//!      → Issuer (mint sessions / scrub session cookies)          session-core issuer
//!      → RequireRole (+ browser redirects)                       session-core require_role
//!      → Proxy                                                   route-core   proxy
//! ```
//!
//! Hop-by-hop headers go first, so that `Connection: X-Hasura-Role` can never remove what the
//! session layer injects (SECURITY-CASES 4). The router comes before the session layer: the
//! host is normalised and the route looked up once, and each route gets the pipeline its
//! service asked for (credential forwarding, login, CORS, roles). CORS wraps the session layer,
//! so a browser app can read the session layer's and the CSRF check's refusals.
//!
//! Trace propagation sits outside the router, so that every request has a trace id, the ones
//! the router refuses (404, 421) included, and inside Front, which reads the trace context the
//! layer writes into the decision record for the access log and the span export. It comes after the
//! hop-by-hop strip, so that `Connection: traceparent` cannot remove the header it writes. It
//! trusts the front proxies of `[proxy] trusted_proxies`, as the forwarded headers do.

use std::sync::Arc;

use cert_core::{ChallengeResponder, Http01, Http01Layer};
use route_core::{
    CorsConfig, ForwardedHeaders, HopByHop, HopByHopLayer, HttpsRedirect, HttpsRedirectLayer,
    PolicyKey, ProjectOrigins, Proxy, ProxyConfig, ProxyService, RouteCors, RouteCorsLayer,
    RouteTable, Router, SharedRouteTable, TraceConfig, TracePropagation, TracePropagationLayer,
    UpstreamConfig,
};
use session_core::csrf::{Csrf, CsrfConfig, CsrfLayer, CsrfRule};
use session_core::issuer::{Issuer, IssuerLayer, Login};
use session_core::tunnels::{Tunnels, WatchTunnels};
use session_core::{
    AnonymousConfig, BrowserRedirects, CookieConfig, RequireRole, RequireRoleLayer, Resolver,
    SessionConfig, SessionLayer, SessionService, SessionStore,
};
use tower::util::Either;
use tower::Layer;
use tower_http::set_header::SetResponseHeader;

use crate::config::{Config, Service};
use crate::front::{Front, FrontLayer, Served, ServedLayer};

/// One service's pipeline, as stored in the route table.
pub type RouteService = Served<RouteCors<SessionService<Csrf<Issuer<RequireRole<ProxyService>>>>>>;

/// The request path of a listener, from the access log to the router.
pub type GatewayService = Front<WatchTunnels<HopByHop<TracePropagation<Router<RouteService>>>>>;

/// The HTTPS listener's service: every answer carries the configured
/// `Strict-Transport-Security`.
pub type HttpsService = SetResponseHeader<GatewayService, Option<http::HeaderValue>>;

/// The plain listener's service when TLS is on: ACME HTTP-01 answers (when this replica
/// orders over HTTP-01), then either the routes or the redirect to HTTPS.
pub type PlainService =
    Either<Http01<Either<GatewayService, HttpsRedirect>>, Either<GatewayService, HttpsRedirect>>;

/// Why a route table could not be built from a (valid) config.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The proxy refused a service's upstream settings.
    #[error("service `{service}`: {message}")]
    Upstream {
        /// The service.
        service: String,
        /// Why.
        message: String,
    },
    /// The route table refused a host pattern.
    #[error("service `{service}`: host `{pattern}`: {message}")]
    Route {
        /// The service.
        service: String,
        /// The pattern.
        pattern: String,
        /// Why.
        message: String,
    },
}

/// What every route's pipeline shares, made once when the gateway starts: a reload rebuilds
/// the routes from these and the new config.
#[derive(Clone)]
pub struct RouteParts {
    /// The proxy (its upstream connections are pooled per runtime thread).
    pub proxy: Proxy,
    /// Resolves session tokens.
    pub resolver: Arc<dyn Resolver>,
    /// Mints sessions for issuer services; its store is the session store.
    pub login: Login,
    /// The session layer's settings (changes need a restart).
    pub session: SessionConfig,
}

impl RouteParts {
    /// The parts for `config`, sessions in `store` resolved by `resolver`.
    pub fn new(config: &Config, store: Arc<dyn SessionStore>, resolver: Arc<dyn Resolver>) -> Self {
        RouteParts {
            proxy: Proxy::new(ProxyConfig {
                trusted_proxies: config.proxy.trusted_proxies.clone(),
                pool_idle_timeout: config.proxy.pool_idle_timeout,
                pool_max_idle_per_host: config.proxy.pool_max_idle_per_host,
                reserved_header_prefixes: reserved_header_prefixes(config),
                ..ProxyConfig::default()
            }),
            resolver,
            login: Login::new(store, cookie_config(config))
                .with_identity_headers(&session_config(config)),
            session: session_config(config),
        }
    }
}

/// The cookie settings derived from the config.
pub fn cookie_config(config: &Config) -> CookieConfig {
    let s = &config.sessions;
    CookieConfig {
        name: s.cookie_name.clone(),
        domain: Some(s.cookie_domain.clone()).filter(|d| !d.is_empty()),
        same_site: s.same_site,
        secure: s.cookie_secure,
        path: "/".into(),
    }
}

/// The session layer's settings derived from the config.
pub fn session_config(config: &Config) -> SessionConfig {
    let s = &config.sessions;
    SessionConfig {
        identity_prefix: s.identity_prefix.clone(),
        user_id_header: s.user_id_header.clone(),
        role_header: s.role_header.clone(),
        allowed_roles_header: s.allowed_roles_header.clone(),
        cookie: cookie_config(config),
        anonymous: AnonymousConfig {
            user_id: s.anonymous_user_id.clone(),
            role: s.anonymous_role.clone(),
        },
        // Per route: see `route_service`.
        forward_credentials: false,
        ..SessionConfig::default()
    }
}

/// The project's origins derived from the config (the rule CORS, redirects and CSRF share).
pub fn project_origins(config: &Config) -> ProjectOrigins {
    ProjectOrigins::new(&config.domains, &config.proxy.trusted_proxies)
}

/// The CSRF rule derived from the config.
pub fn csrf_rule(config: &Config) -> CsrfRule {
    CsrfRule::new(
        project_origins(config),
        &CsrfConfig {
            trusted_origins: config.csrf_trusted_origins.clone(),
            allow_missing_origin: config.csrf_allow_missing_origin,
        },
    )
}

/// The header names only the gateway may send upstream: the session layer's identity prefix
/// and its three identity names (the config keeps those under the prefix today; they are
/// listed so that the trailer filter never depends on that check). The proxy drops request
/// trailers under them (SECURITY-CASES 39); the session layer strips the headers.
pub fn reserved_header_prefixes(config: &Config) -> Vec<String> {
    let s = &config.sessions;
    vec![
        s.identity_prefix.clone(),
        s.user_id_header.as_str().to_owned(),
        s.role_header.as_str().to_owned(),
        s.allowed_roles_header.as_str().to_owned(),
    ]
}

/// A service's CORS settings.
fn cors_config(config: &Config, service: &Service) -> CorsConfig {
    CorsConfig {
        enabled: service.cors,
        allowed_origins: service.cors_allowed_origins.clone(),
        allowed_methods: service.cors_allowed_methods.clone(),
        allowed_headers: service.cors_allowed_headers.clone(),
        default_headers: vec![
            http::header::CONTENT_TYPE,
            http::header::AUTHORIZATION,
            config.sessions.role_header.clone(),
        ],
    }
}

/// Builds one service's pipeline (see the module docs for its layers).
pub fn route_service(
    config: &Config,
    service: &Service,
    parts: &RouteParts,
    origins: &ProjectOrigins,
    csrf: &Arc<CsrfRule>,
) -> Result<RouteService, BuildError> {
    let upstream = UpstreamConfig {
        route: service.name.clone(),
        urls: service.upstreams.clone(),
        connect_timeout: service.connect_timeout,
        response_timeout: service.response_timeout,
        body_limit: Some(service.max_body_bytes),
        websocket: service.websocket,
        http2: service.http2,
    };
    let proxied = parts
        .proxy
        .service(upstream)
        .map_err(|e| BuildError::Upstream {
            service: service.name.clone(),
            message: e.to_string(),
        })?;
    let role = RequireRoleLayer::new(service.allowed_roles.iter().cloned())
        .forbid_authenticated(config.sessions.forbid_authenticated_without_role)
        .redirect_browsers(BrowserRedirects {
            no_session: service.no_session_redirect.clone(),
            no_access: service.no_access_redirect.clone(),
            origins: origins.clone(),
        });
    let issuer = if service.session_issuer {
        IssuerLayer::issuer(parts.login.clone(), config.sessions.ttl)
    } else {
        IssuerLayer::scrubber(parts.login.cookie())
    };
    let session = SessionConfig {
        forward_credentials: service.forward_credentials,
        ..parts.session.clone()
    };
    let pipeline = ServedLayer::new(&service.name).layer(
        RouteCorsLayer::new(&cors_config(config, service), origins).layer(
            SessionLayer::new(parts.resolver.clone(), session).layer(
                CsrfLayer::new(csrf.clone())
                    .guard_logins(service.session_issuer)
                    .layer(issuer.route_name(&service.name).layer(role.layer(proxied))),
            ),
        ),
    );
    Ok(pipeline)
}

/// What a service admits, for the router's ambiguous-path check (SECURITY-CASES 37): two
/// services of one host with the same allowed roles admit the same requests, so a path that an
/// upstream reads as the other's is harmless. The roles are sorted, so their order in the
/// config does not matter; an empty list (every role) is its own key.
pub fn policy_key(service: &Service) -> PolicyKey {
    if service.allowed_roles.is_empty() {
        return PolicyKey::new("*");
    }
    let mut roles: Vec<&str> = service.allowed_roles.iter().map(String::as_str).collect();
    roles.sort_unstable();
    roles.dedup();
    // Roles never contain a comma (validated with the config), so the join is unambiguous.
    PolicyKey::new(roles.join(","))
}

/// Builds the route table for every service of `config`.
pub fn route_table(
    config: &Config,
    parts: &RouteParts,
) -> Result<RouteTable<RouteService>, BuildError> {
    let mut table = RouteTable::new();
    let origins = project_origins(config);
    let csrf = Arc::new(csrf_rule(config));
    for service in &config.services {
        let svc = route_service(config, service, parts, &origins, &csrf)?;
        let key = policy_key(service);
        for pattern in service.host_patterns(&config.domains) {
            let prefix = service.path_prefix.as_deref().unwrap_or("/");
            let inserted =
                table.insert_prefix_with_policy(&pattern, prefix, key.clone(), svc.clone());
            inserted.map_err(|e| BuildError::Route {
                service: service.name.clone(),
                pattern: pattern.clone(),
                message: e.to_string(),
            })?;
        }
    }
    Ok(table)
}

/// The trace propagation settings derived from the config: the forwarded headers' trusted
/// proxies, and new traces sampled (so that upstreams that sample by their parent keep
/// recording, whether or not the gateway exports its spans).
pub fn trace_config(config: &Config) -> TraceConfig {
    TraceConfig {
        trusted: ForwardedHeaders::new(config.proxy.trusted_proxies.clone()),
        sample: true,
    }
}

/// The request path over a shared (swappable) route table; upgrades register their tunnels
/// with `tunnels`. The trace settings are `config`'s (changes need a restart).
pub fn gateway_service(
    table: SharedRouteTable<RouteService>,
    tunnels: &Tunnels,
    config: &Config,
) -> GatewayService {
    let router = Router::new(table).with_sni_check(true);
    let traced = TracePropagationLayer::new(trace_config(config)).layer(router);
    let hop = HopByHopLayer::new().layer(traced);
    FrontLayer::new().layer(tunnels.layer(hop))
}

/// The HTTPS listener's service: sets `hsts` on every answer, the gateway's own refusals
/// included. An upstream's own `Strict-Transport-Security` is replaced: the gateway terminates
/// TLS for the host, so its policy is the one a browser must see (an upstream's `max-age=0`
/// would otherwise switch HSTS off for the whole host). With `None`, answers pass unchanged.
/// The plain listener never gets this: browsers ignore the header over plain HTTP (RFC 6797
/// §8.1).
pub fn https_service(gateway: GatewayService, hsts: Option<http::HeaderValue>) -> HttpsService {
    SetResponseHeader::overriding(gateway, http::header::STRICT_TRANSPORT_SECURITY, hsts)
}

/// The plain listener's service when TLS is on: HTTP-01 answers from `responder` (when this
/// replica has one), then a redirect to the HTTPS listener's `redirect_port` for the project's
/// hosts (when configured), or the routes.
pub fn plain_service(
    gateway: GatewayService,
    responder: Option<ChallengeResponder>,
    redirect_port: Option<u16>,
    config: &Config,
) -> PlainService {
    let inner = match redirect_port {
        Some(port) => {
            Either::Right(HttpsRedirectLayer::new(project_origins(config), port).layer(()))
        }
        None => Either::Left(gateway),
    };
    match responder {
        Some(responder) => Either::Left(Http01Layer::new(responder).layer(inner)),
        None => Either::Right(inner),
    }
}
