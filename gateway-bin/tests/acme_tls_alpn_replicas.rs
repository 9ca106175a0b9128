//! TLS-ALPN-01 across real `gateway` replicas sharing one real `redis-server`, against the real
//! Pebble (issue 16): Pebble validates on replica A's HTTPS port only, so an order placed by
//! B succeeds only if A's listener answers B's validation with the challenge certificate B
//! stored in Redis.
//!
//! Without `redis-server` or Pebble on the PATH the test prints a loud skip message, except
//! on CI (`CI=true`) where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
// Pebble's harness is shared with cert-core's own tests.
#[path = "../../cert-core/tests/common/mod.rs"]
mod pebble;
// So is the redis-server helper, with session-core's.
#[path = "../../session-core/tests/support/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use common::*;
use redis_server::RedisServer;

const REDIS_PASSWORD: &str = "alpn-replica-test-redis-pw";

async fn has_cert(g: &Gateway, name: &str) -> bool {
    let v = g.admin_json("/v1/certs").await;
    v["certificates"].as_array().is_some_and(|a| {
        a.iter()
            .any(|c| c["name"] == name && c["not_after"].is_string())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn01_orders_of_either_replica_are_validated_on_the_other() {
    let Some(redis) = RedisServer::start(Some(REDIS_PASSWORD), &[]) else {
        return;
    };
    if !pebble::pebble_available() {
        return;
    }
    let up = Upstream::start().await;
    let (a_http, a_https, b_http, b_https) = (free_port(), free_port(), free_port(), free_port());
    let p = pebble::Pebble::start(&pebble::PebbleOpts {
        http_port: a_http,
        tls_port: a_https,
        ..Default::default()
    });
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), &p.listener_ca_pem).unwrap();
    let config = |http: u16, https: u16| {
        standard_config(http, 0, &up.url(), "")
            .replace("[listen]\n", &format!("[listen]\nhttps = \"127.0.0.1:{https}\"\n"))
            .replace("[sessions]\n", "[sessions]\nstore = \"redis\"\n")
            .replace(
                "[log]\n",
                &format!(
                    "[tls]\nmode = \"acme\"\nstore = \"redis\"\nacme_directory = \"{}\"\nacme_ca_file = \"{}\"\nhttp01 = false\ntls_alpn01 = true\nacme_check_interval = \"1s\"\n\n[log]\n",
                    p.directory_url,
                    ca.path().display()
                ),
            )
    };
    let env = [("GATEWAY_REDIS_URL", redis.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Both start at once; B (whose port Pebble never calls) goes first, so it takes some of
    // the order leases.
    let mut b = Gateway::spawn(&config(b_http, b_https), b_http, 0, &[], &env);
    let mut a = Gateway::spawn(&config(a_http, a_https), a_http, 0, &[], &env);
    b.wait_ready();
    a.wait_ready();

    let names: Vec<String> = std::iter::once(DOMAIN.to_owned())
        .chain(
            ["data", "admin", "auth", "open", "rogue"]
                .iter()
                .map(|s| host(s)),
        )
        .collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    for name in &names {
        while !(has_cert(&a, name).await && has_cert(&b, name).await) {
            assert!(
                Instant::now() < deadline,
                "{name} not served by both replicas\nA:\n{}\nB:\n{}",
                a.log(),
                b.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let (metrics_a, metrics_b) = (a.metrics().await, b.metrics().await);
    let mut by_b = 0.0;
    for name in &names {
        let label = format!("name=\"{name}\"");
        let on_a = metric_sum(&metrics_a, "cert_acme_orders_total", &[&label]);
        let on_b = metric_sum(&metrics_b, "cert_acme_orders_total", &[&label]);
        assert_eq!(on_a + on_b, 1.0, "{name}: {on_a} orders on A, {on_b} on B");
        by_b += on_b;
    }
    assert!(
        by_b >= 1.0,
        "B placed no order, so no validation had to be answered by the other replica"
    );
    // A answered each of B's validations from Redis; B's listener was never asked.
    let shared_a = metric_sum(&metrics_a, "cert_tls_alpn_shared_answers_total", &[]);
    assert!(
        shared_a >= by_b,
        "A answered {shared_a} of B's {by_b} orders"
    );
    assert_eq!(
        metric_sum(&metrics_b, "cert_tls_alpn_shared_answers_total", &[]),
        0.0
    );

    // Both replicas serve the same certificates to a client that trusts only Pebble's root.
    let root = p.issuing_root_pem().await;
    let data = host("data");
    for port in [a_https, b_https] {
        let c = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes()).unwrap())
            .tls_built_in_root_certs(false)
            .resolve(&data, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .no_proxy()
            .build()
            .unwrap();
        let res = c
            .get(format!("https://{data}:{port}/alpn-replicated"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    a.terminate();
    b.terminate();
    assert!(!a.log().contains(REDIS_PASSWORD) && !b.log().contains(REDIS_PASSWORD));
}
