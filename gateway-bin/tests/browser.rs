//! End to end in headless Chromium: a browser app never handles a session token.
//!
//! The real `gateway` binary serves, over HTTPS with its development CA, the example web app
//! (`app.<domain>`), the login service (`auth.<domain>`, the session issuer), the echo service
//! (`data.<domain>`) and the admin-only service (`admin.<domain>`), all started in this process.
//! Chromium (Debian's `chromium` and `chromium-driver`), driven over WebDriver by `fantoccini`,
//! resolves every test host to 127.0.0.1 and trusts the dev CA through an NSS database in a
//! fresh `HOME` (`certutil`, Debian `libnss3-tools`); without `certutil` it falls back to
//! `--ignore-certificate-errors` and says so (on CI it fails instead).
//!
//! The steps, each with a screenshot in `target/screenshots/`: the page loads anonymously; a
//! login sets an `HttpOnly`, `Secure` cookie for `.<domain>` that `document.cookie` cannot see; a
//! cross-subdomain fetch shows the user id and role; the admin-only service refuses; a form
//! POST from a foreign origin is refused with 403 (from a same-site sibling page, which carries
//! the `SameSite=Lax` cookie), or arrives anonymous (from a cross-site page, which does not);
//! logout clears the cookie and the next fetch is anonymous; a login made while the browser
//! still holds a stale (revoked) session cookie leaves it the new cookie, and the next fetch is
//! authenticated (SECURITY-CASES 34).
//!
//! Without Chromium the test is skipped with a loud message, except on CI (`CI=true`), where it
//! fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::driver::{on_path, Driver};
use common::{https_port, Gateway};
use fantoccini::{Client, ClientBuilder, Locator};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;

/// The project domain. It sits under `example.test` so that a page on `evil.example.test` is a
/// same-site, foreign origin: the browser sends it the `SameSite=Lax` cookie, and only the
/// gateway's CSRF check stands in the way.
const DOMAIN: &str = "corp.example.test";
const COOKIE: &str = "gw_session";

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Serves `router` on a fresh port of 127.0.0.1.
async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

fn gateway_config(
    app: SocketAddr,
    auth: SocketAddr,
    data: SocketAddr,
    admin: SocketAddr,
) -> String {
    format!(
        r#"
[project]
domains = ["{DOMAIN}"]

[listen]
http = "127.0.0.1:0"
https = "127.0.0.1:0"
admin = "127.0.0.1:0"

[tls]
mode = "dev-ca"

[sessions]
cookie_name = "{COOKIE}"

[log]
format = "json"
level = "info"

[[services]]
name = "app"
upstreams = ["http://{app}"]

[[services]]
name = "auth"
upstreams = ["http://{auth}"]
session_issuer = true

[[services]]
name = "data"
upstreams = ["http://{data}"]

[[services]]
name = "admin"
upstreams = ["http://{admin}"]
allowed_roles = ["admin"]
"#
    )
}

/// The attacker's page: a form that posts to the data service, submitted by the test.
fn evil_page(target: &str) -> String {
    format!(
        "<!doctype html><title>evil</title><h1>Win a prize</h1>\
         <form id=\"f\" method=\"POST\" action=\"{target}\">\
         <input type=\"hidden\" name=\"amount\" value=\"1000\">\
         <button id=\"go\" type=\"submit\">Claim</button></form>"
    )
}

fn page_service(
    html: String,
) -> impl Fn(Request<Incoming>) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>> + Clone
{
    let html = Bytes::from(html);
    move |_req| {
        let mut res = Response::new(Full::new(html.clone()));
        res.headers_mut()
            .insert("content-type", "text/html; charset=utf-8".parse().unwrap());
        std::future::ready(Ok(res))
    }
}

/// Serves `html` over plain HTTP.
async fn serve_page_http(html: String) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let svc = page_service(html);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let svc = hyper::service::service_fn(svc.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    port
}

#[derive(Debug)]
struct FixedCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for FixedCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Serves `html` over HTTPS with a certificate for `name` from the gateway's dev CA.
async fn serve_page_https(html: String, ca_dir: &Path, name: &str) -> u16 {
    let ca = cert_core::DevCa::load_or_create(ca_dir).unwrap();
    let cert = ca.issue_loaded(&[name.to_owned()]).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(cert_core::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(FixedCert(cert.key)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let svc = page_service(html);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let svc = hyper::service::service_fn(svc.clone());
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    port
}

/// Makes Chromium trust the dev CA: an NSS database in `home/.pki/nssdb`, where Chromium on
/// Linux reads locally trusted roots. `false` when `certutil` is missing.
fn trust_dev_ca(home: &Path, ca_pem: &Path) -> bool {
    let Some(certutil) = on_path(&["certutil"]) else {
        return false;
    };
    let db = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let db_arg = format!("sql:{}", db.display());
    let ok = Command::new(&certutil)
        .args(["-d", &db_arg, "-N", "--empty-password"])
        .status()
        .unwrap()
        .success();
    assert!(ok, "certutil -N failed");
    let ok = Command::new(&certutil)
        .args([
            "-d",
            &db_arg,
            "-A",
            "-t",
            "C,,",
            "-n",
            "gateway-dev-ca",
            "-i",
        ])
        .arg(ca_pem)
        .status()
        .unwrap()
        .success();
    assert!(ok, "certutil -A failed");
    true
}

struct Steps {
    dir: PathBuf,
    n: u32,
    started: Instant,
}

impl Steps {
    async fn shot(&mut self, c: &Client, name: &str) {
        self.n += 1;
        let png = c.screenshot().await.unwrap();
        let path = self.dir.join(format!("browser-{:02}-{name}.png", self.n));
        std::fs::write(&path, png).unwrap();
        eprintln!(
            "[{:>5.1}s] step {}: {name} ({})",
            self.started.elapsed().as_secs_f64(),
            self.n,
            path.display()
        );
    }
}

async fn text(c: &Client, id: &str) -> String {
    c.find(Locator::Id(id)).await.unwrap().text().await.unwrap()
}

/// Waits until the page's `data-state` is `state` (the app sets it after each data fetch).
async fn wait_state(c: &Client, state: &str) {
    let css = format!("body[data-state=\"{state}\"]");
    if let Err(e) = c
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(&css))
        .await
    {
        let source = c.source().await.unwrap_or_default();
        panic!("the page never reached state {state}: {e}\n{source}");
    }
}

async fn wait_text(c: &Client, id: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = text(c, id).await;
        if got.contains(want) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "#{id} never showed {want:?}; it shows {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn session_cookie(c: &Client) -> Option<fantoccini::cookies::Cookie<'static>> {
    c.get_all_cookies()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.name() == COOKIE)
}

/// Fills in the app's login form and submits it.
async fn log_in(c: &Client, username: &str, password: &str) {
    for (id, value) in [("username", username), ("password", password)] {
        let field = c.find(Locator::Id(id)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }
    c.find(Locator::Id("login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The page's visible text, or `None` while a navigation is under way.
///
/// Polling loops call this right after a click that navigates: an element handle found on the
/// old document goes stale when the new one replaces it, so the text is read in one script
/// call (no handle to go stale) and any error counts as "not there yet".
async fn body_text(c: &Client) -> Option<String> {
    let value = c
        .execute(
            "return document.body ? document.body.innerText : null",
            vec![],
        )
        .await
        .ok()?;
    value.as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_app_uses_the_cookie_session_across_subdomains() {
    let (Some(chromium), Some(chromedriver)) = (on_path(&["chromium"]), on_path(&["chromedriver"]))
    else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("chromium and chromedriver are required on CI (scripts/install-test-deps)");
        }
        eprintln!(
            "\n!!! SKIPPED browser_app_uses_the_cookie_session_across_subdomains: chromium or \
             chromedriver is not installed (apt-get install chromium chromium-driver) !!!\n"
        );
        return;
    };
    let started = Instant::now();

    // The services, in this process.
    let users = example_login_service::Users::demo().unwrap();
    let auth = serve(example_login_service::router(users)).await;
    let data = serve(example_demo_upstreams::echo_router("data")).await;
    let admin = serve(example_demo_upstreams::admin_router()).await;
    let app = serve(example_web_app::router()).await;
    let g = Gateway::start(&gateway_config(app, auth, data, admin), 0, 0);
    let port = https_port(&g);
    let ca_dir = g.dir.path().join("gateway-data/dev-ca");
    let base = |sub: &str| format!("https://{sub}.{DOMAIN}:{port}");

    // The attacker's pages: a same-site sibling over HTTPS, and a cross-site one over HTTP.
    let target = format!("{}/transfer", base("data"));
    let sibling_port = serve_page_https(evil_page(&target), &ca_dir, "evil.example.test").await;
    let cross_port = serve_page_http(evil_page(&target)).await;

    // Chromium, with a fresh profile and HOME.
    let home = tempfile::tempdir().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let trusted = trust_dev_ca(home.path(), &ca_dir.join("dev-ca.pem"));
    let mut args = vec![
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--no-first-run".to_owned(),
        "--no-proxy-server".to_owned(),
        "--window-size=1000,1100".to_owned(),
        format!("--user-data-dir={}", profile.path().display()),
        "--host-resolver-rules=MAP *.example.test 127.0.0.1,MAP evil.test 127.0.0.1".to_owned(),
    ];
    if trusted {
        eprintln!("Chromium trusts the gateway's dev CA through an NSS database in its HOME");
    } else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "certutil (libnss3-tools) is required on CI to trust the dev CA (scripts/install-test-deps)"
        );
        eprintln!("!!! certutil (libnss3-tools) is missing: Chromium runs with --ignore-certificate-errors !!!");
        args.push("--ignore-certificate-errors".to_owned());
    }
    let driver = Driver::start(&chromedriver, Some(home.path()));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        json!({ "binary": chromium, "args": args }),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("cannot start a Chromium session through chromedriver");
    let mut steps = Steps {
        dir: screenshots_dir(),
        n: 0,
        started,
    };

    // 1. The page loads anonymously, over HTTPS.
    c.goto(&format!("{}/", base("app"))).await.unwrap();
    wait_state(&c, "anonymous").await;
    assert_eq!(text(&c, "role").await, "anonymous");
    let protocol = c.execute("return location.protocol", vec![]).await.unwrap();
    assert_eq!(protocol, json!("https:"));
    assert!(session_cookie(&c).await.is_none());
    steps.shot(&c, "anonymous").await;

    // 2. Login: an HttpOnly, Secure cookie for the project domain, invisible to scripts.
    log_in(&c, "alice", "alice-password").await;
    // 3. … and the cross-subdomain fetch to data.<domain> carries it.
    wait_state(&c, "user:1/user").await;
    steps.shot(&c, "logged-in").await;
    let cookie = session_cookie(&c)
        .await
        .expect("no session cookie after login");
    assert_eq!(cookie.http_only(), Some(true), "{cookie:?}");
    assert_eq!(cookie.secure(), Some(true), "{cookie:?}");
    assert_eq!(
        cookie.domain().map(|d| d.trim_start_matches('.')),
        Some(DOMAIN),
        "{cookie:?}"
    );
    let script_cookies = c.execute("return document.cookie", vec![]).await.unwrap();
    assert!(
        !script_cookies.as_str().unwrap_or("").contains(COOKIE),
        "document.cookie sees the session: {script_cookies}"
    );
    assert_eq!(text(&c, "user-id").await, "1");
    assert_eq!(text(&c, "role").await, "user");
    assert_eq!(text(&c, "allowed-roles").await, "user");

    // 4. The admin-only service refuses alice.
    c.find(Locator::Id("admin"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "admin-status", "refused (401)").await;
    c.execute(
        "document.getElementById('admin-status').scrollIntoView()",
        vec![],
    )
    .await
    .unwrap();
    steps.shot(&c, "admin-refused").await;

    // 5. A form POST from a foreign, same-site origin carries the Lax cookie: the gateway
    // refuses it with 403 before it reaches the data service.
    c.goto(&format!("https://evil.example.test:{sibling_port}/"))
        .await
        .unwrap();
    steps.shot(&c, "sibling-attacker-page").await;
    c.find(Locator::Id("go"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let refused = loop {
        let body = body_text(&c).await.unwrap_or_default();
        if body.contains("cross-site-request") || Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        refused.contains("cross-site-request"),
        "the cross-origin POST was not refused: {refused}"
    );
    let url = c.current_url().await.unwrap();
    assert_eq!(url.as_str(), target);
    // The 403 JSON body is only ever sent with status 403; confirm it through the Navigation
    // Timing API, which reports the document's response status.
    let status = c
        .execute(
            "return performance.getEntriesByType('navigation')[0].responseStatus",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(403));
    steps.shot(&c, "sibling-post-refused-403").await;

    // 6. From a cross-site page the browser withholds the Lax cookie: the POST arrives
    // anonymous and can act as nobody.
    c.goto(&format!("http://evil.test:{cross_port}/"))
        .await
        .unwrap();
    c.find(Locator::Id("go"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let echoed = loop {
        let body = body_text(&c).await.unwrap_or_default();
        if body.contains("x-hasura-role") || Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let echo: serde_json::Value = serde_json::from_str(&echoed)
        .unwrap_or_else(|e| panic!("not the echo JSON ({e}): {echoed}"));
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["headers"]["x-hasura-role"], "anonymous", "{echo}");
    assert_eq!(echo["headers"]["x-hasura-user-id"], "0", "{echo}");
    steps.shot(&c, "cross-site-post-anonymous").await;

    // 7. Logout clears the cookie; the next fetch is anonymous.
    c.goto(&format!("{}/", base("app"))).await.unwrap();
    wait_state(&c, "user:1/user").await;
    c.find(Locator::Id("logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "logout-status", "logged out").await;
    wait_state(&c, "anonymous").await;
    assert_eq!(text(&c, "user-id").await, "0");
    assert_eq!(text(&c, "role").await, "anonymous");
    assert!(
        session_cookie(&c).await.is_none(),
        "the session cookie survived logout"
    );
    c.find(Locator::Id("whoami"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_state(&c, "anonymous").await;
    steps.shot(&c, "logged-out").await;

    // 8. Case 34: a stale session cookie, then a login. Bob logs in, his session ends on the
    // server (revoked, as an expiry would end it) while the browser still holds its cookie,
    // and alice logs in with that stale cookie sent along: the new cookie is the one the
    // browser keeps, and the fetch after the login is authenticated.
    log_in(&c, "bob", "bob-password").await;
    wait_state(&c, "user:2/user").await;
    let stale = session_cookie(&c)
        .await
        .expect("no session cookie after bob's login")
        .value()
        .to_owned();
    let res = common::client()
        .delete(g.admin_url("/v1/users/2/sessions"))
        .bearer_auth(common::ADMIN_SECRET)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    // No request in between: the next one to carry the stale cookie is the login itself.
    c.execute("document.body.dataset.state = 'stale'", vec![])
        .await
        .unwrap();
    log_in(&c, "alice", "alice-password").await;
    wait_text(&c, "login-status", "logged in as user 1").await;
    wait_state(&c, "user:1/user").await;
    let cookie = session_cookie(&c)
        .await
        .expect("the browser dropped the session of the login made with a stale cookie");
    assert_ne!(cookie.value(), stale);
    c.execute("document.body.dataset.state = 'asking'", vec![])
        .await
        .unwrap();
    c.find(Locator::Id("whoami"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_state(&c, "user:1/user").await;
    steps.shot(&c, "stale-cookie-then-login").await;

    c.close().await.unwrap();
    drop(driver);
    eprintln!(
        "browser test done in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(started.elapsed() < Duration::from_secs(120));
}
