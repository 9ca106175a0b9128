//! The console in a real headless Chromium, driven through WebDriver (chromedriver): sign in,
//! add a custom service with allowed role `user`, check with an HTTP client that the new route
//! enforces it, edit it, delete it with the confirmation, look up and revoke a user's
//! sessions, ask the "Try a request" panel why requests are refused (and check that asking
//! left no trace), and save screenshots.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/install-test-deps` installs them).
//! Without them the test skips loudly, except on CI (`CI=true`), where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::driver::{on_path, Driver};
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};

const WAIT: Duration = Duration::from_secs(10);

/// One Chromium at a time: the tests of this file run in parallel threads, and two browsers
/// on a small CI machine make each other's 10 s waits run out.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Chromium and chromedriver, or None (and a loud skip) where they are missing outside CI.
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let (Some(chromium), Some(chromedriver)) = (
        on_path(&["chromium", "chromium-browser", "google-chrome"]),
        on_path(&["chromedriver"]),
    ) else {
        let msg = "chromium and chromedriver are needed (run scripts/install-test-deps)";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{msg}");
        }
        eprintln!("\n!!! SKIPPED console_browser: {msg} !!!\n");
        return None;
    };
    Some((chromium, chromedriver))
}

async fn browser(driver: &Driver, chromium: &Path, profile: &Path) -> Client {
    let caps = serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1280,860",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let caps = match caps {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session in headless Chromium")
}

fn screenshots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) -> PathBuf {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = screenshots_dir().join(name);
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
    path
}

async fn wait_css(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("`{css}` did not appear: {e}"))
}

async fn wait_gone(c: &Client, css: &str) {
    let deadline = Instant::now() + WAIT;
    while !c.find_all(Locator::Css(css)).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "`{css}` did not go away");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_text(c: &Client, css: &str, want: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            let text = e.text().await.unwrap_or_default();
            if text.contains(want) {
                return text;
            }
        }
        assert!(Instant::now() < deadline, "`{css}` never showed `{want}`");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn status_for(g: &Gateway, sub: &str, token: Option<&str>) -> u16 {
    let mut req = client().get(g.url("/x")).header("host", host(sub));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_adds_a_service_whose_roles_are_enforced_then_deletes_it() {
    let Some((chromium, chromedriver)) = browser_tools() else {
        return;
    };
    let _one = ONE_BROWSER.lock().await;

    let up = Upstream::start().await;
    let g = Gateway::start(&standard_config(0, 0, &up.url(), ""), 0, 0);

    // The page is static, framed by nobody, and runs no inline script.
    let res = client().get(g.admin_url("/console")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    let html = res.text().await.unwrap();
    assert!(html.contains("<script src=\"/console/app.js\""));
    assert!(!html.contains("<script>"), "no inline script");
    let res = client()
        .get(g.admin_url("/console/app.js"))
        .send()
        .await
        .unwrap();
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));

    let profile = tempfile::tempdir().unwrap();
    let driver = Driver::start(&chromedriver, None);
    let c = browser(&driver, &chromium, profile.path()).await;
    // A failed step must still close the browser: run the steps in their own task.
    let g = std::sync::Arc::new(g);
    let steps = tokio::spawn({
        let (c, g) = (c.clone(), g.clone());
        async move { drive(&c, &g, &up).await }
    });
    let outcome = tokio::time::timeout(Duration::from_secs(90), steps).await;
    let _ = c.close().await;
    drop(driver);
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e}\ngateway log:\n{}", g.log()),
        Err(_) => panic!(
            "the console steps took over 90 s\ngateway log:\n{}",
            g.log()
        ),
    }
}

async fn drive(c: &Client, g: &Gateway, up: &Upstream) {
    c.goto(&g.admin_url("/console")).await.unwrap();

    // A wrong secret is refused, and not kept.
    let secret = wait_css(c, "#secret").await;
    secret.send_keys("not-the-secret").await.unwrap();
    c.find(Locator::Id("login-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "#login-error", "refused").await;

    // Sign in: the secret lives in sessionStorage, never in a cookie.
    let secret = c.find(Locator::Id("secret")).await.unwrap();
    secret.send_keys(ADMIN_SECRET).await.unwrap();
    c.find(Locator::Id("login-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_css(c, "#services tbody tr[data-name=\"data\"]").await;
    let stored = c
        .execute(
            "return [sessionStorage.getItem('gateway.adminSecret'), document.cookie];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(stored[0], ADMIN_SECRET);
    assert_eq!(stored[1], "");

    // The "Add custom service" form, with an error shown next to its field.
    c.find(Locator::Id("add-service"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_css(c, "#f-name")
        .await
        .send_keys("reports")
        .await
        .unwrap();
    c.find(Locator::Id("f-upstream"))
        .await
        .unwrap()
        .send_keys("ftp://not-http")
        .await
        .unwrap();
    let enter: char = fantoccini::key::Key::Enter.into();
    c.find(Locator::Id("f-role-input"))
        .await
        .unwrap()
        .send_keys(&format!("user{enter}"))
        .await
        .unwrap();
    wait_css(c, "#f-roles .chip[data-role=\"user\"]").await;
    shot(c, "console-form.png").await;
    c.find(Locator::Id("f-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let error = wait_text(c, ".field-error[data-field=\"upstreams\"]", "http").await;
    assert!(error.contains("ftp://not-http"), "{error}");
    shot(c, "console-form-error.png").await;

    let upstream = c.find(Locator::Id("f-upstream")).await.unwrap();
    upstream.clear().await.unwrap();
    upstream.send_keys(&up.url()).await.unwrap();
    c.find(Locator::Id("f-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Read the row through `wait_text`: the console re-renders the table after each change,
    // so a handle to the row can go stale between finding it and reading it.
    let text = wait_text(c, "#services tbody tr[data-name=\"reports\"]", &up.url()).await;
    assert!(text.contains("user") && text.contains(&up.url()), "{text}");
    wait_text(c, "#notice", "added").await;
    let list = shot(c, "console-list.png").await;
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/console.png");
    if !docs.exists() || std::env::var_os("UPDATE_DOCS_SCREENSHOT").is_some() {
        std::fs::create_dir_all(docs.parent().unwrap()).unwrap();
        std::fs::copy(&list, &docs).unwrap();
    }

    // The new route serves at once, with its allowed role enforced.
    let user = create_session(g, "console-user", &["user"], None).await;
    let other = create_session(g, "console-admin", &["admin"], None).await;
    assert_eq!(status_for(g, "reports", None).await, 401, "anonymous");
    assert_eq!(
        status_for(g, "reports", Some(&other)).await,
        401,
        "another role"
    );
    assert_eq!(status_for(g, "reports", Some(&user)).await, 200, "user");

    // Edit: let anonymous in too.
    wait_css(c, "#services tbody tr[data-name=\"reports\"] button.edit")
        .await
        .click()
        .await
        .unwrap();
    wait_css(c, "button.suggest[data-role=\"anonymous\"]")
        .await
        .click()
        .await
        .unwrap();
    c.find(Locator::Id("f-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "#notice", "saved").await;
    assert_eq!(status_for(g, "reports", None).await, 200, "anonymous now");

    // Delete, after the confirmation.
    c.find(Locator::Css(
        "#services tbody tr[data-name=\"reports\"] button.delete",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    let ok = wait_css(c, "#confirm[open] #confirm-ok").await;
    shot(c, "console-confirm-delete.png").await;
    ok.click().await.unwrap();
    wait_gone(c, "#services tbody tr[data-name=\"reports\"]").await;
    assert_eq!(status_for(g, "reports", Some(&user)).await, 404);

    // Sessions: look up a user, revoke all.
    c.find(Locator::Id("tab-sessions"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_css(c, "#s-user")
        .await
        .send_keys("console-user")
        .await
        .unwrap();
    c.find(Locator::Id("s-lookup"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "#s-notice", "1 active session").await;
    shot(c, "console-sessions.png").await;
    c.find(Locator::Id("s-revoke"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_css(c, "#confirm[open] #confirm-ok")
        .await
        .click()
        .await
        .unwrap();
    wait_text(c, "#s-notice", "Revoked 1 session").await;
    assert_eq!(status_for(g, "admin", Some(&other)).await, 200);
    let v = g.admin_json("/v1/users/console-user/sessions").await;
    assert_eq!(v["sessions"].as_array().unwrap().len(), 0);

    // Signing out forgets the secret.
    c.find(Locator::Id("logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_css(c, "#login-view:not([hidden])").await;
    let left = c
        .execute(
            "return sessionStorage.getItem('gateway.adminSecret');",
            vec![],
        )
        .await
        .unwrap();
    assert!(left.is_null());
}

/// Two services, one that lets requests without a session in and one for `admin` only, with
/// sliding expiry on so that a real request moves a session's expiry (which explain must not).
fn try_config(up: &str) -> String {
    format!(
        r#"
[project]
domains = ["{DOMAIN}"]

[listen]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"

[sessions]
cookie_name = "gw_session"
sliding_expiry = true

[log]
format = "json"
level = "info"

[[services]]
name = "data"
upstreams = ["{up}"]
allowed_roles = ["anonymous", "user"]

[[services]]
name = "admin"
upstreams = ["{up}"]
allowed_roles = ["admin"]
"#
    )
}

/// The `expires_at` of `user`'s only session, read through the admin API.
async fn expiry(g: &Gateway, user: &str) -> String {
    let v = g.admin_json(&format!("/v1/users/{user}/sessions")).await;
    let sessions = v["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{v}");
    sessions[0]["expires_at"].as_str().unwrap().to_owned()
}

async fn requests_total(g: &Gateway) -> f64 {
    metric_sum(&g.metrics().await, "gateway_requests_total{", &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_try_panel_explains_refusals_in_words_and_leaves_no_trace() {
    let Some((chromium, chromedriver)) = browser_tools() else {
        return;
    };
    let _one = ONE_BROWSER.lock().await;

    let up = Upstream::start().await;
    let g = Gateway::start(&try_config(&up.url()), 0, 0);
    let user = create_session(&g, "try-user", &["user"], None).await;
    let admin = create_session(&g, "try-admin", &["admin"], None).await;
    let before = (
        expiry(&g, "try-user").await,
        expiry(&g, "try-admin").await,
        requests_total(&g).await,
    );
    // Expiries are shown to the second: wait one, so that a use of a session would show.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let profile = tempfile::tempdir().unwrap();
    let driver = Driver::start(&chromedriver, None);
    let c = browser(&driver, &chromium, profile.path()).await;
    let g = std::sync::Arc::new(g);
    let steps = tokio::spawn({
        let (c, g, admin) = (c.clone(), g.clone(), admin.clone());
        async move { try_panel(&c, &g, &up, &user, &admin).await }
    });
    let outcome = tokio::time::timeout(Duration::from_secs(90), steps).await;
    let _ = c.close().await;
    drop(driver);
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e}\ngateway log:\n{}", g.log()),
        Err(_) => panic!(
            "the console steps took over 90 s\ngateway log:\n{}",
            g.log()
        ),
    }

    // Asking left no trace: no session slid, no request counted.
    let after = (
        expiry(&g, "try-user").await,
        expiry(&g, "try-admin").await,
        requests_total(&g).await,
    );
    assert_eq!(before, after, "explain left a trace");
    // ... where the same request, really sent, leaves both: the check above can fail.
    assert_eq!(status_for(&g, "admin", Some(&admin)).await, 200);
    assert_ne!(
        expiry(&g, "try-admin").await,
        before.1,
        "a real request slides"
    );
    assert!(requests_total(&g).await > before.2, "a real request counts");
}

async fn click(c: &Client, id: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn set_field(c: &Client, id: &str, value: &str) {
    let e = c.find(Locator::Id(id)).await.unwrap();
    e.clear().await.unwrap();
    if !value.is_empty() {
        e.send_keys(value).await.unwrap();
    }
}

async fn answered(c: &Client) -> u64 {
    let v = c
        .execute(
            "return document.getElementById('try-view').dataset.answered || '0';",
            vec![],
        )
        .await
        .unwrap();
    v.as_str().unwrap().parse().unwrap()
}

/// Fills the panel, presses "Try" and waits for the answer to this very press (the panel
/// counts its answers: two tries with the same reason look alike).
async fn try_request(c: &Client, host: &str, path: &str, method: &str, token: &str) {
    set_field(c, "t-host", host).await;
    set_field(c, "t-path", path).await;
    c.find(Locator::Id("t-method"))
        .await
        .unwrap()
        .select_by_value(method)
        .await
        .unwrap();
    set_field(c, "t-token", token).await;
    let n = answered(c).await;
    click(c, "t-submit").await;
    let deadline = Instant::now() + WAIT;
    while answered(c).await <= n {
        assert!(
            Instant::now() < deadline,
            "no answer to the try of {host}{path}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The text of `#id`.
async fn text(c: &Client, id: &str) -> String {
    c.find(Locator::Id(id)).await.unwrap().text().await.unwrap()
}

async fn result_attr(c: &Client, name: &str) -> String {
    c.find(Locator::Id("t-result"))
        .await
        .unwrap()
        .attr(name)
        .await
        .unwrap()
        .unwrap_or_default()
}

async fn try_panel(c: &Client, g: &Gateway, up: &Upstream, user: &str, admin: &str) {
    c.goto(&g.admin_url("/console")).await.unwrap();
    wait_css(c, "#secret")
        .await
        .send_keys(ADMIN_SECRET)
        .await
        .unwrap();
    click(c, "login-submit").await;
    wait_css(c, "#services tbody tr[data-name=\"admin\"]").await;
    click(c, "tab-try").await;
    wait_css(c, "#try-view:not([hidden]) #t-host").await;

    // The host field is filled from the service list, which it also offers.
    let host_value = c
        .find(Locator::Id("t-host"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(host_value, host("data"));
    let offered = c
        .execute(
            "return [...document.querySelectorAll('#t-hosts option')].map(o => o.value);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(offered, serde_json::json!([host("data"), host("admin")]));
    assert_eq!(
        c.find(Locator::Id("t-token"))
            .await
            .unwrap()
            .attr("type")
            .await
            .unwrap()
            .as_deref(),
        Some("password")
    );

    // The admin service without a token: refused, with the words for authorization-required.
    try_request(c, &host("admin"), "/reports", "GET", "").await;
    assert_eq!(result_attr(c, "data-verdict").await, "refused");
    assert_eq!(
        result_attr(c, "data-reason").await,
        "authorization-required"
    );
    let words = text(c, "t-reason").await;
    assert!(
        words.contains("does not allow the role anonymous") && words.contains("it allows: admin"),
        "{words}"
    );
    assert!(text(c, "t-verdict").await.contains("401"));
    assert_eq!(text(c, "t-service").await, "admin");
    let upstream = text(c, "t-upstream").await;
    assert!(
        upstream.starts_with(&up.url()) && upstream.contains("not reached"),
        "{upstream}"
    );

    // With a user's token: refused, naming the roles the service allows.
    try_request(c, &host("admin"), "/reports", "GET", user).await;
    assert_eq!(
        result_attr(c, "data-reason").await,
        "authorization-required"
    );
    let words = text(c, "t-reason").await;
    assert!(
        words.contains("does not allow the role user;") && words.contains("it allows: admin."),
        "{words}"
    );
    assert_eq!(text(c, "t-user").await, "try-user");
    assert_eq!(text(c, "t-role").await, "user");
    assert!(text(c, "t-credential").await.contains("bearer"));
    let refused = shot(c, "console-try-refused.png").await;
    println!("the Try a request panel, refused: {}", refused.display());

    // A token the gateway does not know.
    try_request(c, &host("admin"), "/reports", "GET", "not-a-session-token").await;
    assert_eq!(result_attr(c, "data-reason").await, "invalid-token");
    let words = text(c, "t-reason").await;
    assert!(words.contains("token is not accepted"), "{words}");
    assert!(text(c, "t-user").await.is_empty());

    // A host no service has.
    try_request(c, &host("nowhere"), "/", "POST", "").await;
    assert_eq!(result_attr(c, "data-verdict").await, "refused");
    assert_eq!(result_attr(c, "data-reason").await, "unknown-host");
    let words = text(c, "t-reason").await;
    assert!(
        words.contains("no service") && words.contains(&host("nowhere")),
        "{words}"
    );
    assert!(text(c, "t-service").await.starts_with("none"));

    // What the explain API cannot read is said plainly, not shown as a verdict.
    try_request(c, "bad host", "/", "GET", "").await;
    let error = text(c, "t-error").await;
    assert!(error.contains("could not read this request"), "{error}");
    assert!(c.find(Locator::Css("#t-result[hidden]")).await.is_ok());

    // The admin's token: allowed, with the route and the identity.
    try_request(c, &host("admin"), "/reports?week=12", "GET", admin).await;
    assert_eq!(result_attr(c, "data-verdict").await, "allowed");
    assert_eq!(result_attr(c, "data-reason").await, "allowed");
    let words = text(c, "t-reason").await;
    assert!(
        words.contains("let this request through")
            && words.contains("\"admin\"")
            && words.contains("try-admin"),
        "{words}"
    );
    assert_eq!(text(c, "t-service").await, "admin");
    // The chosen upstream, as a URL (with its `/`).
    assert_eq!(text(c, "t-upstream").await, format!("{}/", up.url()));
    assert_eq!(text(c, "t-user").await, "try-admin");
    assert_eq!(text(c, "t-role").await, "admin");
    assert!(text(c, "t-error").await.is_empty());
    let path = shot(c, "console-try.png").await;
    println!("the Try a request panel, allowed: {}", path.display());

    // The token was never stored, put in a URL or a cookie.
    let kept = c
        .execute(
            "return JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage), \
             location.href, document.cookie, performance.getEntries().map(e => e.name)]);",
            vec![],
        )
        .await
        .unwrap();
    let kept = kept.as_str().unwrap();
    assert!(kept.contains("/v1/explain"), "{kept}");
    assert!(!kept.contains(admin) && !kept.contains(user), "{kept}");
}
