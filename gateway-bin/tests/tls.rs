//! HTTPS against the real binary: the development CA, the SNI/Host check (case 14), HTTP/2 by
//! ALPN, and the redirect from plain HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

fn tls_config(up: &str) -> String {
    standard_config(0, 0, up, "")
        .replace(
            "[listen]\n",
            "[listen]\nhttps = \"127.0.0.1:0\"\nredirect_http_to_https = true\n",
        )
        .replace("[sessions]\n", "[tls]\nmode = \"dev-ca\"\n\n[sessions]\n")
}

fn https_client(g: &Gateway, port: u16) -> reqwest::Client {
    let ca_path = g.dir.path().join("gateway-data/dev-ca/dev-ca.pem");
    let ca = std::fs::read(&ca_path)
        .unwrap_or_else(|e| panic!("no dev CA at {}: {e}", ca_path.display()));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .tls_built_in_root_certs(false)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    for h in ["data", "admin", "public", "auth"] {
        b = b.resolve(&host(h), addr);
    }
    b.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_ca_serves_every_subdomain_over_https_with_h2() {
    let up = Upstream::start().await;
    let g = Gateway::start(&tls_config(&up.url()), 0, 0);
    let port = https_port(&g);
    let c = https_client(&g, port);
    let res = c
        .get(format!("https://{}:{port}/tls", host("data")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.version(),
        reqwest::Version::HTTP_2,
        "ALPN negotiates h2"
    );
    let seen = up.last();
    assert_eq!(seen.one("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(seen.one("x-hasura-role").as_deref(), Some("anonymous"));

    // The services API reports each service's certificate.
    let listed = g.services().await;
    let data = listed_service(&listed, "data").unwrap();
    assert_eq!(data["certificate"]["source"], "dev-ca", "{listed}");
    assert_eq!(data["certificate"]["state"], "installed", "{listed}");

    // The issuer's cookie works over HTTPS and is Secure.
    let res = c
        .post(format!(
            "https://{}:{port}/login?user=5&roles=user",
            host("auth")
        ))
        .send()
        .await
        .unwrap();
    assert!(res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Secure"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_14_host_that_differs_from_sni_gets_421() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::start().await;
    let g = Gateway::start(&tls_config(&up.url()), 0, 0);
    let port = https_port(&g);
    let pem = std::fs::read(g.dir.path().join("gateway-data/dev-ca/dev-ca.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(cert_core::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let before = up.count();
    // SNI says data.<domain>, the request says admin.<domain>.
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let sni = rustls::pki_types::ServerName::try_from(host("data")).unwrap();
    let mut tls = connector.connect(sni, tcp).await.unwrap();
    tls.write_all(
        format!(
            "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            host("admin")
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out);
    assert_eq!(status_of(&text), 421, "{text}");
    assert_eq!(up.count(), before, "nothing was proxied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_redirects_to_https() {
    let up = Upstream::start().await;
    let g = Gateway::start(&tls_config(&up.url()), 0, 0);
    let port = https_port(&g);
    let res = client()
        .get(g.url("/x?y=1"))
        .header("host", host("data"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 308);
    assert_eq!(
        res.headers()["location"].to_str().unwrap(),
        format!("https://{}:{port}/x?y=1", host("data"))
    );
    // A hostile Host is never echoed into Location.
    let raw_res = raw(
        g.http,
        b"GET / HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n",
    );
    assert!(
        !raw_res.to_ascii_lowercase().contains("location:"),
        "{raw_res}"
    );
    assert_eq!(status_of(&raw_res), 404, "{raw_res}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tls_handshake_is_cut() {
    use std::io::Read;
    let up = Upstream::start().await;
    let config =
        tls_config(&up.url()).replace("[limits]\n", "[limits]\ntls_handshake_timeout = \"1s\"\n");
    let g = Gateway::start(&config, 0, 0);
    let port = https_port(&g);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let started = std::time::Instant::now();
    let n = s.read(&mut [0u8; 16]).unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cert_cli_lists_the_store_and_reports_when_acme_is_off() {
    let up = Upstream::start().await;
    let g = Gateway::start(&tls_config(&up.url()), 0, 0);
    let bin = env!("CARGO_BIN_EXE_gateway");
    let out = std::process::Command::new(bin)
        .args(["cert", "list", "--config"])
        .arg(&g.config_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("NAME"));
    // dev-ca is not ACME: the running gateway says so, and the command fails.
    let out = std::process::Command::new(bin)
        .args(["cert", "renew", &host("data")])
        .env("GATEWAY_ADMIN_URL", g.admin_url(""))
        .env("GATEWAY_ADMIN_SECRET", ADMIN_SECRET)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("acme-disabled"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
