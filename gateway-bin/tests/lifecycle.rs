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

/// The access lines in the gateway's JSON log; panics on a line that is not JSON (a torn or
/// interleaved write).
fn access_lines(g: &Gateway) -> Vec<serde_json::Value> {
    g.log()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"))
        })
        .filter(|v| v["target"] == "access")
        .collect()
}

/// The access log is buffered per thread (telemetry::access): a burst of requests, many
/// batches' worth, still gives one whole line per request, soon after the burst (not only at
/// exit), and nothing is lost or written twice at exit; on one thread and on several.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_access_lines_are_all_written_promptly_and_whole() {
    let up = Upstream::start().await;
    for threads in ["1", "2"] {
        let base = standard_config(0, 0, &up.url(), "");
        let mut g = Gateway::start_with(&base, 0, 0, &["--threads", threads]);
        const N: usize = 600;
        let c = client();
        let mut tasks = Vec::new();
        for t in 0..12 {
            let (c, url) = (c.clone(), g.url("/burst"));
            tasks.push(tokio::spawn(async move {
                for _ in (t..N).step_by(12) {
                    let r = c
                        .get(&url)
                        .header("host", host("data"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let started = std::time::Instant::now();
        loop {
            let n = access_lines(&g).len();
            if n == N {
                break;
            }
            assert!(n < N, "{n} access lines for {N} requests");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "--threads {threads}: {n} of {N} access lines 2 s after the burst"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let bytes = g.log().len();
        assert!(
            bytes > 4 * 32 * 1024,
            "the burst spans several batches ({bytes} bytes)"
        );
        assert!(g.terminate().success());
        let lines = access_lines(&g);
        assert_eq!(lines.len(), N, "--threads {threads}: lines after exit");
        assert!(lines
            .iter()
            .all(|l| l["status"] == 200 && l["service"] == "data" && l["reason"] == "allowed"));
    }
}

/// Each thread's name and the nanoseconds it has run (`/proc/PID/task/TID/schedstat`).
fn thread_times(pid: u32) -> Vec<(String, u64)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| {
            let name = std::fs::read_to_string(t.path().join("comm")).ok()?;
            let ran = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            Some((name.trim().to_owned(), ran.split(' ').next()?.parse().ok()?))
        })
        .collect()
}

/// `--threads 3` serves on three event loops (server::ServingThreads): the starting thread
/// and two serving threads accepting on the same socket. Every connection is served, every
/// thread runs, a second gateway on the same port still fails to start (the socket is not
/// `SO_REUSEPORT`), and SIGTERM still drains and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_serve_on_event_loops_of_their_own_that_share_the_port() {
    let up = Upstream::start().await;
    let base = standard_config(0, 0, &up.url(), "");
    let mut g = Gateway::start_with(&base, 0, 0, &["--threads", "3"]);
    let pid = g.child.as_ref().unwrap().id();
    let serving = |times: &[(String, u64)]| -> Vec<u64> {
        let mut v: Vec<(String, u64)> = times
            .iter()
            .filter(|(n, _)| n.starts_with("serve-"))
            .cloned()
            .collect();
        v.sort();
        v.into_iter().map(|(_, t)| t).collect()
    };
    // A new thread names itself once it runs; until then it carries its parent's name.
    let started = std::time::Instant::now();
    let before = loop {
        let times = thread_times(pid);
        let before = serving(&times);
        if before.len() == 2 {
            break before;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no two serving threads: {times:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // A connection per request: the kernel hashes each new connection to one of the sockets.
    for i in 0..120 {
        let c = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let r = c
            .get(g.url(&format!("/spread/{i}")))
            .header("host", host("data"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let after = serving(&thread_times(pid));
    for (k, (b, a)) in before.iter().zip(&after).enumerate() {
        assert!(a > b, "serve-{} never ran ({b} → {a} ns)", k + 1);
    }
    // A second gateway on the same HTTP port: refused at start, not handed half the traffic.
    let second = standard_config(g.http, 0, &up.url(), "");
    let mut other = Gateway::spawn(&second, g.http, 0, &["--threads", "3"], &[]);
    let status = {
        let mut child = other.child.take().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("a second gateway on port {} kept running", g.http);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert!(!status.success());
    assert!(
        other.log().contains("cannot listen"),
        "the second gateway's log: {}",
        other.log()
    );
    assert!(g.terminate().success());
    assert_eq!(
        g.log().matches("\"target\":\"access\"").count(),
        120,
        "one access line per request, from every thread"
    );
}
