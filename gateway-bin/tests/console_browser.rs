//! The console in a real headless Chromium, driven through WebDriver (chromedriver): sign in,
//! add a custom service with allowed role `user`, check with an HTTP client that the new route
//! enforces it, edit it, delete it with the confirmation, look up and revoke a user's
//! sessions, and save screenshots.
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
    let (Some(chromium), Some(chromedriver)) = (
        on_path(&["chromium", "chromium-browser", "google-chrome"]),
        on_path(&["chromedriver"]),
    ) else {
        let msg = "chromium and chromedriver are needed (run scripts/install-test-deps)";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{msg}");
        }
        eprintln!("\n!!! SKIPPED console_browser: {msg} !!!\n");
        return;
    };

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
