//! A 1 GiB upload streamed through the proxy keeps memory flat.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::convert::Infallible;
use std::time::Instant;

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::StreamBody;
use hyper::body::Frame;
use route_core::{Proxy, ProxyConfig};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_upload_streams_with_bounded_memory() {
    const MIB: usize = 1 << 20;
    const TOTAL: u64 = 1 << 30;
    let up = upstream("sink").await;
    let proxy = Proxy::new(ProxyConfig::default());
    let gw = gateway(host_table(&proxy, &[("up.example.com", &up)])).await;
    // Warm up: connections, pools and allocator arenas exist before the baseline.
    assert_eq!(
        get(gw.addr, "up.example.com", "/warm", &[]).await.status,
        200
    );
    let before = rss_kib();

    // One 1 MiB chunk, shared by every frame: the client side allocates nothing per frame.
    let chunk = Bytes::from(vec![0x5au8; MIB]);
    let frames = futures_util::stream::iter(
        (0..TOTAL / MIB as u64).map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone()))),
    );
    let req = Request::post("/upload")
        .header("host", "up.example.com")
        .body(StreamBody::new(frames))
        .unwrap();
    let started = Instant::now();
    let a = send(gw.addr, req).await;
    let took = started.elapsed();
    let after = rss_kib();
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.text(), format!("sink {TOTAL}"));
    let seen = up.seen();
    let upload = seen.iter().find(|s| s.uri == "/upload").unwrap();
    assert_eq!(upload.body_len, TOTAL);
    assert!(upload.body_complete);
    let growth_mib = after.saturating_sub(before) / 1024;
    eprintln!("1 GiB upload: {took:?}, RSS {before} KiB -> {after} KiB (+{growth_mib} MiB)");
    assert!(growth_mib < 64, "RSS grew by {growth_mib} MiB");
}
