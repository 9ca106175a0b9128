//! Test harness: the real Pebble ACME server and pebble-challtestsrv, a minimal
//! tokio-rustls + hyper server using cert-core's resolver and HTTP-01 responder, and a TLS
//! client.
//!
//! Pebble is pointed at the test server's plain and TLS ports; pebble-challtestsrv answers
//! every DNS name with 127.0.0.1, so validations reach the test server.

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpListener as StdTcpListener, TcpStream as StdTcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use cert_core::rustls;
use cert_core::{
    is_acme_tls_alpn, server_config, Acceptor, CertResolver, ChallengeResponder, Clock, TlsConfig,
};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

/// A clock tests can set: real time until [`TestClock::freeze_at`], then that instant.
#[derive(Debug, Default)]
pub struct TestClock {
    fixed: parking_lot::Mutex<Option<SystemTime>>,
}

impl TestClock {
    /// From now on, "now" is `at` (it does not move with real time). Pebble issues
    /// certificates relative to real time, so a frozen clock keeps a freshly renewed
    /// certificate from looking due again.
    pub fn freeze_at(&self, at: SystemTime) {
        *self.fixed.lock() = Some(at);
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        self.fixed.lock().unwrap_or_else(SystemTime::now)
    }
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub async fn wait_for(what: &str, timeout: Duration, cond: impl FnMut() -> bool) {
    wait_for_every(what, timeout, Duration::from_millis(50), cond).await;
}

/// Polls `cond` every `interval` until it holds or `timeout` passes.
pub async fn wait_for_every(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut cond: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(interval).await;
    }
}

/// A free port for Pebble's own listeners, taken below Linux's ephemeral range (32768-60999)
/// so that no outgoing connection of a parallel test can occupy it before Pebble binds it.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static HANDED_OUT: parking_lot::Mutex<std::collections::BTreeSet<u16>> =
        parking_lot::const_mutex(std::collections::BTreeSet::new());
    let seed = std::process::id()
        ^ SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
    for _ in 0..1000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // 12000-20000: below the gateway tests' range (20000-32000), so the two never collide.
        let port = 12_000 + (seed.wrapping_add(n.wrapping_mul(7919)) % 8_000) as u16;
        if StdTcpListener::bind(("127.0.0.1", port)).is_ok() {
            // Never hand out the same port twice in this process: two tests could otherwise
            // both pick it before either binds it.
            if HANDED_OUT.lock().insert(port) {
                return port;
            }
        }
    }
    panic!("no free port between 12000 and 20000");
}

fn find_in_path(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}

/// Whether pebble is installed. Missing: under CI=true the test fails; otherwise it is
/// skipped with a loud message.
pub fn pebble_available() -> bool {
    let ok = find_in_path("pebble").is_some() && find_in_path("pebble-challtestsrv").is_some();
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("pebble / pebble-challtestsrv not found in PATH and CI=true: run scripts/install-test-deps");
        }
        // Written to the real stderr: libtest captures eprintln!, and a skip must be seen.
        use std::io::Write;
        let _ = std::io::stderr().write_all(
            b"\n\n!!!!!!!! SKIPPING: pebble / pebble-challtestsrv not installed \
              (apt-get install pebble, or scripts/install-test-deps) !!!!!!!!\n\n",
        );
    }
    ok
}

/// Options for a Pebble instance.
#[derive(Debug, Clone, Default)]
pub struct PebbleOpts {
    /// Port Pebble validates HTTP-01 against (the test server's plain port).
    pub http_port: u16,
    /// Port Pebble validates TLS-ALPN-01 against (the test server's TLS port).
    pub tls_port: u16,
    /// Certificate lifetime in seconds (None: Pebble's default).
    pub validity_secs: Option<u64>,
    /// Extra environment for pebble (e.g. PEBBLE_WFE_NONCEREJECT=100).
    pub env: Vec<(String, String)>,
}

/// Running pebble + pebble-challtestsrv; both are killed on drop.
pub struct Pebble {
    pebble: Child,
    challtest: Child,
    pub directory_url: String,
    pub mgmt_port: u16,
    /// The CA that signed Pebble's own listener certificate (trust it to talk to Pebble).
    pub listener_ca_pem: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.pebble.kill();
        let _ = self.challtest.kill();
        let _ = self.pebble.wait();
        let _ = self.challtest.wait();
        if std::thread::panicking() {
            if let Ok(log) = fs::read_to_string(&self.log) {
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- pebble log (last 40 lines) ----");
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

fn wait_tcp(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while StdTcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(25));
    }
}

impl Pebble {
    pub fn start(opts: &PebbleOpts) -> Pebble {
        let dir = tempfile::tempdir().expect("tempdir");
        // Pebble's own HTTPS listener: a throwaway CA and a leaf for 127.0.0.1/localhost.
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::default();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pebble listener test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().expect("key");
        let leaf = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("params")
            .signed_by(&leaf_key, &issuer)
            .expect("leaf");
        let cert_path = dir.path().join("listener.pem");
        let key_path = dir.path().join("listener.key");
        fs::write(&cert_path, leaf.pem()).expect("write");
        fs::write(&key_path, leaf_key.serialize_pem()).expect("write");

        let listen_port = free_port();
        let mgmt_port = free_port();
        let dns_port = free_port();
        let challtest_mgmt = free_port();
        let mut cfg = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{listen_port}"),
                "managementListenAddress": format!("127.0.0.1:{mgmt_port}"),
                "certificate": cert_path,
                "privateKey": key_path,
                "httpPort": opts.http_port,
                "tlsPort": opts.tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        if let Some(v) = opts.validity_secs {
            cfg["pebble"]["certificateValidityPeriod"] = v.into();
        }
        let cfg_path = dir.path().join("pebble.json");
        fs::write(&cfg_path, cfg.to_string()).expect("write");
        let log = dir.path().join("pebble.log");

        let challtest = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{challtest_mgmt}")])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pebble-challtestsrv");
        let log_file = fs::File::create(&log).expect("log");
        let mut cmd = Command::new("pebble");
        cmd.arg("-config")
            .arg(&cfg_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            // Every order must really validate (no reuse of earlier valid authorizations). Pebble
            // still reuses one 1 time in 100: a test that needs a failing order must not hold a
            // valid authorization on the same account.
            .env("PEBBLE_AUTHZREUSE", "0")
            // By default Pebble rejects 5% of nonces. instant-acme retries a rejected nonce
            // twice, so one POST in 8,000 still fails, which fails its order; tests that count
            // orders then see a second one. Tests that want rejections set this themselves.
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env_remove("PEBBLE_VA_ALWAYS_VALID")
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file);
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let pebble = cmd.spawn().expect("spawn pebble");
        let me = Pebble {
            pebble,
            challtest,
            directory_url: format!("https://127.0.0.1:{listen_port}/dir"),
            mgmt_port,
            listener_ca_pem: ca_cert.pem(),
            log,
            _dir: dir,
        };
        wait_tcp(challtest_mgmt, Duration::from_secs(10));
        wait_tcp(listen_port, Duration::from_secs(10));
        wait_tcp(mgmt_port, Duration::from_secs(10));
        me
    }

    /// Pebble's root for issued certificates, from its management interface.
    pub async fn issuing_root_pem(&self) -> String {
        let roots = roots_from_pem(&self.listener_ca_pem);
        let (status, body) = https_get(self.mgmt_port, "localhost", Some(roots), "/roots/0")
            .await
            .expect("GET /roots/0");
        assert_eq!(status, StatusCode::OK);
        body
    }

    /// The number of "new order" requests in Pebble's log.
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }
}

pub fn roots_from_pem(pem: &str) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for c in cert_core::parse_chain(pem).expect("pem") {
        roots.add(c).expect("root");
    }
    roots
}

/// The minimal gateway: a plain listener answering HTTP-01 and a TLS listener using the
/// resolver, which closes `acme-tls/1` connections right after the handshake.
pub struct TestServer {
    pub http_port: u16,
    pub tls_port: u16,
    /// acme-tls/1 connections accepted (and closed without HTTP).
    pub acme_tls_conns: Arc<AtomicUsize>,
    /// HTTP requests served over TLS.
    pub https_requests: Arc<AtomicUsize>,
    /// HTTP-01 requests seen on the plain listener.
    pub http01_requests: Arc<AtomicUsize>,
    /// When false, the plain listener answers 404 to challenges (a validation that cannot
    /// succeed).
    pub http01_enabled: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The server config the test servers use: the resolver, with `acme-tls/1` offered.
pub fn test_server_config(resolver: Arc<CertResolver>) -> Arc<rustls::ServerConfig> {
    let tls_cfg = TlsConfig {
        acme_tls_alpn: true,
        ..TlsConfig::default()
    };
    Arc::new(server_config(resolver, &tls_cfg).expect("server config"))
}

impl TestServer {
    /// A server whose TLS listener answers only what `resolver` holds (no shared store).
    pub async fn start(resolver: Arc<CertResolver>, responder: ChallengeResponder) -> TestServer {
        Self::start_with(Acceptor::new(test_server_config(resolver)), responder).await
    }

    /// A server whose TLS listener uses `acceptor` (which may answer TLS-ALPN-01 validations
    /// from a shared store), as the gateway's listener does.
    pub async fn start_with(acceptor: Acceptor, responder: ChallengeResponder) -> TestServer {
        let plain = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let tls = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let http_port = plain.local_addr().expect("addr").port();
        let tls_port = tls.local_addr().expect("addr").port();
        let acme_tls_conns = Arc::new(AtomicUsize::new(0));
        let https_requests = Arc::new(AtomicUsize::new(0));
        let http01_requests = Arc::new(AtomicUsize::new(0));
        let http01_enabled = Arc::new(AtomicBool::new(true));

        let plain_task = {
            let http01_requests = http01_requests.clone();
            let enabled = http01_enabled.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = plain.accept().await else {
                        continue;
                    };
                    let responder = responder.clone();
                    let http01_requests = http01_requests.clone();
                    let enabled = enabled.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req: Request<Incoming>| {
                            let responder = responder.clone();
                            let http01_requests = http01_requests.clone();
                            let enabled = enabled.load(Ordering::SeqCst);
                            async move {
                                let path = req.uri().path().to_owned();
                                let mut rsp = Response::new(Full::new(Bytes::new()));
                                *rsp.status_mut() = StatusCode::NOT_FOUND;
                                if ChallengeResponder::is_challenge_path(&path) {
                                    http01_requests.fetch_add(1, Ordering::SeqCst);
                                    if enabled {
                                        if let Some(body) = responder.respond_shared(&path).await {
                                            rsp = Response::new(Full::new(Bytes::from(body)));
                                        }
                                    }
                                }
                                Ok::<_, Infallible>(rsp)
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tcp), svc)
                            .await;
                    });
                }
            })
        };

        let tls_task = {
            let acme_tls_conns = acme_tls_conns.clone();
            let https_requests = https_requests.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = tls.accept().await else {
                        continue;
                    };
                    let acceptor = acceptor.clone();
                    let acme_tls_conns = acme_tls_conns.clone();
                    let https_requests = https_requests.clone();
                    tokio::spawn(async move {
                        let Ok(mut stream) = acceptor.accept(tcp).await else {
                            return;
                        };
                        if is_acme_tls_alpn(stream.get_ref().1) {
                            // Case 27: a validation connection carries no HTTP.
                            acme_tls_conns.fetch_add(1, Ordering::SeqCst);
                            let _ = stream.shutdown().await;
                            return;
                        }
                        let sni = stream.get_ref().1.server_name().unwrap_or("-").to_owned();
                        let svc = service_fn(move |_req: Request<Incoming>| {
                            https_requests.fetch_add(1, Ordering::SeqCst);
                            let body = format!("hello from {sni}");
                            async move {
                                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                            }
                        });
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            })
        };

        TestServer {
            http_port,
            tls_port,
            acme_tls_conns,
            https_requests,
            http01_requests,
            http01_enabled,
            tasks: vec![plain_task, tls_task],
        }
    }
}

/// Accepts any certificate (to inspect what a server presents without trusting it).
#[derive(Debug)]
pub struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    // Signatures are not checked either: webpki refuses to parse the TLS-ALPN-01 challenge
    // certificate (critical acmeIdentifier extension), and these tests only inspect what
    // the server presents.
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Connects with TLS. `roots: None` accepts any certificate.
pub async fn tls_connect(
    port: u16,
    sni: &str,
    roots: Option<rustls::RootCertStore>,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let provider = cert_core::crypto_provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?;
    let mut cfg = match roots {
        Some(roots) => builder.with_root_certificates(roots).with_no_client_auth(),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let name = ServerName::try_from(sni.to_owned()).map_err(std::io::Error::other)?;
    TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await
}

/// The leaf certificate a server presents for `sni` (not verified).
pub async fn presented_leaf(
    port: u16,
    sni: &str,
    alpn: &[&[u8]],
) -> std::io::Result<CertificateDer<'static>> {
    let s = tls_connect(port, sni, None, alpn).await?;
    let leaf = s
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned()
        .ok_or_else(|| std::io::Error::other("no peer certificate"))?;
    Ok(leaf.into_owned())
}

/// GET over HTTPS/1.1, returning status and body.
pub async fn https_get(
    port: u16,
    sni: &str,
    roots: Option<rustls::RootCertStore>,
    path: &str,
) -> Result<(StatusCode, String), Box<dyn std::error::Error + Send + Sync>> {
    let stream = tls_connect(port, sni, roots, &[b"http/1.1"]).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = Request::builder()
        .uri(path)
        .header("host", sni)
        .body(Empty::<Bytes>::new())?;
    let rsp = sender.send_request(req).await?;
    let status = rsp.status();
    let body = rsp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The permission bits of `p`.
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(p).expect("metadata").mode() & 0o777
}
