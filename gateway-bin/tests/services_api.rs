//! The services admin API against the real binary: add, replace, delete, validation,
//! versions (412), durability across a restart, reloads that keep API services, the CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{json, Value};

async fn get_services(g: &Gateway) -> (String, Value) {
    let res = client()
        .get(g.admin_url("/v1/services"))
        .bearer_auth(ADMIN_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    (etag, res.json().await.unwrap())
}

async fn send(
    g: &Gateway,
    method: reqwest::Method,
    path: &str,
    if_match: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = client()
        .request(method, g.admin_url(path))
        .bearer_auth(ADMIN_SECRET);
    if let Some(m) = if_match {
        req = req.header("if-match", m);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

async fn status_for(g: &Gateway, sub: &str, token: Option<&str>) -> u16 {
    let mut req = client().get(g.url("/x")).header("host", host(sub));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status().as_u16()
}

/// Replaces the config file atomically (a reload never reads half a file) and sends SIGHUP.
fn rewrite_config(g: &Gateway, text: &str) {
    let tmp = g.dir.path().join("gateway.toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &g.config_path).unwrap();
    let pid = g.child.as_ref().unwrap().id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_replace_delete_apply_at_once_with_roles_enforced() {
    let up = Upstream::start().await;
    let g = Gateway::start(&standard_config(0, 0, &up.url(), ""), 0, 0);
    let user = create_session(&g, "u-1", &["user"], None).await;
    let admin = create_session(&g, "a-1", &["admin"], None).await;

    // The secret is required.
    let res = client()
        .get(g.admin_url("/v1/services"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // Every file service is listed, from the file, with a certificate field.
    let (etag, list) = get_services(&g).await;
    assert_eq!(etag, "\"0\"");
    assert_eq!(list["version"], 0);
    let data = listed_service(&list, "data").unwrap();
    assert_eq!(data["origin"], "file");
    assert_eq!(data["subdomain"], "data");
    assert_eq!(data["allowed_roles"], json!(["anonymous", "user", "admin"]));
    assert_eq!(data["hosts"], json!([host("data")]));
    assert!(data.as_object().unwrap().contains_key("certificate"));
    assert!(data["certificate"].is_null());
    assert_eq!(data["websocket"], true);
    assert_eq!(data["forward_credentials"], false);
    assert_eq!(status_for(&g, "reports", None).await, 404);

    // Add: in force at once, with its roles.
    let res = send(
        &g,
        reqwest::Method::POST,
        "/v1/services",
        None,
        Some(json!({ "name": "reports", "upstreams": [up.url()], "allowed_roles": ["user"] })),
    )
    .await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["etag"], "\"1\"");
    assert_eq!(res.headers()["location"], "/v1/services/reports");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["version"], 1);
    assert_eq!(body["service"]["origin"], "api");
    assert_eq!(body["service"]["allowed_roles"], json!(["user"]));
    assert_eq!(status_for(&g, "reports", None).await, 401, "anonymous");
    assert_eq!(
        status_for(&g, "reports", Some(&admin)).await,
        401,
        "another role"
    );
    let before = up.count();
    assert_eq!(status_for(&g, "reports", Some(&user)).await, 200);
    assert_eq!(up.count(), before + 1);
    assert_eq!(up.last().one("x-hasura-role").as_deref(), Some("user"));

    // The same name again is a conflict.
    let res = send(
        &g,
        reqwest::Method::POST,
        "/v1/services",
        None,
        Some(json!({ "name": "reports", "upstreams": [up.url()] })),
    )
    .await;
    assert_eq!(res.status(), 409);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "service-exists");

    // Replace: PUT needs If-Match.
    let new = json!({ "upstreams": [up.url()], "allowed_roles": ["admin"] });
    let res = send(
        &g,
        reqwest::Method::PUT,
        "/v1/services/reports",
        None,
        Some(new.clone()),
    )
    .await;
    assert_eq!(res.status(), 428);
    let res = send(
        &g,
        reqwest::Method::PUT,
        "/v1/services/reports",
        Some("\"1\""),
        Some(new),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "\"2\"");
    assert_eq!(status_for(&g, "reports", Some(&user)).await, 401);
    assert_eq!(status_for(&g, "reports", Some(&admin)).await, 200);
    let res = client()
        .get(g.admin_url("/v1/services/reports"))
        .bearer_auth(ADMIN_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["etag"], "\"2\"");
    let one: Value = res.json().await.unwrap();
    assert_eq!(one["service"]["allowed_roles"], json!(["admin"]));

    // What GET returns can be sent back with PUT as it is.
    let res = send(
        &g,
        reqwest::Method::PUT,
        "/v1/services/reports",
        Some("\"2\""),
        Some(one["service"].clone()),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "\"3\"");

    // File services are not changed here.
    for method in [reqwest::Method::PUT, reqwest::Method::DELETE] {
        let res = send(
            &g,
            method,
            "/v1/services/data",
            Some("*"),
            Some(json!({ "upstreams": [up.url()] })),
        )
        .await;
        assert_eq!(res.status(), 409);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "service-in-config-file");
        assert!(
            body["error"].as_str().unwrap().contains("config file"),
            "{body}"
        );
    }
    let res = send(
        &g,
        reqwest::Method::POST,
        "/v1/services",
        None,
        Some(json!({ "name": "data", "subdomain": "data2", "upstreams": [up.url()] })),
    )
    .await;
    assert_eq!(res.status(), 409);
    assert_eq!(status_for(&g, "data", None).await, 200);

    // Delete: gone at once.
    let res = send(
        &g,
        reqwest::Method::DELETE,
        "/v1/services/reports",
        None,
        None,
    )
    .await;
    assert_eq!(res.status(), 428);
    let res = send(
        &g,
        reqwest::Method::DELETE,
        "/v1/services/reports",
        Some("\"3\""),
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "\"4\"");
    assert_eq!(res.json::<Value>().await.unwrap()["deleted"], "reports");
    assert_eq!(status_for(&g, "reports", Some(&admin)).await, 404);
    let res = send(
        &g,
        reqwest::Method::DELETE,
        "/v1/services/reports",
        Some("*"),
        None,
    )
    .await;
    assert_eq!(res.status(), 404);
    let (_, list) = get_services(&g).await;
    assert!(listed_service(&list, "reports").is_none());
    assert!(
        !g.log().contains(ADMIN_SECRET),
        "the admin secret is never logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_services_get_422_naming_the_field() {
    let up = Upstream::start().await;
    let g = Gateway::start(&standard_config(0, 0, &up.url(), ""), 0, 0);
    let u = up.url();
    let cases = [
        (json!({ "upstreams": [u] }), "name"),
        (json!({ "name": "Not_A_Label", "upstreams": [u] }), "name"),
        (
            json!({ "name": "ok", "subdomain": "bad label", "upstreams": [u] }),
            "subdomain",
        ),
        (
            json!({ "name": "ok", "subdomain": "data", "upstreams": [u] }),
            "subdomain",
        ),
        (json!({ "name": "ok" }), "upstreams"),
        (json!({ "name": "ok", "upstreams": [] }), "upstreams"),
        (
            json!({ "name": "ok", "upstreams": ["ftp://127.0.0.1:1"] }),
            "upstreams[0]",
        ),
        (
            json!({ "name": "ok", "upstreams": [u, "http://"] }),
            "upstreams[1]",
        ),
        (
            json!({ "name": "ok", "upstreams": [u], "allowed_roles": ["user", ""] }),
            "allowed_roles[1]",
        ),
        (
            json!({ "name": "ok", "upstreams": [u], "allowed_roles": ["has space"] }),
            "allowed_roles[0]",
        ),
        (
            json!({ "name": "ok", "upstreams": [u], "websocket": "on" }),
            "websocket",
        ),
        (
            json!({ "name": "ok", "upstreams": [u], "colour": "blue" }),
            "colour",
        ),
        // Refused by the config file's check on the field itself, not later by the route
        // table on `subdomain` (issue 14: one service validator).
        (
            json!({ "name": "ok", "upstreams": [u], "path_prefix": "/a/./b" }),
            "path_prefix",
        ),
    ];
    for (body, field) in cases {
        let res = send(
            &g,
            reqwest::Method::POST,
            "/v1/services",
            None,
            Some(body.clone()),
        )
        .await;
        assert_eq!(res.status(), 422, "{body}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["field"], field, "{body}: {v}");
        assert_eq!(v["code"], "invalid-field");
        assert!(!v["error"].as_str().unwrap().is_empty());
    }
    let res = client()
        .post(g.admin_url("/v1/services"))
        .bearer_auth(ADMIN_SECRET)
        .body("{ not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    // A PUT naming another service than its URL is refused on `name`.
    send(
        &g,
        reqwest::Method::POST,
        "/v1/services",
        None,
        Some(json!({ "name": "ok", "upstreams": [u] })),
    )
    .await;
    let res = send(
        &g,
        reqwest::Method::PUT,
        "/v1/services/ok",
        Some("*"),
        Some(json!({ "name": "other", "upstreams": [u] })),
    )
    .await;
    assert_eq!(res.status(), 422);
    assert_eq!(res.json::<Value>().await.unwrap()["field"], "name");
    // Nothing invalid was applied: only the one valid POST counted.
    let (etag, _) = get_services(&g).await;
    assert_eq!(etag, "\"1\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_if_match_gets_412_and_concurrent_writers_cannot_both_win() {
    let up = Upstream::start().await;
    let g = Gateway::start(&standard_config(0, 0, &up.url(), ""), 0, 0);
    let body =
        |roles: &[&str]| json!({ "name": "race", "upstreams": [up.url()], "allowed_roles": roles });
    let res = send(
        &g,
        reqwest::Method::POST,
        "/v1/services",
        Some("\"0\""),
        Some(body(&["user"])),
    )
    .await;
    assert_eq!(res.status(), 201);
    let res = send(
        &g,
        reqwest::Method::PUT,
        "/v1/services/race",
        Some("\"1\""),
        Some(body(&["admin"])),
    )
    .await;
    assert_eq!(res.status(), 200);

    // A writer that read version 1 is now stale, whatever it does.
    for (method, path) in [
        (reqwest::Method::PUT, "/v1/services/race"),
        (reqwest::Method::DELETE, "/v1/services/race"),
        (reqwest::Method::POST, "/v1/services"),
    ] {
        let b = (method != reqwest::Method::DELETE).then(|| body(&["user"]));
        let res = send(&g, method.clone(), path, Some("\"1\""), b).await;
        assert_eq!(res.status(), 412, "{method} {path}");
        assert_eq!(res.headers()["etag"], "\"2\"");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["code"], "version-mismatch");
        assert_eq!(v["current_version"], 2);
    }
    // Weak tags never match If-Match.
    let res = send(
        &g,
        reqwest::Method::DELETE,
        "/v1/services/race",
        Some("W/\"2\""),
        None,
    )
    .await;
    assert_eq!(res.status(), 412);

    // Eight writers read version 2 and write at once: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let url = g.admin_url("/v1/services/race");
        let b = json!({ "upstreams": [up.url()], "allowed_roles": [format!("role-{i}")] });
        tasks.push(tokio::spawn(async move {
            client()
                .put(url)
                .bearer_auth(ADMIN_SECRET)
                .header("if-match", "\"2\"")
                .json(&b)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 412, 412, 412, 412, 412, 412, 412]);
    let (etag, _) = get_services(&g).await;
    assert_eq!(etag, "\"3\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_services_survive_a_restart_in_a_0600_state_file() {
    let up = Upstream::start().await;
    let mut g = Gateway::start(&standard_config(0, 0, &up.url(), ""), 0, 0);
    for name in ["keep", "drop"] {
        let res = send(
            &g,
            reqwest::Method::POST,
            "/v1/services",
            None,
            Some(json!({ "name": name, "upstreams": [up.url()], "allowed_roles": ["user"], "websocket": false })),
        )
        .await;
        assert_eq!(res.status(), 201);
    }
    let res = send(
        &g,
        reqwest::Method::DELETE,
        "/v1/services/drop",
        Some("\"2\""),
        None,
    )
    .await;
    assert_eq!(res.status(), 200);

    let state = g.dir.path().join("gateway-services.json");
    let stored: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(stored["format"], 1);
    assert_eq!(stored["version"], 3);
    assert_eq!(stored["services"].as_array().unwrap().len(), 1);
    assert_eq!(stored["services"][0]["name"], "keep");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    assert!(g.terminate().success());
    let dir = std::mem::replace(&mut g.dir, tempfile::tempdir().unwrap());
    let config_path = g.config_path.clone();
    drop(g);
    let g = Gateway::start_at(dir, &config_path, 0, 0);
    let (etag, list) = get_services(&g).await;
    assert_eq!(etag, "\"3\"", "the version survives too");
    let keep = listed_service(&list, "keep").unwrap();
    assert_eq!(keep["origin"], "api");
    assert_eq!(keep["websocket"], false);
    assert!(listed_service(&list, "drop").is_none());
    let user = create_session(&g, "u-1", &["user"], None).await;
    assert_eq!(status_for(&g, "keep", None).await, 401);
    assert_eq!(status_for(&g, "keep", Some(&user)).await, 200);
    assert_eq!(status_for(&g, "drop", Some(&user)).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_reloads_during_api_writes_lose_nothing() {
    let up = Upstream::start().await;
    let base = standard_config(0, 0, &up.url(), "");
    let g = Gateway::start(&base, 0, 0);

    // One task adds API services while another rewrites the config file and sends SIGHUP.
    let writer = {
        let url = g.admin_url("/v1/services");
        let upstream = up.url();
        tokio::spawn(async move {
            for i in 0..12 {
                let res = client()
                    .post(&url)
                    .bearer_auth(ADMIN_SECRET)
                    .json(&json!({ "name": format!("api-{i}"), "upstreams": [upstream] }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 201);
                tokio::time::sleep(std::time::Duration::from_millis(15)).await;
            }
        })
    };
    for i in 0..12 {
        let extra = format!(
            "\n[[services]]\nname = \"file-{i}\"\nupstreams = [\"{}\"]\n",
            up.url()
        );
        rewrite_config(&g, &format!("{base}{extra}"));
        tokio::time::sleep(std::time::Duration::from_millis(15)).await;
    }
    writer.await.unwrap();

    // The last file wins for file services, and every API service is still served.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while status_for(&g, "file-11", None).await != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the last config was not loaded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for i in 0..12 {
        assert_eq!(
            status_for(&g, &format!("api-{i}"), None).await,
            200,
            "api-{i}"
        );
    }
    for i in 0..11 {
        assert_eq!(
            status_for(&g, &format!("file-{i}"), None).await,
            404,
            "file-{i}"
        );
    }
    let (etag, list) = get_services(&g).await;
    assert_eq!(etag, "\"12\"");
    assert_eq!(listed_service(&list, "file-11").unwrap()["origin"], "file");
    assert_eq!(listed_service(&list, "api-11").unwrap()["origin"], "api");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_service_list_add_remove() {
    let up = Upstream::start().await;
    let g = Gateway::start(&standard_config(0, 0, &up.url(), ""), 0, 0);
    let bin = env!("CARGO_BIN_EXE_gateway");
    let admin_url = g.admin_url("");
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(args)
            .env("GATEWAY_ADMIN_URL", &admin_url)
            .env("GATEWAY_ADMIN_SECRET", ADMIN_SECRET)
            .output()
            .unwrap()
    };
    let upstream = up.url();
    let out = run(&[
        "service",
        "add",
        "cli-svc",
        "--upstream",
        &upstream,
        "--roles",
        "anonymous,user",
        "--websocket",
        "false",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["service"]["allowed_roles"], json!(["anonymous", "user"]));
    assert_eq!(v["service"]["websocket"], false);
    assert_eq!(status_for(&g, "cli-svc", None).await, 200);

    let out = run(&["service", "list"]);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    let line = table
        .lines()
        .find(|l| l.starts_with("cli-svc "))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        line.contains(" api ") && line.contains("anonymous,user"),
        "{line}"
    );
    assert!(table
        .lines()
        .any(|l| l.starts_with("data ") && l.contains(" file ")));
    let out = run(&["service", "list", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], 1);

    // An invalid service fails with the field named.
    let out = run(&["service", "add", "bad", "--upstream", "ftp://x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("upstreams[0]"));

    // A stale --version is refused; the current one works.
    let out = run(&["service", "remove", "cli-svc", "--version", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("412"));
    let out = run(&["service", "remove", "cli-svc", "--version", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(status_for(&g, "cli-svc", None).await, 404);
    // File services cannot be removed here.
    let out = run(&["service", "remove", "data"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("config file"));
}
