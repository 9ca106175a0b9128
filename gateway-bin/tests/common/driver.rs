//! chromedriver for the headless-Chromium tests (browser.rs, console_browser.rs).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The first of `names` found on the PATH.
pub fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

/// chromedriver on a free port, killed on drop.
pub struct Driver {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its WebDriver URL.
    pub url: String,
}

impl Driver {
    /// Starts `bin`, with `HOME` set to `home` when given (where Chromium reads its NSS
    /// database of trusted roots), and waits until it listens.
    pub fn start(bin: &Path, home: Option<&Path>) -> Driver {
        let port = super::free_port();
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(home) = home {
            cmd.env("HOME", home);
        }
        let child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            port,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
