//! Shared helpers for the end-to-end tests: a recording upstream, and the real `gateway`
//! binary started on free ports with a config written to a temporary directory.

#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod cors_csrf;
pub mod driver;
pub mod h2env;
pub mod h2raw;
pub mod identity;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};

pub const DOMAIN: &str = "example.test";
pub const ADMIN_SECRET: &str = "test-admin-secret-0123456789abcdef";

/// A free TCP port on 127.0.0.1 for a server that must be told its port before it starts
/// (Pebble needs the gateway's). It is taken below Linux's ephemeral range (32768-60999), so
/// no outgoing connection of a parallel test can occupy it between this check and the bind.
/// Tests that can let the gateway pick (port 0) should do that instead.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static HANDED_OUT: parking_lot::Mutex<std::collections::BTreeSet<u16>> =
        parking_lot::const_mutex(std::collections::BTreeSet::new());
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
    for _ in 0..1000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (seed.wrapping_add(n.wrapping_mul(7919)) % 12_000) as u16;
        if StdListener::bind(("127.0.0.1", port)).is_ok() {
            // Never hand out the same port twice in this process: two tests could otherwise
            // both pick it before either binds it.
            if HANDED_OUT.lock().insert(port) {
                return port;
            }
        }
    }
    panic!("no free port between 20000 and 32000");
}

/// What the recording upstream received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub uri: String,
    pub headers: HeaderMap,
    pub body_len: usize,
    /// Whether the body arrived whole (false: the sender aborted it mid-way, so the upstream
    /// never had a complete message).
    pub body_complete: bool,
}

impl Recorded {
    pub fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }
    pub fn one(&self, name: &str) -> Option<String> {
        let v = self.all(name);
        assert!(
            v.len() <= 1,
            "header {name} appears {} times: {v:?}",
            v.len()
        );
        v.into_iter().next()
    }
}

/// A hyper upstream that records every request and answers 200 with a JSON echo.
///
/// Paths with special answers:
/// - `/login?user=U&roles=a,b[&default=r][&ttl=s][&vars=k:v,k2:v2][&vars_raw=text]`: the
///   issuer contract headers; `vars` becomes the JSON object of `X-Gateway-Session-Variables`
///   (a query cannot carry JSON unescaped), `vars_raw` is sent as it is
/// - `/logout`: `X-Gateway-Session-End: true`
/// - `/set-session-cookie`: a `Set-Cookie` for the session cookie and one for another cookie
/// - `/slow?ms=N`: answers after N milliseconds
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Recorded>>>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let s = s.clone();
                        async move { Ok::<_, Infallible>(answer(req, s).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Upstream { addr, seen }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn last(&self) -> Recorded {
        self.seen
            .lock()
            .last()
            .cloned()
            .expect("the upstream saw no request")
    }

    pub fn count(&self) -> usize {
        self.seen.lock().len()
    }
}

fn query(uri: &http::Uri) -> HashMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

async fn answer(req: Request<Incoming>, seen: Arc<Mutex<Vec<Recorded>>>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes());
    let body_complete = body.is_ok();
    let body = body.unwrap_or_default();
    let rec = Recorded {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts.headers.clone(),
        body_len: body.len(),
        body_complete,
    };
    seen.lock().push(rec);
    let mut headers = serde_json::Map::new();
    for (k, v) in &parts.headers {
        headers.insert(k.to_string(), String::from_utf8_lossy(v.as_bytes()).into());
    }
    let json = serde_json::json!({ "path": parts.uri.path(), "headers": headers }).to_string();
    let mut res = Response::new(Full::new(Bytes::from(json)));
    res.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    let q = query(&parts.uri);
    match parts.uri.path() {
        "/login" => {
            let h = res.headers_mut();
            if let Some(u) = q.get("user") {
                h.insert("x-gateway-session-user-id", u.parse().unwrap());
            }
            if let Some(r) = q.get("roles") {
                h.insert("x-gateway-session-roles", r.parse().unwrap());
            }
            if let Some(d) = q.get("default") {
                h.insert("x-gateway-session-default-role", d.parse().unwrap());
            }
            if let Some(t) = q.get("ttl") {
                h.insert("x-gateway-session-ttl", t.parse().unwrap());
            }
            if let Some(v) = q.get("vars") {
                let vars: serde_json::Map<String, serde_json::Value> = v
                    .split(',')
                    .filter_map(|kv| kv.split_once(':'))
                    .map(|(k, v)| (k.to_owned(), v.into()))
                    .collect();
                let json = serde_json::Value::Object(vars).to_string();
                h.insert("x-gateway-session-variables", json.parse().unwrap());
            }
            if let Some(raw) = q.get("vars_raw") {
                h.insert("x-gateway-session-variables", raw.parse().unwrap());
            }
        }
        "/logout" => {
            res.headers_mut()
                .insert("x-gateway-session-end", "true".parse().unwrap());
        }
        "/set-session-cookie" => {
            res.headers_mut()
                .append("set-cookie", "gw_session=forged; Path=/".parse().unwrap());
            res.headers_mut()
                .append("set-cookie", "theme=dark; Path=/".parse().unwrap());
        }
        "/slow" => {
            let ms = q.get("ms").and_then(|m| m.parse().ok()).unwrap_or(500);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        _ => {}
    }
    res
}

/// A WebSocket echo upstream (text frames come back as sent).
pub async fn ws_echo() -> std::net::SocketAddr {
    use futures_util::{SinkExt, StreamExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// The standard test config: services `data` (anonymous, user, admin), `admin` (admin only),
/// `auth` (session issuer), `open` (every role, forwards credentials) and `rogue` (not an
/// issuer, but its upstream sends issuer headers).
pub fn standard_config(http: u16, admin: u16, up: &str, extra: &str) -> String {
    format!(
        r#"
[project]
domains = ["{DOMAIN}"]

[listen]
http = "127.0.0.1:{http}"
admin = "127.0.0.1:{admin}"

[limits]
header_read_timeout = "2s"
idle_timeout = "5s"
max_body_bytes = 1048576
max_connections = 64
shutdown_grace = "5s"

[sessions]
cookie_name = "gw_session"

[log]
format = "json"
level = "info"

[[services]]
name = "data"
upstreams = ["{up}"]
allowed_roles = ["anonymous", "user", "admin"]

[[services]]
name = "admin"
upstreams = ["{up}"]
allowed_roles = ["admin"]

[[services]]
name = "auth"
upstreams = ["{up}"]
session_issuer = true

[[services]]
name = "open"
upstreams = ["{up}"]
forward_credentials = true

[[services]]
name = "rogue"
upstreams = ["{up}"]
{extra}
"#
    )
}

/// The real gateway binary, killed on drop.
pub struct Gateway {
    pub child: Option<Child>,
    pub http: u16,
    pub admin: u16,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
}

impl Gateway {
    pub fn start(config: &str, http: u16, admin: u16) -> Gateway {
        Gateway::start_with(config, http, admin, &[])
    }

    /// Like [`Gateway::start`], with extra `gateway run` arguments (e.g. `--threads 1`).
    pub fn start_with(config: &str, http: u16, admin: u16, extra: &[&str]) -> Gateway {
        let mut g = Gateway::spawn(config, http, admin, extra, &[]);
        g.wait_ready();
        g
    }

    /// Like [`Gateway::start`], with extra environment variables.
    pub fn start_with_env(config: &str, http: u16, admin: u16, env: &[(&str, &str)]) -> Gateway {
        let mut g = Gateway::spawn(config, http, admin, &[], env);
        g.wait_ready();
        g
    }

    /// Starts the binary on a fresh directory and returns at once; call
    /// [`Gateway::wait_ready`] before using it. Several can be started at the same moment.
    pub fn spawn(
        config: &str,
        http: u16,
        admin: u16,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("gateway.toml");
        std::fs::write(&config_path, config).unwrap();
        Gateway::launch(dir, &config_path, "gateway.log", http, admin, extra, env)
    }

    /// Starts the binary on an existing directory and config (a restart).
    pub fn start_at(
        dir: tempfile::TempDir,
        config_path: &std::path::Path,
        http: u16,
        admin: u16,
    ) -> Gateway {
        let mut g = Gateway::launch(
            dir,
            config_path,
            "gateway-restart.log",
            http,
            admin,
            &[],
            &[],
        );
        g.wait_ready();
        g
    }

    fn launch(
        dir: tempfile::TempDir,
        config_path: &std::path::Path,
        log_name: &str,
        http: u16,
        admin: u16,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Gateway {
        let log_path = dir.path().join(log_name);
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(["run", "--config"])
            .arg(config_path)
            .args(extra)
            .env("GATEWAY_ADMIN_SECRET", ADMIN_SECRET)
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        Gateway {
            child: Some(child),
            http,
            admin,
            dir,
            config_path: config_path.to_owned(),
            log_path,
        }
    }

    /// Waits until both listeners are bound. Port 0 in the config means "any free port": the
    /// real ports are read from the gateway's "listening" log lines, which avoids the race of
    /// picking a free port in the test and binding it later in the gateway.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            for line in self.log().lines() {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                let port = v["addr"]
                    .as_str()
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| p.parse::<u16>().ok());
                match (v["message"].as_str(), port) {
                    (Some("listening for HTTP"), Some(p)) if self.http == 0 => self.http = p,
                    (Some("listening for the admin API"), Some(p)) if self.admin == 0 => {
                        self.admin = p
                    }
                    _ => {}
                }
            }
            if self.http != 0
                && self.admin != 0
                && TcpStream::connect(("127.0.0.1", self.http)).is_ok()
                && TcpStream::connect(("127.0.0.1", self.admin)).is_ok()
            {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("the gateway exited with {status}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the gateway did not start; log:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.http, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.admin, path)
    }

    /// The admin API's `/metrics` text.
    pub async fn metrics(&self) -> String {
        client()
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// An authenticated GET on the admin API, its body as JSON.
    pub async fn admin_json(&self, path: &str) -> serde_json::Value {
        client()
            .get(self.admin_url(path))
            .bearer_auth(ADMIN_SECRET)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The admin API's `/v1/services` listing.
    pub async fn services(&self) -> serde_json::Value {
        self.admin_json("/v1/services").await
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the gateway did not exit after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The HTTPS listener's port, read from the gateway's "listening for HTTPS" log line (waited
/// for up to 10 s: the line can follow the process's readiness by a moment).
pub fn https_port(g: &Gateway) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        for line in g.log().lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if v["message"] == "listening for HTTPS" {
                if let Some(p) = v["addr"]
                    .as_str()
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| p.parse().ok())
                {
                    return p;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no HTTPS listener in the log:\n{}", g.log());
}

/// The sum of the samples of metric `name` (lines starting with it) whose line contains every
/// one of `filters`.
pub fn metric_sum(metrics: &str, name: &str, filters: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && filters.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The service named `name` in a `/v1/services` listing.
pub fn listed_service(listing: &serde_json::Value, name: &str) -> Option<serde_json::Value> {
    listing["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
}

/// A rustls client config (the gateway's own crypto provider) that trusts only the CA
/// certificates in `ca_pem`.
pub fn client_config_trusting(ca_pem: &[u8]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &ca_pem[..]) {
        roots.add(cert.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(cert_core::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// A TLS connector that trusts the dev CA of a gateway started with `[tls] mode = "dev-ca"`.
pub fn dev_ca_connector(g: &Gateway) -> tokio_rustls::TlsConnector {
    let pem = std::fs::read(g.dir.path().join("gateway-data/dev-ca/dev-ca.pem")).unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(client_config_trusting(&pem)))
}

/// A reqwest client that never follows redirects and keeps no cookies.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

pub fn host(sub: &str) -> String {
    format!("{sub}.{DOMAIN}")
}

/// Creates a session through the admin API and returns its token.
pub async fn create_session(
    g: &Gateway,
    user: &str,
    roles: &[&str],
    default_role: Option<&str>,
) -> String {
    let res = client()
        .post(g.admin_url("/v1/sessions"))
        .bearer_auth(ADMIN_SECRET)
        .json(&serde_json::json!({ "user_id": user, "roles": roles, "default_role": default_role }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "create session failed");
    let v: serde_json::Value = res.json().await.unwrap();
    v["token"].as_str().unwrap().to_owned()
}

/// Sends raw bytes and returns what came back until the server closed or 3 s passed.
pub fn raw(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                // One response is enough when the server keeps the connection open.
                if out.windows(4).any(|w| w == b"\r\n\r\n") && response_complete(&out) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn response_complete(buf: &[u8]) -> bool {
    let text = String::from_utf8_lossy(buf);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let len = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("content-length:")
            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
    });
    match len {
        Some(n) => body.len() >= n,
        None => false,
    }
}

/// The status code of a raw HTTP response.
pub fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
