//! Building the session cookie and the cookie that clears it, and reading a `Set-Cookie` as a
//! browser does.

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

/// The name and value of the cookie a browser stores from a `Set-Cookie` value, by RFC 6265bis
/// §5.6 ("parse a cookie"): the name-value pair is what precedes the first `;`; without a `=`,
/// the name is empty and the whole pair is the value; otherwise the name precedes the first `=`
/// and the value follows it; both are trimmed of spaces and tabs.
///
/// The `cookie` crate refuses an empty name, where a browser stores a nameless cookie and sends
/// its value back alone (`Set-Cookie: =gateway_session=T` comes back as
/// `Cookie: gateway_session=T`), so this is done by hand.
pub fn parse_set_cookie(set_cookie: &str) -> (&str, &str) {
    let pair = set_cookie.split(';').next().unwrap_or_default();
    let (name, value) = pair.split_once('=').unwrap_or(("", pair));
    let wsp: &[char] = &[' ', '\t'];
    (name.trim_matches(wsp), value.trim_matches(wsp))
}

/// Whether a browser given this `Set-Cookie` could store, or send back, a cookie that the
/// gateway (or an upstream framework) would read as the session cookie `cookie_name`
/// (SECURITY-CASES 10 and 33).
///
/// The stored name is compared, and for a nameless cookie the value too, since the browser
/// sends it back as `Cookie: <value>` and that is read as a `name=value` pair (by the `cookie`
/// crate, as [`extract_credential`](crate::extract_credential) reads it: the name is what
/// precedes the first `=`, trimmed of Unicode whitespace). The comparison ignores ASCII case
/// and a `__Secure-` or `__Host-` prefix: a browser keeps such names apart, but some servers
/// do not, and no upstream needs a cookie that close to the session's. Bytes that are not
/// UTF-8 are read as the credential reader reads them (lossily).
pub fn sets_session_cookie(set_cookie: &HeaderValue, cookie_name: &str) -> bool {
    let text = String::from_utf8_lossy(set_cookie.as_bytes());
    let (name, value) = parse_set_cookie(&text);
    if resembles(name, cookie_name) {
        return true;
    }
    // A nameless cookie comes back as its bare value.
    name.is_empty() && resembles(value.split('=').next().unwrap_or_default(), cookie_name)
}

/// Equal ignoring ASCII case, surrounding Unicode whitespace and one cookie-name prefix.
fn resembles(name: &str, cookie_name: &str) -> bool {
    fn unprefixed(name: &str) -> &str {
        let name = name.trim();
        for prefix in ["__secure-", "__host-"] {
            if name.len() >= prefix.len()
                && name.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
            {
                // The prefix is ASCII, so the index is a character boundary.
                return &name[prefix.len()..];
            }
        }
        name
    }
    let name = unprefixed(name);
    !name.is_empty() && name.eq_ignore_ascii_case(unprefixed(cookie_name))
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
    fn set_cookie_is_parsed_as_browsers_do() {
        for (header, name, value) in [
            ("a=b; Path=/", "a", "b"),
            ("=gateway_session=T", "", "gateway_session=T"),
            ("gateway_session", "", "gateway_session"),
            (" \t a = b=c ;x", "a", "b=c"),
            ("", "", ""),
            (";a=b", "", ""),
        ] {
            assert_eq!(parse_set_cookie(header), (name, value), "{header:?}");
        }
    }

    /// SECURITY-CASES 33: every form a browser stores, or sends back, as the session cookie.
    #[test]
    fn session_cookie_forms_are_recognised() {
        let name = "gateway_session";
        for planted in [
            "gateway_session=T",
            "GATEWAY_SESSION=T; Domain=a.b",
            "=gateway_session=T",
            " = gateway_session = T; Path=/",
            "=\tGateway_Session=T",
            "gateway_session",
            "=gateway_session",
            "__Secure-gateway_session=T; Secure",
            "__HOST-gateway_session=T",
            "=__Host-gateway_session=T",
            "\u{a0}gateway_session=T",
            "=\u{2003}gateway_session=T",
        ] {
            let v = HeaderValue::from_str(planted).unwrap();
            assert!(sets_session_cookie(&v, name), "{planted:?}");
        }
        for other in [
            "theme=dark",
            "gateway_session_other=T",
            "other=gateway_session",
            "=theme=gateway_session",
            "x_gateway_session=T",
            "__Secure-=gateway_session",
            ";gateway_session=T",
        ] {
            let v = HeaderValue::from_str(other).unwrap();
            assert!(!sets_session_cookie(&v, name), "{other:?}");
        }
        // A prefixed session cookie name is matched with or without its prefix.
        let v = HeaderValue::from_static("=gateway_session=T");
        assert!(sets_session_cookie(&v, "__Host-gateway_session"));
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
