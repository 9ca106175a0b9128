//! Request smuggling on real sockets: SECURITY-CASES 18 and 19 (and the HTTP/1 side of 22).
//! hyper's parser does most of the work; these tests pin that the composed stack keeps it so
//! and that the recording upstream never sees an ambiguous request.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::*;
use route_core::{Proxy, ProxyConfig};

async fn setup() -> (Upstream, Gateway) {
    let up = upstream("up").await;
    let proxy = Proxy::new(ProxyConfig::default());
    let gw = gateway(host_table(&proxy, &[("a.example.com", &up)])).await;
    (up, gw)
}

fn never_both_cl_and_te(up: &Upstream) {
    for s in up.seen() {
        assert!(
            !(s.headers.contains_key("content-length")
                && s.headers.contains_key("transfer-encoding")),
            "upstream saw both: {:?}",
            s.headers
        );
        assert!(s.headers.get_all("content-length").iter().count() <= 1);
    }
}

/// SECURITY-CASES 18: Content-Length and Transfer-Encoding together are normalised to
/// chunked with the connection closed; the bytes after the chunked body are never read as a
/// second request, and the upstream never sees both headers.
#[tokio::test]
async fn case18_cl_and_te_together() {
    let (up, gw) = setup().await;
    for order in [
        "Content-Length: 48\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 48\r\n",
    ] {
        let req = format!(
            "POST /first HTTP/1.1\r\nHost: a.example.com\r\n{order}\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.example.com\r\n\r\n"
        );
        let r = raw(gw.addr, req.as_bytes()).await;
        let st = statuses(&r);
        assert!(st == [200] || st == [400], "{r}");
        if st == [200] {
            assert!(r.to_ascii_lowercase().contains("connection: close"), "{r}");
        }
    }
    let paths = up.paths();
    assert!(!paths.iter().any(|p| p == "/smuggled"), "{paths:?}");
    never_both_cl_and_te(&up);
    for s in up.seen() {
        assert_eq!(s.body_len, 0);
    }
}

/// SECURITY-CASES 19: conflicting lengths, bad transfer codings and bad chunk sizes get 400
/// (or a closed connection); never a 200, never a complete body upstream.
#[tokio::test]
async fn case19_malformed_framing() {
    let (up, gw) = setup().await;
    let head_errors: [&[u8]; 5] = [
        b"POST / HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"POST / HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: 5, 6\r\n\r\nhello!",
        b"POST / HTTP/1.1\r\nHost: a.example.com\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a.example.com\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: -1\r\n\r\n",
    ];
    for req in head_errors {
        let r = raw(gw.addr, req).await;
        assert_eq!(
            statuses(&r),
            [400],
            "{}\n=> {r}",
            String::from_utf8_lossy(req)
        );
    }
    assert!(up.seen().is_empty(), "{:?}", up.paths());

    let body_errors: [&[u8]; 3] = [
        b"POST /bad-size HTTP/1.1\r\nHost: a.example.com\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        b"POST /huge-size HTTP/1.1\r\nHost: a.example.com\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        b"POST /short HTTP/1.1\r\nHost: a.example.com\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
    ];
    for req in body_errors {
        let r = raw(gw.addr, req).await;
        let st = statuses(&r);
        assert!(
            st.is_empty() || st == [400],
            "{}\n=> {r}",
            String::from_utf8_lossy(req)
        );
        if st == [400] {
            assert!(r.contains("invalid-body"), "{r}");
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    for s in up.seen() {
        assert!(
            !s.body_complete,
            "upstream got a complete body for {}: {:?}",
            s.uri,
            String::from_utf8_lossy(&s.body)
        );
    }
    never_both_cl_and_te(&up);
}

/// The HTTP/1 side of SECURITY-CASES 22: CR or LF smuggled inside a header value, and
/// obsolete line folding, get 400.
#[tokio::test]
async fn case22_bare_cr_and_folding_in_headers() {
    let (up, gw) = setup().await;
    let reqs: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nHost: a.example.com\r\nX-A: a\rX-Injected: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.example.com\r\nX-A: a\r\n X-Folded: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.example.com\r\nX-A\r\n\r\n",
    ];
    for req in reqs {
        let r = raw(gw.addr, req).await;
        assert_eq!(
            statuses(&r),
            [400],
            "{}\n=> {r}",
            String::from_utf8_lossy(req)
        );
    }
    assert!(up.seen().is_empty());
}
