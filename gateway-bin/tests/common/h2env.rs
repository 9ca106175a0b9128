//! The gateway the HTTP/2 abuse tests (h2_floods.rs, h2_abuse.rs) run against, with an HTTPS
//! listener (dev CA) beside h2c so that every attack is tried over both, and the oversized
//! header block both files send.

use super::h2raw::*;
use super::*;

/// The standard config with an HTTPS listener (dev CA) beside h2c, and `limits` (`key = value`
/// lines) replacing the standard `[limits]` keys of the same name.
pub fn config(up: &str, limits: &str) -> String {
    let base = standard_config(0, 0, up, "")
        .replace("[listen]\n", "[listen]\nhttps = \"127.0.0.1:0\"\n")
        .replace("[sessions]\n", "[tls]\nmode = \"dev-ca\"\n\n[sessions]\n");
    let keys: Vec<&str> = limits
        .lines()
        .filter_map(|l| l.split('=').next())
        .map(str::trim)
        .collect();
    let kept: Vec<&str> = base
        .lines()
        .filter(|l| !keys.contains(&l.split('=').next().unwrap_or("").trim()))
        .collect();
    kept.join("\n")
        .replace("[limits]\n", &format!("[limits]\n{limits}"))
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    H2c,
    Tls,
}

/// A gateway with both listeners, and what it takes to reach them.
pub struct Env {
    pub up: Upstream,
    pub g: Gateway,
    pub https: u16,
    pub tls: TlsClient,
}

impl Env {
    pub async fn start(limits: &str) -> Env {
        let up = Upstream::start().await;
        let g = Gateway::start(&config(&up.url(), limits), 0, 0);
        let https = https_port(&g);
        let ca = std::fs::read(g.dir.path().join("gateway-data/dev-ca/dev-ca.pem")).unwrap();
        Env {
            up,
            g,
            https,
            tls: TlsClient::new(&ca),
        }
    }

    pub fn pid(&self) -> u32 {
        self.g.child.as_ref().unwrap().id()
    }

    pub async fn conn(&self, t: Target) -> std::io::Result<Conn> {
        match t {
            Target::H2c => Conn::h2c(self.g.http).await,
            Target::Tls => Conn::tls(self.https, &self.tls, &host("data")).await,
        }
    }

    /// Where an honest client connects: the target, a port, and the dev CA.
    pub fn honest_target(&self, t: Target) -> (Target, u16, Vec<u8>) {
        let ca = std::fs::read(self.g.dir.path().join("gateway-data/dev-ca/dev-ca.pem")).unwrap();
        match t {
            Target::H2c => (t, self.g.http, ca),
            Target::Tls => (t, self.https, ca),
        }
    }
}

/// An oversized header list: one ~4 KiB literal added to the dynamic table, then `refs`
/// one-byte references to it. With the default `max_header_bytes` (16 KiB), 8 references
/// (~36 KiB decoded) are over the limit, 30 (~124 KiB) over h2's abuse limit (4x).
pub fn big_block(refs: usize) -> Vec<u8> {
    let mut b = request_block("GET", &host("data"), "/big-headers", &[]);
    literal_indexed(&mut b, b"x-big", &[b'a'; 4000]);
    for _ in 0..refs {
        indexed(&mut b, 62);
    }
    b
}
