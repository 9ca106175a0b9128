//! ACME end to end: the real gateway binary gets certificates from the real Pebble server
//! over HTTP-01, serves them to a client that trusts only Pebble's root, and reuses them
//! after a restart without a new order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
// Pebble's harness is shared with cert-core's own tests.
#[path = "../../cert-core/tests/common/mod.rs"]
mod pebble;

use std::time::{Duration, Instant};

use common::*;

fn acme_config(http: u16, https: u16, up: &str, directory: &str, ca_file: &str) -> String {
    standard_config(http, 0, up, "")
        .replace("[listen]\n", &format!("[listen]\nhttps = \"127.0.0.1:{https}\"\n"))
        .replace(
            "[sessions]\n",
            &format!(
                "[tls]\nmode = \"acme\"\nacme_directory = \"{directory}\"\nacme_ca_file = \"{ca_file}\"\nhttp01 = true\ntls_alpn01 = false\n\n[sessions]\n"
            ),
        )
}

async fn wait_for_cert(g: &Gateway, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = g.admin_json("/v1/certs").await;
        let issued = v["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == name && c["not_after"].is_string());
        if issued {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no certificate for {name}: {v}\n{}",
            g.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_obtains_serves_and_reuses_acme_certificates() {
    if !pebble::pebble_available() {
        return;
    }
    let up = Upstream::start().await;
    // Pebble must know the gateway's ports before either starts.
    let (http, https) = (free_port(), free_port());
    let p = pebble::Pebble::start(&pebble::PebbleOpts {
        http_port: http,
        tls_port: https,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("pebble-listener-ca.pem");
    std::fs::write(&ca_file, &p.listener_ca_pem).unwrap();
    let config = acme_config(
        http,
        https,
        &up.url(),
        &p.directory_url,
        ca_file.to_str().unwrap(),
    );

    let mut g = Gateway::start(&config, http, 0);
    let data = host("data");
    wait_for_cert(&g, &data).await;
    assert!(metric_sum(&g.metrics().await, "cert_acme_orders_total", &[]) >= 1.0);
    let listed = g.services().await;
    let svc = listed_service(&listed, "data").unwrap();
    assert_eq!(svc["certificate"]["source"], "acme", "{listed}");
    assert_eq!(svc["certificate"]["state"], "valid", "{listed}");
    assert!(
        svc["certificate"]["issuer"]
            .as_str()
            .unwrap()
            .contains("Pebble"),
        "{listed}"
    );

    // A client that trusts only Pebble's issuing root completes the handshake and is proxied.
    let root = p.issuing_root_pem().await;
    let https_client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .resolve(&data, std::net::SocketAddr::from(([127, 0, 0, 1], https)))
        .no_proxy()
        .build()
        .unwrap();
    let res = https_client
        .get(format!("https://{data}:{https}/over-acme"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(up.last().uri, "/over-acme");

    // Key files are private.
    let acme_dir = g.config_path.parent().unwrap().join("gateway-data/acme");
    assert_eq!(pebble::mode(&acme_dir) & 0o777, 0o700);
    for entry in std::fs::read_dir(acme_dir.join("certs")).unwrap() {
        assert_eq!(pebble::mode(&entry.unwrap().path()) & 0o777, 0o600);
    }

    // A restart on the same directory serves the stored certificate and orders nothing.
    g.terminate();
    let config_path = g.config_path.clone();
    let kept = std::mem::replace(&mut g.dir, tempfile::tempdir().unwrap());
    drop(g);
    let g2 = Gateway::start_at(kept, &config_path, http, 0);
    wait_for_cert(&g2, &data).await;
    let res = https_client
        .get(format!("https://{data}:{https}/again"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        metric_sum(&g2.metrics().await, "cert_acme_orders_total", &[]),
        0.0,
        "no new order after a restart"
    );
}
