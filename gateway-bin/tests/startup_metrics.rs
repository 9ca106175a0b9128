//! Issue 13 item 14: a metric recorded while the gateway starts reaches `/metrics`.
//!
//! The Prometheus recorder used to be installed only when the admin listener was built, after
//! TLS had started the ACME manager. Whatever the manager counted before that moment went to
//! no recorder and was lost: on a loaded machine the replicas test saw a certificate served by
//! both replicas with `cert_acme_orders_total` absent on both. Here the gateway runs in this
//! process without an admin listener, so nothing installs the recorder during start but
//! `app::start` itself, and an ACME directory on a closed port makes the manager count a
//! failure at once.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use gateway_bin::app::{self, StartOptions};
use gateway_bin::config::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_recorded_while_the_gateway_starts_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: the ACME client's connection is refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = format!(
        r#"
[project]
domains = ["example.test"]

[listen]
http = "127.0.0.1:0"
https = "127.0.0.1:0"

[tls]
mode = "acme"
acme_directory = "https://127.0.0.1:{closed}/directory"
http01 = true
tls_alpn01 = false

[[services]]
name = "data"
upstreams = ["http://127.0.0.1:9"]
"#
    );
    let config = Config::parse(&text, dir.path()).unwrap();
    let running = app::start(config, StartOptions::default()).await.unwrap();
    let acme = running
        .shared
        .tls
        .as_ref()
        .and_then(|t| t.acme.clone())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let failures = loop {
        let n: u32 = acme.list().iter().map(|s| s.failures).sum();
        if n > 0 {
            break n;
        }
        assert!(Instant::now() < deadline, "the ACME manager never failed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // The manager counts a failure before it records it in its state: every failure seen above
    // is in the counter, if the counter went to a recorder.
    let handle = gateway_bin::telemetry::metrics_handle().unwrap();
    let counted: f64 = handle
        .render()
        .lines()
        .filter(|l| l.starts_with("cert_acme_failures_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        counted >= f64::from(failures),
        "{failures} ACME failures, {counted} counted"
    );
    running.shutdown().await;
}
