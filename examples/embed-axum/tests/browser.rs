//! End to end in headless Chromium, against the real TLS server (`serve`) with a certificate
//! from a development CA that Chromium trusts (an NSS database in a fresh `HOME`, made with
//! `certutil`; without it, `--ignore-certificate-errors`, and on CI a failure).
//!
//! Chromium resolves every test host to 127.0.0.1. The app is `https://app.example.test`; two
//! attacker pages auto-submit forms to it: one on `https://evil.example.test`, a foreign origin
//! but the same site, so the browser sends it the `SameSite=Lax` cookie and only the CSRF check
//! stands in the way; one on `http://evil.test`, a cross-site page that tries a login (login
//! CSRF).
//!
//! Without chromium and chromedriver the test is skipped with a loud message, except on CI
//! (`CI=true`), where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod driver;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::Html;
use axum::routing::get;
use cert_core::DevCa;
use driver::{on_path, trust_ca, Driver};
use example_embed_axum::{app, dev_certificates, serve, tls_acceptor, AppConfig};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use session_core::MemoryStore;
use tokio::net::TcpListener;

const DOMAIN: &str = "app.example.test";
const COOKIE: &str = "__Host-session";

/// A page that posts a form to `action` as soon as it loads.
fn attacker_page(action: &str, fields: &[(&str, &str)]) -> String {
    let inputs: String = fields
        .iter()
        .map(|(k, v)| format!("<input type=\"hidden\" name=\"{k}\" value=\"{v}\">"))
        .collect();
    format!(
        "<!doctype html><title>win a prize</title>\
         <body onload=\"document.forms[0].submit()\">\
         <form method=\"POST\" action=\"{action}\">{inputs}</form>"
    )
}

fn page_router(html: String) -> axum::Router {
    axum::Router::new().route("/", get(move || async move { Html(html) }))
}

/// The page's visible text, or `None` while a navigation is under way (read in one script call,
/// so no element handle can go stale).
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

/// Waits until the page's text contains `want`, and returns it.
async fn wait_body(c: &Client, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body = body_text(c).await.unwrap_or_default();
        if body.contains(want) {
            return body;
        }
        if Instant::now() > deadline {
            let url = c.current_url().await.map(|u| u.to_string());
            panic!("the page never showed {want:?}; at {url:?} it shows {body:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The HTTP status of the current document (Navigation Timing).
async fn status(c: &Client) -> serde_json::Value {
    c.execute(
        "return performance.getEntriesByType('navigation')[0].responseStatus",
        vec![],
    )
    .await
    .unwrap()
}

async fn session_cookie(c: &Client) -> Option<fantoccini::cookies::Cookie<'static>> {
    c.get_all_cookies()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.name() == COOKIE)
}

/// Fills in the login page's form and submits it.
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

fn step(started: Instant, what: &str) {
    eprintln!("[{:>5.1}s] {what}", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_login_csrf_and_role_guard() {
    let (Some(chromium), Some(chromedriver)) = (on_path(&["chromium"]), on_path(&["chromedriver"]))
    else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("chromium and chromedriver are required on CI (scripts/install-test-deps)");
        }
        eprintln!(
            "\n!!! SKIPPED browser_login_csrf_and_role_guard: chromium or chromedriver is not \
             installed (apt-get install chromium chromium-driver) !!!\n"
        );
        return;
    };
    let started = Instant::now();

    // The app, over TLS, with a certificate from a fresh development CA.
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = DevCa::load_or_create(ca_dir.path().join("dev-ca")).unwrap();
    let store = MemoryStore::new();
    let router = app(Arc::new(store.clone()), &AppConfig::new(DOMAIN)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls = tls_acceptor(dev_certificates(&ca, &[DOMAIN.to_owned()]).unwrap()).unwrap();
    tokio::spawn(serve(listener, tls, router));
    let base = format!("https://{DOMAIN}:{port}");

    // The same-site attacker, over TLS too (schemeful same-site: http would be cross-site).
    let sibling_page = attacker_page(&format!("{base}/logout"), &[]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sibling = format!(
        "https://evil.example.test:{}/",
        listener.local_addr().unwrap().port()
    );
    let tls = tls_acceptor(dev_certificates(&ca, &["evil.example.test".to_owned()]).unwrap());
    tokio::spawn(serve(listener, tls.unwrap(), page_router(sibling_page)));

    // The cross-site attacker, on plain HTTP, logs the visitor in as bob.
    let login_csrf = attacker_page(
        &format!("{base}/login"),
        &[("username", "bob"), ("password", "bob-password")],
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cross_site = format!(
        "http://evil.test:{}/",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move { axum::serve(listener, page_router(login_csrf)).await });

    // Chromium, with a fresh profile and HOME.
    let home = tempfile::tempdir().unwrap();
    let profile = tempfile::tempdir().unwrap();
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
        format!("--user-data-dir={}", profile.path().display()),
        "--host-resolver-rules=MAP *.example.test 127.0.0.1,MAP evil.test 127.0.0.1".to_owned(),
    ];
    if trust_ca(home.path(), &ca.ca_cert_path()) {
        eprintln!("Chromium trusts the development CA through an NSS database in its HOME");
    } else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "certutil (libnss3-tools) is required on CI to trust the dev CA (scripts/install-test-deps)"
        );
        eprintln!("!!! certutil (libnss3-tools) is missing: Chromium runs with --ignore-certificate-errors !!!");
        args.push("--ignore-certificate-errors".to_owned());
    }
    let driver = Driver::start(&chromedriver, home.path());
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        json!({ "binary": chromium, "args": args }),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("cannot start a Chromium session through chromedriver");
    step(started, "Chromium started");

    // 1. An anonymous navigation to /admin lands on the login page, which remembers /admin.
    c.goto(&format!("{base}/admin")).await.unwrap();
    wait_body(&c, "log in").await;
    let url = c.current_url().await.unwrap();
    assert_eq!(url.path(), "/login-page", "{url}");
    assert_eq!(
        url.query(),
        Some(format!("redirect_to=https%3A%2F%2F{DOMAIN}%3A{port}%2Fadmin").as_str())
    );
    step(started, "anonymous /admin: redirected to the login page");

    // 2. alice logs in through the form and is sent back to /admin, which lets her in.
    log_in(&c, "alice", "alice-password").await;
    wait_body(&c, "welcome, admin alice").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/admin");
    step(started, "alice logged in and opened /admin");

    // 3. The home page shows her identity; her cookie is HttpOnly and Secure, and no script
    // sees it.
    c.goto(&format!("{base}/")).await.unwrap();
    wait_body(&c, "user alice with role admin (authenticated: true)").await;
    let cookie = session_cookie(&c)
        .await
        .expect("no session cookie after login");
    assert_eq!(cookie.http_only(), Some(true), "{cookie:?}");
    assert_eq!(cookie.secure(), Some(true), "{cookie:?}");
    let script_cookies = c.execute("return document.cookie", vec![]).await.unwrap();
    assert!(
        !script_cookies.as_str().unwrap_or("").contains(COOKIE),
        "document.cookie sees the session: {script_cookies}"
    );
    assert_eq!(store.len(), 1);
    step(started, "home page shows alice");

    // 4. A same-site page's form post carries the Lax cookie: the CSRF check refuses it, and
    // alice is still logged in.
    c.goto(&sibling).await.unwrap();
    wait_body(&c, "cross-site-request").await;
    assert_eq!(
        c.current_url().await.unwrap().as_str(),
        format!("{base}/logout")
    );
    assert_eq!(status(&c).await, json!(403));
    c.goto(&format!("{base}/")).await.unwrap();
    wait_body(&c, "user alice with role admin").await;
    step(started, "same-site form post refused with 403");

    // 5. A cross-site page's login form (login CSRF) is refused, and mints no session.
    c.goto(&cross_site).await.unwrap();
    wait_body(&c, "cross-site-request").await;
    assert_eq!(
        c.current_url().await.unwrap().as_str(),
        format!("{base}/login")
    );
    assert_eq!(status(&c).await, json!(403));
    assert_eq!(store.len(), 1, "the refused login minted a session");
    c.goto(&format!("{base}/")).await.unwrap();
    wait_body(&c, "user alice with role admin").await;
    step(started, "cross-site login refused with 403");

    // 6. Logout clears the cookie and ends the session.
    c.find(Locator::Id("logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_body(&c, "password").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/login-page");
    assert!(
        session_cookie(&c).await.is_none(),
        "the cookie survived logout"
    );
    assert!(store.is_empty());
    c.goto(&format!("{base}/")).await.unwrap();
    wait_body(&c, "user 0 with role anonymous (authenticated: false)").await;
    step(started, "logged out");

    // 7. bob logs in from the login page itself (so he lands on /), and cannot open /admin.
    c.goto(&format!("{base}/login-page")).await.unwrap();
    wait_body(&c, "password").await;
    log_in(&c, "bob", "bob-password").await;
    wait_body(&c, "user bob with role user (authenticated: true)").await;
    c.goto(&format!("{base}/admin")).await.unwrap();
    wait_body(&c, "insufficient-role").await;
    assert_eq!(status(&c).await, json!(403));
    step(started, "bob refused on /admin with 403");

    c.close().await.unwrap();
    drop(driver);
    step(started, "done");
}
