use std::time::Duration;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/gateway"))
}

fn issues(text: &str) -> Vec<ConfigIssue> {
    match parse(text) {
        Ok(_) => panic!("expected an invalid config"),
        Err(e) => e.issues().to_vec(),
    }
}

const MINIMAL: &str = r#"
[project]
domains = ["Example.COM."]

[listen]
http = "127.0.0.1:8080"

[[services]]
name = "data"
upstreams = ["http://127.0.0.1:3000"]
allowed_roles = ["user", "admin", "user"]
"#;

#[test]
fn the_quickstart_config_is_valid() {
    let c = parse(QUICKSTART_TOML).unwrap();
    assert_eq!(c.domains, vec!["localhost"]);
    assert_eq!(c.services.len(), 3);
    assert!(c.service("auth").unwrap().session_issuer);
    assert_eq!(c.service("admin").unwrap().allowed_roles, vec!["admin"]);
}

#[test]
fn defaults_are_filled_in_and_values_normalised() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.domains, vec!["example.com"]);
    assert_eq!(c.sessions.cookie_domain, "example.com");
    assert!(c.sessions.cookie_secure);
    assert_eq!(c.sessions.anonymous_role, "anonymous");
    assert_eq!(c.sessions.anonymous_user_id, "0");
    assert_eq!(
        c.admin,
        AdminSecretSource::Env("GATEWAY_ADMIN_SECRET".into())
    );
    let s = c.service("data").unwrap();
    assert_eq!(
        s.allowed_roles,
        vec!["user", "admin"],
        "duplicates are dropped"
    );
    assert_eq!(s.host_patterns(&c.domains), vec!["data.example.com"]);
    assert!(!s.forward_credentials);
    assert_eq!(s.max_body_bytes, c.limits.max_body_bytes);
}

#[test]
fn apex_and_wildcard_subdomains() {
    let text = MINIMAL.replace("name = \"data\"", "name = \"www\"\nsubdomain = \"@\"");
    let c = parse(&text).unwrap();
    assert_eq!(c.services[0].host_patterns(&c.domains), vec!["example.com"]);
    let text = MINIMAL.replace("name = \"data\"", "name = \"rest\"\nsubdomain = \"*\"");
    let c = parse(&text).unwrap();
    assert_eq!(
        c.services[0].host_patterns(&c.domains),
        vec!["*.example.com"]
    );
}

#[test]
fn a_bad_upstream_names_the_key_and_the_line() {
    let text = MINIMAL.replace("http://127.0.0.1:3000", "ftp://127.0.0.1:3000");
    let i = issues(&text);
    assert_eq!(i.len(), 1);
    assert_eq!(i[0].key, "services[0].upstreams[0]");
    assert_eq!(i[0].line, Some(10));
    assert!(i[0].hint.as_deref().unwrap().contains("http://"));
    let shown = ConfigError::Invalid(i).to_string();
    assert!(shown.contains("line 10"), "{shown}");
}

#[test]
fn unknown_keys_are_reported_with_their_line() {
    let text = MINIMAL.replace("allowed_roles", "allowed_role");
    let i = issues(&text);
    assert_eq!(i.len(), 1);
    assert_eq!(i[0].line, Some(11));
    assert!(i[0].message.contains("allowed_role"), "{}", i[0].message);
}

#[test]
fn an_admin_secret_in_the_file_is_refused_and_not_echoed() {
    let text = format!("{MINIMAL}\n[admin]\nsecret = \"hunter2-very-secret\"\n");
    let err = parse(&text).unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("admin.secret"), "{shown}");
    assert!(
        !shown.contains("hunter2"),
        "the secret must never be echoed: {shown}"
    );
}

#[test]
fn every_problem_is_listed_at_once() {
    let text = r#"
[project]
domains = ["1.2.3.4"]

[listen]
http = "not an address"

[[services]]
name = "Data!"
upstreams = []
allowed_roles = ["bad role"]

[[services]]
name = "x"
upstreams = ["http://h"]
connect_timeout = "soon"
"#;
    let keys: Vec<String> = issues(text).into_iter().map(|i| i.key).collect();
    for k in [
        "project.domains[0]",
        "listen.http",
        "services[0].name",
        "services[0].upstreams",
        "services[0].allowed_roles[0]",
        "services[1].connect_timeout",
    ] {
        assert!(keys.iter().any(|x| x == k), "missing {k} in {keys:?}");
    }
}

#[test]
fn duplicate_services_and_routes_are_refused() {
    let text =
        format!("{MINIMAL}\n[[services]]\nname = \"data\"\nupstreams = [\"http://127.0.0.1:1\"]\n");
    let i = issues(&text);
    assert!(
        i.iter().any(|i| i.message.contains("defined twice")),
        "{i:?}"
    );
}

#[test]
fn identity_headers_must_stay_under_the_prefix() {
    let text = format!("{MINIMAL}\n[sessions]\nrole_header = \"x-role\"\n");
    let i = issues(&text);
    assert!(i.iter().any(|i| i.key == "sessions.role_header"), "{i:?}");
}

#[test]
fn max_per_user_defaults_to_100_and_must_be_at_least_1() {
    assert_eq!(parse(MINIMAL).unwrap().sessions.max_per_user.get(), 100);
    let text = format!("{MINIMAL}\n[sessions]\nmax_per_user = 2\n");
    assert_eq!(parse(&text).unwrap().sessions.max_per_user.get(), 2);
    for bad in ["0", "1000000001"] {
        let text = format!("{MINIMAL}\n[sessions]\nmax_per_user = {bad}\n");
        let i = issues(&text);
        assert!(
            i.iter().any(|i| i.key == "sessions.max_per_user"),
            "{bad}: {i:?}"
        );
    }
    // A negative number is not a u64: the parser refuses it, with its line.
    let i = issues(&format!("{MINIMAL}\n[sessions]\nmax_per_user = -1\n"));
    assert!(i.iter().any(|i| i.line.is_some()), "{i:?}");
}

#[test]
fn tls_on_needs_an_https_listener() {
    let text = format!("{MINIMAL}\n[tls]\nmode = \"dev-ca\"\n");
    let i = issues(&text);
    assert!(i.iter().any(|i| i.key == "listen.https"), "{i:?}");
}

#[test]
fn domain_and_label_rules() {
    assert_eq!(normalize_domain("Example.com."), Some("example.com".into()));
    assert_eq!(normalize_domain("127.0.0.1"), None);
    assert_eq!(normalize_domain("a..b"), None);
    assert_eq!(normalize_domain("-a.com"), None);
    assert!(is_dns_label("data-1"));
    assert!(!is_dns_label("Data"));
    assert!(is_role_token("user"));
    assert!(!is_role_token("a,b"));
    assert!(!is_role_token("a\r\nb"));
    assert!(parse_upstream("http://127.0.0.1:3000").is_ok());
    assert!(parse_upstream("http://h/?q=1").is_err());
    assert!(parse_upstream("127.0.0.1:3000").is_err());
}

/// Found by the `config_toml` fuzz target: values `gateway check` accepted but the route table
/// refused, so the gateway would not start (or a reload was refused) after a clean check.
#[test]
fn what_the_route_table_refuses_is_refused_with_its_line() {
    for domain in ["a.1", "example.0x1f", "example.123"] {
        let text = MINIMAL.replace("Example.COM.", domain);
        let found = issues(&text);
        assert!(
            found
                .iter()
                .any(|i| i.key == "project.domains[0]" && i.line == Some(3)),
            "{domain}: {found:?}"
        );
    }
    for prefix in ["/a/./b", "/a/.", "/a\\\\b", "/.;x", "/a/\\u0001"] {
        let text = format!("{MINIMAL}path_prefix = \"{prefix}\"\n");
        let found = issues(&text);
        assert!(
            found.iter().any(|i| i.key == "services[0].path_prefix"),
            "{prefix}: {found:?}"
        );
    }
    // Still accepted: a numeric label that is not the last, and a normal prefix.
    let c = parse(&MINIMAL.replace("Example.COM.", "1.example.com")).unwrap();
    assert_eq!(c.domains, vec!["1.example.com"]);
    let c = parse(&format!("{MINIMAL}path_prefix = \"/api/v1/\"\n")).unwrap();
    assert_eq!(
        c.service("data").unwrap().path_prefix.as_deref(),
        Some("/api/v1")
    );
    // Every accepted config builds its route table.
    let store: std::sync::Arc<dyn session_core::SessionStore> =
        std::sync::Arc::new(session_core::MemoryStore::new());
    let resolver = std::sync::Arc::new(session_core::StoreResolver::new(store.clone()));
    let parts = crate::stack::RouteParts::new(&c, store, resolver);
    crate::stack::route_table(&c, &parts).unwrap();
}

#[test]
fn log_level_takes_a_level_or_filter_directives_and_nothing_else() {
    for good in ["warn", "INFO", "info,access=off", "debug,hyper=info"] {
        let c = parse(&format!("{MINIMAL}\n[log]\nlevel = \"{good}\"\n")).unwrap();
        assert_eq!(c.log.level, good);
    }
    for bad in ["loud", "warning", "info,access=bogus=x"] {
        let i = issues(&format!("{MINIMAL}\n[log]\nlevel = \"{bad}\"\n"));
        assert!(i.iter().any(|i| i.key == "log.level"), "{bad}: {i:?}");
    }
}

/// SECURITY-CASES 41: cookie requests without origin information are refused unless the
/// config says otherwise.
#[test]
fn csrf_allow_missing_origin_defaults_to_false() {
    assert!(!parse(MINIMAL).unwrap().csrf_allow_missing_origin);
    let relaxed = format!("{MINIMAL}\n[csrf]\nallow_missing_origin = true\n");
    assert!(parse(&relaxed).unwrap().csrf_allow_missing_origin);
    let wrong = format!("{MINIMAL}\n[csrf]\nallow_missing_origin = \"yes\"\n");
    assert!(parse(&wrong).is_err());
}

#[test]
fn hsts_defaults_to_one_year_with_the_redirect_and_is_checked() {
    let tls = |listen: &str, hsts: &str| {
        MINIMAL.replace(
            "[listen]\n",
            &format!("[listen]\nhttps = \"127.0.0.1:8443\"\n{listen}\n"),
        ) + &format!("\n[tls]\nmode = \"dev-ca\"\n{hsts}\n")
    };
    let hsts = |text: String| {
        parse(&text)
            .unwrap()
            .tls
            .hsts
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(
        hsts(tls("redirect_http_to_https = true", "")).as_deref(),
        Some("max-age=31536000"),
        "on with the redirect, never preload"
    );
    assert_eq!(hsts(tls("", "")), None, "off without the redirect");
    assert_eq!(
        hsts(tls("redirect_http_to_https = true", "hsts = \"\"")),
        None,
        "\"\" turns it off"
    );
    assert_eq!(
        hsts(tls("", "hsts = \"max-age=600; includeSubDomains\"")).as_deref(),
        Some("max-age=600; includeSubDomains")
    );
    let found = issues(&tls("", "hsts = \"max-age=600; max-age=7\""));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "tls.hsts");
    assert!(found[0].line.is_some());
    assert!(found[0].message.contains("twice"), "{found:?}");
}

#[test]
fn admin_listener_and_tunnel_settings() {
    let c = parse(MINIMAL).unwrap();
    assert!(c.listen.admin_hosts.is_empty());
    assert!(!c.metrics_require_secret);
    assert_eq!(c.limits.tunnel_idle_timeout, Duration::from_secs(300));
    let text = MINIMAL.replace(
        "[listen]\n",
        "[listen]\nadmin_hosts = [\"Gateway-Admin.Internal.\", \"prom.internal:9090\"]\n",
    );
    let text = format!(
        "{text}[limits]\ntunnel_idle_timeout = \"250ms\"\n[admin]\nmetrics_require_secret = true\n"
    );
    let c = parse(&text).unwrap();
    assert_eq!(
        c.listen.admin_hosts,
        vec!["gateway-admin.internal", "prom.internal"]
    );
    assert!(c.metrics_require_secret);
    assert_eq!(c.limits.tunnel_idle_timeout, Duration::from_millis(250));
    let found = issues(&MINIMAL.replace(
        "[listen]\n",
        "[listen]\nadmin_hosts = [\"127.0.0.1\", \"https://x.internal\", \"*.internal\"]\n",
    ));
    let keys: Vec<&str> = found.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "listen.admin_hosts[0]",
            "listen.admin_hosts[1]",
            "listen.admin_hosts[2]"
        ]
    );
    assert!(found.iter().all(|i| i.line == Some(6)), "{found:?}");
}

#[test]
fn auth_takes_toml_tables_hasura_json_and_a_webhook() {
    let text = format!(
        r#"{MINIMAL}
[auth]
jwt_secret = '{{"type": "HS256", "key": "an-hmac-secret-of-at-least-32-characters!", "claims_format": "stringified_json"}}'

[[auth.jwt]]
jwk_url = "https://idp.example.com/.well-known/jwks.json"
audience = ["app", "api"]
issuer = "https://idp.example.com/"
header = {{ type = "Cookie", name = "idp_token" }}

[auth.webhook]
url = "https://auth.example.com/hook"
mode = "POST"
"#
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.auth.jwt.len(), 2);
    // Tables first, then the JSON string.
    assert_eq!(
        c.auth.jwt[0].jwk_url.as_deref(),
        Some("https://idp.example.com/.well-known/jwks.json")
    );
    assert!(c.auth.jwt[1].key.is_some());
    let hook = c.auth.webhook.as_ref().unwrap();
    assert_eq!(hook.url, "https://auth.example.com/hook");
    assert!(c.auth.is_configured());
    assert!(!parse(MINIMAL).unwrap().auth.is_configured());
}

#[test]
fn auth_errors_name_the_line_and_the_field() {
    let text = format!(
        r#"{MINIMAL}
[[auth.jwt]]
type = "RS256"

[[auth.jwt]]
jwk_url = "http://idp.example.com/jwks"

[auth.webhook]
url = "http://auth.example.com/hook"
"#
    );
    let found = issues(&text);
    let base = MINIMAL.lines().count();
    let at = |key: &str| {
        found
            .iter()
            .find(|i| i.key.starts_with(key))
            .unwrap_or_else(|| panic!("no issue for {key}: {found:?}"))
            .clone()
    };
    // A type without a key, plain http to a remote JWKS, plain http to a remote webhook.
    let first = at("auth.jwt[0]");
    assert_eq!(first.line, Some(base + 2), "{first}");
    let second = at("auth.jwt[1]");
    assert_eq!(second.line, Some(base + 5), "{second}");
    assert!(second.to_string().contains("jwk_url"), "{second}");
    let hook = at("auth.webhook");
    assert_eq!(hook.line, Some(base + 8), "{hook}");
    assert!(hook.to_string().contains("loopback"), "{hook}");
}

#[test]
fn a_jwt_secret_that_is_not_json_is_refused_without_quoting_it() {
    let text = format!("{MINIMAL}\n[auth]\njwt_secret = 'type=HS256 key=super-secret-value'\n");
    let found = issues(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "auth.jwt_secret");
    assert!(!found[0].to_string().contains("super-secret-value"));
    let missing =
        format!("{MINIMAL}\n[auth]\njwt_secret_env = \"GATEWAY_TEST_UNSET_JWT_SECRET_VAR\"\n");
    let found = issues(&missing);
    assert!(found[0].message.contains("is not set"), "{found:?}");
}

#[test]
fn services_file_defaults_to_none_and_is_taken_from_the_config_directory() {
    assert_eq!(parse(MINIMAL).unwrap().services_file, None);
    let abs = "[admin]\nservices_file = \"/var/lib/gateway/gateway-services.json\"\n";
    let c = parse(&format!("{MINIMAL}{abs}")).unwrap();
    assert_eq!(
        c.services_file.as_deref(),
        Some(Path::new("/var/lib/gateway/gateway-services.json"))
    );
    let rel = "[admin]\nservices_file = \"state/services.json\"\n";
    let c = parse(&format!("{MINIMAL}{rel}")).unwrap();
    assert_eq!(
        c.services_file.as_deref(),
        Some(Path::new("/etc/gateway/state/services.json"))
    );
}

#[test]
fn a_services_file_that_names_a_directory_is_refused() {
    for bad in ["", "/var/lib/gateway/", "state/.."] {
        let text = format!("{MINIMAL}[admin]\nservices_file = \"{bad}\"\n");
        let found = issues(&text);
        assert_eq!(found.len(), 1, "{bad}: {found:?}");
        assert_eq!(found[0].key, "admin.services_file");
        assert_eq!(found[0].line, Some(13), "{bad}");
    }
}

#[test]
fn the_admin_secret_may_come_from_a_systemd_credential() {
    let text = format!("{MINIMAL}[admin]\nsecret_credential = \"admin-secret\"\n");
    assert_eq!(
        parse(&text).unwrap().admin,
        AdminSecretSource::Credential("admin-secret".into())
    );
    for bad in ["", "..", "../admin-secret", "/etc/gateway/admin-secret"] {
        let text = format!("{MINIMAL}[admin]\nsecret_credential = \"{bad}\"\n");
        let found = issues(&text);
        assert_eq!(found.len(), 1, "{bad}: {found:?}");
        assert_eq!(found[0].key, "admin.secret_credential");
    }
}

#[test]
fn only_one_admin_secret_source_may_be_set() {
    let text = format!(
        "{MINIMAL}[admin]\nsecret_env = \"X\"\nsecret_file = \"/run/x\"\nsecret_credential = \"x\"\n"
    );
    let keys: Vec<_> = issues(&text).into_iter().map(|i| i.key).collect();
    assert_eq!(keys, ["admin.secret_file", "admin.secret_credential"]);
}
