//! The W3C Trace Context header grammars, as pure functions over bytes.

use std::borrow::Cow;

use super::{SpanId, TraceId};

/// The most list members a `tracestate` may have (W3C Trace Context §3.3.1.1); a longer one
/// is dropped whole.
pub const MAX_TRACESTATE_MEMBERS: usize = 32;
/// The longest `tracestate` forwarded (§3.3.1.5: at least 512 characters must be propagated);
/// a longer one is truncated as the spec says ([`bound_tracestate`]).
pub const MAX_TRACESTATE_BYTES: usize = 512;
/// Members longer than this go first when a `tracestate` is truncated (§3.3.1.5).
const LONG_MEMBER: usize = 128;

/// A valid `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    /// The version (`00` today; a higher one was read by the forward-compatibility rules).
    pub version: u8,
    /// The trace id (not all zero).
    pub trace_id: TraceId,
    /// The caller's span id (not all zero).
    pub parent_id: SpanId,
    /// The trace flags as sent.
    pub flags: u8,
}

/// Why a `traceparent` is invalid: the trace is restarted (§3.2.2, §4.3).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TraceParentError {
    /// Shorter than 55 bytes, or longer for version `00`.
    #[error("traceparent has the wrong length")]
    Length,
    /// The version is not two lowercase hex digits, or is the invalid `ff`.
    #[error("traceparent version is invalid")]
    Version,
    /// A field is not followed by `-` where the grammar puts one.
    #[error("traceparent fields are not separated by dashes")]
    Separator,
    /// The trace id is not 32 lowercase hex digits, or is all zero.
    #[error("traceparent trace id is invalid")]
    TraceId,
    /// The parent id is not 16 lowercase hex digits, or is all zero.
    #[error("traceparent parent id is invalid")]
    ParentId,
    /// The flags are not two lowercase hex digits.
    #[error("traceparent flags are invalid")]
    Flags,
}

/// Why a `tracestate` is dropped.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TraceStateError {
    /// A list member is not `key=value` by the grammar of §3.3.1.3.
    #[error("tracestate has an invalid list member")]
    Member,
    /// Two members have the same key (§3.3.1.3: keys are unique).
    #[error("tracestate repeats a key")]
    DuplicateKey,
    /// More than [`MAX_TRACESTATE_MEMBERS`] members.
    #[error("tracestate has more than 32 list members")]
    TooManyMembers,
}

/// Lowercase hex only: §3.2.2 requires it, and an uppercase id is invalid.
fn nibble(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

fn hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// Parses a `traceparent` value (W3C Trace Context §3.2): `version-traceid-parentid-flags`,
/// lowercase hex, neither id all zero, version `ff` invalid. Version `00` is exactly 55
/// bytes; a higher version is read by §4.3's forward-compatibility rules: at least 55 bytes,
/// the four known fields where version `00` has them, and after the flags either the end or
/// a `-` (what follows is that version's and ignored).
pub fn parse_traceparent(value: &[u8]) -> Result<TraceParent, TraceParentError> {
    if value.len() < super::TRACEPARENT_LEN {
        return Err(TraceParentError::Length);
    }
    let [version] = hex::<1>(&value[0..2]).ok_or(TraceParentError::Version)?;
    if version == 0xff {
        return Err(TraceParentError::Version);
    }
    if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return Err(TraceParentError::Separator);
    }
    let trace_id = hex::<16>(&value[3..35])
        .filter(|id| id.iter().any(|b| *b != 0))
        .ok_or(TraceParentError::TraceId)?;
    let parent_id = hex::<8>(&value[36..52])
        .filter(|id| id.iter().any(|b| *b != 0))
        .ok_or(TraceParentError::ParentId)?;
    let [flags] = hex::<1>(&value[53..55]).ok_or(TraceParentError::Flags)?;
    match value.get(55) {
        None => {}
        Some(_) if version == 0 => return Err(TraceParentError::Length),
        Some(b'-') => {}
        Some(_) => return Err(TraceParentError::Separator),
    }
    Ok(TraceParent {
        version,
        trace_id: TraceId(trace_id),
        parent_id: SpanId(parent_id),
        flags,
    })
}

/// The list members of a `tracestate` value: split at commas, optional whitespace around
/// each trimmed, empty members skipped (§3.3.1.1 allows them).
fn members(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(|m| m.trim_ascii())
        .filter(|m| !m.is_empty())
}

fn key_char(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/')
}

/// `simple-key` or `tenant-id@system-id` (§3.3.1.3.1).
fn valid_key(key: &[u8]) -> bool {
    match key.iter().position(|b| *b == b'@') {
        None => {
            matches!(key.first(), Some(b'a'..=b'z'))
                && key.len() <= 256
                && key.iter().all(|b| key_char(*b))
        }
        Some(at) => {
            let (tenant, system) = (&key[..at], &key[at + 1..]);
            matches!(tenant.first(), Some(b'a'..=b'z' | b'0'..=b'9'))
                && tenant.len() <= 241
                && tenant.iter().all(|b| key_char(*b))
                && matches!(system.first(), Some(b'a'..=b'z'))
                && system.len() <= 14
                && system.iter().all(|b| key_char(*b))
        }
    }
}

/// 1 to 256 printable ASCII characters other than `,` and `=`, not ending in a space
/// (§3.3.1.3.2).
fn valid_value(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= 256
        && value.last() != Some(&b' ')
        && value
            .iter()
            .all(|b| matches!(b, 0x20..=0x7e) && *b != b',' && *b != b'=')
}

fn split_member(member: &[u8]) -> Option<(&[u8], &[u8])> {
    let eq = member.iter().position(|b| *b == b'=')?;
    let (key, value) = (&member[..eq], &member[eq + 1..]);
    (valid_key(key) && valid_value(value)).then_some((key, value))
}

/// Checks a (combined) `tracestate` value against §3.3.1: every list member `key=value` by
/// the grammar, keys unique, at most [`MAX_TRACESTATE_MEMBERS`] members. Returns how many
/// members it has.
pub fn check_tracestate(value: &[u8]) -> Result<usize, TraceStateError> {
    // Keys seen so far, for the uniqueness check: at most 32, so a linear scan is cheapest.
    let mut keys: [&[u8]; MAX_TRACESTATE_MEMBERS] = [&[]; MAX_TRACESTATE_MEMBERS];
    let mut n = 0;
    for member in members(value) {
        let (key, _) = split_member(member).ok_or(TraceStateError::Member)?;
        if n == MAX_TRACESTATE_MEMBERS {
            return Err(TraceStateError::TooManyMembers);
        }
        if keys[..n].contains(&key) {
            return Err(TraceStateError::DuplicateKey);
        }
        keys[n] = key;
        n += 1;
    }
    Ok(n)
}

/// The `tracestate` to forward from the values a trusted caller sent (several headers are
/// one list, §3.3.1.1): `Ok(None)` when there is nothing to forward, the value itself
/// (borrowed) when it is valid and short enough, and otherwise a rebuilt value. Over
/// [`MAX_TRACESTATE_BYTES`], members longer than 128 bytes are removed first, then members
/// from the end, until it fits (§3.3.1.5). An invalid list is an error: it is dropped whole.
pub fn bound_tracestate<'a>(values: &[&'a [u8]]) -> Result<Option<Cow<'a, [u8]>>, TraceStateError> {
    let joined: Cow<'a, [u8]> = match values {
        [] => return Ok(None),
        [one] => Cow::Borrowed(one),
        many => Cow::Owned(many.join(&b","[..])),
    };
    let n = check_tracestate(&joined)?;
    if n == 0 {
        return Ok(None);
    }
    if joined.len() <= MAX_TRACESTATE_BYTES {
        return Ok(Some(joined));
    }
    let all: Vec<&[u8]> = members(&joined).collect();
    let size =
        |kept: &[&[u8]]| kept.iter().map(|m| m.len()).sum::<usize>() + kept.len().saturating_sub(1);
    let mut kept: Vec<&[u8]> = all.clone();
    if size(&kept) > MAX_TRACESTATE_BYTES {
        kept.retain(|m| m.len() <= LONG_MEMBER);
    }
    while size(&kept) > MAX_TRACESTATE_BYTES {
        kept.pop();
    }
    if kept.is_empty() {
        return Ok(None);
    }
    Ok(Some(Cow::Owned(kept.join(&b","[..]))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn version_00_is_parsed() {
        let p = parse_traceparent(VALID.as_bytes()).unwrap();
        assert_eq!(p.version, 0);
        assert_eq!(p.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(p.parent_id.to_string(), "00f067aa0ba902b7");
        assert_eq!(p.flags, 1);
    }

    #[test]
    fn invalid_traceparents_are_refused() {
        use TraceParentError as E;
        for (value, why) in [
            ("", E::Length),
            (&VALID[..54], E::Length),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                E::Length,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",
                E::Length,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                E::Version,
            ),
            (
                "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                E::Version,
            ),
            (
                "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                E::Version,
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                E::Separator,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
                E::Separator,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
                E::Separator,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                E::TraceId,
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                E::TraceId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01",
                E::TraceId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                E::ParentId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
                E::ParentId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
                E::Flags,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
                E::Flags,
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
                E::Separator,
            ),
        ] {
            assert_eq!(parse_traceparent(value.as_bytes()), Err(why), "{value}");
        }
    }

    /// §4.3: a higher version is read for the fields version 00 knows; what follows a dash
    /// after the flags is ignored.
    #[test]
    fn future_versions_are_read_forward_compatibly() {
        let exact = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let longer =
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds";
        for v in [exact, longer] {
            let p = parse_traceparent(v.as_bytes()).unwrap();
            assert_eq!(p.version, 0xcc);
            assert_eq!(p.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_eq!(p.flags, 1);
        }
    }

    #[test]
    fn tracestate_grammar() {
        for ok in [
            "congo=t61rcWkgMzE",
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
            " rojo=1 , ,\tcongo=2 ",
            "tenant1@vendor=x",
            "0tenant@v=x",
            "a/b*c_d-e=val ue",
        ] {
            assert!(check_tracestate(ok.as_bytes()).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("Rojo=1", TraceStateError::Member),
            ("rojo", TraceStateError::Member),
            ("rojo=", TraceStateError::Member),
            ("rojo=a=b", TraceStateError::Member),
            ("rojo=a\tb", TraceStateError::Member),
            ("1rojo=x", TraceStateError::Member),
            ("t@V=x", TraceStateError::Member),
            ("t@vendorvendorvendor=x", TraceStateError::Member),
            ("rojo=\u{7f}", TraceStateError::Member),
            ("rojo=1,rojo=2", TraceStateError::DuplicateKey),
        ] {
            assert_eq!(check_tracestate(bad.as_bytes()), Err(why), "{bad}");
        }
        let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert_eq!(
            check_tracestate(many.join(",").as_bytes()),
            Err(TraceStateError::TooManyMembers)
        );
        assert_eq!(check_tracestate(many[..32].join(",").as_bytes()), Ok(32));
    }

    #[test]
    fn tracestate_is_combined_and_bounded() {
        assert_eq!(bound_tracestate(&[]), Ok(None));
        assert_eq!(bound_tracestate(&[b" , "]), Ok(None));
        let one: &[u8] = b"rojo=1";
        assert!(matches!(
            bound_tracestate(&[one]),
            Ok(Some(Cow::Borrowed(_)))
        ));
        assert_eq!(
            bound_tracestate(&[b"rojo=1", b"congo=2"])
                .unwrap()
                .unwrap()
                .as_ref(),
            b"rojo=1,congo=2"
        );
        // Duplicates across headers are still duplicates.
        assert_eq!(
            bound_tracestate(&[b"rojo=1", b"rojo=2"]),
            Err(TraceStateError::DuplicateKey)
        );
        // Over 512 bytes: the long member goes first, then members from the end.
        let long = format!("big={}", "x".repeat(200));
        let small: Vec<String> = (0..30)
            .map(|i| format!("k{i:02}={}", "y".repeat(10)))
            .collect();
        let value = format!("{},{long}", small.join(","));
        let bounded = bound_tracestate(&[value.as_bytes()]).unwrap().unwrap();
        let text = std::str::from_utf8(&bounded).unwrap();
        assert!(!text.contains("big="), "{text}");
        assert!(text.len() <= MAX_TRACESTATE_BYTES);
        assert!(text.starts_with("k00="));
        // 30 members of 14 bytes and 29 commas: 449 bytes, all kept.
        assert_eq!(text.split(',').count(), 30);
        let wide: Vec<String> = (0..8)
            .map(|i| format!("k{i}={}", "z".repeat(100)))
            .collect();
        let wide_value = wide.join(",");
        let bounded = bound_tracestate(&[wide_value.as_bytes()]).unwrap().unwrap();
        let text = std::str::from_utf8(&bounded).unwrap();
        assert_eq!(text, wide[..4].join(","));
    }

    proptest! {
        /// Whatever the bytes, the parser never panics, and what it accepts is exactly what
        /// the same context writes back (for version 00).
        #[test]
        fn traceparent_parser_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = parse_traceparent(&bytes) {
                prop_assert!(p.trace_id.0.iter().any(|b| *b != 0));
                prop_assert!(p.parent_id.0.iter().any(|b| *b != 0));
                if p.version == 0 {
                    let again = format!("00-{}-{}-{:02x}", p.trace_id, p.parent_id, p.flags);
                    prop_assert_eq!(again.as_bytes(), &bytes[..]);
                }
            }
        }

        /// Every well-formed version-00 value is accepted.
        #[test]
        fn well_formed_traceparents_parse(
            trace in any::<[u8; 16]>(), parent in any::<[u8; 8]>(), flags in any::<u8>(),
        ) {
            prop_assume!(trace.iter().any(|b| *b != 0) && parent.iter().any(|b| *b != 0));
            let v = format!("00-{}-{}-{flags:02x}", TraceId(trace), SpanId(parent));
            let p = parse_traceparent(v.as_bytes()).unwrap();
            prop_assert_eq!((p.trace_id.0, p.parent_id.0, p.flags), (trace, parent, flags));
        }

        /// Whatever a caller sends, what is forwarded is a valid tracestate within the
        /// bounds.
        #[test]
        fn bounded_tracestate_is_valid_and_bounded(
            values in proptest::collection::vec("[a-z0-9=, @*/_-]{0,300}", 0..4),
        ) {
            let values: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
            if let Ok(Some(v)) = bound_tracestate(&values) {
                prop_assert!(v.len() <= MAX_TRACESTATE_BYTES);
                let n = check_tracestate(&v);
                prop_assert!(matches!(n, Ok(1..=MAX_TRACESTATE_MEMBERS)), "{:?}", n);
            }
        }
    }
}
