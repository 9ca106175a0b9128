#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::HeaderMap;
use serde_json::json;

use super::spec::{self, Defaults};
use super::{state, Precondition};

fn defaults() -> (Vec<String>, u64) {
    (vec!["example.com".to_owned()], 1024)
}

fn parse(v: serde_json::Value) -> Result<crate::config::Service, spec::FieldError> {
    let (domains, max) = defaults();
    spec::parse(
        &v,
        &Defaults {
            domains: &domains,
            max_body_bytes: max,
        },
    )
}

#[test]
fn a_minimal_service_takes_the_config_file_defaults() {
    let s = parse(json!({ "name": "reports", "upstreams": ["http://127.0.0.1:3000"] })).unwrap();
    assert_eq!(s.subdomain, "reports");
    assert!(s.allowed_roles.is_empty());
    assert!(s.websocket && s.cors && !s.forward_credentials && !s.session_issuer);
    assert_eq!(s.max_body_bytes, 1024);
    assert_eq!(s.origin, crate::config::Origin::Api);
}

#[test]
fn every_problem_names_its_field() {
    let field = |v| parse(v).unwrap_err().field;
    let up = json!(["http://127.0.0.1:1"]);
    assert_eq!(field(json!({ "upstreams": up })), "name");
    assert_eq!(
        field(json!({ "name": "Bad_Name", "upstreams": up })),
        "name"
    );
    assert_eq!(
        field(json!({ "name": "a", "subdomain": "no spaces", "upstreams": up })),
        "subdomain"
    );
    assert_eq!(field(json!({ "name": "a" })), "upstreams");
    assert_eq!(
        field(json!({ "name": "a", "upstreams": ["http://ok:1", "ftp://x"] })),
        "upstreams[1]"
    );
    assert_eq!(
        field(json!({ "name": "a", "upstreams": ["http://"] })),
        "upstreams[0]"
    );
    assert_eq!(
        field(json!({ "name": "a", "upstreams": up, "allowed_roles": ["user", ""] })),
        "allowed_roles[1]"
    );
    assert_eq!(
        field(json!({ "name": "a", "upstreams": up, "allowed_roles": ["a b"] })),
        "allowed_roles[0]"
    );
    assert_eq!(
        field(json!({ "name": "a", "upstreams": up, "websocket": "yes" })),
        "websocket"
    );
    assert_eq!(
        field(json!({ "name": "a", "upstreams": up, "connect_timeout": "soon" })),
        "connect_timeout"
    );
    assert_eq!(
        field(json!({ "name": "a", "upstreams": up, "colour": "red" })),
        "colour"
    );
    assert_eq!(field(json!(["not", "an", "object"])), "body");
    let long = "a".repeat(63);
    let sub = format!("{long}.{long}.{long}.{long}");
    assert_eq!(
        field(json!({ "name": "a", "subdomain": sub, "upstreams": up })),
        "subdomain"
    );
}

#[test]
fn the_stored_form_reads_back_into_the_same_service() {
    let s = parse(json!({
        "name": "reports",
        "subdomain": "Stats",
        "path_prefix": "/api/",
        "upstreams": ["http://127.0.0.1:3000", "https://backend.internal"],
        "allowed_roles": ["user", "user", "admin"],
        "websocket": false,
        "forward_credentials": true,
        "connect_timeout": "2s",
        "max_body_bytes": 10,
    }))
    .unwrap();
    assert_eq!(s.subdomain, "stats");
    assert_eq!(s.path_prefix.as_deref(), Some("/api"));
    assert_eq!(s.allowed_roles, ["user", "admin"]);
    let again = parse(spec::to_json(&s)).unwrap();
    assert_eq!(again, s);
    // What GET shows may be sent back as it is.
    let listed = spec::to_listing(&s, &["example.com".to_owned()], true);
    assert_eq!(listed["hosts"], json!(["stats.example.com"]));
    assert_eq!(parse(listed).unwrap(), s);
}

#[test]
fn if_match_is_strong_and_star_matches_anything() {
    let pre = |v: &str| {
        let mut h = HeaderMap::new();
        h.insert(http::header::IF_MATCH, v.parse().unwrap());
        Precondition::from_headers(&h).unwrap()
    };
    assert!(Precondition::from_headers(&HeaderMap::new()).is_none());
    assert!(pre("\"3\"").matches(3));
    assert!(!pre("\"3\"").matches(4));
    assert!(pre("\"1\", \"4\"").matches(4));
    assert!(!pre("W/\"3\"").matches(3));
    assert!(!pre("garbage").matches(0));
    assert!(pre("*").matches(17));
}

#[test]
fn the_state_file_is_written_atomically_with_mode_0600_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(state::FILE_NAME);
    let (domains, max) = defaults();
    let d = Defaults {
        domains: &domains,
        max_body_bytes: max,
    };
    let empty = state::load(&path, &d).unwrap();
    assert_eq!(empty.version, 0);
    assert!(empty.services.is_empty());

    let s = parse(json!({ "name": "reports", "upstreams": ["http://127.0.0.1:3000"] })).unwrap();
    state::save(&path, 7, std::slice::from_ref(&s)).unwrap();
    let back = state::load(&path, &d).unwrap();
    assert_eq!(back.version, 7);
    assert_eq!(back.services, vec![s]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "no temporary file is left: {leftovers:?}"
    );

    std::fs::write(&path, "{ not json").unwrap();
    assert!(matches!(
        state::load(&path, &d),
        Err(state::StateError::Invalid { .. })
    ));
    std::fs::write(
        &path,
        r#"{"format":1,"version":2,"services":[{"name":"x","upstreams":["ftp://a"]}]}"#,
    )
    .unwrap();
    let err = state::load(&path, &d).unwrap_err().to_string();
    assert!(err.contains("services[0].upstreams[0]"), "{err}");
}

#[test]
fn the_state_file_lives_next_to_the_config() {
    assert_eq!(
        super::state_path_for(std::path::Path::new("/etc/gateway/gateway.toml")),
        std::path::Path::new("/etc/gateway/gateway-services.json")
    );
    assert_eq!(
        super::state_path_for(std::path::Path::new("gateway.toml")),
        std::path::Path::new("gateway-services.json")
    );
}

/// Issue 14: one service validator. A service the config file refuses is refused through the
/// API on the same field with the same words. Before, `spec.rs` had its own copy of the checks
/// that skipped route-core's normalisation of `path_prefix`, so the API accepted these
/// prefixes (and only the route table, built later, refused them, on `subdomain`).
#[test]
fn the_api_refuses_what_the_config_file_refuses_with_the_same_message() {
    use crate::config::{Config, ConfigIssue};

    // The one issue the file has with a `[[services]]` table.
    let file_issue = |service: &str| {
        let file = format!(
            "[project]\ndomains = [\"example.com\"]\n[listen]\nhttp = \"127.0.0.1:8080\"\n\
             [[services]]\n{service}\n"
        );
        let issues = Config::parse(&file, std::path::Path::new("/etc/gateway"))
            .unwrap_err()
            .issues()
            .to_vec();
        assert_eq!(issues.len(), 1, "{service}: {issues:?}");
        issues[0].clone()
    };
    // The file's words for an issue without its key and line: what the API must answer.
    let words = |i: &ConfigIssue| {
        ConfigIssue {
            key: String::new(),
            line: None,
            ..i.clone()
        }
        .to_string()
    };
    let same = |service: &str, body: serde_json::Value| {
        let issue = file_issue(service);
        let err = match parse(body.clone()) {
            Err(e) => e,
            Ok(s) => panic!("the API accepted {body} as {s:?}"),
        };
        assert_eq!(format!("services[0].{}", err.field), issue.key, "{body}");
        assert_eq!(err.message, words(&issue), "{body}");
    };
    let up = "upstreams = [\"http://127.0.0.1:3000\"]";
    for prefix in ["/a/./b", "/a/.", "/a/./", "/a\\b", "/.;x", "/a/\u{1}"] {
        same(
            &format!(
                "name = \"data\"\n{up}\npath_prefix = {}",
                toml::Value::String(prefix.to_owned())
            ),
            json!({ "name": "data", "upstreams": ["http://127.0.0.1:3000"], "path_prefix": prefix }),
        );
    }
    // The other checks too, hints included.
    same(
        "name = \"data\"\nupstreams = [\"ftp://h\"]",
        json!({ "name": "data", "upstreams": ["ftp://h"] }),
    );
    same(
        &format!("name = \"data\"\n{up}\nconnect_timeout = \"soon\""),
        json!({ "name": "data", "upstreams": ["http://127.0.0.1:3000"], "connect_timeout": "soon" }),
    );
    same(
        &format!("name = \"data\"\n{up}\nsubdomain = \"no spaces\""),
        json!({ "name": "data", "upstreams": ["http://127.0.0.1:3000"], "subdomain": "no spaces" }),
    );
    // And the reverse: a host name over 253 characters, which only the API's copy refused
    // (the file's service failed later, when the route table was built, without a line).
    let long = vec!["a".repeat(63); 4].join(".");
    same(
        &format!("name = \"data\"\n{up}\nsubdomain = \"{long}\""),
        json!({ "name": "data", "upstreams": ["http://127.0.0.1:3000"], "subdomain": long }),
    );
}
