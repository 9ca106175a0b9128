//! `[sessions]`: the session store, the cookie, the identity headers and the anonymous
//! identity.

use std::num::NonZeroUsize;
use std::time::Duration;

use http::HeaderName;
use toml::Spanned;

use super::raw;
use super::validate::{is_role_token, normalize_domain, ConfigIssue, Validator};

/// Which session store backs the gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// Sessions live in this process.
    Memory,
    /// Sessions live in Redis, shared by every replica.
    Redis(RedisSettings),
}

/// Redis settings for `store = "redis"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisSettings {
    /// The environment variable that holds the Redis URL (`redis://`, `rediss://`,
    /// `redis+sentinel://`, `redis+cluster://`). A URL may carry a password, so it is never
    /// written in the TOML.
    pub url_env: String,
    /// The key prefix (`<prefix>:session:<sha256 hex>`).
    pub prefix: String,
    /// The timeout of one Redis command.
    pub timeout: Duration,
    /// How long a replica caches a resolved session locally (revocations clear it at once).
    pub cache_ttl: Duration,
    /// The most sessions a replica caches.
    pub cache_capacity: usize,
    /// How many replicas must confirm a revocation (`WAIT`); `None`: 1 with Sentinel, else 0.
    pub wait_replicas: Option<usize>,
    /// How long `WAIT` may take.
    pub wait_timeout: Duration,
}

/// The largest `sessions.max_per_user`: in effect no bound (what a deployment had before the
/// bound existed), while a typo such as a negative number is still an error.
const MAX_SESSIONS_PER_USER: u64 = 1_000_000_000;

/// Session settings.
#[derive(Clone, Debug)]
pub struct Sessions {
    /// The store.
    pub store: StoreKind,
    /// The lifetime of a new session when the creator names none.
    pub ttl: Duration,
    /// Whether each use extends a session by `ttl`.
    pub sliding_expiry: bool,
    /// The session cookie's name.
    pub cookie_name: String,
    /// The session cookie's `Domain` (the primary project domain by default).
    pub cookie_domain: String,
    /// Whether the cookie carries `Secure`.
    pub cookie_secure: bool,
    /// The cookie's `SameSite`.
    pub same_site: session_core::SameSite,
    /// The reserved identity header prefix, lowercase.
    pub identity_prefix: String,
    /// The user id header.
    pub user_id_header: HeaderName,
    /// The role header.
    pub role_header: HeaderName,
    /// The allowed roles header.
    pub allowed_roles_header: HeaderName,
    /// The anonymous user id.
    pub anonymous_user_id: String,
    /// The anonymous role.
    pub anonymous_role: String,
    /// Answer 403 (not 401) to a valid session that lacks a service's role.
    pub forbid_authenticated_without_role: bool,
    /// The most live sessions one user holds; one more revokes the oldest (default 100).
    pub max_per_user: NonZeroUsize,
}

impl Validator<'_> {
    pub(super) fn sessions(&mut self, s: raw::RawSessions, domains: &[String]) -> Sessions {
        let store = match s.store {
            None => StoreKind::Memory,
            Some(v) if v.get_ref() == "memory" => StoreKind::Memory,
            Some(v) if v.get_ref() == "redis" => StoreKind::Redis(RedisSettings {
                url_env: s
                    .redis_url_env
                    .map(Spanned::into_inner)
                    .unwrap_or_else(|| "GATEWAY_REDIS_URL".into()),
                prefix: match s.redis_prefix {
                    None => "gateway".into(),
                    Some(p) => {
                        if p.get_ref().is_empty() || p.get_ref().contains(char::is_whitespace) {
                            self.issue(
                                "sessions.redis_prefix",
                                &p,
                                "must be non-empty without spaces",
                                None,
                            );
                        }
                        p.into_inner()
                    }
                },
                timeout: self.duration(
                    "sessions.redis_timeout",
                    s.redis_timeout,
                    Duration::from_millis(500),
                ),
                cache_ttl: self.duration("sessions.cache_ttl", s.cache_ttl, Duration::from_secs(5)),
                cache_capacity: self.number(
                    "sessions.cache_capacity",
                    s.cache_capacity,
                    100_000,
                    0,
                    100_000_000,
                ) as usize,
                wait_replicas: match s.redis_wait_replicas {
                    None => None,
                    v => Some(self.number("sessions.redis_wait_replicas", v, 0, 0, 64) as usize),
                },
                wait_timeout: self.duration(
                    "sessions.redis_wait_timeout",
                    s.redis_wait_timeout,
                    Duration::from_millis(500),
                ),
            }),
            Some(v) => {
                self.issue(
                    "sessions.store",
                    &v,
                    format!("unknown store `{}`", v.get_ref()),
                    Some("use \"memory\" or \"redis\""),
                );
                StoreKind::Memory
            }
        };
        let cookie_name = match s.cookie_name {
            None => "gateway_session".to_owned(),
            Some(v) => {
                let ok = !v.get_ref().is_empty()
                    && v.get_ref()
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
                if !ok {
                    self.issue(
                        "sessions.cookie_name",
                        &v,
                        "a cookie name uses letters, digits, '_', '-' and '.' only",
                        None,
                    );
                }
                v.into_inner()
            }
        };
        let cookie_domain = match s.cookie_domain {
            None => domains.first().cloned().unwrap_or_default(),
            Some(v) => match normalize_domain(v.get_ref()) {
                Some(d)
                    if domains
                        .iter()
                        .any(|p| *p == d || p.ends_with(&format!(".{d}"))) =>
                {
                    d
                }
                Some(_) => {
                    self.issue(
                        "sessions.cookie_domain",
                        &v,
                        "must be a project domain or a parent of one",
                        Some("leave it out to use the first project domain"),
                    );
                    String::new()
                }
                None => {
                    self.issue("sessions.cookie_domain", &v, "not a domain name", None);
                    String::new()
                }
            },
        };
        let same_site = match s
            .same_site
            .as_ref()
            .map(|v| v.get_ref().to_ascii_lowercase())
        {
            None => session_core::SameSite::Lax,
            Some(x) if x == "lax" => session_core::SameSite::Lax,
            Some(x) if x == "strict" => session_core::SameSite::Strict,
            Some(x) if x == "none" => session_core::SameSite::None,
            Some(_) => {
                if let Some(v) = &s.same_site {
                    self.issue(
                        "sessions.same_site",
                        v,
                        "must be \"lax\", \"strict\" or \"none\"",
                        None,
                    );
                }
                session_core::SameSite::Lax
            }
        };
        let identity_prefix = match s.identity_prefix {
            None => "x-hasura-".to_owned(),
            Some(v) => {
                let p = v.get_ref().to_ascii_lowercase();
                if p.len() < 3 || HeaderName::from_bytes(p.as_bytes()).is_err() {
                    self.issue(
                        "sessions.identity_prefix",
                        &v,
                        "must be a header-name prefix of 3 or more characters",
                        Some("the default is \"x-hasura-\""),
                    );
                }
                p
            }
        };
        let user_id_header = self.header_name(
            "sessions.user_id_header",
            s.user_id_header,
            "x-hasura-user-id",
        );
        let role_header = self.header_name("sessions.role_header", s.role_header, "x-hasura-role");
        let allowed_roles_header = self.header_name(
            "sessions.allowed_roles_header",
            s.allowed_roles_header,
            "x-hasura-allowed-roles",
        );
        for (key, h) in [
            ("sessions.user_id_header", &user_id_header),
            ("sessions.role_header", &role_header),
            ("sessions.allowed_roles_header", &allowed_roles_header),
        ] {
            if !h.as_str().starts_with(&identity_prefix) {
                self.issues.push(ConfigIssue {
                    key: key.into(),
                    line: None,
                    message: format!("`{h}` does not start with the identity prefix `{identity_prefix}`, so a client could send it"),
                    hint: Some("keep identity headers under sessions.identity_prefix".into()),
                });
            }
        }
        let anonymous_user_id =
            self.identity_value("sessions.anonymous_user_id", s.anonymous_user_id, "0");
        let anonymous_role =
            self.identity_value("sessions.anonymous_role", s.anonymous_role, "anonymous");
        Sessions {
            store,
            ttl: self.duration("sessions.ttl", s.ttl, Duration::from_secs(24 * 3600)),
            sliding_expiry: s.sliding_expiry.unwrap_or(false),
            cookie_name,
            cookie_domain,
            cookie_secure: s.cookie_secure.unwrap_or(true),
            same_site,
            identity_prefix,
            user_id_header,
            role_header,
            allowed_roles_header,
            anonymous_user_id,
            anonymous_role,
            forbid_authenticated_without_role: s.forbid_authenticated_without_role.unwrap_or(false),
            max_per_user: self.max_per_user(s.max_per_user),
        }
    }

    /// `sessions.max_per_user`: 1 to [`MAX_SESSIONS_PER_USER`], default 100.
    fn max_per_user(&mut self, v: Option<Spanned<u64>>) -> NonZeroUsize {
        let default = session_core::DEFAULT_MAX_PER_USER;
        let n = self.number(
            "sessions.max_per_user",
            v,
            default.get() as u64,
            1,
            MAX_SESSIONS_PER_USER,
        );
        usize::try_from(n)
            .ok()
            .and_then(NonZeroUsize::new)
            .unwrap_or(default)
    }

    fn identity_value(&mut self, key: &str, v: Option<Spanned<String>>, default: &str) -> String {
        let Some(v) = v else {
            return default.to_owned();
        };
        if !is_role_token(v.get_ref()) {
            self.issue(
                key,
                &v,
                "must be 1-128 visible ASCII characters without spaces or commas",
                None,
            );
        }
        v.into_inner()
    }

    fn header_name(
        &mut self,
        key: &str,
        v: Option<Spanned<String>>,
        default: &'static str,
    ) -> HeaderName {
        let Some(v) = v else {
            return HeaderName::from_static(default);
        };
        match HeaderName::from_bytes(v.get_ref().as_bytes()) {
            Ok(h) => h,
            Err(_) => {
                self.issue(
                    key,
                    &v,
                    "not a valid header name",
                    Some("use letters, digits and '-'"),
                );
                HeaderName::from_static(default)
            }
        }
    }
}
