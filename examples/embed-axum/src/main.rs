//! `cargo run -p example-embed-axum` serves the app on `https://app.localhost:8443` with a
//! certificate from a local development CA (kept in `target/embed-axum-dev-ca`, or
//! `$DEV_CA_DIR`), and prints curl commands to try it. `$APP_DOMAIN` changes the domain.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cert_core::DevCa;
use example_embed_axum::{app, dev_certificates, serve, tls_acceptor, AppConfig, LOGIN_PAGE};
use session_core::MemoryStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let domain = std::env::var("APP_DOMAIN").unwrap_or_else(|_| "app.localhost".to_owned());
    let ca_dir = std::env::var_os("DEV_CA_DIR")
        .map_or_else(|| PathBuf::from("target/embed-axum-dev-ca"), PathBuf::from);
    // Reused across runs, so a browser told to trust it once keeps trusting it.
    let ca = DevCa::load_or_create(ca_dir)?;
    let tls = tls_acceptor(dev_certificates(&ca, std::slice::from_ref(&domain))?)?;

    let store = MemoryStore::new();
    let _sweeper = store.spawn_sweeper(Duration::from_secs(60));
    let app = app(Arc::new(store), &AppConfig::new(&domain))?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
    let base = format!("https://{domain}:{}", listener.local_addr()?.port());
    let ca = ca.ca_cert_path();
    let ca = ca.display();
    let json = r#"-H 'Content-Type: application/json' -d '{"username":"alice","password":"alice-password"}'"#;
    println!("listening on {base} (users alice/alice-password: admin, bob/bob-password: user)");
    println!("  curl --cacert {ca} {base}/me                        # anonymous");
    println!("  curl --cacert {ca} {json} {base}/login   # a token and a cookie");
    println!("  curl --cacert {ca} -H 'Authorization: Bearer <token>' {base}/admin");
    println!("  curl --cacert {ca} {base}/admin                     # 401 JSON");
    println!("  curl --cacert {ca} -i -H 'Sec-Fetch-Mode: navigate' {base}/admin   # 302 to {LOGIN_PAGE}");
    println!("  curl --cacert {ca} -X POST -H 'Authorization: Bearer <token>' {base}/logout");
    println!("  curl --cacert {ca} -i -X OPTIONS -H 'Origin: {base}' -H 'Access-Control-Request-Method: POST' {base}/me");
    println!("In a browser that trusts {ca}: {base}{LOGIN_PAGE}");
    serve(listener, tls, app).await?;
    Ok(())
}
