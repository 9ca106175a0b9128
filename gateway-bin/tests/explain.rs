//! `POST /v1/explain` against the real gateway: for requests refused for each reason (and
//! allowed ones), the verdict and reason explain gives match the decision record the access
//! log wrote for the same request sent for real; and explaining leaves no trace (no session
//! expiry moved, no request counted).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// The access lines of the gateway's JSON log so far.
fn access_lines(g: &Gateway) -> Vec<Value> {
    g.log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "access")
        .collect()
}

/// Sends the request for real; returns its status and the access line it produced.
async fn real(
    g: &Gateway,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let before = access_lines(g).len();
    let mut req = client()
        .request(method.parse().unwrap(), g.url(path))
        .header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let status = req.send().await.unwrap().status().as_u16();
    // The line is written before the answer leaves; allow the file a moment all the same.
    for _ in 0..100 {
        let lines = access_lines(g);
        if lines.len() > before {
            return (status, lines[before].clone());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no access line for {method} {host}{path}");
}

async fn explain(g: &Gateway, body: Value) -> (u16, Value) {
    let res = client()
        .post(g.admin_url("/v1/explain"))
        .bearer_auth(ADMIN_SECRET)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

/// The request counters of `/metrics`, as text lines.
async fn counters(g: &Gateway) -> Vec<String> {
    let mut lines: Vec<String> = g
        .metrics()
        .await
        .lines()
        .filter(|l| {
            l.starts_with("gateway_requests_total")
                || l.starts_with("gateway_request_duration_seconds_count")
                || l.starts_with("gateway_store_errors_total")
        })
        .map(str::to_owned)
        .collect();
    // The exporter's order is not stable.
    lines.sort();
    lines
}

async fn expires_at(g: &Gateway, user: &str) -> Vec<String> {
    let v = g.admin_json(&format!("/v1/users/{user}/sessions")).await;
    let list = v["sessions"]
        .as_array()
        .or(v.as_array())
        .cloned()
        .unwrap_or_default();
    list.iter().map(|s| s["expires_at"].to_string()).collect()
}

/// A request to send and explain: method, host, path, headers, the expected reason and the
/// status it gets when sent for real.
type Case<'a> = (
    &'a str,
    String,
    &'a str,
    Vec<(&'a str, &'a str)>,
    &'a str,
    u16,
);

#[tokio::test]
async fn explain_gives_the_decision_the_access_log_records_and_leaves_no_trace() {
    let up = Upstream::start().await;
    let (http, admin) = (free_port(), free_port());
    let config = standard_config(http, admin, &up.url(), "").replace(
        "cookie_name = \"gw_session\"",
        "cookie_name = \"gw_session\"\nsliding_expiry = true\nttl = \"1h\"",
    );
    let g = Gateway::start(&config, http, admin);
    let user = create_session(&g, "u-1", &["user"], None).await;
    let boss = create_session(&g, "boss", &["user", "admin"], Some("user")).await;
    let bearer = |t: &str| format!("Bearer {t}");
    let (user_auth, boss_auth) = (bearer(&user), bearer(&boss));
    let unknown = bearer(&"A".repeat(43));
    let data = host("data");
    let admin_host = host("admin");

    // (method, host, path, headers, expected reason, expected status when sent for real)
    let cases: Vec<Case<'_>> = vec![
        ("GET", data.clone(), "/", vec![], "allowed", 200),
        ("GET", host("nowhere"), "/", vec![], "unknown-host", 404),
        (
            "GET",
            "127.0.0.1".into(),
            "/",
            vec![],
            "misdirected-request",
            421,
        ),
        (
            "GET",
            data.clone(),
            "/",
            vec![("authorization", &unknown)],
            "invalid-token",
            401,
        ),
        (
            "GET",
            data.clone(),
            "/",
            vec![("authorization", "Bearer a b")],
            "malformed-authorization",
            400,
        ),
        (
            "GET",
            admin_host.clone(),
            "/",
            vec![],
            "authorization-required",
            401,
        ),
        (
            "POST",
            admin_host.clone(),
            "/x",
            vec![("authorization", &user_auth)],
            "authorization-required",
            401,
        ),
        (
            "GET",
            data.clone(),
            "/",
            vec![("authorization", &user_auth), ("x-hasura-role", "admin")],
            "role-not-allowed",
            403,
        ),
        (
            "GET",
            data.clone(),
            "/",
            vec![("authorization", &user_auth)],
            "allowed",
            200,
        ),
        (
            "GET",
            admin_host.clone(),
            "/",
            vec![("authorization", &boss_auth), ("x-hasura-role", "admin")],
            "allowed",
            200,
        ),
    ];

    // Real requests first: their access lines are the decision records to compare with.
    let mut records = Vec::new();
    for (method, h, path, headers, want, want_status) in &cases {
        let (status, line) = real(&g, method, h, path, headers).await;
        assert_eq!(
            status, *want_status,
            "{method} {h}{path}: status; line {line}"
        );
        assert_eq!(
            line["reason"], *want,
            "{method} {h}{path}: the access line's reason: {line}"
        );
        // No credential ever reaches the log.
        let text = line.to_string();
        for secret in [&user, &boss] {
            assert!(
                !text.contains(secret.as_str()),
                "a token in the access log: {text}"
            );
        }
        records.push((status, line));
    }

    // A real request slides the session's expiry (sliding_expiry); wait past the slide's
    // granularity so that an explain that slid it would show.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let counted = counters(&g).await;
    let expiry_user = expires_at(&g, "u-1").await;
    let expiry_boss = expires_at(&g, "boss").await;
    let lines_before = access_lines(&g).len();

    for ((method, h, path, headers, want, _), (status, line)) in cases.iter().zip(&records) {
        let headers: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect();
        let (code, answer) = explain(
            &g,
            json!({"method": method, "url": format!("http://{h}{path}"), "headers": headers}),
        )
        .await;
        assert_eq!(code, 200, "explain answered {code}: {answer}");
        assert_eq!(
            answer["reason"], line["reason"],
            "{method} {h}{path}: {answer} vs the log's {line}"
        );
        assert_eq!(answer["reason"], *want);
        let allowed = *want == "allowed";
        assert_eq!(
            answer["verdict"],
            if allowed { "allowed" } else { "refused" },
            "{answer}"
        );
        if allowed {
            // Proxied: the upstream, not the gateway, would answer.
            assert!(answer["status"].is_null(), "{answer}");
            assert_eq!(
                answer["route"]["upstream"]
                    .as_str()
                    .unwrap()
                    .trim_end_matches('/'),
                up.url().trim_end_matches('/'),
                "{answer}"
            );
            assert_eq!(
                answer["route"]["upstream"], line["upstream"],
                "{answer} vs {line}"
            );
        } else {
            assert_eq!(answer["status"], *status, "{answer}");
        }
        assert_eq!(
            answer["route"]["service"].as_str().unwrap_or("-"),
            line["service"],
            "{answer}"
        );
        assert_eq!(
            answer["credential"], line["credential"],
            "{answer} vs {line}"
        );
        assert_eq!(
            answer["identity"]["role"].as_str().unwrap_or("-"),
            line["role"],
            "{answer} vs {line}"
        );
        assert_eq!(
            answer["identity"]["user_id"].as_str().unwrap_or("-"),
            line["user_id"],
            "{answer} vs {line}"
        );
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
        let text = answer.to_string();
        assert!(
            !text.contains(&user) && !text.contains(&boss),
            "a token in the answer: {text}"
        );
    }

    // The role check says which roles the service allows, in the record and in explain.
    let (_, refused) = explain(
        &g,
        json!({"url": format!("https://{admin_host}/"), "headers": {"authorization": user_auth}}),
    )
    .await;
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("allowed roles: admin"),
        "{refused}"
    );
    assert_eq!(refused["identity"]["allowed_roles"], json!(["user"]));
    assert_eq!(refused["resolver"], "sessions");
    assert_eq!(
        refused["route"]["allowed_roles"],
        json!(["admin"]),
        "{refused}"
    );
    // `role` is sent in the configured role header.
    let (_, asked) = explain(
        &g,
        json!({"url": format!("http://{data}/"), "headers": {"authorization": user_auth}, "role": "admin"}),
    )
    .await;
    assert_eq!(asked["reason"], "role-not-allowed", "{asked}");
    assert_eq!(asked["identity"]["requested_role"], "admin", "{asked}");
    let (_, open) = explain(
        &g,
        json!({"url": format!("http://{data}/"), "headers": {"authorization": boss_auth}, "role": "admin"}),
    )
    .await;
    assert_eq!(open["reason"], "allowed", "{open}");
    assert_eq!(open["identity"]["role"], "admin", "{open}");
    // The role check writes the service's roles only when it refuses.
    assert!(open["route"]["allowed_roles"].is_null(), "{open}");

    // No trace: no access line, no request counted, no expiry moved.
    assert_eq!(
        access_lines(&g).len(),
        lines_before,
        "explain wrote access lines"
    );
    assert_eq!(counters(&g).await, counted, "explain counted requests");
    assert_eq!(
        expires_at(&g, "u-1").await,
        expiry_user,
        "explain slid a session"
    );
    assert_eq!(
        expires_at(&g, "boss").await,
        expiry_boss,
        "explain slid a session"
    );
    // A real request does slide it: the check above could fail.
    real(&g, "GET", &data, "/", &[("authorization", &user_auth)]).await;
    assert_ne!(
        expires_at(&g, "u-1").await,
        expiry_user,
        "a real request did not slide"
    );
}

#[tokio::test]
async fn explain_needs_the_admin_secret_and_a_usable_request() {
    let up = Upstream::start().await;
    let (http, admin) = (free_port(), free_port());
    let g = Gateway::start(&standard_config(http, admin, &up.url(), ""), http, admin);
    let res = client()
        .post(g.admin_url("/v1/explain"))
        .json(&json!({"url": "http://data.example.test/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    for (body, code) in [
        (json!({"url": "ftp://x/"}), "invalid-explain-request"),
        (json!({"url": "not a url"}), "invalid-explain-request"),
        (
            json!({"url": "http://data.example.test/", "method": "GE T"}),
            "invalid-explain-request",
        ),
        (
            json!({"url": "http://data.example.test/", "headers": {"bad header": "x"}}),
            "invalid-explain-request",
        ),
        (
            json!({"url": "http://data.example.test/", "headers": {"host": "other"}}),
            "invalid-explain-request",
        ),
        (json!({"nope": 1}), "invalid-json"),
    ] {
        let (status, answer) = explain(&g, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["code"], code, "{body}: {answer}");
    }
    // The CLI prints it for people, the token read from standard input.
    let token = create_session(&g, "cli-user", &["user"], None).await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args([
            "explain",
            "--url",
            &format!("https://{}/x", host("admin")),
            "--token",
            "-",
            "--admin-url",
            &g.admin_url(""),
        ])
        .env("GATEWAY_ADMIN_SECRET", ADMIN_SECRET)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(token.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("REFUSED (authorization-required)"), "{text}");
    assert!(text.contains("user cli-user role user"), "{text}");
    assert!(!text.contains(&token), "{text}");
}
