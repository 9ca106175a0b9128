//! Header rewriting on real sockets: hop-by-hop both ways, SECURITY-CASES 4 and 5.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use route_core::{Proxy, ProxyConfig};

/// Hop-by-hop request headers, including names listed in `Connection`, never reach the
/// upstream; end-to-end headers do.
#[tokio::test]
async fn hop_by_hop_request_headers_are_removed() {
    let up = upstream("up").await;
    let proxy = Proxy::new(ProxyConfig::default());
    let gw = gateway(host_table(&proxy, &[("a.example.com", &up)])).await;
    let a = get(
        gw.addr,
        "a.example.com",
        "/",
        &[
            ("connection", "keep-alive, X-Drop-Me, x-also"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers, deflate"),
            ("trailer", "x-checksum"),
            ("upgrade", "foo/2"),
            ("x-drop-me", "1"),
            ("x-also", "1"),
            ("x-end-to-end", "kept"),
        ],
    )
    .await;
    assert_eq!(a.status, 200);
    let h = &up.seen()[0].headers;
    for gone in [
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "x-drop-me",
        "x-also",
        "transfer-encoding",
    ] {
        assert!(h.get(gone).is_none(), "{gone} reached the upstream: {h:?}");
    }
    assert_eq!(h["x-end-to-end"], "kept");
}

/// Hop-by-hop response headers (and names the upstream's `Connection` lists) are removed.
#[tokio::test]
async fn hop_by_hop_response_headers_are_removed() {
    let up = upstream("up").await;
    let proxy = Proxy::new(ProxyConfig::default());
    let gw = gateway(host_table(&proxy, &[("a.example.com", &up)])).await;
    let a = get(gw.addr, "a.example.com", "/hop-response", &[]).await;
    assert_eq!(a.status, 200);
    for gone in [
        "x-secret-hop",
        "keep-alive",
        "proxy-authenticate",
        "trailer",
        "upgrade",
    ] {
        assert!(
            a.headers.get(gone).is_none(),
            "{gone} reached the client: {:?}",
            a.headers
        );
    }
    assert!(a
        .headers
        .get("connection")
        .is_none_or(|v| v != "x-secret-hop"));
    assert_eq!(a.headers["x-end-to-end"], "kept");
}

/// SECURITY-CASES 4: `Connection` naming the identity headers cannot remove the injected
/// ones, because hop-by-hop processing happens before injection.
#[tokio::test]
async fn case4_connection_cannot_strip_injected_identity() {
    let up = upstream("up").await;
    let proxy = Proxy::new(ProxyConfig::default());
    let gw = gateway(host_table(&proxy, &[("a.example.com", &up)])).await;
    let r = raw(
        gw.addr,
        b"GET / HTTP/1.1\r\nHost: a.example.com\r\nConnection: close, X-Hasura-Role, X-Hasura-User-Id\r\n\
          X-Hasura-Role: admin\r\nX-Hasura-User-Id: 1\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&r), [200], "{r}");
    let seen = up.seen();
    let h = &seen[0].headers;
    assert_eq!(
        h.get_all("x-hasura-role").iter().collect::<Vec<_>>(),
        ["user"]
    );
    assert_eq!(
        h.get_all("x-hasura-user-id").iter().collect::<Vec<_>>(),
        ["42"]
    );
    assert!(h.get("connection").is_none());
}

/// SECURITY-CASES 5: forwarded headers are rebuilt from the socket, one copy of each.
#[tokio::test]
async fn case5_forwarded_headers_rebuilt_from_socket() {
    let up = upstream("up").await;
    let proxy = Proxy::new(ProxyConfig::default());
    let gw = gateway(host_table(&proxy, &[("a.example.com", &up)])).await;
    let r = raw(
        gw.addr,
        b"GET / HTTP/1.1\r\nHost: A.example.com:8080\r\nX-Forwarded-For: 6.6.6.6\r\nx-forwarded-for: 7.7.7.7\r\n\
          X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.com\r\nX-Forwarded-Host: evil2.com\r\n\
          Forwarded: for=6.6.6.6;proto=https;host=evil.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&r), [200], "{r}");
    let h = &up.seen()[0].headers;
    let all = |n: &str| {
        h.get_all(n)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(all("x-forwarded-proto"), ["http"]);
    assert_eq!(all("x-forwarded-host"), ["a.example.com"]);
    assert_eq!(
        all("forwarded"),
        ["for=127.0.0.1;host=a.example.com;proto=http"]
    );
}

/// A trusted front proxy (opt-in by CIDR) has its chain extended instead of replaced.
#[tokio::test]
async fn trusted_front_proxy_chain_is_appended() {
    let up = upstream("up").await;
    let proxy = Proxy::new(ProxyConfig {
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..Default::default()
    });
    let gw = gateway(host_table(&proxy, &[("a.example.com", &up)])).await;
    let a = get(
        gw.addr,
        "a.example.com",
        "/",
        &[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=198.51.100.1"),
        ],
    )
    .await;
    assert_eq!(a.status, 200);
    let h = &up.seen()[0].headers;
    assert_eq!(h["x-forwarded-for"], "198.51.100.1, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(
        h["forwarded"],
        "for=198.51.100.1, for=127.0.0.1;host=a.example.com;proto=https"
    );
}
