//! route-core's W3C Trace Context parsers (`route_core::trace`): `parse_traceparent`,
//! `check_tracestate`, `bound_tracestate`, and the `traceparent` the gateway writes from what
//! it kept. These read headers a trusted front proxy forwards from clients, so they are fed
//! arbitrary bytes here, through the public API only.
//!
//! Input: `traceparent\ntracestate 1\ntracestate 2…`, split at `\n` (a `tracestate` sent in
//! several header lines is one list). Every check below is a documented contract of
//! `src/trace/parse.rs`, compared with a reference written from the spec's grammar.
#![no_main]

use route_core::trace::{
    bound_tracestate, check_tracestate, parse_traceparent, MAX_TRACESTATE_BYTES,
    MAX_TRACESTATE_MEMBERS,
};
use route_core::TraceContext;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&b| b == b'\n');
    let traceparent = lines.next().unwrap_or_default();
    let tracestate: Vec<&[u8]> = lines.collect();
    check_traceparent(traceparent);
    check_tracestate_values(&tracestate);
});

/// `parse_traceparent` accepts exactly what the reference accepts, and what it keeps is the
/// input: the ids and flags written back as lowercase hex give its first 55 bytes.
fn check_traceparent(value: &[u8]) {
    let parsed = parse_traceparent(value);
    assert_eq!(
        parsed.is_ok(),
        reference_traceparent(value),
        "{:?}: {parsed:?}",
        String::from_utf8_lossy(value)
    );
    let Ok(p) = parsed else {
        return;
    };
    let written = format!(
        "{:02x}-{}-{}-{:02x}",
        p.version, p.trace_id, p.parent_id, p.flags
    );
    assert_eq!(written.as_bytes(), &value[..55], "not the input read back");

    // The gateway's child span: same trace, the caller's span as parent, a new non-zero span
    // id, only the known flags kept (sampled, and Level 2's random), and a version-00 header
    // that parses back to the same.
    let child = TraceContext::child_of(&p);
    assert_eq!(child.trace_id, p.trace_id);
    assert_eq!(child.parent_span_id, Some(p.parent_id));
    assert!(child.span_id.0.iter().any(|b| *b != 0), "all-zero span id");
    assert_eq!(child.flags, p.flags & 0x03, "reserved flags forwarded");
    let sent = child.traceparent_bytes();
    let again = parse_traceparent(&sent).expect("the gateway's own traceparent parses");
    assert_eq!(again.version, 0);
    assert_eq!(again.trace_id, p.trace_id);
    assert_eq!(again.parent_id, child.span_id);
    assert_eq!(again.flags, child.flags);
    assert!(child.traceparent_value().is_some(), "not a header value");
}

/// W3C Trace Context §3.2 and §4.3, written out independently of the parser.
fn reference_traceparent(v: &[u8]) -> bool {
    let lower_hex = |s: &[u8]| s.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let non_zero = |s: &[u8]| s.iter().any(|b| *b != b'0');
    if v.len() < 55 {
        return false;
    }
    let (version, trace, parent, flags) = (&v[0..2], &v[3..35], &v[36..52], &v[53..55]);
    let fields_ok = lower_hex(version)
        && version != b"ff"
        && v[2] == b'-'
        && v[35] == b'-'
        && v[52] == b'-'
        && lower_hex(trace)
        && non_zero(trace)
        && lower_hex(parent)
        && non_zero(parent)
        && lower_hex(flags);
    let tail_ok = if version == b"00" {
        v.len() == 55
    } else {
        // A later version: its own fields may follow after a dash.
        v.len() == 55 || v[55] == b'-'
    };
    fields_ok && tail_ok
}

/// `check_tracestate` and `bound_tracestate` agree on validity; what is forwarded is valid,
/// at most 512 bytes, made of the input's own members in their order, and the input itself
/// when that already fits.
fn check_tracestate_values(values: &[&[u8]]) {
    let joined = values.join(&b","[..]);
    let members = |v: &[u8]| -> Vec<Vec<u8>> {
        v.split(|b| *b == b',')
            .map(|m| m.trim_ascii().to_vec())
            .filter(|m| !m.is_empty())
            .collect()
    };
    let checked = check_tracestate(&joined);
    let bounded = bound_tracestate(values);
    assert_eq!(
        checked.is_ok(),
        bounded.is_ok(),
        "check {checked:?}, bound {bounded:?}"
    );
    if let Ok(n) = checked {
        assert!(n <= MAX_TRACESTATE_MEMBERS);
        assert_eq!(n, members(&joined).len(), "member count");
    }
    let Ok(bounded) = bounded else {
        return;
    };
    let input = members(&joined);
    match bounded {
        None => assert!(
            input.is_empty() || joined.len() > MAX_TRACESTATE_BYTES,
            "a valid, short tracestate was dropped"
        ),
        Some(kept) => {
            assert!(kept.len() <= MAX_TRACESTATE_BYTES, "{} bytes", kept.len());
            assert!(check_tracestate(&kept).is_ok(), "forwarded an invalid list");
            if joined.len() <= MAX_TRACESTATE_BYTES {
                assert_eq!(&kept[..], &joined[..], "a list that fits was changed");
            }
            // A subsequence of the input's members.
            let mut rest = input.iter();
            for m in members(&kept) {
                assert!(
                    rest.any(|i| *i == m),
                    "{:?} is not one of the input's members, in order",
                    String::from_utf8_lossy(&m)
                );
            }
        }
    }
}
