//! Reload under load, graceful drain, and the redaction of logs, against the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

fn hup(g: &Gateway) {
    let pid = g.child.as_ref().unwrap().id();
    std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_reloads_under_load_give_zero_non_2xx() {
    let up = Upstream::start().await;
    let (http, admin) = (0, 0);
    let base = standard_config(http, admin, &up.url(), "");
    let g = Gateway::start(&base, http, admin);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let bad = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (stop, ok, bad, url) = (stop.clone(), ok.clone(), bad.clone(), g.url("/load"));
        workers.push(tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::Relaxed) {
                match c.get(&url).header("host", host("data")).send().await {
                    Ok(r) if r.status().is_success() => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(r) => {
                        eprintln!("non-2xx during reload: {}", r.status());
                        bad.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(e) => {
                        eprintln!("error during reload: {e}");
                        bad.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    for i in 0..20 {
        // Each reload changes the routes: a service appears and disappears, and roles change.
        let extra = if i % 2 == 0 {
            format!("\n[[services]]\nname = \"extra{i}\"\nupstreams = [\"{}\"]\nallowed_roles = [\"user\"]\n", up.url())
        } else {
            String::new()
        };
        std::fs::write(&g.config_path, format!("{base}{extra}")).unwrap();
        hup(&g);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert!(
        ok.load(Ordering::Relaxed) > 100,
        "too little load: {}",
        ok.load(Ordering::Relaxed)
    );
    assert_eq!(bad.load(Ordering::Relaxed), 0);
    let log = g.log();
    assert!(log.matches("config reloaded").count() >= 20, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_new_routes_and_rejects_an_invalid_file() {
    let up = Upstream::start().await;
    let (http, admin) = (0, 0);
    let base = standard_config(http, admin, &up.url(), "");
    let g = Gateway::start(&base, http, admin);
    let c = client();
    let res = c
        .get(g.url("/"))
        .header("host", host("fresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    std::fs::write(&g.config_path, format!("{base}\n[[services]]\nname = \"fresh\"\nupstreams = [\"{}\"]\nallowed_roles = [\"admin\"]\n", up.url())).unwrap();
    hup(&g);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let res = c
        .get(g.url("/"))
        .header("host", host("fresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "the new route serves at once with its roles enforced"
    );

    std::fs::write(&g.config_path, "[project]\ndomains = [").unwrap();
    hup(&g);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let res = c
        .get(g.url("/"))
        .header("host", host("data"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the old config keeps serving");
    assert!(g.log().contains("new config rejected"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits_0() {
    let up = Upstream::start().await;
    let (http, admin) = (0, 0);
    let mut g = Gateway::start(&standard_config(http, admin, &up.url(), ""), http, admin);
    let url = g.url("/slow?ms=1500");
    let slow =
        tokio::spawn(async move { client().get(url).header("host", host("data")).send().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = tokio::task::spawn_blocking(move || {
        let s = g.terminate();
        (s, g)
    });
    let res = slow.await.unwrap().expect("the in-flight request finished");
    assert_eq!(res.status(), 200);
    let (exit, g) = status.await.unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", g.http)).is_err(),
        "no longer accepting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_contain_tokens_cookies_or_the_admin_secret() {
    let up = Upstream::start().await;
    let (http, admin) = (0, 0);
    let mut g = Gateway::start(&standard_config(http, admin, &up.url(), ""), http, admin);
    let c = client();
    let res = c
        .post(g.url("/login?user=9&roles=user"))
        .header("host", host("auth"))
        .send()
        .await
        .unwrap();
    let issued = res.headers()["x-gateway-session-token"]
        .to_str()
        .unwrap()
        .to_owned();
    let admin_made = create_session(&g, "10", &["user"], None).await;
    c.get(g.url("/a"))
        .header("host", host("data"))
        .bearer_auth(&issued)
        .send()
        .await
        .unwrap();
    c.get(g.url("/b"))
        .header("host", host("data"))
        .header("cookie", format!("gw_session={admin_made}"))
        .send()
        .await
        .unwrap();
    c.get(g.url("/c"))
        .header("host", host("data"))
        .bearer_auth("WrongTokenValueThatShouldNotBeLogged")
        .send()
        .await
        .unwrap();
    c.get(g.url("/d"))
        .header("host", host("data"))
        .header("cookie", "gw_session=StaleCookieValueNeverLogged")
        .send()
        .await
        .unwrap();
    c.post(g.url("/logout"))
        .header("host", host("auth"))
        .bearer_auth(&issued)
        .send()
        .await
        .unwrap();
    c.get(g.admin_url("/v1/users/10/sessions"))
        .bearer_auth("WrongAdminSecretNeverLogged")
        .send()
        .await
        .unwrap();
    g.terminate();
    let log = g.log();
    assert!(
        log.contains("\"status\":200") || log.contains("status=200"),
        "access log missing:\n{log}"
    );
    assert!(
        log.contains("\"user_id\":\"9\"") || log.contains("user_id=9"),
        "access log lacks the user id:\n{log}"
    );
    for secret in [
        issued.as_str(),
        admin_made.as_str(),
        ADMIN_SECRET,
        "WrongTokenValueThatShouldNotBeLogged",
        "StaleCookieValueNeverLogged",
        "WrongAdminSecretNeverLogged",
    ] {
        assert!(
            !log.contains(secret),
            "the log contains a secret ({secret}):\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed_at_the_idle_timeout() {
    use std::io::{Read, Write};
    let up = Upstream::start().await;
    // The header-read timeout (which also bounds HTTP/1 keep-alive waits in hyper) is long, so
    // only the idle timeout can close the connection.
    let config = standard_config(0, 0, &up.url(), "")
        .replace(
            "header_read_timeout = \"2s\"",
            "header_read_timeout = \"30s\"",
        )
        .replace("idle_timeout = \"5s\"", "idle_timeout = \"1s\"");
    let g = Gateway::start(&config, 0, 0);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", g.http)).unwrap();
    s.write_all(format!("GET /x HTTP/1.1\r\nHost: {}\r\n\r\n", host("data")).as_bytes())
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Now idle: the gateway closes it after about a second.
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800),
        "closed too early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "closed after {waited:?}");
}
