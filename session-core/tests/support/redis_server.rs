//! A `redis-server` child process for tests, on a free port (no persistence), killed on drop.
//! Shared by session-core's Redis store tests, gateway-bin's replica tests and cert-core's
//! certificate store test (`#[path]`).
//!
//! Without `redis-server` on the PATH, [`RedisServer::start`] prints a loud skip message and
//! returns `None`, except on CI (`CI=true`) where it panics.

// Each test binary uses a different part of this helper.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct RedisServer {
    child: Option<Child>,
    pub(crate) port: u16,
    password: Option<String>,
    args: Vec<String>,
}

impl RedisServer {
    /// Starts one with `requirepass` when `password` is set and `extra` arguments, or returns
    /// `None` when redis-server is missing and this is not CI.
    pub(crate) fn start(password: Option<&str>, extra: &[&str]) -> Option<RedisServer> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok();
        if !found {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("redis-server is not installed (run scripts/install-test-deps)");
            }
            eprintln!(
                "\n\n*** SKIPPED: redis-server is not installed (scripts/install-test-deps) ***\n"
            );
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = RedisServer {
            child: None,
            port,
            password: password.map(str::to_owned),
            args: extra.iter().map(|s| s.to_string()).collect(),
        };
        s.restart();
        Some(s)
    }

    /// Starts the server again on the same port (after [`RedisServer::stop`]).
    pub(crate) fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--enable-debug-command", "yes"]);
        if let Some(pw) = &self.password {
            cmd.args(["--requirepass", pw]);
        }
        let child = cmd
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the server (a crash, as the clients see it).
    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The URL, with the password in it when there is one: it must never show up in a log.
    pub(crate) fn url(&self) -> String {
        match &self.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// `DEBUG SLEEP secs` on its own connection (inline commands), in the background: the
    /// server stalls without closing any connection.
    pub(crate) fn stall(&self, secs: u32) -> std::thread::JoinHandle<()> {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let auth = self.password.clone();
        std::thread::spawn(move || {
            let mut replies = 1;
            if let Some(pw) = auth {
                write!(c, "AUTH {pw}\r\n").unwrap();
                replies += 1;
            }
            write!(c, "DEBUG SLEEP {secs}\r\n").unwrap();
            // +OK for AUTH, then +OK when the sleep ends.
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            while got.iter().filter(|&&b| b == b'\n').count() < replies {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
