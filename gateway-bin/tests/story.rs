//! The whole story against the real binary: anonymous, login through the issuer service, an
//! authenticated request, a refused role, logout; plus the admin API and the CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_login_authenticated_forbidden_logout() {
    let up = Upstream::start().await;
    let (http, admin) = (0, 0);
    let g = Gateway::start(&standard_config(http, admin, &up.url(), ""), http, admin);
    let c = client();

    // Anonymous: user 0, role anonymous.
    let res = c
        .get(g.url("/hello"))
        .header("host", host("data"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = up.last();
    assert_eq!(seen.one("x-hasura-user-id").as_deref(), Some("0"));
    assert_eq!(seen.one("x-hasura-role").as_deref(), Some("anonymous"));

    // Login: the issuer's headers become a session, a cookie and a token header.
    let res = c
        .post(g.url("/login?user=42&roles=user,editor&default=user"))
        .header("host", host("auth"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    for h in [
        "x-gateway-session-user-id",
        "x-gateway-session-roles",
        "x-gateway-session-default-role",
    ] {
        assert!(
            res.headers().get(h).is_none(),
            "{h} must not reach the client"
        );
    }
    let token = res.headers()["x-gateway-session-token"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(token.len(), 43, "256 bits in base64url");
    assert!(res.headers().get("x-gateway-session-expires-at").is_some());
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with(&format!("gw_session={token}")),
        "{cookie}"
    );
    for attr in [
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
        "Path=/",
        &format!("Domain={DOMAIN}"),
    ] {
        assert!(cookie.contains(attr), "cookie lacks {attr}: {cookie}");
    }

    // Authenticated by bearer: the upstream sees the session's user and default role.
    let res = c
        .get(g.url("/me"))
        .header("host", host("data"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = up.last();
    assert_eq!(seen.one("x-hasura-user-id").as_deref(), Some("42"));
    assert_eq!(seen.one("x-hasura-role").as_deref(), Some("user"));
    assert_eq!(
        seen.one("x-hasura-allowed-roles").as_deref(),
        Some("user,editor")
    );
    assert!(
        seen.one("authorization").is_none(),
        "the bearer token is not forwarded by default"
    );

    // Authenticated by cookie.
    let res = c
        .get(g.url("/me"))
        .header("host", host("data"))
        .header("cookie", format!("theme=dark; gw_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = up.last();
    assert_eq!(seen.one("x-hasura-user-id").as_deref(), Some("42"));
    let cookies = seen.all("cookie").join("; ");
    assert!(
        cookies.contains("theme=dark"),
        "other cookies pass: {cookies}"
    );
    assert!(
        !cookies.contains(&token),
        "the session cookie is not forwarded: {cookies}"
    );

    // A role the service does not allow: 401 and nothing proxied.
    let before = up.count();
    let res = c
        .get(g.url("/"))
        .header("host", host("admin"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "authorization-required");
    assert_eq!(up.count(), before, "nothing was proxied");

    // Logout: the session ends and the cookie is cleared.
    let res = c
        .post(g.url("/logout"))
        .header("host", host("auth"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cleared = res.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let res = c
        .get(g.url("/me"))
        .header("host", host("data"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_mints_a_new_token_and_revokes_the_old_one() {
    let up = Upstream::start().await;
    let (http, admin) = (0, 0);
    let g = Gateway::start(&standard_config(http, admin, &up.url(), ""), http, admin);
    let c = client();
    let old = create_session(&g, "7", &["user"], None).await;
    let res = c
        .post(g.url("/login?user=7&roles=user,admin"))
        .header("host", host("auth"))
        .bearer_auth(&old)
        .send()
        .await
        .unwrap();
    let new = res.headers()["x-gateway-session-token"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(new, old, "a login mints a new token");
    let res = c
        .get(g.url("/"))
        .header("host", host("data"))
        .bearer_auth(&old)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "the pre-login token is never promoted");
    let res = c
        .get(g.url("/"))
        .header("host", host("admin"))
        .bearer_auth(&new)
        .header("x-hasura-role", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "the new session may ask for its admin role"
    );
    assert_eq!(up.last().one("x-hasura-role").as_deref(), Some("admin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_requires_the_secret_and_manages_sessions() {
    let up = Upstream::start().await;
    let (http, admin) = (0, 0);
    let g = Gateway::start(&standard_config(http, admin, &up.url(), ""), http, admin);
    let c = client();

    // Missing and wrong secrets: 401, counted.
    let res = c
        .post(g.admin_url("/v1/sessions"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = c
        .get(g.admin_url("/v1/users/1/sessions"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let metrics = g.metrics().await;
    let failures = metrics
        .lines()
        .find(|l| l.starts_with("gateway_admin_auth_failures_total"))
        .unwrap_or_else(|| panic!("no failure counter in:\n{metrics}"));
    assert!(failures.ends_with(" 2"), "{failures}");

    // Validation: 422 naming the field; CR/LF in a role is refused.
    let res = c
        .post(g.admin_url("/v1/sessions"))
        .bearer_auth(ADMIN_SECRET)
        .json(&serde_json::json!({ "user_id": "1", "roles": ["user\r\nX-Injected: 1"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body["field"].as_str().unwrap().contains("role"), "{body}");
    let res = c
        .post(g.admin_url("/v1/sessions"))
        .bearer_auth(ADMIN_SECRET)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    // Create, list, revoke one, revoke all.
    let t1 = create_session(&g, "u-9", &["user"], None).await;
    let t2 = create_session(&g, "u-9", &["user", "admin"], Some("admin")).await;
    let res = c
        .get(g.admin_url("/v1/users/u-9/sessions"))
        .bearer_auth(ADMIN_SECRET)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["sessions"].as_array().unwrap().len(), 2);
    assert!(
        !body.to_string().contains(&t1),
        "listing never shows tokens"
    );

    let res = c
        .delete(g.admin_url("/v1/sessions/current"))
        .bearer_auth(ADMIN_SECRET)
        .header("x-gateway-session-token", &t1)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = c
        .get(g.url("/"))
        .header("host", host("data"))
        .bearer_auth(&t1)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = c
        .get(g.url("/"))
        .header("host", host("admin"))
        .bearer_auth(&t2)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let res = c
        .delete(g.admin_url("/v1/users/u-9/sessions"))
        .bearer_auth(ADMIN_SECRET)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["revoked"], 1);
    let res = c
        .get(g.url("/"))
        .header("host", host("admin"))
        .bearer_auth(&t2)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // Health, readiness and metrics.
    assert_eq!(
        c.get(g.admin_url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(g.admin_url("/readyz")).send().await.unwrap().status(),
        200
    );
    let metrics = g.metrics().await;
    for m in [
        "gateway_requests_total",
        "gateway_request_duration_seconds",
        "gateway_sessions_created_total",
        "gateway_sessions_revoked_total",
    ] {
        assert!(metrics.contains(m), "{m} missing from /metrics");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_sessions_carry_variables_to_the_upstream() {
    let up = Upstream::start().await;
    let (http, admin) = (0, 0);
    let g = Gateway::start(&standard_config(http, admin, &up.url(), ""), http, admin);
    let c = client();

    let res = c
        .post(g.admin_url("/v1/sessions"))
        .bearer_auth(ADMIN_SECRET)
        .json(&serde_json::json!({
            "user_id": "u-vars",
            "roles": ["user"],
            "variables": { "x-hasura-org-id": "42", "x-hasura-team": "blue" },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["variables"]["x-hasura-org-id"], "42", "{body}");
    let token = body["token"].as_str().unwrap().to_owned();

    // The session's variables reach the upstream; the client's own copies, in any spelling,
    // never do.
    let res = c
        .get(g.url("/me"))
        .header("host", host("data"))
        .bearer_auth(&token)
        .header("X-Hasura-Org-Id", "666")
        .header("x_hasura_team", "red")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = up.last();
    assert_eq!(seen.all("x-hasura-org-id"), ["42"]);
    assert_eq!(seen.all("x-hasura-team"), ["blue"]);
    assert!(seen.all("x_hasura_team").is_empty());
    assert_eq!(seen.one("x-hasura-user-id").as_deref(), Some("u-vars"));

    // A session without variables forwards none, whatever the client sends.
    let plain = create_session(&g, "u-plain", &["user"], None).await;
    c.get(g.url("/me"))
        .header("host", host("data"))
        .bearer_auth(&plain)
        .header("X-Hasura-Org-Id", "666")
        .send()
        .await
        .unwrap();
    assert!(up.last().all("x-hasura-org-id").is_empty());

    // The listing shows them.
    let listing = g.admin_json("/v1/users/u-vars/sessions").await;
    assert_eq!(
        listing["sessions"][0]["variables"],
        serde_json::json!({ "x-hasura-org-id": "42", "x-hasura-team": "blue" }),
        "{listing}"
    );

    // Names outside the identity prefix, the identity headers themselves, uppercase names
    // and header-breaking values: 422 on `variables`.
    for variables in [
        serde_json::json!({ "x-other": "1" }),
        serde_json::json!({ "authorization": "Bearer x" }),
        serde_json::json!({ "x-hasura-role": "admin" }),
        serde_json::json!({ "x-hasura-allowed-roles": "admin" }),
        serde_json::json!({ "x-hasura-user-id": "1" }),
        serde_json::json!({ "X-Hasura-Org-Id": "1" }),
        serde_json::json!({ "x-hasura-org-id": "a\r\nx-evil: 1" }),
        serde_json::json!({ "x-hasura-org-id": "" }),
    ] {
        let res = c
            .post(g.admin_url("/v1/sessions"))
            .bearer_auth(ADMIN_SECRET)
            .json(&serde_json::json!({ "user_id": "1", "roles": ["user"], "variables": variables }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422, "{variables}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["code"], "invalid-field", "{body}");
        assert_eq!(body["field"], "variables", "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_sessions_carry_variables_and_bad_ones_get_502() {
    let up = Upstream::start().await;
    let (http, admin) = (0, 0);
    let g = Gateway::start(&standard_config(http, admin, &up.url(), ""), http, admin);
    let c = client();

    let res = c
        .post(g.url("/login?user=42&roles=user&vars=x-hasura-org-id:7"))
        .header("host", host("auth"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers().get("x-gateway-session-variables").is_none(),
        "the contract header must not reach the client"
    );
    let token = res.headers()["x-gateway-session-token"]
        .to_str()
        .unwrap()
        .to_owned();
    let res = c
        .get(g.url("/me"))
        .header("host", host("data"))
        .bearer_auth(&token)
        .header("X-Hasura-Org-Id", "666")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(up.last().all("x-hasura-org-id"), ["7"]);

    // Not JSON, not an object of strings, or a name the rules refuse: 502, and no session.
    for bad in [
        "vars_raw=not-json",
        "vars_raw=[1,2]",
        "vars=x-hasura-role:admin",
        "vars=x-evil:1",
    ] {
        let res = c
            .post(g.url(&format!("/login?user=43&roles=user&{bad}")))
            .header("host", host("auth"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 502, "{bad}");
        assert!(res.headers().get("x-gateway-session-token").is_none());
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["code"], "bad-session-issue", "{bad}: {body}");
    }
    let listing = g.admin_json("/v1/users/43/sessions").await;
    assert_eq!(listing["sessions"], serde_json::json!([]), "{listing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_session_commands_talk_to_the_admin_api() {
    let up = Upstream::start().await;
    let (http, admin) = (0, 0);
    let g = Gateway::start(&standard_config(http, admin, &up.url(), ""), http, admin);
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
    let out = run(&[
        "session",
        "create",
        "--user-id",
        "cli-1",
        "--roles",
        "user,admin",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = v["token"].as_str().unwrap().to_owned();

    let out = run(&["session", "list", "--user-id", "cli-1"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sessions"].as_array().unwrap().len(), 1);

    let out = run(&["session", "revoke", "--token", &token]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let res = client()
        .get(g.url("/"))
        .header("host", host("data"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    run(&["session", "create", "--user-id", "cli-1", "--roles", "user"]);
    let out = run(&["user", "revoke-sessions", "--user-id", "cli-1"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["revoked"], 1);

    // A wrong secret fails with a non-zero status.
    let out = std::process::Command::new(bin)
        .args(["session", "list", "--user-id", "x"])
        .env("GATEWAY_ADMIN_URL", &admin_url)
        .env("GATEWAY_ADMIN_SECRET", "nope")
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn check_exits_0_for_a_valid_config_and_64_with_the_line_for_an_invalid_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        standard_config(8080, 9090, "http://127.0.0.1:3000", ""),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = dir.path().join("bad.toml");
    let text = standard_config(8080, 9090, "http://127.0.0.1:3000", "").replacen(
        "allowed_roles = [\"admin\"]",
        "allowed_roles = [\"ad min\"]",
        1,
    );
    std::fs::write(&bad, &text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = text.lines().position(|l| l.contains("ad min")).unwrap() + 1;
    assert!(err.contains(&format!("line {line}")), "{err}");
    assert!(err.contains("services[1].allowed_roles[0]"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_thread_mode_serves_the_same_story() {
    let up = Upstream::start().await;
    let g = Gateway::start_with(
        &standard_config(0, 0, &up.url(), ""),
        0,
        0,
        &["--threads", "1"],
    );
    let c = client();
    let token = create_session(&g, "77", &["user"], None).await;
    let res = c
        .get(g.url("/one"))
        .header("host", host("data"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(up.last().one("x-hasura-user-id").as_deref(), Some("77"));
    let res = c
        .get(g.url("/"))
        .header("host", host("admin"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

/// The request counters count every request once, by service, status class and role, whatever
/// worker thread served it (each keeps its own handles to the shared counters).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_metrics_count_every_request() {
    let up = Upstream::start().await;
    let g = Gateway::start(&standard_config(0, 0, &up.url(), ""), 0, 0);
    let token = create_session(&g, "8", &["user"], None).await;
    let mut sent = Vec::new();
    for i in 0..12 {
        let (sub, auth) = match i % 4 {
            0 | 1 => ("data", true),
            2 => ("data", false),
            _ => ("admin", false),
        };
        // A fresh connection each time, so that both worker threads serve some.
        let fresh = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let mut req = fresh.get(g.url("/m")).header("host", host(sub));
        if auth {
            req = req.bearer_auth(&token);
        }
        sent.push(req.send().await.unwrap().status().as_u16());
    }
    assert_eq!(sent.iter().filter(|s| **s == 200).count(), 9, "{sent:?}");
    assert_eq!(sent.iter().filter(|s| **s == 401).count(), 3, "{sent:?}");
    let text = g.metrics().await;
    let count = |labels: &[&str]| metric_sum(&text, "gateway_requests_total{", labels) as u64;
    assert_eq!(
        count(&["service=\"data\"", "status=\"2xx\"", "role=\"user\""]),
        6,
        "{text}"
    );
    assert_eq!(
        count(&["service=\"data\"", "status=\"2xx\"", "role=\"anonymous\""]),
        3,
        "{text}"
    );
    assert_eq!(
        count(&["service=\"admin\"", "status=\"401\"", "role=\"anonymous\""]),
        3,
        "{text}"
    );
    let durations = metric_sum(
        &text,
        "gateway_request_duration_seconds_count{",
        &["service=\"data\""],
    ) as u64;
    assert_eq!(durations, 9, "{text}");
}
