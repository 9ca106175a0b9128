//! DNS names: normalisation and the set of names certificates may be ordered for.

use std::collections::BTreeSet;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::Error;

/// Normalises a DNS name: ASCII lowercase, no trailing dot.
///
/// Accepts `label(.label)*` with labels of 1–63 characters from `[a-z0-9-]` (not starting or
/// ending with `-`), an optional leading `*.` wildcard label, and at most 253 characters. IP
/// literals are refused (certificates for them are not ordered, and the router answers 421 for
/// them). Because the result has no `/`, `..` or other path syntax it is safe to use as a file
/// name and as a storage key.
pub fn normalize_name(name: &str) -> Result<String, Error> {
    let bad = || Error::InvalidName(name.to_owned());
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() || trimmed.len() > 253 {
        return Err(bad());
    }
    let lower = trimmed.to_ascii_lowercase();
    let (wild, rest) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let mut labels = 0;
    for label in rest.split('.') {
        labels += 1;
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(bad());
        }
    }
    // An all-numeric last label means an IPv4 literal (or nonsense); never a host name.
    if rest
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    // "*.com" would be a wildcard over a whole TLD.
    if wild && labels < 2 {
        return Err(bad());
    }
    Ok(lower)
}

/// The names the ACME manager may order certificates for, normally derived from the route
/// table (every configured service subdomain, plus the apex).
///
/// This is the only input that can make the manager place an order: TLS SNI never does
/// (security case 28). Implementations must be cheap, as they are called on every check.
pub trait ManagedNames: Send + Sync + 'static {
    /// The current names. They may be unnormalised; the manager normalises them and skips
    /// invalid ones with a log line.
    fn names(&self) -> Vec<String>;

    /// Whether `name` (normalised) is currently managed.
    fn contains(&self, name: &str) -> bool {
        self.names()
            .iter()
            .any(|n| normalize_name(n).is_ok_and(|n| n == name))
    }
}

impl<F> ManagedNames for F
where
    F: Fn() -> Vec<String> + Send + Sync + 'static,
{
    fn names(&self) -> Vec<String> {
        self()
    }
}

/// A [`ManagedNames`] that the owner replaces wholesale on reload (lock-free reads).
#[derive(Debug, Clone, Default)]
pub struct NameSet {
    names: Arc<ArcSwap<BTreeSet<String>>>,
}

impl NameSet {
    /// A set holding `names`, normalised. Invalid names are an error, so a config typo is
    /// reported at load time rather than skipped later.
    pub fn new<I, S>(names: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let set = Self::default();
        set.replace(names)?;
        Ok(set)
    }

    /// Atomically replaces the whole set (on config reload). On error the old set stays.
    pub fn replace<I, S>(&self, names: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let set = names
            .into_iter()
            .map(|n| normalize_name(n.as_ref()))
            .collect::<Result<BTreeSet<_>, _>>()?;
        self.names.store(Arc::new(set));
        Ok(())
    }
}

impl ManagedNames for NameSet {
    fn names(&self) -> Vec<String> {
        self.names.load().iter().cloned().collect()
    }

    fn contains(&self, name: &str) -> bool {
        self.names.load().contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(
            normalize_name("API.Example.com.").unwrap(),
            "api.example.com"
        );
        assert_eq!(normalize_name("*.example.com").unwrap(), "*.example.com");
        for bad in [
            "", ".", "a..b", "-a.com", "a-.com", "a/b.com", "../x", "1.2.3.4", "*.com", "a_b.com",
            "a.*.com", "[::1]", "a b.com",
        ] {
            assert!(normalize_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn name_set() {
        let s = NameSet::new(["A.example.com"]).unwrap();
        assert!(s.contains("a.example.com"));
        assert!(s.replace(["bad/name"]).is_err());
        assert!(s.contains("a.example.com"));
        let f = || vec!["X.example.com".to_owned()];
        assert!(f.contains("x.example.com"));
        assert!(!f.contains("y.example.com"));
    }
}
