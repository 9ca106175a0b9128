//! The machinery every section shares: [`ConfigIssue`] and [`ConfigError`], the [`Validator`]
//! that collects issues with their lines, and the value rules (domains, labels, roles, origins,
//! upstream URLs) that other parts of the gateway check against too.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;
use toml::Spanned;

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The dotted key, e.g. `services[1].upstreams[0]`.
    pub key: String,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "`{}`: ", self.key)?;
        }
        write!(f, "{}", self.explained())
    }
}

impl ConfigIssue {
    /// The message and its hint, without key or line: what the services API answers for the
    /// field, in the very words the config file shows.
    pub fn explained(&self) -> String {
        match &self.hint {
            Some(hint) => format!("{} (hint: {hint})", self.message),
            None => self.message.clone(),
        }
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file has problems; every one is listed.
    #[error("{}", render_issues(.0))]
    Invalid(Vec<ConfigIssue>),
}

fn render_issues(issues: &[ConfigIssue]) -> String {
    let mut out = format!("{} problem(s) in the config:", issues.len());
    for i in issues {
        out.push_str("\n  - ");
        out.push_str(&i.to_string());
    }
    out
}

impl ConfigError {
    /// The issues, when the file was read but is invalid.
    pub fn issues(&self) -> &[ConfigIssue] {
        match self {
            ConfigError::Invalid(v) => v,
            ConfigError::Read { .. } => &[],
        }
    }
}

pub(super) fn hint_for_parse_error(message: &str) -> Option<String> {
    if message.contains("unknown field") {
        Some("check the key's spelling against the README's config reference".into())
    } else if message.contains("missing field `project`") {
        Some("add a [project] table with domains = [\"example.com\"]".into())
    } else if message.contains("invalid type") {
        Some("check the value's type (strings are quoted, lists use [ ])".into())
    } else {
        None
    }
}

/// Maps byte offsets to 1-based line numbers.
pub(super) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(super) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    pub(super) fn line(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

/// Collects every issue of a file instead of stopping at the first, so that a user fixes the
/// file in one pass. Each section adds its own `impl Validator` in its module.
pub(super) struct Validator<'a> {
    /// `None` for a service that no file holds (the services API): its issues have no line.
    lines: Option<&'a LineIndex>,
    pub(super) issues: Vec<ConfigIssue>,
}

impl<'a> Validator<'a> {
    pub(super) fn new(lines: Option<&'a LineIndex>) -> Self {
        Validator {
            lines,
            issues: Vec::new(),
        }
    }

    /// The value read, or every issue found while reading it.
    pub(super) fn finish<T>(self, value: T) -> Result<T, Vec<ConfigIssue>> {
        if self.issues.is_empty() {
            Ok(value)
        } else {
            Err(self.issues)
        }
    }

    pub(super) fn issue<T>(
        &mut self,
        key: impl Into<String>,
        at: &Spanned<T>,
        message: impl Into<String>,
        hint: Option<&str>,
    ) {
        self.issues.push(ConfigIssue {
            key: key.into(),
            line: self.lines.map(|l| l.line(at.span().start)),
            message: message.into(),
            hint: hint.map(str::to_owned),
        });
    }

    pub(super) fn duration(
        &mut self,
        key: &str,
        v: Option<Spanned<String>>,
        default: Duration,
    ) -> Duration {
        let Some(v) = v else { return default };
        match humantime::parse_duration(v.get_ref()) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.issue(
                    key,
                    &v,
                    "must be longer than zero",
                    Some("write e.g. \"30s\""),
                );
                default
            }
            Err(e) => {
                self.issue(
                    key,
                    &v,
                    format!("not a duration: {e}"),
                    Some("write e.g. \"500ms\", \"30s\" or \"5m\""),
                );
                default
            }
        }
    }

    pub(super) fn number(
        &mut self,
        key: &str,
        v: Option<Spanned<u64>>,
        default: u64,
        min: u64,
        max: u64,
    ) -> u64 {
        let Some(v) = v else { return default };
        let n = *v.get_ref();
        if n < min || n > max {
            self.issue(
                key,
                &v,
                format!("must be between {min} and {max}, got {n}"),
                None,
            );
            return default;
        }
        n
    }
}

/// Lowercases a domain and removes one trailing dot; `None` if it is not a DNS name.
pub fn normalize_domain(raw: &str) -> Option<String> {
    let d = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    if d.is_empty() || d.len() > 253 || d.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    // The route table reads hosts with route-core's rules, which also refuse a numeric (or
    // `0x` hex) last label as an IP literal: a domain it would refuse must fail here, with
    // the config's line, not later when the routes are built.
    let routable = matches!(route_core::normalize_host(&d), Ok(h) if h == d.as_str());
    (routable && d.split('.').all(is_dns_label)).then_some(d)
}

/// A DNS label: 1-63 of `a-z`, `0-9` and `-`, not starting or ending with `-`.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A role or user id as the config accepts it: visible ASCII without spaces or commas.
pub fn is_role_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic() && b != b',')
}

/// Parses an origin (`scheme://host[:port]`, lowercase), as browsers send it in `Origin`.
pub fn parse_origin(s: &str) -> Option<String> {
    let uri: Uri = s.parse().ok()?;
    let scheme = uri.scheme_str()?;
    if !(scheme == "http" || scheme == "https") || uri.host().is_none() {
        return None;
    }
    if uri
        .path_and_query()
        .is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty())
    {
        return None;
    }
    let authority = uri.authority()?.as_str().to_ascii_lowercase();
    if authority.contains('@') {
        return None;
    }
    Some(format!("{scheme}://{authority}"))
}

/// Parses an upstream base URL: http(s) with a host, and no query or fragment.
pub fn parse_upstream(s: &str) -> Result<Uri, String> {
    let uri: Uri = s.parse().map_err(|_| format!("`{s}` is not a URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(format!("`{s}` must start with http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{s}` has no host"));
    }
    if uri.query().is_some() {
        return Err(format!("`{s}` must not have a query"));
    }
    Ok(uri)
}
