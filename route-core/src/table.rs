//! The route table: host (exact, apex or `*.suffix` wildcard) and optional path prefix → route.
//!
//! Lookup cost does not depend on the number of routes: one hash probe for the exact name,
//! then, for wildcards, one probe per **suffix** of the host, longest first, so the most
//! specific wildcard wins; then a scan of that host's path prefixes (usually none or a few).
//!
//! `*.example.com` is stored under its suffix `example.com`, with the suffix's label count
//! recorded in a bit set. For `a.b.example.com` the candidates are `b.example.com` (3 labels)
//! and `example.com` (2 labels); only label counts some wildcard has are probed, so a typical
//! lookup costs one or two probes of a short string, with no allocation. A wildcard matches
//! one or more labels and never the bare suffix: `*.example.com` does not match `example.com`
//! (add the apex as an exact route).
//!
//! Path prefixes are matched on the normalised path at segment boundaries: `/api` matches
//! `/api` and `/api/x`, never `/apix`. The longest prefix wins. [`RouteTable::insert`] is the
//! prefix `/`. The most specific **host** entry decides alone: if it has no matching prefix
//! the request gets 404, it does not fall back to a less specific wildcard, so a route's
//! policy can never be bypassed by choosing a path.
//!
//! **Ambiguous paths** (SECURITY-CASES 37). An upstream may read a path otherwise than the
//! gateway: it may drop `;` segment parameters, fold case, or decode the path first (see
//! [`crate::path`]). When one of those readings would pick another route of the same host
//! whose [`PolicyKey`] differs from the route the gateway picked, the router answers 400
//! `ambiguous-path` instead of guessing: `/admin;x/users` or `/ADMIN/users` must not reach the
//! public route's upstream when `/admin` is a route for admins only. Routes with equal keys
//! admit the same requests, so a reading that only switches between them is harmless; a route
//! added without a key ([`RouteTable::insert`], [`RouteTable::insert_prefix`]) differs from
//! every other. A host whose routes all have one key, the usual single-route host, never pays
//! for the check; otherwise it runs only for paths that have another reading (a `%`, a `;`,
//! or an upper-case letter where a prefix could match).

use std::collections::HashMap as StdHashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// The table's maps use an unkeyed multiply-rotate hash (the Fx hash of rustc): two to three
/// times cheaper than SipHash on short names. Hash flooding needs attacker-chosen *keys in
/// the map*; these maps hold only configured names, and a request's host is only looked up,
/// never inserted, so a crafted host costs one probe like any other.
type HashMap<K, V> = StdHashMap<K, V, BuildHasherDefault<FxHasher>>;

#[derive(Default, Clone, Copy)]
struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

use crate::host::normalize_host;
use crate::path::{reread, Reading};

/// What a route admits, as far as ambiguous paths go: two routes with equal keys admit the same
/// requests (for the gateway: the same allowed roles), so a path that one upstream reading
/// sends to the other is harmless. Opaque to this crate; the caller chooses the text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PolicyKey(Arc<str>);

impl PolicyKey {
    /// A key from any text that describes the route's access policy completely.
    pub fn new(key: impl Into<Arc<str>>) -> Self {
        PolicyKey(key.into())
    }
}

/// A path whose readings by common upstreams pick routes with different policies: answered 400
/// by the router (see the [`RouteTable`] docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the path would be routed differently by a server that reads it otherwise")]
pub struct AmbiguousPath;

/// Why a route could not be added.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The host pattern is not a valid name, apex or `*.suffix`.
    #[error("invalid host pattern {0:?}")]
    InvalidHost(String),
    /// The path prefix does not start with `/` or is not already normalised.
    #[error("invalid path prefix {0:?}")]
    InvalidPrefix(String),
    /// The same host pattern and prefix were added twice.
    #[error("duplicate route {0:?}")]
    Duplicate(String),
}

/// What a successful lookup returns: the route and the pattern it was registered under.
#[derive(Debug)]
pub struct Matched<'a, S> {
    /// The route's pattern, e.g. `*.example.com` or `example.com/api`.
    pub pattern: &'a Arc<str>,
    /// The route.
    pub route: &'a S,
}

#[derive(Debug)]
struct PathRoute<S> {
    /// Normalised, without trailing `/` (the root prefix is `/`).
    prefix: Box<str>,
    /// The prefix under each [`Reading`], by [`Reading::index`] (index 0 is `prefix`).
    readings: [Box<str>; 8],
    /// `None`: a policy of its own, equal to no other route's.
    policy: Option<PolicyKey>,
    pattern: Arc<str>,
    route: S,
}

impl<S> PathRoute<S> {
    fn matched(&self) -> Matched<'_, S> {
        Matched {
            pattern: &self.pattern,
            route: &self.route,
        }
    }
}

/// A prefix as [`RouteTable::insert_prefix`] stores it: one trailing `/` dropped.
fn stored_prefix(prefix: &str) -> &str {
    match prefix.strip_suffix('/') {
        Some(p) if !p.is_empty() => p,
        _ => prefix,
    }
}

#[derive(Debug)]
pub(crate) struct HostEntry<S> {
    /// Sorted by prefix length, longest first.
    paths: Vec<PathRoute<S>>,
    /// Whether two routes of this host have different policies: only then can a path be
    /// ambiguous.
    mixed: bool,
    /// Whether some prefix reads differently under some [`Reading`] (an upper-case letter, a
    /// `;` or a `%`): then every path is checked, not only those that look unusual.
    prefix_rereads: bool,
    /// The longest prefix, in bytes.
    longest: usize,
}

impl<S> HostEntry<S> {
    fn new() -> Self {
        HostEntry {
            paths: Vec::new(),
            mixed: false,
            prefix_rereads: false,
            longest: 0,
        }
    }

    fn position(&self, path: &str) -> Option<usize> {
        self.paths
            .iter()
            .position(|r| prefix_matches(&r.prefix, path))
    }

    pub(crate) fn lookup(&self, path: &str) -> Option<Matched<'_, S>> {
        self.position(path).map(|i| self.paths[i].matched())
    }

    /// Like [`HostEntry::lookup`], refusing a path that another [`Reading`] would send to a
    /// route with a different policy (see the [`RouteTable`] docs).
    pub(crate) fn lookup_unambiguous(
        &self,
        path: &str,
    ) -> Result<Option<Matched<'_, S>>, AmbiguousPath> {
        let Some(found) = self.position(path) else {
            return Ok(None);
        };
        if self.mixed && (self.prefix_rereads || self.path_rereads(path)) {
            for reading in Reading::OTHERS {
                if self.reading_differs(found, path, reading) {
                    return Err(AmbiguousPath);
                }
            }
        }
        Ok(Some(self.paths[found].matched()))
    }

    /// Whether some [`Reading`] of `path` may differ from the gateway's where a prefix could
    /// match: a `%` or `;` anywhere, a byte that is not ASCII, or an upper-case letter within
    /// the longest prefix's length (past it, folding case changes no prefix match).
    fn path_rereads(&self, path: &str) -> bool {
        let b = path.as_bytes();
        b.iter().any(|&c| c == b'%' || c == b';' || !c.is_ascii())
            || b.iter().take(self.longest + 1).any(u8::is_ascii_uppercase)
    }

    /// Whether `reading` sends `path` to a route (the longest matching prefix under that
    /// reading; any of them when several tie) whose policy differs from route `found`'s.
    fn reading_differs(&self, found: usize, path: &str, reading: Reading) -> bool {
        let idx = reading.index();
        let reread = reread(path, reading);
        let mut best: Option<usize> = None;
        let mut differs = false;
        for (i, r) in self.paths.iter().enumerate() {
            let prefix = &r.readings[idx];
            if !prefix_matches(prefix, &reread) {
                continue;
            }
            match best {
                Some(len) if prefix.len() < len => continue,
                Some(len) if prefix.len() == len => {}
                _ => {
                    best = Some(prefix.len());
                    differs = false;
                }
            }
            differs |= !self.same_policy(found, i);
        }
        differs
    }

    fn same_policy(&self, a: usize, b: usize) -> bool {
        a == b
            || matches!(
                (&self.paths[a].policy, &self.paths[b].policy),
                (Some(x), Some(y)) if x == y
            )
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Host (+ optional path prefix) → route `S`. Generic over the route, so that this crate
/// knows nothing of what a route holds (policy, proxy…).
#[derive(Debug)]
pub struct RouteTable<S> {
    exact: HashMap<Box<str>, HostEntry<S>>,
    /// Wildcards, keyed by their suffix (the part after `*.`).
    wildcard: HashMap<Box<str>, HostEntry<S>>,
    /// Bit `n` is set when some wildcard suffix has `n` labels (63 stands for 63 or more):
    /// suffixes of other lengths are never probed.
    wildcard_label_counts: u64,
    /// The wildcard suffixes (after `*.`), for [`RouteTable::wildcards`].
    wildcard_names: Vec<Box<str>>,
    len: usize,
}

fn label_bit(labels: usize) -> u64 {
    1u64 << labels.min(63)
}

impl<S> Default for RouteTable<S> {
    fn default() -> Self {
        Self::new()
    }
}

enum Pattern<'a> {
    Exact(std::borrow::Cow<'a, str>),
    Wildcard(std::borrow::Cow<'a, str>),
}

fn parse_pattern(pattern: &str) -> Result<Pattern<'_>, RouteError> {
    let invalid = || RouteError::InvalidHost(pattern.to_owned());
    if pattern.contains(':') {
        return Err(invalid());
    }
    let (wild, name) = match pattern.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    match normalize_host(name) {
        Ok(n) if wild => Ok(Pattern::Wildcard(n)),
        Ok(n) => Ok(Pattern::Exact(n)),
        Err(_) => Err(invalid()),
    }
}

impl<S> RouteTable<S> {
    /// An empty table: every lookup misses.
    pub fn new() -> Self {
        RouteTable {
            exact: HashMap::default(),
            wildcard: HashMap::default(),
            wildcard_label_counts: 0,
            wildcard_names: Vec::new(),
            len: 0,
        }
    }

    /// Adds a route for a whole host: `data.example.com`, `example.com` or `*.example.com`.
    /// Patterns are normalised like request hosts (case, one trailing dot); ports and IP
    /// literals are refused.
    pub fn insert(&mut self, pattern: &str, route: S) -> Result<(), RouteError> {
        self.insert_prefix(pattern, "/", route)
    }

    /// Adds a route for a path prefix within a host. The prefix must start with `/` and be
    /// normalised (see [`crate::normalize_path`]); one trailing `/` is ignored, so `/api` and
    /// `/api/` are the same prefix. The route's policy is its own: a path that another
    /// reading sends to or from it is ambiguous (see the [`RouteTable`] docs).
    pub fn insert_prefix(
        &mut self,
        pattern: &str,
        path_prefix: &str,
        route: S,
    ) -> Result<(), RouteError> {
        self.add(pattern, path_prefix, None, route)
    }

    /// Like [`RouteTable::insert_prefix`], for a route whose access policy is `policy`: a path
    /// that another reading sends to a route with an equal key is not ambiguous.
    pub fn insert_prefix_with_policy(
        &mut self,
        pattern: &str,
        path_prefix: &str,
        policy: PolicyKey,
        route: S,
    ) -> Result<(), RouteError> {
        self.add(pattern, path_prefix, Some(policy), route)
    }

    fn add(
        &mut self,
        pattern: &str,
        path_prefix: &str,
        policy: Option<PolicyKey>,
        route: S,
    ) -> Result<(), RouteError> {
        let parsed = parse_pattern(pattern)?;
        let bad_prefix = || RouteError::InvalidPrefix(path_prefix.to_owned());
        match crate::path::try_normalize_path(path_prefix) {
            Ok(n) if n == path_prefix => {}
            _ => return Err(bad_prefix()),
        }
        if path_prefix.contains('?') {
            return Err(bad_prefix());
        }
        let prefix = stored_prefix(path_prefix);
        let display_host = match &parsed {
            Pattern::Exact(h) => h.to_string(),
            Pattern::Wildcard(h) => format!("*.{h}"),
        };
        let display: Arc<str> = if prefix == "/" {
            display_host.into()
        } else {
            format!("{display_host}{prefix}").into()
        };
        let entry = match &parsed {
            Pattern::Exact(h) => self
                .exact
                .entry(h.as_ref().into())
                .or_insert_with(HostEntry::new),
            Pattern::Wildcard(h) => {
                if !self.wildcard.contains_key(h.as_ref()) {
                    self.wildcard_names.push(h.as_ref().into());
                    self.wildcard_label_counts |= label_bit(h.split('.').count());
                }
                self.wildcard
                    .entry(h.as_ref().into())
                    .or_insert_with(HostEntry::new)
            }
        };
        if entry.paths.iter().any(|r| &*r.prefix == prefix) {
            return Err(RouteError::Duplicate(display.to_string()));
        }
        let at = entry
            .paths
            .partition_point(|r| r.prefix.len() >= prefix.len());
        let mut readings: [Box<str>; 8] = Default::default();
        readings[0] = prefix.into();
        for reading in Reading::OTHERS {
            let reread = reread(prefix, reading);
            entry.prefix_rereads |= reread != prefix;
            readings[reading.index()] = stored_prefix(&reread).into();
        }
        entry.mixed |= entry
            .paths
            .iter()
            .any(|r| r.policy.is_none() || policy.is_none() || r.policy != policy);
        entry.longest = entry.longest.max(prefix.len());
        entry.paths.insert(
            at,
            PathRoute {
                prefix: prefix.into(),
                readings,
                policy,
                pattern: display,
                route,
            },
        );
        self.len += 1;
        Ok(())
    }

    /// The route for a normalised host and normalised path, if any.
    pub fn lookup(&self, host: &str, path: &str) -> Option<&S> {
        self.lookup_match(host, path).map(|m| m.route)
    }

    /// Like [`RouteTable::lookup`], with the pattern that matched.
    pub fn lookup_match(&self, host: &str, path: &str) -> Option<Matched<'_, S>> {
        self.lookup_host(host)?.lookup(path)
    }

    /// Whether any route exists for this host (any path).
    pub fn has_host(&self, host: &str) -> bool {
        self.lookup_host(host).is_some()
    }

    pub(crate) fn lookup_host(&self, host: &str) -> Option<&HostEntry<S>> {
        if let Some(e) = self.exact.get(host) {
            return Some(e);
        }
        if self.wildcard_label_counts == 0 {
            return None;
        }
        // Suffixes after each dot, longest (most specific) first; the first label is never
        // part of a match, so a wildcard always covers at least one label.
        let mut labels_left = host.bytes().filter(|&b| b == b'.').count();
        let mut rest = host;
        while let Some(dot) = rest.find('.') {
            rest = &rest[dot + 1..];
            if self.wildcard_label_counts & label_bit(labels_left) != 0 {
                if let Some(e) = self.wildcard.get(rest) {
                    return Some(e);
                }
            }
            labels_left -= 1;
        }
        None
    }

    /// The exact host names in the table (apex included, wildcards not): the names a
    /// certificate may be ordered for.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.exact.keys().map(|k| &**k)
    }

    /// The wildcard suffixes in the table, as patterns (`*.example.com`).
    pub fn wildcards(&self) -> impl Iterator<Item = String> + '_ {
        self.wildcard_names.iter().map(|k| format!("*.{k}"))
    }

    /// The number of routes (host and prefix pairs).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table has no routes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable<&'static str> {
        let mut t = RouteTable::new();
        t.insert("example.com", "apex").unwrap();
        t.insert("data.example.com", "data").unwrap();
        t.insert("*.example.com", "wild").unwrap();
        t.insert("*.eu.example.com", "eu").unwrap();
        t.insert_prefix("example.com", "/api", "api").unwrap();
        t.insert_prefix("example.com", "/api/v2/", "api2").unwrap();
        t.insert_prefix("only.example.com", "/x", "only-x").unwrap();
        t
    }

    #[test]
    fn exact_apex_and_wildcards() {
        let t = table();
        assert_eq!(t.lookup("example.com", "/"), Some(&"apex"));
        assert_eq!(t.lookup("data.example.com", "/q"), Some(&"data"));
        assert_eq!(t.lookup("other.example.com", "/"), Some(&"wild"));
        assert_eq!(t.lookup("a.b.example.com", "/"), Some(&"wild"));
        assert_eq!(t.lookup("x.eu.example.com", "/"), Some(&"eu"));
        assert_eq!(t.lookup("eu.example.com", "/"), Some(&"wild"));
        assert_eq!(t.lookup("example.org", "/"), None);
        assert_eq!(t.lookup("com", "/"), None);
        assert_eq!(t.lookup("badexample.com", "/"), None);
        let m = t.lookup_match("z.eu.example.com", "/").unwrap();
        assert_eq!(&**m.pattern, "*.eu.example.com");
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let t = table();
        assert_eq!(t.lookup("example.com", "/api"), Some(&"api"));
        assert_eq!(t.lookup("example.com", "/api/"), Some(&"api"));
        assert_eq!(t.lookup("example.com", "/api/x"), Some(&"api"));
        assert_eq!(t.lookup("example.com", "/apix"), Some(&"apex"));
        assert_eq!(t.lookup("example.com", "/api/v2"), Some(&"api2"));
        assert_eq!(t.lookup("example.com", "/api/v2/z"), Some(&"api2"));
        assert_eq!(t.lookup("example.com", "/api/v20"), Some(&"api"));
        assert_eq!(
            &**t.lookup_match("example.com", "/api/v2").unwrap().pattern,
            "example.com/api/v2"
        );
        // The most specific host decides alone: no fallback to the wildcard.
        assert_eq!(t.lookup("only.example.com", "/x/1"), Some(&"only-x"));
        assert_eq!(t.lookup("only.example.com", "/y"), None);
    }

    #[test]
    fn patterns_are_normalised_and_validated() {
        let mut t = RouteTable::new();
        t.insert("Data.Example.COM.", 1).unwrap();
        assert_eq!(t.lookup("data.example.com", "/"), Some(&1));
        assert_eq!(
            t.insert("data.example.com", 2),
            Err(RouteError::Duplicate("data.example.com".into()))
        );
        for bad in [
            "",
            "*",
            "*.",
            "a..b",
            "10.0.0.1",
            "a.com:80",
            "*.*.a.com",
            "a.*.com",
            "[::1]",
        ] {
            assert!(
                matches!(t.insert(bad, 3), Err(RouteError::InvalidHost(_))),
                "{bad}"
            );
        }
        for bad in ["api", "/a/../b", "//a", "/a%2fb", "/a?b"] {
            assert!(
                matches!(
                    t.insert_prefix("a.com", bad, 3),
                    Err(RouteError::InvalidPrefix(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(t.len(), 1);
        t.insert("*.example.com", 4).unwrap();
        assert_eq!(t.hosts().collect::<Vec<_>>(), vec!["data.example.com"]);
        assert_eq!(
            t.wildcards().collect::<Vec<_>>(),
            vec!["*.example.com".to_owned()]
        );
    }

    fn policy(roles: &str) -> PolicyKey {
        PolicyKey::new(roles)
    }

    /// A host with a public root, an admin-only `/admin` and a `/docs` as public as the root.
    fn mixed() -> RouteTable<&'static str> {
        let mut t = RouteTable::new();
        t.insert_prefix_with_policy("app.com", "/", policy("anyone"), "root")
            .unwrap();
        t.insert_prefix_with_policy("app.com", "/admin", policy("admin"), "admin")
            .unwrap();
        t.insert_prefix_with_policy("app.com", "/docs", policy("anyone"), "docs")
            .unwrap();
        t.insert_prefix_with_policy("app.com", "/kiosk", policy("kiosk"), "kiosk")
            .unwrap();
        t
    }

    fn check(
        t: &RouteTable<&'static str>,
        path: &str,
    ) -> Result<Option<&'static str>, AmbiguousPath> {
        let entry = t.lookup_host("app.com").unwrap();
        entry.lookup_unambiguous(path).map(|m| m.map(|m| *m.route))
    }

    #[test]
    fn case_37_other_readings_of_a_restricted_prefix_are_ambiguous() {
        let t = mixed();
        for path in [
            "/admin;x/users",
            "/admin;/users",
            "/admin;jsessionid=1",
            "/;x/admin/users",
            "/ADMIN/users",
            "/Admin",
            "/aDmIn;x/",
            "/admin%3Bx/users",
            "/%E2%84%AAiosk",
            "/KIOSK",
            "/docs/%252e%252e/admin",
        ] {
            assert_eq!(check(&t, path), Err(AmbiguousPath), "{path}");
        }
        // Readings that stay within one policy, or paths with no other reading.
        for (path, want) in [
            ("/admin/users", "admin"),
            ("/admin/Users;v=1", "admin"),
            ("/admin/x;y", "admin"),
            ("/DOCS/x", "root"),
            ("/docs;v=2/x", "root"),
            ("/Users/Profile", "root"),
            ("/public;v=1/app.js", "root"),
            ("/administrator", "root"),
            ("/a%20b", "root"),
            ("/", "root"),
        ] {
            assert_eq!(check(&t, path), Ok(Some(want)), "{path}");
        }
        // The plain lookup is unchanged.
        assert_eq!(t.lookup("app.com", "/ADMIN/users"), Some(&"root"));
    }

    #[test]
    fn routes_without_a_key_differ_from_every_other() {
        let mut t = RouteTable::new();
        t.insert("app.com", "root").unwrap();
        t.insert_prefix("app.com", "/api", "api").unwrap();
        assert_eq!(check(&t, "/API"), Err(AmbiguousPath));
        assert_eq!(check(&t, "/api;x"), Err(AmbiguousPath));
        assert_eq!(check(&t, "/api/x;y"), Ok(Some("api")));

        // One key everywhere: never ambiguous, and never checked.
        let mut t = RouteTable::new();
        t.insert_prefix_with_policy("app.com", "/", policy("a"), "root")
            .unwrap();
        t.insert_prefix_with_policy("app.com", "/api", policy("a"), "api")
            .unwrap();
        assert!(!t.lookup_host("app.com").unwrap().mixed);
        assert_eq!(check(&t, "/API"), Ok(Some("root")));
    }

    /// A prefix that is not lower-case is matched by a case-folding upstream too, even when the
    /// path itself has no upper-case letter.
    #[test]
    fn upper_case_prefixes_are_folded_too() {
        let mut t = RouteTable::new();
        t.insert_prefix_with_policy("app.com", "/", policy("anyone"), "root")
            .unwrap();
        t.insert_prefix_with_policy("app.com", "/Admin", policy("admin"), "admin")
            .unwrap();
        assert_eq!(check(&t, "/admin/x"), Err(AmbiguousPath));
        assert_eq!(check(&t, "/Admin/x"), Ok(Some("admin")));
        assert_eq!(check(&t, "/other"), Ok(Some("root")));
    }
}
