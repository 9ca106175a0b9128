//! Composes the request path from the library crates:
//!
//! ```text
//! Front (access log, metrics, SNI = Host) → HopByHop → RejectionCors → SessionLayer → Csrf
//!     → Router → per service: RoutePolicy → Cors → Redirect → RequireRole → Proxy
//! ```
//!
//! RejectionCors gives the answers of the session layer and the CSRF check the CORS headers of
//! the service the request was for, so that a browser app can read them.
//!
//! Hop-by-hop headers go first, so that `Connection: X-Hasura-Role` can never remove what the
//! session layer injects (SECURITY-CASES 4).

use std::sync::Arc;

use route_core::{
    HopByHop, HopByHopLayer, PolicyKey, Proxy, ProxyService, RouteTable, Router, SharedRouteTable,
    UpstreamConfig,
};
use session_core::{
    AnonymousConfig, CookieConfig, RequireRole, RequireRoleLayer, Resolver, SessionConfig,
    SessionLayer, SessionService,
};
use tower::Layer;

use crate::config::{Config, Service};
use crate::cors::{RejectionCors, RejectionCorsLayer, ServiceCors, ServiceCorsLayer};
use crate::csrf::{Csrf, CsrfLayer, CsrfRule};
use crate::front::{Front, FrontLayer};
use crate::origin::ProjectOrigins;
use crate::policy::{RoutePolicy, SessionPolicy};
use crate::redirect::{Redirect, RedirectLayer};

/// One service's pipeline, as stored in the route table. CORS sits before the role check, so
/// preflights are answered without a session and never proxied.
pub type RouteService = RoutePolicy<ServiceCors<Redirect<RequireRole<ProxyService>>>>;

/// The whole request path for one listener.
pub type GatewayService =
    Front<HopByHop<RejectionCors<SessionService<Csrf<Router<RouteService>>>>>>;

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
        // Credentials are always taken off here; RoutePolicy puts them back per service.
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
        &config.csrf_trusted_origins,
        config.csrf_allow_missing_origin,
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

/// Builds one service's pipeline; `origins` are the project's (see [`project_origins`]).
pub fn route_service(
    config: &Config,
    service: &Service,
    proxy: &Proxy,
    policy: &SessionPolicy,
    origins: &ProjectOrigins,
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
    let proxied = proxy.service(upstream).map_err(|e| BuildError::Upstream {
        service: service.name.clone(),
        message: e.to_string(),
    })?;
    let role = RequireRoleLayer::new(service.allowed_roles.iter().cloned())
        .forbid_authenticated(config.sessions.forbid_authenticated_without_role)
        .layer(proxied);
    let redirect = RedirectLayer::new(
        &service.allowed_roles,
        service.no_session_redirect.clone(),
        service.no_access_redirect.clone(),
        origins,
    )
    .layer(role);
    let cors =
        ServiceCorsLayer::new(service, origins, &config.sessions.role_header).layer(redirect);
    Ok(RoutePolicy::new(
        cors,
        policy.clone(),
        &service.name,
        service.forward_credentials,
        service.session_issuer,
    ))
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
    proxy: &Proxy,
    policy: &SessionPolicy,
) -> Result<RouteTable<RouteService>, BuildError> {
    let mut table = RouteTable::new();
    let origins = project_origins(config);
    for service in &config.services {
        let svc = route_service(config, service, proxy, policy, &origins)?;
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

/// Builds the request path over a shared (swappable) route table. `csrf` is the rule the
/// session issuers' [`SessionPolicy`] holds too.
pub fn gateway_service(
    table: SharedRouteTable<RouteService>,
    resolver: Arc<dyn Resolver>,
    session: SessionConfig,
    csrf: Arc<CsrfRule>,
) -> GatewayService {
    let cors = RejectionCorsLayer::new(table.clone());
    let router = Router::new(table);
    let csrf = CsrfLayer::new(csrf).layer(router);
    let session = SessionLayer::new(resolver, session).layer(csrf);
    let hop = HopByHopLayer::new().layer(cors.layer(session));
    FrontLayer::new().layer(hop)
}
