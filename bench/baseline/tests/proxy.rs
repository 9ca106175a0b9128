//! The `baseline` binary against a tiny upstream that echoes the request head it received:
//! identity and forwarded headers, refusals, and upstream connection reuse.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write as _};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// What the upstream has seen.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    requests: AtomicUsize,
}

/// An upstream that answers 200 with the request head it received as the body, one
/// `name: value` line per header (names lowercase, as hyper gives them).
async fn upstream() -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let counts = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            counts.connections.fetch_add(1, Ordering::SeqCst);
            let counts = counts.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    counts.requests.fetch_add(1, Ordering::SeqCst);
                    let mut head = format!("{} {}\n", req.method(), req.uri());
                    for (name, value) in req.headers() {
                        head.push_str(&format!("{name}: {}\n", value.to_str().unwrap()));
                    }
                    async move { Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(head)))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// The baseline binary, killed when dropped.
struct Baseline {
    child: Child,
    addr: SocketAddr,
    _tokens: tempfile::NamedTempFile,
}

impl Drop for Baseline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tokens_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

/// Starts the binary on a free port, in front of `upstream`, with three tokens.
fn baseline(upstream: SocketAddr) -> Baseline {
    let tokens = tokens_file("tok-0\tuser-0\ntok-7\tuser-7\ntok-9\tuser-9\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_baseline"))
        .args(["--listen", "127.0.0.1:0", "--upstream"])
        .arg(upstream.to_string())
        .arg("--tokens")
        .arg(tokens.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // "baseline: listening on 127.0.0.1:PORT, upstream …"
    let addr = line
        .strip_prefix("baseline: listening on ")
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .parse()
        .unwrap();
    Baseline {
        child,
        addr,
        _tokens: tokens,
    }
}

/// One keep-alive client connection to the proxy.
struct Client(hyper::client::conn::http1::SendRequest<Empty<Bytes>>);

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        Client(send)
    }

    /// GET / with `Host: host` and the extra headers; the status, content type and body.
    async fn get(&mut self, host: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
        let mut req = Request::get("/some/path?q=1").header("host", host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.0.ready().await.unwrap();
        let res = self
            .0
            .send_request(req.body(Empty::new()).unwrap())
            .await
            .unwrap();
        let status = res.status().as_u16();
        let ctype = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, ctype, String::from_utf8(body.to_vec()).unwrap())
    }
}

fn lines(head: &str) -> Vec<&str> {
    head.lines().collect()
}

#[tokio::test]
async fn identity_and_forwarded_headers_reach_the_upstream() {
    let (up, _) = upstream().await;
    let proxy = baseline(up);
    let mut client = Client::connect(proxy.addr).await;

    // Anonymous on a route that allows it; the client's own identity and forwarded headers
    // and its hop-by-hop headers must not get through.
    let (status, _, head) = client
        .get(
            "A.bench.test:8080",
            &[
                ("x-hasura-role", "admin"),
                ("x-hasura-user-id", "root"),
                ("x-forwarded-for", "10.9.9.9"),
                ("te", "trailers"),
                ("keep-alive", "timeout=5"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{head}");
    let seen = lines(&head);
    assert_eq!(seen[0], "GET /some/path?q=1");
    for want in [
        "host: a.bench.test",
        "x-hasura-user-id: 0",
        "x-hasura-role: anonymous",
        "x-hasura-allowed-roles: anonymous",
        "x-forwarded-for: 127.0.0.1",
        "x-forwarded-proto: http",
        "x-forwarded-host: a.bench.test",
        "forwarded: for=127.0.0.1;host=a.bench.test;proto=http",
    ] {
        assert_eq!(
            seen.iter().filter(|l| **l == want).count(),
            1,
            "want exactly one {want:?} in\n{head}"
        );
    }
    for gone in ["x-hasura-role: admin", "x-hasura-user-id: root", "10.9.9.9"] {
        assert!(!head.contains(gone), "{gone:?} got through:\n{head}");
    }
    for name in ["te:", "keep-alive:", "connection:", "authorization:"] {
        assert!(
            !seen.iter().any(|l| l.starts_with(name)),
            "{name} got through:\n{head}"
        );
    }

    // A known token on the user-only route: its user, and no Authorization upstream.
    let (status, _, head) = client
        .get("c.bench.test", &[("authorization", "Bearer tok-7")])
        .await;
    assert_eq!(status, 200, "{head}");
    let seen = lines(&head);
    for want in [
        "host: c.bench.test",
        "x-hasura-user-id: user-7",
        "x-hasura-role: user",
        "x-hasura-allowed-roles: user",
        "forwarded: for=127.0.0.1;host=c.bench.test;proto=http",
    ] {
        assert!(seen.contains(&want), "want {want:?} in\n{head}");
    }
    assert!(!head.contains("tok-7"), "the token got through:\n{head}");
}

#[tokio::test]
async fn refusals_never_reach_the_upstream() {
    let (up, seen) = upstream().await;
    let proxy = baseline(up);
    let mut client = Client::connect(proxy.addr).await;
    let unauthorized = r#"{"error":"unauthorized","code":"unauthorized"}"#;
    for (host, auth, want) in [
        ("c.bench.test", None, 401),
        ("b.bench.test", Some("Bearer not-a-token"), 401),
        ("a.bench.test", Some("Basic tok-0"), 401),
        ("a.bench.test", Some("Bearer "), 401),
        ("nowhere.bench.test", None, 404),
        ("nowhere.bench.test", Some("Bearer tok-0"), 404),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let (status, ctype, body) = client.get(host, &headers).await;
        assert_eq!(status, want, "{host} {auth:?}: {body}");
        assert_eq!(ctype, "application/json", "{host} {auth:?}");
        if want == 401 {
            assert_eq!(body, unauthorized);
        }
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 0);
    // The connection is still usable after the refusals.
    let (status, _, _) = client
        .get("b.bench.test", &[("authorization", "bearer tok-9")])
        .await;
    assert_eq!(status, 200);
    assert_eq!(seen.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn upstream_connections_are_reused() {
    let (up, seen) = upstream().await;
    let proxy = baseline(up);
    // Sequential requests over two client connections, one after the other: each finds the
    // upstream connection the previous one gave back.
    for _ in 0..2 {
        let mut client = Client::connect(proxy.addr).await;
        for i in 0..10 {
            let host = ["a.bench.test", "b.bench.test", "c.bench.test"][i % 3];
            let (status, _, head) = client.get(host, &[("authorization", "Bearer tok-0")]).await;
            assert_eq!(status, 200, "{head}");
        }
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 20);
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn startup_errors_exit_non_zero() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_baseline"))
            .args(args)
            .output()
            .unwrap()
    };
    let bad = tokens_file("no-tab-here\n");
    let bad_path = bad.path().to_str().unwrap();
    for args in [
        &["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1"][..],
        &[
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:1",
            "--tokens",
            "/nonexistent/tokens.tsv",
        ][..],
        &[
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:1",
            "--tokens",
            bad_path,
        ][..],
    ] {
        let out = run(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("baseline: "), "{args:?}: {err}");
    }
}
