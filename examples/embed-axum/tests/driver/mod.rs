//! chromedriver for the headless-Chromium test, after gateway-bin's `tests/common/driver.rs`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The first of `names` found on the PATH.
pub(crate) fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

/// chromedriver on a free port of 127.0.0.1, killed on drop.
pub(crate) struct Driver {
    child: Child,
    /// Its WebDriver URL.
    pub(crate) url: String,
}

impl Driver {
    /// Starts `bin` with `HOME` set to `home` (where Chromium reads its NSS database of trusted
    /// roots), and waits until it listens.
    pub(crate) fn start(bin: &Path, home: &Path) -> Driver {
        // A port the kernel just handed out and took back: free unless another process grabs
        // it in the next few milliseconds.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin)
            .arg(format!("--port={port}"))
            .env("HOME", home)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
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

/// Makes Chromium trust the CA in `ca_pem`: an NSS database in `home/.pki/nssdb`, where
/// Chromium on Linux reads locally trusted roots. `false` when `certutil` is missing.
pub(crate) fn trust_ca(home: &Path, ca_pem: &Path) -> bool {
    let Some(certutil) = on_path(&["certutil"]) else {
        return false;
    };
    let db = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let db = format!("sql:{}", db.display());
    let ok = Command::new(&certutil)
        .args(["-d", &db, "-N", "--empty-password"])
        .status()
        .unwrap()
        .success();
    assert!(ok, "certutil -N failed");
    let ok = Command::new(&certutil)
        .args([
            "-d",
            &db,
            "-A",
            "-t",
            "C,,",
            "-n",
            "embed-axum-dev-ca",
            "-i",
        ])
        .arg(ca_pem)
        .status()
        .unwrap()
        .success();
    assert!(ok, "certutil -A failed");
    true
}
