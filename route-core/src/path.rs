//! Path normalisation: the one path that routing, authorization and the upstream all see.
//!
//! [`normalize_path`] (and its strict form [`try_normalize_path`], which the router uses):
//! 1. percent-decodes **unreserved** characters only (`A-Z a-z 0-9 - . _ ~`), so `%2e` becomes
//!    `.` and `%7e` becomes `~`; every other escape is kept, with its hex digits uppercased;
//! 2. resolves `.` and `..` segments (RFC 3986 §5.2.4), also those that were encoded as `%2e`;
//!    `..` never climbs above the root;
//! 3. collapses empty segments (`//` becomes `/`).
//!
//! The strict form refuses, with [`PathError`] (answered 400 by the router), everything that
//! some upstream might read as a different path than the gateway did:
//! - `%2F` (encoded `/`) and `%5C` (encoded `\`): an upstream that decodes them would see
//!   other segments than the ones authorization checked;
//! - a raw `\` (some servers treat it as `/`);
//! - `%00` and any other encoded or raw control byte (C string truncation, log injection);
//! - a malformed escape (`%zz`, `%2`), since servers disagree on its meaning;
//! - a dot segment followed by a path parameter (`..;x`, `.;x`), which servlet containers
//!   treat as `..`;
//! - a path that does not start with `/` (`*`, authority-form).
//!
//! `%25` (an encoded `%`) is kept as `%25` and never decoded twice, so `%252e%252e` stays
//! literal text, not a dot segment.
//!
//! Even a normalised path has other readings that common upstreams use ([`Reading`]): Tomcat
//! and Spring drop `;` segment parameters (`/admin;x/users` is `/admin/users` to them), a
//! case-insensitive server (IIS, a case-insensitive file system, a framework with
//! case-insensitive routes) folds case (`/ADMIN` is `/admin`), and a server that decodes the
//! path before either step (once, or twice like old IIS) also finds `%3B`, encoded letters
//! (`%E2%84%AA`, the Kelvin sign, folds to `k` in Java's `equalsIgnoreCase`) and dot segments
//! (`%252e%252e`). [`reread`] gives a path as such a server sees it;
//! the route table uses it to refuse paths that those readings would route elsewhere.

use std::borrow::Cow;

/// Why a request path was refused by [`try_normalize_path`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/`.
    #[error("the path does not start with /")]
    NotAbsolute,
    /// An encoded `/` or `\` (`%2F`, `%5C`) or a raw `\`.
    #[error("the path contains an encoded slash or a backslash")]
    Separator,
    /// An encoded or raw control byte (NUL included).
    #[error("the path contains a control byte")]
    Control,
    /// A `%` not followed by two hex digits.
    #[error("the path contains a malformed percent-escape")]
    BadEscape,
    /// `.;` or `..;` segments.
    #[error("the path contains a dot segment with parameters")]
    DotParameter,
}

/// Normalises a request path (lenient: never fails). Borrows when nothing changes.
///
/// Escapes that the strict form refuses are kept encoded here, so this function never turns
/// one segment into two; a `%` that starts no valid escape is written as `%25`, so that the
/// result normalises to itself. A path that does not start with `/` is returned unchanged.
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    match normalize(path, false) {
        Ok(p) => p,
        // Lenient mode reports no errors; keep the input as it is rather than guess.
        Err(_) => Cow::Borrowed(path),
    }
}

/// Normalises a request path like [`normalize_path`], refusing the inputs listed in the
/// module docs.
pub fn try_normalize_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    normalize(path, true)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// True when the path needs no rewriting: no `%`, no `//`, no dot segment, no `\` or control
/// byte. This is the common case and costs one pass without allocation.
fn is_clean(p: &[u8]) -> bool {
    let n = p.len();
    let mut i = 0;
    while i < n {
        let b = p[i];
        if b == b'%' || b == b'\\' || b < 0x20 || b == 0x7f {
            return false;
        }
        if b == b'/' && i + 1 < n {
            let c = p[i + 1];
            if c == b'/' {
                return false;
            }
            if c == b'.' {
                // "/." then end, '/', ';' or ".": a dot segment (or a dot parameter).
                let d = p.get(i + 2).copied();
                if matches!(d, None | Some(b'/') | Some(b';')) {
                    return false;
                }
                if d == Some(b'.')
                    && matches!(p.get(i + 3).copied(), None | Some(b'/') | Some(b';'))
                {
                    return false;
                }
            }
        }
        i += 1;
    }
    true
}

fn normalize(path: &str, strict: bool) -> Result<Cow<'_, str>, PathError> {
    let p = path.as_bytes();
    if p.first() != Some(&b'/') {
        return if strict {
            Err(PathError::NotAbsolute)
        } else {
            Ok(Cow::Borrowed(path))
        };
    }
    if is_clean(p) {
        return Ok(Cow::Borrowed(path));
    }

    // Pass 1: decode unreserved escapes, uppercase the others, check separators and controls.
    let mut decoded = String::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        let b = p[i];
        if b == b'%' {
            match (
                p.get(i + 1).copied().and_then(hex),
                p.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    let c = h << 4 | l;
                    if is_unreserved(c) {
                        decoded.push(c as char);
                    } else {
                        if strict {
                            if c == b'/' || c == b'\\' {
                                return Err(PathError::Separator);
                            }
                            if c < 0x20 || c == 0x7f {
                                return Err(PathError::Control);
                            }
                        }
                        decoded.push('%');
                        decoded.push(char::from(b"0123456789ABCDEF"[usize::from(h)]));
                        decoded.push(char::from(b"0123456789ABCDEF"[usize::from(l)]));
                    }
                    i += 3;
                    continue;
                }
                _ if strict => return Err(PathError::BadEscape),
                _ => {
                    // Lenient: a `%` that starts no escape is written as `%25`. Kept bare, it
                    // could form an escape with what follows once that is decoded (`%%32e`
                    // would become `%2e`, then `.` on the next pass): the result would not be
                    // stable under normalisation.
                    decoded.push_str("%25");
                    i += 1;
                    continue;
                }
            }
        } else if strict && b == b'\\' {
            return Err(PathError::Separator);
        } else if strict && (b < 0x20 || b == 0x7f) {
            return Err(PathError::Control);
        }
        // Only ASCII reaches here from an `http::Uri`; other text is copied through whole.
        let ch_len = utf8_len(b);
        decoded.push_str(&path[i..i + ch_len]);
        i += ch_len;
    }

    // Pass 2: resolve dot segments and collapse empty ones.
    let mut out = String::with_capacity(decoded.len());
    let mut ends_dir = false;
    for seg in decoded.split('/').skip(1) {
        ends_dir = true;
        match seg {
            "" | "." => {}
            ".." => {
                if let Some(at) = out.rfind('/') {
                    out.truncate(at);
                }
            }
            s => {
                if strict && (s.starts_with(".;") || s.starts_with("..;")) {
                    return Err(PathError::DotParameter);
                }
                out.push('/');
                out.push_str(s);
                ends_dir = false;
            }
        }
    }
    if out.is_empty() || ends_dir {
        out.push('/');
    }
    if out == path {
        Ok(Cow::Borrowed(path))
    } else {
        Ok(Cow::Owned(out))
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

/// One way an upstream may read a path differently from the gateway. The gateway's own
/// reading is `Reading::default()` (every field false).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Reading {
    /// Every percent-escape is decoded first, twice (the bytes read as UTF-8): a server that
    /// decodes again after its own routing step reads `%252e%252e` as `..` and `%2541` as
    /// `A` (the IIS double-decoding bug class).
    pub(crate) decode: bool,
    /// `;` and everything after it up to the end of its segment is dropped (Tomcat, Spring).
    pub(crate) params: bool,
    /// Case is folded, Unicode included (see [`fold`]).
    pub(crate) fold: bool,
}

impl Reading {
    /// Every reading other than the gateway's own: each combination of the three steps.
    pub(crate) const OTHERS: [Reading; 7] = {
        let mut all = [Reading {
            decode: false,
            params: false,
            fold: false,
        }; 7];
        let mut i = 0;
        while i < 7 {
            let bits = i + 1;
            all[i] = Reading {
                decode: bits & 1 != 0,
                params: bits & 2 != 0,
                fold: bits & 4 != 0,
            };
            i += 1;
        }
        all
    };

    /// This reading's index in a table of all eight (the gateway's own is 0).
    pub(crate) fn index(self) -> usize {
        usize::from(self.decode) | usize::from(self.params) << 1 | usize::from(self.fold) << 2
    }
}

/// One character, case-folded the way the loosest common comparison does: Java's
/// `equalsIgnoreCase` calls two characters equal when their upper cases or their lower cases
/// are, so `K` (Kelvin sign) equals `k`, `ſ` (long s) equals `s` and `İ` equals `i`. An ASCII
/// letter either way wins; otherwise the lower case.
fn fold(c: char, out: &mut String) {
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase());
        return;
    }
    let lower = c.to_lowercase().next();
    let upper_lower = c
        .to_uppercase()
        .next()
        .and_then(|u| u.to_lowercase().next());
    match (lower, upper_lower) {
        (Some(l), _) if l.is_ascii() => out.push(l),
        (_, Some(u)) if u.is_ascii() => out.push(u),
        _ => out.extend(c.to_lowercase()),
    }
}

fn percent_decode(path: &str) -> String {
    let p = path.as_bytes();
    let mut out = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        if p[i] == b'%' {
            if let (Some(h), Some(l)) = (
                p.get(i + 1).copied().and_then(hex),
                p.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(p[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `path` (already normalised by the gateway) as an upstream reading it with `reading` sees it,
/// with dot segments resolved and empty segments collapsed again afterwards (`/;x/admin` is
/// `//admin` once the parameter is gone, then `/admin`).
pub(crate) fn reread(path: &str, reading: Reading) -> String {
    let decoded;
    let text = if reading.decode {
        decoded = percent_decode(&percent_decode(path));
        decoded.as_str()
    } else {
        path
    };
    let mut out = String::with_capacity(text.len());
    let mut ends_dir = false;
    let mut seg_buf = String::new();
    for seg in text.split('/').skip(1) {
        let seg = if reading.params {
            seg.split(';').next().unwrap_or(seg)
        } else {
            seg
        };
        let seg = if reading.fold {
            seg_buf.clear();
            for c in seg.chars() {
                fold(c, &mut seg_buf);
            }
            seg_buf.as_str()
        } else {
            seg
        };
        ends_dir = true;
        match seg {
            "" | "." => {}
            ".." => {
                if let Some(at) = out.rfind('/') {
                    out.truncate(at);
                }
            }
            s => {
                out.push('/');
                out.push_str(s);
                ends_dir = false;
            }
        }
    }
    if out.is_empty() || ends_dir {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths_are_borrowed() {
        for p in [
            "/",
            "/a",
            "/a/b/",
            "/.well-known/acme-challenge/x",
            "/a.b/c..d/...",
            "/a-b_c~",
        ] {
            let n = try_normalize_path(p).unwrap();
            assert!(matches!(n, Cow::Borrowed(_)), "{p}");
            assert_eq!(n, p);
        }
    }

    #[test]
    fn resolves_dots_and_slashes() {
        let cases = [
            ("//", "/"),
            ("//a//b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/../../x", "/x"),
            ("/healthz/../x", "/x"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/", "/a/b/"),
            ("/%2e%2e/admin", "/admin"),
            ("/%2E%2e/%2e/admin", "/admin"),
            ("/.%2e/admin", "/admin"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/%61%62c", "/abc"),
            ("/a%7eb", "/a~b"),
            ("/a%3fb", "/a%3Fb"),
            ("/%252e%252e/x", "/%252e%252e/x"),
            ("/.well-known/acme-challenge/../../admin", "/admin"),
        ];
        for (input, want) in cases {
            assert_eq!(try_normalize_path(input).unwrap(), want, "{input}");
            assert_eq!(normalize_path(input), want, "{input}");
        }
    }

    #[test]
    fn strict_refuses_ambiguous_input() {
        let cases = [
            ("/a%2fb", PathError::Separator),
            ("/a%2Fb", PathError::Separator),
            ("/a%5cb", PathError::Separator),
            ("/a\\b", PathError::Separator),
            ("/a%00b", PathError::Control),
            ("/a%0d%0ab", PathError::Control),
            ("/a%zz", PathError::BadEscape),
            ("/a%2", PathError::BadEscape),
            ("/..;/admin", PathError::DotParameter),
            ("/a/.;x/b", PathError::DotParameter),
            ("*", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
        ];
        for (input, want) in cases {
            assert_eq!(try_normalize_path(input), Err(want), "{input:?}");
        }
        // Lenient mode keeps them encoded instead: never one segment turned into two.
        assert_eq!(normalize_path("/a%2fb/../c"), "/c");
        assert_eq!(normalize_path("/a%2fb"), "/a%2Fb");
        assert_eq!(normalize_path("*"), "*");
    }

    /// Found by the `host_and_path` fuzz target: a lone `%` kept bare formed a new escape with
    /// the decoded bytes after it, so a second pass changed the path again (`/%%32e` gave
    /// `/%2e`, then `/`).
    #[test]
    fn lenient_result_normalises_to_itself() {
        let cases = [
            ("/%%32e", "/%252e"),
            ("/%%34%31", "/%2541"),
            ("/%%32e%%32e/admin", "/%252e%252e/admin"),
            ("/a%zz", "/a%25zz"),
            ("/a%2", "/a%252"),
            ("/50%", "/50%25"),
        ];
        for (input, want) in cases {
            let once = normalize_path(input);
            assert_eq!(once, want, "{input}");
            assert_eq!(normalize_path(&once), once, "{input}: not stable");
        }
    }

    #[test]
    fn other_readings() {
        let r = |decode, params, fold| Reading {
            decode,
            params,
            fold,
        };
        let cases = [
            ("/admin;x/users", r(false, true, false), "/admin/users"),
            ("/;x/admin", r(false, true, false), "/admin"),
            ("/a/b;x/..;y/c", r(false, true, false), "/a/c"),
            (
                "/admin%3Bx/users",
                r(false, true, false),
                "/admin%3Bx/users",
            ),
            ("/admin%3Bx/users", r(true, true, false), "/admin/users"),
            ("/ADMIN/Users", r(false, false, true), "/admin/users"),
            ("/%E2%84%AAiosk", r(false, false, true), "/%e2%84%aaiosk"),
            ("/%E2%84%AAiosk", r(true, false, true), "/kiosk"),
            ("/%C5%BFecret", r(true, false, true), "/secret"),
            ("/%C4%B0ndex", r(true, false, true), "/index"),
            ("/A%3Bx/", r(true, true, true), "/a/"),
            ("/a%20b", r(true, false, false), "/a b"),
            ("/p/%252e%252e/admin", r(true, false, false), "/admin"),
            ("/%2541dmin", r(true, false, true), "/admin"),
            ("/", r(true, true, true), "/"),
        ];
        for (input, reading, want) in cases {
            assert_eq!(reread(input, reading), want, "{input} {reading:?}");
        }
        assert_eq!(Reading::OTHERS.len(), 7);
        assert!(Reading::OTHERS.iter().all(|r| *r != Reading::default()));
        let mut seen: Vec<usize> = Reading::OTHERS.iter().map(|r| r.index()).collect();
        seen.sort();
        assert_eq!(seen, [1, 2, 3, 4, 5, 6, 7]);
    }
}
