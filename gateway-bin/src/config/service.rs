//! `[[services]]`: the [`Service`] type and the one validator of a service.
//!
//! The config file runs it on each `[[services]]` table and the services admin API
//! (`services::spec`) on each service it is sent, so that the two accept the same services and
//! refuse the others on the same field with the same words.

use std::time::Duration;

use http::{HeaderName, Uri};
use toml::Spanned;

use super::raw;
use super::validate::{
    is_dns_label, is_role_token, parse_origin, parse_upstream, ConfigIssue, Validator,
};

/// Where a configured value came from, for `GET /v1/services`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The config file.
    File,
    /// The services admin API.
    Api,
}

/// One service: a subdomain of every project domain, proxied to its upstreams.
#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    /// The service's unique name.
    pub name: String,
    /// The label under the project domains: `data`, `@` for the apex, `*` for every other name.
    pub subdomain: String,
    /// An optional path prefix within the subdomain (longest prefix wins). A path that another
    /// common reading (`;` parameters dropped, case folded, decoded first) would send to a
    /// service of the same subdomain with other `allowed_roles` gets 400 `ambiguous-path`.
    pub path_prefix: Option<String>,
    /// The upstream base URLs, balanced round-robin.
    pub upstreams: Vec<Uri>,
    /// The roles allowed to reach it; empty means every role, anonymous included.
    pub allowed_roles: Vec<String>,
    /// Keep the gateway's bearer token and session cookie on requests to this service.
    pub forward_credentials: bool,
    /// This service may ask the gateway to create and end sessions.
    pub session_issuer: bool,
    /// WebSocket upgrades are tunnelled.
    pub websocket: bool,
    /// Upstreams speak HTTP/2 (prior knowledge).
    pub http2: bool,
    /// The upstream connect timeout.
    pub connect_timeout: Duration,
    /// The upstream response-header timeout.
    pub response_timeout: Duration,
    /// The request body limit.
    pub max_body_bytes: u64,
    /// Where the service was defined.
    pub origin: Origin,
    /// CORS: answer preflights and add CORS headers for the project's own origins.
    pub cors: bool,
    /// CORS: extra allowed origins, besides the project's domains and subdomains.
    pub cors_allowed_origins: Vec<String>,
    /// CORS: allowed methods (a default set when empty).
    pub cors_allowed_methods: Vec<String>,
    /// CORS: allowed request headers (a default set when empty).
    pub cors_allowed_headers: Vec<String>,
    /// Where a browser navigation without a session is redirected instead of getting 401.
    pub no_session_redirect: Option<String>,
    /// Where a browser navigation whose session lacks the role is redirected.
    pub no_access_redirect: Option<String>,
}

impl Service {
    /// The host patterns this service answers, one per project domain.
    pub fn host_patterns(&self, domains: &[String]) -> Vec<String> {
        domains
            .iter()
            .map(|d| match self.subdomain.as_str() {
                "@" => d.clone(),
                "*" => format!("*.{d}"),
                sub => format!("{sub}.{d}"),
            })
            .collect()
    }
}

/// What a service takes from the config it joins.
#[derive(Clone, Debug)]
pub(crate) struct ServiceDefaults<'a> {
    /// The project's domains: every host name `<subdomain>.<domain>` must be a valid name.
    pub(crate) domains: &'a [String],
    /// The request body limit when the service names none.
    pub(crate) max_body_bytes: u64,
}

/// Validates one service that no file holds (the services API sends it as JSON, decoded into
/// the fields of a `[[services]]` table): the file's checks and messages, every issue keyed by
/// its field (`upstreams[0]`) and without a line. Every issue is returned, in the file's order.
pub(crate) fn validate_service(
    fields: raw::RawService,
    defaults: &ServiceDefaults<'_>,
    origin: Origin,
) -> Result<Service, Vec<ConfigIssue>> {
    let mut v = Validator::new(None);
    let service = v.service("", fields, defaults, origin);
    v.finish(service)
}

impl Validator<'_> {
    /// The file's `[[services]]`: each one through [`Validator::service`], then checked against
    /// the ones before it. The services API checks names and routes across services itself,
    /// where it can tell a file service from one of its own (409, or 422 on `subdomain`).
    pub(super) fn services(
        &mut self,
        raw: Vec<raw::RawService>,
        defaults: &ServiceDefaults<'_>,
    ) -> Vec<Service> {
        let mut out: Vec<Service> = Vec::new();
        for (i, s) in raw.into_iter().enumerate() {
            let key = format!("services[{i}]");
            let name_at = s.name.clone();
            let service = self.service(&key, s, defaults, Origin::File);
            // An invalid name already has its issue; "defined twice" would only repeat it.
            if is_dns_label(&service.name) && out.iter().any(|o| o.name == service.name) {
                self.issue(
                    format!("{key}.name"),
                    &name_at,
                    format!("service `{}` is defined twice", service.name),
                    Some("service names are unique"),
                );
            }
            if let Some(other) = out
                .iter()
                .find(|o| o.subdomain == service.subdomain && o.path_prefix == service.path_prefix)
            {
                let msg = format!(
                    "service `{}` already serves this subdomain and path",
                    other.name
                );
                self.issue(
                    format!("{key}.subdomain"),
                    &name_at,
                    msg,
                    Some("give each service its own subdomain or path_prefix"),
                );
            }
            out.push(service);
        }
        out
    }

    /// The one validation of a service, for a `[[services]]` table of the file and for a
    /// service of the services API alike, so that the two can never disagree on what a valid
    /// service is. `key` is what the issues' keys hang under (`services[2]`, or `""` for bare
    /// field names).
    fn service(
        &mut self,
        key: &str,
        s: raw::RawService,
        defaults: &ServiceDefaults<'_>,
        origin: Origin,
    ) -> Service {
        let k = |f: &str| {
            if key.is_empty() {
                f.to_owned()
            } else {
                format!("{key}.{f}")
            }
        };
        let name = s.name.get_ref().clone();
        if !is_dns_label(&name) {
            self.issue(
                k("name"),
                &s.name,
                format!("`{name}` is not a valid name"),
                Some("use lowercase letters, digits and '-', e.g. \"data\""),
            );
        }
        let subdomain = match &s.subdomain {
            None => name.clone(),
            Some(v) => {
                let sub = v.get_ref().to_ascii_lowercase();
                let ok = sub == "@" || sub == "*" || sub.split('.').all(is_dns_label);
                if !ok {
                    self.issue(
                        k("subdomain"),
                        v,
                        format!("`{sub}` is not a valid subdomain"),
                        Some("use a DNS label such as \"data\", \"@\" for the apex or \"*\" for every other name"),
                    );
                }
                sub
            }
        };
        // Valid labels can still add up to a host name longer than DNS allows, which the route
        // table refuses only when it is built: after the check passed, without the line.
        if subdomain != "@" && subdomain != "*" && subdomain.split('.').all(is_dns_label) {
            if let Some(d) = defaults
                .domains
                .iter()
                .find(|d| subdomain.len() + 1 + d.len() > 253)
            {
                self.issue(
                    k("subdomain"),
                    s.subdomain.as_ref().unwrap_or(&s.name),
                    format!("`{subdomain}.{d}` is longer than a DNS name may be (253 characters)"),
                    Some("use a shorter subdomain"),
                );
            }
        }
        let path_prefix = match s.path_prefix {
            None => None,
            Some(p) => {
                let v = p.get_ref();
                // Exactly what the route table accepts: normalised (no dot segments,
                // `//`, backslashes or control bytes), and no escapes or query.
                let normalised =
                    matches!(route_core::try_normalize_path(v), Ok(n) if n == v.as_str());
                if !v.starts_with('/')
                    || !normalised
                    || v.contains("..")
                    || v.contains('%')
                    || v.contains('?')
                {
                    self.issue(
                        k("path_prefix"),
                        &p,
                        "must be a normalised absolute path such as \"/api\"",
                        None,
                    );
                }
                let trimmed = v.trim_end_matches('/');
                Some(if trimmed.is_empty() {
                    "/".to_owned()
                } else {
                    trimmed.to_owned()
                })
            }
        };
        let mut upstreams = Vec::new();
        if s.upstreams.get_ref().is_empty() {
            self.issue(
                k("upstreams"),
                &s.upstreams,
                "at least one upstream URL is required",
                Some("upstreams = [\"http://127.0.0.1:3000\"]"),
            );
        }
        for (j, u) in s.upstreams.get_ref().iter().enumerate() {
            match parse_upstream(u.get_ref()) {
                Ok(uri) => upstreams.push(uri),
                Err(msg) => self.issue(
                    k(&format!("upstreams[{j}]")),
                    u,
                    msg,
                    Some("write an http:// or https:// URL with a host, e.g. \"http://127.0.0.1:3000\""),
                ),
            }
        }
        let mut allowed_roles = Vec::new();
        if let Some(roles) = &s.allowed_roles {
            for (j, r) in roles.get_ref().iter().enumerate() {
                if !is_role_token(r.get_ref()) {
                    self.issue(
                        k(&format!("allowed_roles[{j}]")),
                        r,
                        format!("`{}` is not a valid role", r.get_ref()),
                        Some("roles are 1-128 visible ASCII characters without spaces or commas"),
                    );
                } else if !allowed_roles.contains(r.get_ref()) {
                    allowed_roles.push(r.get_ref().clone());
                }
            }
        }
        let mut cors_allowed_origins = Vec::new();
        for (j, o) in s
            .cors_allowed_origins
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            match parse_origin(o.get_ref()) {
                Some(origin) => cors_allowed_origins.push(origin),
                None => self.issue(
                    k(&format!("cors_allowed_origins[{j}]")),
                    &o,
                    "not an origin (never \"*\": credentialed CORS needs exact origins)",
                    Some("write scheme://host[:port]"),
                ),
            }
        }
        let mut cors_allowed_methods = Vec::new();
        for (j, m) in s
            .cors_allowed_methods
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            match http::Method::from_bytes(m.get_ref().to_ascii_uppercase().as_bytes()) {
                Ok(method) => cors_allowed_methods.push(method.to_string()),
                Err(_) => self.issue(
                    k(&format!("cors_allowed_methods[{j}]")),
                    &m,
                    "not an HTTP method",
                    None,
                ),
            }
        }
        let mut cors_allowed_headers = Vec::new();
        for (j, h) in s
            .cors_allowed_headers
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            match HeaderName::from_bytes(h.get_ref().as_bytes()) {
                Ok(name) => cors_allowed_headers.push(name.to_string()),
                Err(_) => self.issue(
                    k(&format!("cors_allowed_headers[{j}]")),
                    &h,
                    "not a header name",
                    None,
                ),
            }
        }
        let mut redirect = |field: &str, v: Option<Spanned<String>>| -> Option<String> {
            let v = v?;
            match parse_upstream(v.get_ref()) {
                Ok(_) => Some(v.into_inner()),
                Err(_) => {
                    self.issue(
                        k(field),
                        &v,
                        "must be an absolute http(s) URL",
                        Some("e.g. \"https://auth.example.com/login\""),
                    );
                    None
                }
            }
        };
        let no_session_redirect = redirect("no_session_redirect", s.no_session_redirect);
        let no_access_redirect = redirect("no_access_redirect", s.no_access_redirect);
        Service {
            name,
            subdomain,
            path_prefix,
            upstreams,
            allowed_roles,
            forward_credentials: s.forward_credentials.unwrap_or(false),
            session_issuer: s.session_issuer.unwrap_or(false),
            websocket: s.websocket.unwrap_or(true),
            http2: s.http2.unwrap_or(false),
            connect_timeout: self.duration(
                &k("connect_timeout"),
                s.connect_timeout,
                Duration::from_secs(5),
            ),
            response_timeout: self.duration(
                &k("response_timeout"),
                s.response_timeout,
                Duration::from_secs(30),
            ),
            max_body_bytes: self.number(
                &k("max_body_bytes"),
                s.max_body_bytes,
                defaults.max_body_bytes,
                0,
                u64::MAX,
            ),
            origin,
            cors: s.cors.unwrap_or(true),
            cors_allowed_origins,
            cors_allowed_methods,
            cors_allowed_headers,
            no_session_redirect,
            no_access_redirect,
        }
    }
}
