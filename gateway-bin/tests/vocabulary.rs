//! One error vocabulary (issue 14, item 6): every refusal any crate answers by itself is
//! `{"error", "code"}`, and each code has exactly one status and one message across all crates.
//!
//! The first test collects every crate's table of refusals; the second reads the crates'
//! sources and fails on a JSON error body written anywhere but in those tables' modules, so a
//! handler cannot bring back an inline error body unnoticed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[test]
fn each_code_has_one_status_and_one_message_across_the_crates() {
    let mut all: Vec<(&str, u16, &str, &str)> = Vec::new();
    for (name, table) in [
        ("route-core", route_core::Rejection::ALL),
        ("session-core", session_core::rejection::ALL),
        ("gateway-bin", gateway_bin::reject::ALL),
    ] {
        assert!(!table.is_empty(), "{name}");
        for r in table {
            // The body is the JSON the code and message say.
            let body: serde_json::Value = serde_json::from_str(r.body()).unwrap();
            assert_eq!(
                body,
                serde_json::json!({ "error": r.message, "code": r.code }),
                "{name}"
            );
            all.push((name, r.status.as_u16(), r.code, r.message));
        }
    }
    for (status, code, message) in cert_core::REJECTIONS {
        all.push(("cert-core", *status, code, message));
    }
    let mut seen: BTreeMap<&str, (&str, u16, &str)> = BTreeMap::new();
    for (krate, status, code, message) in &all {
        assert!(
            !code.is_empty()
                && code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{krate}: `{code}` is not kebab-case"
        );
        if let Some((first, s, m)) = seen.get(code) {
            assert_eq!(
                (s, m),
                (status, message),
                "`{code}`: {first} and {krate} disagree"
            );
        } else {
            seen.insert(code, (krate, *status, message));
        }
    }
    // Constants shared on purpose (one code, two names) are fine; two different answers are not.
    assert!(seen.len() >= 40, "only {} codes collected", seen.len());
}

/// The modules that declare the tables, and may therefore spell a JSON error body.
const TABLES: [&str; 4] = [
    "route-core/src/rejection.rs",
    "session-core/src/rejection.rs",
    "gateway-bin/src/reject.rs",
    "cert-core/src/http01.rs",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            // Test folders may build whatever bodies they like.
            if path.file_name().is_some_and(|n| n != "tests") {
                sources(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

#[test]
fn no_handler_writes_an_error_body_inline() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for krate in ["route-core", "session-core", "cert-core", "gateway-bin"] {
        sources(&root.join(krate).join("src"), &mut files);
    }
    assert!(files.len() > 50, "{} files", files.len());
    let mut inline = Vec::new();
    for file in &files {
        let rel = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if TABLES.contains(&rel.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        // Inline unit tests may build bodies to compare with.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (n, line) in code.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("//") {
                continue;
            }
            let json_key = line.contains("\"error\":")
                || line.contains("\"error\" :")
                || line.contains("\\\"error\\\"")
                || line.contains("json_rejection(");
            if json_key {
                inline.push(format!("{rel}:{}: {}", n + 1, trimmed));
            }
        }
    }
    assert!(
        inline.is_empty(),
        "error bodies written outside the rejection tables:\n{}",
        inline.join("\n")
    );
}
