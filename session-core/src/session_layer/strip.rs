//! Removing client-sent identity headers before injection.

use http::header::CONNECTION;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::SessionConfig;

/// What the client asked for with the role header, captured before stripping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RequestedRole {
    /// No role header.
    None,
    /// Exactly one role header.
    One(HeaderValue),
    /// The role header more than once.
    Ambiguous,
}

/// The names the layer owns: everything starting with the prefix plus the three configured
/// headers, compared case-insensitively with `_` read as `-`.
#[derive(Debug)]
pub(crate) struct IdentityNames {
    /// Normalized prefix (lowercase, `_` → `-`).
    prefix: Box<[u8]>,
    /// Normalized configured names.
    exact: [Box<[u8]>; 3],
}

fn norm(b: u8) -> u8 {
    if b == b'_' {
        b'-'
    } else {
        b.to_ascii_lowercase()
    }
}

fn normalized(s: &[u8]) -> Box<[u8]> {
    s.iter().copied().map(norm).collect()
}

/// `got` equals the normalized `want` when compared loosely (any case, `_` read as `-`).
fn loose_eq(want: &[u8], got: &[u8]) -> bool {
    want.len() == got.len() && want.iter().zip(got).all(|(w, g)| *w == norm(*g))
}

impl IdentityNames {
    pub(crate) fn new(
        prefix: &str,
        user_id: &HeaderName,
        role: &HeaderName,
        allowed: &HeaderName,
    ) -> Self {
        IdentityNames {
            prefix: normalized(prefix.as_bytes()),
            exact: [
                normalized(user_id.as_str().as_bytes()),
                normalized(role.as_str().as_bytes()),
                normalized(allowed.as_str().as_bytes()),
            ],
        }
    }

    /// The names of `config`.
    pub(crate) fn from_config(config: &SessionConfig) -> Self {
        IdentityNames::new(
            &config.identity_prefix,
            &config.user_id_header,
            &config.role_header,
            &config.allowed_roles_header,
        )
    }

    /// True for a name the client must not send: the prefix (any case, `_` or `-`) or one of
    /// the configured names in the same loose comparison.
    pub(crate) fn matches(&self, name: &[u8]) -> bool {
        self.under_prefix(name) || self.exact.iter().any(|e| loose_eq(e, name))
    }

    /// True for a name a session variable may have: longer than the prefix and under it (so
    /// [`strip`](IdentityNames::strip) removes every client copy of it), and none of the three
    /// configured names (so a variable never replaces the identity).
    pub(crate) fn admits_variable(&self, name: &[u8]) -> bool {
        name.len() > self.prefix.len()
            && self.under_prefix(name)
            && !self.exact.iter().any(|e| loose_eq(e, name))
    }

    fn under_prefix(&self, name: &[u8]) -> bool {
        name.len() >= self.prefix.len() && loose_eq(&self.prefix, &name[..self.prefix.len()])
    }

    /// Captures the role header, then removes every identity header and every identity name
    /// listed in `Connection`.
    ///
    /// The common request carries none of these: one pass over the names, comparing bytes,
    /// finds that out without hashing anything. (A `get_all` per name would hash it, and the
    /// map's FNV hash of a 13-byte custom name costs more than the whole pass.)
    pub(crate) fn strip(&self, headers: &mut HeaderMap, role_header: &HeaderName) -> RequestedRole {
        let mut identity = false;
        let mut connection = false;
        for name in headers.keys() {
            if *name == CONNECTION {
                connection = true;
            } else if self.matches(name.as_str().as_bytes()) {
                identity = true;
            }
        }
        if !identity {
            if connection {
                self.sanitize_connection(headers);
            }
            return RequestedRole::None;
        }
        let requested = {
            let mut values = headers.get_all(role_header).iter();
            match (values.next(), values.next()) {
                (None, _) => RequestedRole::None,
                (Some(v), None) => RequestedRole::One(v.clone()),
                (Some(_), Some(_)) => RequestedRole::Ambiguous,
            }
        };
        while let Some(name) = headers
            .keys()
            .find(|k| self.matches(k.as_str().as_bytes()))
            .cloned()
        {
            headers.remove(&name);
        }
        if connection {
            self.sanitize_connection(headers);
        }
        requested
    }

    /// Removes identity names from `Connection`, so that hop-by-hop processing after this layer
    /// can never delete the injected headers (`Connection: X-Hasura-Role`). A value left empty
    /// is dropped.
    fn sanitize_connection(&self, headers: &mut HeaderMap) {
        let listed = |v: &HeaderValue| {
            v.as_bytes()
                .split(|&b| b == b',')
                .any(|t| self.matches(trim(t)))
        };
        if !headers.get_all(CONNECTION).iter().any(listed) {
            return;
        }
        let kept: Vec<HeaderValue> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| {
                let tokens: Vec<&[u8]> = v
                    .as_bytes()
                    .split(|&b| b == b',')
                    .map(trim)
                    .filter(|t| !t.is_empty() && !self.matches(t))
                    .collect();
                let joined = tokens.join(&b", "[..]);
                if joined.is_empty() {
                    None
                } else {
                    HeaderValue::from_bytes(&joined).ok()
                }
            })
            .collect();
        headers.remove(CONNECTION);
        for v in kept {
            headers.append(CONNECTION, v);
        }
    }
}

fn trim(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}
