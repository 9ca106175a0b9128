//! Building the session cookie and the cookie that clears it.

use std::fmt::Write as _;
use std::time::Duration;

use http::HeaderValue;

use crate::config::ConfigError;
use crate::token::Token;

/// The cookie's `SameSite` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SameSite {
    /// `SameSite=Lax` (the default): sent on top-level navigations from other sites.
    #[default]
    Lax,
    /// `SameSite=Strict`: never sent on cross-site requests.
    Strict,
    /// `SameSite=None`: sent everywhere; requires `Secure`.
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }
}

/// How the session cookie is named and scoped.
///
/// [`CookieConfig::validate`] must pass before the cookie builders are used; the
/// [`SessionLayer`](crate::SessionLayer) checks it when it is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieConfig {
    /// The cookie name, an RFC 6265 token. Default `gateway_session`.
    pub name: String,
    /// `Domain=` attribute: the project's domain so that every subdomain receives the cookie.
    /// `None` makes a host-only cookie. Letters, digits, `-` and `.` only.
    pub domain: Option<String>,
    /// `SameSite=` attribute. Default [`SameSite::Lax`].
    pub same_site: SameSite,
    /// `Secure` attribute. Default `true`; only turn it off for plain-HTTP development.
    pub secure: bool,
    /// `Path=` attribute. Default `/`.
    pub path: String,
}

impl Default for CookieConfig {
    fn default() -> Self {
        CookieConfig {
            name: "gateway_session".to_owned(),
            domain: None,
            same_site: SameSite::Lax,
            secure: true,
            path: "/".to_owned(),
        }
    }
}

impl CookieConfig {
    /// Checks that every attribute can be written into a `Set-Cookie` header unchanged.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let tchar = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
        if self.name.is_empty() || !self.name.bytes().all(tchar) {
            return Err(ConfigError::CookieName);
        }
        if let Some(domain) = &self.domain {
            let ok = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'.';
            if domain.is_empty() || !domain.bytes().all(ok) {
                return Err(ConfigError::CookieDomain);
            }
        }
        if !self.path.starts_with('/')
            || !self
                .path
                .bytes()
                .all(|c| (0x21..=0x7e).contains(&c) && c != b';')
        {
            return Err(ConfigError::CookiePath);
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(ConfigError::SameSiteNoneWithoutSecure);
        }
        Ok(())
    }

    /// `Set-Cookie` value for a session: `name=token; Domain; Path; Max-Age=ttl; Secure;
    /// HttpOnly; SameSite`.
    ///
    /// # Panics
    ///
    /// If [`CookieConfig::validate`] fails for this config (use
    /// [`CookieConfig::try_session_cookie`] to get an error instead).
    pub fn session_cookie(&self, token: &Token, ttl: Duration) -> HeaderValue {
        match self.try_session_cookie(token, ttl) {
            Ok(v) => v,
            Err(e) => panic!("invalid cookie config: {e}"),
        }
    }

    /// [`CookieConfig::session_cookie`], reporting an invalid config instead of panicking.
    pub fn try_session_cookie(
        &self,
        token: &Token,
        ttl: Duration,
    ) -> Result<HeaderValue, ConfigError> {
        self.build(token.expose(), ttl.as_secs())
    }

    /// `Set-Cookie` value that makes the browser drop the session cookie (`Max-Age=0`, same
    /// name, domain and path).
    ///
    /// # Panics
    ///
    /// If [`CookieConfig::validate`] fails for this config (use
    /// [`CookieConfig::try_clearing_cookie`] to get an error instead).
    pub fn clearing_cookie(&self) -> HeaderValue {
        match self.try_clearing_cookie() {
            Ok(v) => v,
            Err(e) => panic!("invalid cookie config: {e}"),
        }
    }

    /// [`CookieConfig::clearing_cookie`], reporting an invalid config instead of panicking.
    pub fn try_clearing_cookie(&self) -> Result<HeaderValue, ConfigError> {
        self.build("", 0)
    }

    fn build(&self, value: &str, max_age: u64) -> Result<HeaderValue, ConfigError> {
        self.validate()?;
        let mut s = String::with_capacity(128);
        s.push_str(&self.name);
        s.push('=');
        s.push_str(value);
        if let Some(domain) = &self.domain {
            s.push_str("; Domain=");
            s.push_str(domain);
        }
        s.push_str("; Path=");
        s.push_str(&self.path);
        // Writing to a String cannot fail.
        let _ = write!(s, "; Max-Age={max_age}");
        if self.secure {
            s.push_str("; Secure");
        }
        s.push_str("; HttpOnly; SameSite=");
        s.push_str(self.same_site.as_str());
        // Every part is validated (tokens are token68), so this only fails on a bug.
        HeaderValue::from_str(&s).map_err(|_| ConfigError::CookieName)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(v: &HeaderValue) -> cookie::Cookie<'static> {
        cookie::Cookie::parse(v.to_str().unwrap().to_owned()).unwrap()
    }

    #[test]
    fn session_cookie_has_every_attribute() {
        // SECURITY-CASES 11.
        let cfg = CookieConfig {
            domain: Some("example.com".into()),
            ..CookieConfig::default()
        };
        let token = Token::generate();
        let v = cfg.session_cookie(&token, Duration::from_secs(3600));
        let c = parsed(&v);
        assert_eq!(c.name(), "gateway_session");
        assert_eq!(c.value(), token.expose());
        assert_eq!(c.domain(), Some("example.com"));
        assert_eq!(c.path(), Some("/"));
        assert_eq!(c.secure(), Some(true));
        assert_eq!(c.http_only(), Some(true));
        assert_eq!(c.same_site(), Some(cookie::SameSite::Lax));
        assert_eq!(c.max_age(), Some(cookie::time::Duration::seconds(3600)));
    }

    #[test]
    fn same_site_is_configurable() {
        let cfg = CookieConfig {
            same_site: SameSite::Strict,
            ..CookieConfig::default()
        };
        let c = parsed(&cfg.session_cookie(&Token::generate(), Duration::from_secs(1)));
        assert_eq!(c.same_site(), Some(cookie::SameSite::Strict));
    }

    #[test]
    fn clearing_cookie_has_max_age_zero_and_same_scope() {
        let cfg = CookieConfig {
            domain: Some("example.com".into()),
            ..CookieConfig::default()
        };
        let c = parsed(&cfg.clearing_cookie());
        assert_eq!(c.name(), "gateway_session");
        assert_eq!(c.value(), "");
        assert_eq!(c.max_age(), Some(cookie::time::Duration::ZERO));
        assert_eq!(c.domain(), Some("example.com"));
        assert_eq!(c.path(), Some("/"));
    }

    #[test]
    fn host_only_cookie_without_domain() {
        let v = CookieConfig::default().session_cookie(&Token::generate(), Duration::from_secs(5));
        assert!(!v.to_str().unwrap().contains("Domain"));
    }

    #[test]
    fn invalid_configs_are_refused() {
        let bad = [
            CookieConfig {
                name: "a b".into(),
                ..Default::default()
            },
            CookieConfig {
                name: "".into(),
                ..Default::default()
            },
            CookieConfig {
                name: "a;b".into(),
                ..Default::default()
            },
            CookieConfig {
                domain: Some("ex ample.com".into()),
                ..Default::default()
            },
            CookieConfig {
                domain: Some("a.com; HttpOnly".into()),
                ..Default::default()
            },
            CookieConfig {
                path: "x".into(),
                ..Default::default()
            },
            CookieConfig {
                path: "/a;b".into(),
                ..Default::default()
            },
            CookieConfig {
                same_site: SameSite::None,
                secure: false,
                ..Default::default()
            },
        ];
        for cfg in bad {
            assert!(cfg.validate().is_err(), "{cfg:?}");
            assert!(cfg.try_clearing_cookie().is_err());
        }
        assert!(CookieConfig::default().validate().is_ok());
    }
}
