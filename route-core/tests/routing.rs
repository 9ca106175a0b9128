//! Routing through the composed stack on real sockets: hosts, paths, and SECURITY-CASES
//! 15, 16 and 17.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use common::*;
use route_core::{Proxy, ProxyConfig, RouteTable};

#[tokio::test]
async fn exact_wildcard_apex_and_case_variants() {
    let (apex, data, wild, deep) = (
        upstream("apex").await,
        upstream("data").await,
        upstream("wild").await,
        upstream("deep").await,
    );
    let proxy = Proxy::new(ProxyConfig::default());
    let table = host_table(
        &proxy,
        &[
            ("example.com", &apex),
            ("data.example.com", &data),
            ("*.example.com", &wild),
            ("*.eu.example.com", &deep),
        ],
    );
    let gw = gateway(table).await;

    let cases = [
        ("example.com", "apex"),
        ("EXAMPLE.com", "apex"),
        ("example.com.", "apex"),
        ("example.com:8443", "apex"),
        ("data.example.com", "data"),
        ("Data.Example.COM.:443", "data"),
        ("other.example.com", "wild"),
        ("a.b.example.com", "wild"),
        ("eu.example.com", "wild"),
        ("x.eu.example.com", "deep"),
        ("X.EU.example.com.", "deep"),
    ];
    for (host, want) in cases {
        let a = get(gw.addr, host, "/", &[]).await;
        assert_eq!(a.status, 200, "{host}: {a:?}");
        assert_eq!(a.headers["x-upstream"], want, "{host}");
    }
    // The upstream sees the client's Host as sent (routing normalises, it does not rewrite).
    assert_eq!(data.seen()[0].headers["host"], "data.example.com");
}

#[tokio::test]
async fn unknown_ip_and_bad_hosts_never_reach_a_backend() {
    let up = upstream("any").await;
    let proxy = Proxy::new(ProxyConfig::default());
    let gw = gateway(host_table(
        &proxy,
        &[("*.example.com", &up), ("example.com", &up)],
    ))
    .await;

    let a = get(gw.addr, "example.org", "/", &[]).await;
    assert_eq!((a.status, a.code().as_str()), (404, "unknown-host"));
    let a = get(gw.addr, "badexample.com", "/", &[]).await;
    assert_eq!(a.status, 404);
    for ip in [
        "127.0.0.1",
        "127.0.0.1:80",
        "[::1]",
        "[::1]:443",
        "2130706433",
        "127.1",
    ] {
        let a = get(gw.addr, ip, "/", &[]).await;
        assert_eq!(
            (a.status, a.code().as_str()),
            (421, "misdirected-request"),
            "{ip}"
        );
    }
    let a = get(gw.addr, "exa mple.com", "/", &[]).await;
    assert_eq!(a.status, 400);
    assert!(up.seen().is_empty(), "{:?}", up.paths());
}

/// SECURITY-CASES 15: two Host headers, or an absolute-form URI whose authority differs.
#[tokio::test]
async fn case15_duplicate_host_and_absolute_form_mismatch() {
    let (public, admin) = (upstream("public").await, upstream("admin").await);
    let proxy = Proxy::new(ProxyConfig::default());
    let gw = gateway(host_table(
        &proxy,
        &[
            ("public.example.com", &public),
            ("admin.example.com", &admin),
        ],
    ))
    .await;

    let r = raw(
        gw.addr,
        b"GET / HTTP/1.1\r\nHost: public.example.com\r\nHost: admin.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&r), [400], "{r}");
    assert!(r.contains("duplicate-host"), "{r}");

    let r = raw(
        gw.addr,
        b"GET http://admin.example.com/ HTTP/1.1\r\nHost: public.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&r), [400], "{r}");
    assert!(r.contains("host-mismatch"), "{r}");

    // The same authority in both is fine, whatever its case or port.
    let r = raw(
        gw.addr,
        b"GET http://Admin.Example.com:443/x HTTP/1.1\r\nHost: admin.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&r), [200], "{r}");
    assert!(public.seen().is_empty());
    assert_eq!(admin.paths(), ["/x"]);
}

/// SECURITY-CASES 16: case, trailing dot and port reach the same route under the same
/// policy (here: the same identity headers and upstream); unknown/IP never a default.
#[tokio::test]
async fn case16_host_variants_share_one_route() {
    let admin = upstream("admin").await;
    let fallback = upstream("fallback").await;
    let proxy = Proxy::new(ProxyConfig::default());
    let gw = gateway(host_table(
        &proxy,
        &[("admin.example.com", &admin), ("*.other.com", &fallback)],
    ))
    .await;
    for host in [
        "ADMIN.Example.com",
        "admin.example.com.",
        "admin.example.com:443",
    ] {
        let a = get(gw.addr, host, "/", &[]).await;
        assert_eq!(a.headers["x-upstream"], "admin", "{host}");
    }
    let seen = admin.seen();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(s.headers["x-hasura-role"], "user");
    }
    for host in ["unknown.example.com", "10.0.0.1", "[::1]"] {
        let a = get(gw.addr, host, "/", &[]).await;
        assert!(a.status == 404 || a.status == 421, "{host}: {a:?}");
    }
    assert!(fallback.seen().is_empty());
}

/// SECURITY-CASES 17: no encoding of the path lets a request reach the route of an exempt
/// prefix (health, ACME) while being served another path, and the upstream sees the same
/// normalised path the router matched.
#[tokio::test]
async fn case17_path_encodings_cannot_cross_prefixes() {
    let (private, health, acme) = (
        upstream("private").await,
        upstream("health").await,
        upstream("acme").await,
    );
    let proxy = Proxy::new(ProxyConfig::default());
    let mut t = RouteTable::new();
    t.insert("app.example.com", route(&proxy, "private", &[&private]))
        .unwrap();
    t.insert_prefix(
        "app.example.com",
        "/healthz",
        route(&proxy, "health", &[&health]),
    )
    .unwrap();
    t.insert_prefix(
        "app.example.com",
        "/.well-known/acme-challenge",
        route(&proxy, "acme", &[&acme]),
    )
    .unwrap();
    let gw = gateway(t).await;

    // Each of these resolves to a private path: it must go to the private route, normalised.
    let private_cases = [
        ("/healthz/../admin", "/admin"),
        ("/healthz/%2e%2e/admin", "/admin"),
        ("/healthz/%2E%2E/admin", "/admin"),
        ("/healthz/.%2e/admin", "/admin"),
        ("//healthz/..//admin", "/admin"),
        ("/.well-known/acme-challenge/../../admin", "/admin"),
        (
            "/.well-known/acme-challenge/%2e%2e/%2e%2e/admin?x=1",
            "/admin?x=1",
        ),
        ("/healthzx", "/healthzx"),
        ("/%68ealthz/../secret", "/secret"),
    ];
    for (path, want) in private_cases {
        let a = get(gw.addr, "app.example.com", path, &[]).await;
        assert_eq!(
            a.headers.get("x-upstream").map(|v| v.to_str().unwrap()),
            Some("private"),
            "{path}: {a:?}"
        );
        assert_eq!(private.paths().last().unwrap(), want, "{path}");
    }
    // Encodings that resolve *into* the exempt prefix reach it, normalised.
    let a = get(gw.addr, "app.example.com", "/x/../%68ealthz", &[]).await;
    assert_eq!(a.headers["x-upstream"], "health");
    assert_eq!(health.paths(), ["/healthz"]);

    // Ambiguous encodings are refused outright.
    for path in [
        "/healthz/..%2fadmin",
        "/healthz%2f..%2fadmin",
        "/healthz/..%5cadmin",
        "/healthz/%00",
        "/..;/admin",
        "/a%zz",
    ] {
        let a = get(gw.addr, "app.example.com", path, &[]).await;
        assert_eq!(
            (a.status, a.code().as_str()),
            (400, "invalid-path"),
            "{path}"
        );
    }
    let r = raw(
        gw.addr,
        b"GET /healthz\\..\\admin HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(!r.contains("x-upstream"), "{r}");
    assert_eq!(health.paths(), ["/healthz"]);
    assert_eq!(acme.paths(), Vec::<String>::new());
}

#[tokio::test]
async fn longest_prefix_and_reload() {
    let (site, api, v2) = (
        upstream("site").await,
        upstream("api").await,
        upstream("v2").await,
    );
    let proxy = Proxy::new(ProxyConfig::default());
    let mut t = RouteTable::new();
    t.insert("example.com", route(&proxy, "site", &[&site]))
        .unwrap();
    t.insert_prefix("example.com", "/api", route(&proxy, "api", &[&api]))
        .unwrap();
    t.insert_prefix("example.com", "/api/v2", route(&proxy, "v2", &[&v2]))
        .unwrap();
    let gw = gateway(t).await;
    for (path, want) in [
        ("/api", "api"),
        ("/api/x", "api"),
        ("/apix", "site"),
        ("/api/v2/y", "v2"),
        ("/api/v20", "api"),
        ("/", "site"),
    ] {
        let a = get(gw.addr, "example.com", path, &[]).await;
        assert_eq!(a.headers["x-upstream"], want, "{path}");
    }

    // Reload: the new table applies to the next request.
    let mut t = RouteTable::new();
    t.insert("new.example.com", route(&proxy, "v2", &[&v2]))
        .unwrap();
    gw.table.store(Arc::new(t));
    assert_eq!(get(gw.addr, "example.com", "/", &[]).await.status, 404);
    assert_eq!(
        get(gw.addr, "new.example.com", "/", &[]).await.headers["x-upstream"],
        "v2"
    );
}
