//! The gateway's TOML config loader, `gateway_bin::config::Config::parse`, through its public
//! API (no `fuzzing` module needed). The input is the file's text; non-UTF-8 input is skipped,
//! since `Config::load` reads the file with `read_to_string`.
//!
//! Checks: no panic; an error lists at least one issue, its `Display` and every issue's message
//! are non-empty, and an issue's line is within the text; parsing the same text twice gives
//! the same result (`Debug` strings, as `Config` has no `PartialEq` and no serialiser); and an
//! accepted config builds its route table (the module's contract is that validation happens in
//! `Config::parse` only, so what it accepts must not be refused later by `RouteTable`).
#![no_main]

use std::path::Path;

use gateway_bin::config::Config;
use route_core::RouteTable;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let base = Path::new("/etc/gateway");
    let first = Config::parse(text, base);
    let second = Config::parse(text, base);
    match (&first, &second) {
        (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "unstable parse"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "unstable errors"),
        _ => panic!("one parse failed and the other did not"),
    }
    match first {
        Err(e) => {
            let shown = e.to_string();
            assert!(!shown.trim().is_empty(), "empty error Display");
            let issues = e.issues();
            assert!(
                !issues.is_empty(),
                "an invalid config without issues: {shown}"
            );
            let lines = text.matches('\n').count() + 1;
            for issue in issues {
                assert!(
                    !issue.message.trim().is_empty(),
                    "empty issue message: {issue:?}"
                );
                assert!(!issue.to_string().trim().is_empty());
                if let Some(line) = issue.line {
                    assert!(
                        (1..=lines).contains(&line),
                        "issue line {line} outside 1..={lines}: {issue:?}"
                    );
                }
            }
        }
        Ok(config) => {
            assert!(!config.domains.is_empty(), "accepted without a domain");
            // The same inserts as gateway-bin's `stack::route_table`.
            let mut table = RouteTable::new();
            for service in &config.services {
                for pattern in service.host_patterns(&config.domains) {
                    let inserted = match &service.path_prefix {
                        Some(prefix) => table.insert_prefix(&pattern, prefix, ()),
                        None => table.insert(&pattern, ()),
                    };
                    if let Err(e) = inserted {
                        panic!(
                            "Config::parse accepted service `{}` but its route {pattern:?} \
                             (path_prefix {:?}) is refused: {e}",
                            service.name, service.path_prefix
                        );
                    }
                }
            }
        }
    }
});
