//! Unit tests of the pure parts: config checks, the headers sent, the cache key, reading
//! answers and their cache lifetime. `tests/webhook.rs` runs the resolver against a real
//! webhook.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use serde_json::{json, Map, Value};

use super::answer::{identity, lifetime, BadAnswer};
use super::request::{cache_key, forwarded_headers, post_body};
use super::{WebhookConfig, WebhookError, WebhookMode};
use crate::session::Variables;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn field_of(e: WebhookError) -> &'static str {
    match e {
        WebhookError::Config { field, .. } => field,
        other => panic!("not a config error: {other}"),
    }
}

#[test]
fn config_deserializes_with_defaults_and_humantime() {
    let c: WebhookConfig =
        serde_json::from_value(json!({"url": "https://auth.example/hook"})).unwrap();
    assert_eq!(c, WebhookConfig::new("https://auth.example/hook"));
    assert_eq!(c.mode, WebhookMode::Get);
    assert_eq!(c.timeout, Duration::from_secs(5));
    assert_eq!(c.cache_entries, 10_000);
    assert_eq!(c.cache_max_ttl, Duration::from_secs(300));
    c.validate().unwrap();

    let c: WebhookConfig = serde_json::from_value(json!({
        "url": "http://127.0.0.1:9/hook",
        "mode": "POST",
        "timeout": "750ms",
        "cache_entries": 0,
        "cache_max_ttl": "1m",
        "cache_key_headers": ["X-Tenant"],
    }))
    .unwrap();
    assert_eq!(c.mode, WebhookMode::Post);
    assert_eq!(c.timeout, Duration::from_millis(750));
    assert_eq!(c.cache_max_ttl, Duration::from_secs(60));
    c.validate().unwrap();

    let e = serde_json::from_value::<WebhookConfig>(json!({"url": "https://a/", "timeout": "5"}))
        .unwrap_err();
    assert!(e.to_string().contains("not a duration"), "{e}");
    let e = serde_json::from_value::<WebhookConfig>(json!({"url": "https://a/", "mdoe": "GET"}))
        .unwrap_err();
    assert!(e.to_string().contains("mdoe"), "{e}");
    assert!(serde_json::from_value::<WebhookConfig>(json!({"mode": "GET"})).is_err());
    assert!(
        serde_json::from_value::<WebhookConfig>(json!({"url": "https://a/", "mode": "PUT"}))
            .is_err()
    );
}

#[test]
fn validate_names_the_field() {
    let bad = |f: fn(&mut WebhookConfig)| {
        let mut c = WebhookConfig::new("https://auth.example/hook");
        f(&mut c);
        field_of(c.validate().unwrap_err())
    };
    assert_eq!(bad(|c| c.url = "not a url at all".into()), "url");
    assert_eq!(bad(|c| c.url = "http://auth.example/hook".into()), "url");
    assert_eq!(bad(|c| c.timeout = Duration::ZERO), "timeout");
    assert_eq!(bad(|c| c.cache_max_ttl = Duration::ZERO), "cache_max_ttl");
    assert_eq!(
        bad(|c| c.cache_key_headers = vec!["x tenant".into()]),
        "cache_key_headers"
    );
    assert_eq!(
        bad(|c| c.cache_key_headers = vec!["X-Tenant".into(), "x-tenant".into()]),
        "cache_key_headers"
    );
    // No cache: its ceiling does not matter.
    let mut c = WebhookConfig::new("https://auth.example/hook");
    c.cache_entries = 0;
    c.cache_max_ttl = Duration::ZERO;
    c.validate().unwrap();
}

#[test]
fn forwarded_headers_drop_hop_by_hop_and_carry_the_requested_role() {
    let h = headers(&[
        ("authorization", "Bearer abc"),
        ("cookie", "a=1"),
        ("connection", "keep-alive, x-secret-hop"),
        ("x-secret-hop", "1"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("trailer", "x-t"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "websocket"),
        ("proxy-authorization", "Basic eA=="),
        ("proxy-connection", "keep-alive"),
        ("host", "app.example"),
        ("content-length", "12"),
        ("expect", "100-continue"),
        ("accept-encoding", "gzip, br"),
        ("range", "bytes=0-5"),
        ("if-range", "\"e1\""),
        ("if-match", "\"e1\""),
        ("if-none-match", "\"e1\""),
        ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ("if-unmodified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ("accept", "application/json"),
        ("x-hasura-role", "smuggled"),
        ("x-tenant", "t1"),
        ("user-agent", "ua"),
    ]);
    let out = forwarded_headers(&h, Some("editor"));
    let mut names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "accept",
            "authorization",
            "cookie",
            "user-agent",
            "x-hasura-role",
            "x-tenant"
        ]
    );
    assert_eq!(out["x-hasura-role"], "editor");
    assert!(!forwarded_headers(&h, None).contains_key("x-hasura-role"));
}

#[test]
fn post_body_has_headers_and_request() {
    let h = headers(&[
        ("authorization", "Bearer abc"),
        ("cookie", "a=1"),
        ("cookie", "b=2"),
        ("accept", "text/html"),
        ("accept", "application/json"),
    ]);
    let uri: Uri = "/graphql?x=1".parse().unwrap();
    let body: Value = serde_json::from_slice(&post_body(&h, &Method::PUT, Some(&uri))).unwrap();
    assert_eq!(
        body,
        json!({
            "headers": {
                "authorization": "Bearer abc",
                "cookie": "a=1; b=2",
                "accept": "text/html, application/json",
            },
            "request": {"method": "PUT", "url": "/graphql?x=1"},
        })
    );
    let body: Value = serde_json::from_slice(&post_body(&h, &Method::GET, None)).unwrap();
    assert_eq!(body["request"], json!({"method": "GET", "url": null}));
}

#[test]
fn cache_key_covers_credentials_role_and_key_headers_without_ambiguity() {
    let tenant = [HeaderName::from_static("x-tenant")];
    let key = |pairs: &[(&str, &str)], role: Option<&str>| {
        cache_key(&headers(pairs), role, &tenant, None)
    };
    let base = key(
        &[("authorization", "Bearer a"), ("x-tenant", "t1")],
        Some("user"),
    );
    assert_eq!(
        base,
        key(
            &[
                ("authorization", "Bearer a"),
                ("x-tenant", "t1"),
                ("user-agent", "other")
            ],
            Some("user")
        ),
        "headers outside the key do not matter"
    );
    let different = [
        key(
            &[("authorization", "Bearer b"), ("x-tenant", "t1")],
            Some("user"),
        ),
        key(
            &[("authorization", "Bearer a"), ("x-tenant", "t2")],
            Some("user"),
        ),
        key(&[("authorization", "Bearer a")], Some("user")),
        key(
            &[("authorization", "Bearer a"), ("x-tenant", "t1")],
            Some("admin"),
        ),
        key(&[("authorization", "Bearer a"), ("x-tenant", "t1")], None),
        key(
            &[
                ("authorization", "Bearer a"),
                ("x-tenant", "t1"),
                ("cookie", "s=1"),
            ],
            Some("user"),
        ),
        key(&[("cookie", "Bearer a"), ("x-tenant", "t1")], Some("user")),
    ];
    for (i, k) in different.iter().enumerate() {
        assert_ne!(*k, base, "case {i}");
    }
    // Length prefixes: a value cannot run into the next part.
    assert_ne!(
        key(&[("cookie", "a=1")], Some("b")),
        key(&[("cookie", "a=1b")], Some(""))
    );
    assert_ne!(
        key(&[("cookie", "a=1"), ("cookie", "b=2")], None),
        key(&[("cookie", "a=1b=2")], None)
    );
    assert_ne!(key(&[], Some("")), key(&[], None));
    // In the POST mode the webhook sees the method and URL, so they are part of the key.
    let h = headers(&[("authorization", "Bearer t")]);
    let (get, post) = (Method::GET, Method::POST);
    let (a, b): (Uri, Uri) = ("/a".parse().unwrap(), "/b".parse().unwrap());
    assert_ne!(
        cache_key(&h, None, &[], Some((&get, Some(&a)))),
        cache_key(&h, None, &[], Some((&get, Some(&b))))
    );
    assert_ne!(
        cache_key(&h, None, &[], Some((&get, Some(&a)))),
        cache_key(&h, None, &[], Some((&post, Some(&a))))
    );
    assert_ne!(
        cache_key(&h, None, &[], Some((&get, Some(&a)))),
        cache_key(&h, None, &[], None)
    );
    // Without configured key headers, x-tenant is not part of the key.
    assert_eq!(
        cache_key(&headers(&[("x-tenant", "t1")]), None, &[], None),
        cache_key(&headers(&[("x-tenant", "t2")]), None, &[], None)
    );
}

#[test]
fn answers_give_identities() {
    let i = identity(&object(json!({
        "X-Hasura-Role": "user",
        "X-Hasura-User-Id": 42,
        "x-hasura-Org-Id": "7",
        "X-Hasura-Is-Owner": true,
        "Cache-Control": "max-age=60",
        "other": {"ignored": true},
    })))
    .unwrap();
    assert_eq!(&*i.user_id, "42");
    assert_eq!(&*i.role, "user");
    assert_eq!(&*i.allowed_roles, [std::sync::Arc::from("user")]);
    assert!(i.is_authenticated());
    let vars: Variables = i
        .variables()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    let want: Variables = [
        ("x-hasura-is-owner".to_owned(), "true".to_owned()),
        ("x-hasura-org-id".to_owned(), "7".to_owned()),
    ]
    .into();
    assert_eq!(vars, want);

    let i = identity(&object(json!({"x-hasura-role": "anonymous"}))).unwrap();
    assert_eq!(&*i.user_id, "0", "no user id: \"0\", as documented");

    for allowed in [json!(["user", "admin"]), json!("user, admin,,user")] {
        let i = identity(&object(
            json!({"X-Hasura-Role": "user", "X-Hasura-Allowed-Roles": allowed}),
        ))
        .unwrap();
        let roles: Vec<&str> = i.allowed_roles.iter().map(|r| &**r).collect();
        assert_eq!(roles, ["user", "admin"]);
    }
}

#[test]
fn bad_answers_are_refused() {
    let bad = |v: Value| identity(&object(v)).unwrap_err();
    assert_eq!(bad(json!({"X-Hasura-User-Id": "1"})), BadAnswer::NoRole);
    assert!(matches!(
        bad(json!({"X-Hasura-Role": "user", "x-hasura-role": "admin"})),
        BadAnswer::Duplicate(_)
    ));
    assert_eq!(
        bad(json!({"X-Hasura-Role": "user", "X-Hasura-Allowed-Roles": ["admin"]})),
        BadAnswer::RoleNotAllowed
    );
    assert_eq!(
        bad(json!({"X-Hasura-Role": "user", "X-Hasura-Allowed-Roles": " , "})),
        BadAnswer::AllowedRoles
    );
    assert_eq!(
        bad(json!({"X-Hasura-Role": "user", "X-Hasura-Allowed-Roles": [1]})),
        BadAnswer::AllowedRoles
    );
    assert_eq!(
        bad(json!({"X-Hasura-Role": ["user"]})),
        BadAnswer::NotText("X-Hasura-Role".into())
    );
    assert_eq!(
        bad(json!({"X-Hasura-Role": "user", "X-Hasura-Org": null})),
        BadAnswer::NotText("X-Hasura-Org".into())
    );
    assert!(matches!(
        bad(json!({"X-Hasura-Role": "us\ner"})),
        BadAnswer::Invalid(_)
    ));
    assert!(matches!(
        bad(json!({"X-Hasura-Role": "user", "X-Hasura-Org_Id": "1"})),
        BadAnswer::Invalid(_)
    ));
}

#[test]
fn lifetime_reads_body_fields_then_headers() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let in_90s = httpdate::fmt_http_date(now + Duration::from_secs(90));
    let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
    let none = HeaderMap::new();
    let life = |body: Value, h: &HeaderMap| lifetime(&object(body), h, now);

    assert_eq!(
        life(json!({"Cache-Control": "max-age=600"}), &none),
        Some(Duration::from_secs(600))
    );
    assert_eq!(
        life(json!({"cache-control": "public, max-age=\"30\""}), &none),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        life(json!({"Expires": in_90s}), &none),
        Some(Duration::from_secs(90))
    );
    assert_eq!(life(json!({"Expires": past}), &none), None);
    assert_eq!(life(json!({"Expires": "tomorrow"}), &none), None);
    assert_eq!(life(json!({}), &none), None);
    assert_eq!(life(json!({"Cache-Control": "max-age=0"}), &none), None);
    assert_eq!(
        life(json!({"Cache-Control": "no-store, max-age=60"}), &none),
        None
    );
    assert_eq!(life(json!({"Cache-Control": "max-age=soon"}), &none), None);
    assert_eq!(
        life(
            json!({"Cache-Control": "max-age=60", "Expires": in_90s}),
            &none
        ),
        Some(Duration::from_secs(60)),
        "Cache-Control wins"
    );

    let h = headers(&[("cache-control", "max-age=120")]);
    assert_eq!(life(json!({}), &h), Some(Duration::from_secs(120)));
    assert_eq!(
        life(json!({"Cache-Control": "max-age=10"}), &h),
        Some(Duration::from_secs(10)),
        "the body's fields come first"
    );
    assert_eq!(
        life(json!({"Cache-Control": "no-cache"}), &h),
        None,
        "the body's no-cache is not overridden by a header"
    );
    let h = headers(&[("expires", &in_90s)]);
    assert_eq!(life(json!({}), &h), Some(Duration::from_secs(90)));
}
