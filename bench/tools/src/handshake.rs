//! Handshakes per second, and the server's CPU per handshake.
//!
//! Each connection: TCP connect, TLS handshake, then the client sends `close_notify` and
//! reads to the end, so that TLS 1.3 tickets (sent after the handshake) are received and the
//! server closes first (the client keeps no TIME_WAIT ports). No HTTP request is sent: the
//! server's CPU is handshake, ticket and close only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, HandshakeKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::{proc, Res};

#[derive(Default)]
struct Counts {
    full: u64,
    resumed: u64,
    errors: u64,
}

/// What the first handshake negotiated, for the report.
struct Negotiated {
    suite: String,
    group: String,
    alpn: String,
}

async fn one(
    addr: SocketAddr,
    name: ServerName<'static>,
    connector: &TlsConnector,
) -> Res<HandshakeKind> {
    one_with(addr, name, connector, None).await
}

async fn one_with(
    addr: SocketAddr,
    name: ServerName<'static>,
    connector: &TlsConnector,
    negotiated: Option<&mut Option<Negotiated>>,
) -> Res<HandshakeKind> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut tls = connector.connect(name, tcp).await?;
    if let Some(n) = negotiated {
        let c = tls.get_ref().1;
        *n = Some(Negotiated {
            suite: c
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
                .unwrap_or_default(),
            group: c
                .negotiated_key_exchange_group()
                .map(|g| format!("{:?}", g.name()))
                .unwrap_or_default(),
            alpn: c
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default(),
        });
    }
    let kind = tls
        .get_ref()
        .1
        .handshake_kind()
        .unwrap_or(HandshakeKind::Full);
    tls.get_mut().1.send_close_notify();
    tls.flush().await?;
    let mut buf = [0u8; 4096];
    // Reading processes the tickets; the server answers close_notify by closing.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(n) = tls.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    Ok(kind)
}

/// Runs `concurrency` handshake loops for `duration` and returns a JSON report.
pub(crate) async fn run(
    addr: SocketAddr,
    sni: String,
    cfg: Arc<ClientConfig>,
    concurrency: usize,
    duration: Duration,
    pids: &[u32],
) -> Res<serde_json::Value> {
    let name = ServerName::try_from(sni)?;
    let connector = TlsConnector::from(cfg);
    // One handshake first: it proves the server is there and, when resuming, seeds tickets.
    let mut negotiated = None;
    one_with(addr, name.clone(), &connector, Some(&mut negotiated)).await?;
    let negotiated = negotiated.unwrap_or(Negotiated {
        suite: String::new(),
        group: String::new(),
        alpn: String::new(),
    });
    let cpu0 = proc::cpu_us(pids)?;
    let me = std::process::id();
    let client0 = proc::cpu_us_one(me)?;
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (name, connector) = (name.clone(), connector.clone());
        tasks.spawn(async move {
            let mut c = Counts::default();
            while Instant::now() < deadline {
                match one(addr, name.clone(), &connector).await {
                    Ok(HandshakeKind::Resumed) => c.resumed += 1,
                    Ok(_) => c.full += 1,
                    Err(_) => c.errors += 1,
                }
            }
            c
        });
    }
    let mut total = Counts::default();
    while let Some(c) = tasks.join_next().await {
        let c = c?;
        total.full += c.full;
        total.resumed += c.resumed;
        total.errors += c.errors;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = proc::cpu_us(pids)?.saturating_sub(cpu0);
    let client = proc::cpu_us_one(me)?.saturating_sub(client0);
    let n = total.full + total.resumed;
    Ok(serde_json::json!({
        "handshakes": n,
        "full": total.full,
        "resumed": total.resumed,
        "errors": total.errors,
        "secs": secs,
        "per_sec": n as f64 / secs,
        "server_cpu_us": cpu,
        "cpu_us_per_handshake": if n > 0 { cpu as f64 / n as f64 } else { 0.0 },
        "suite": negotiated.suite,
        "group": negotiated.group,
        "alpn": negotiated.alpn,
        "client_cpu_us_per_handshake": if n > 0 { client as f64 / n as f64 } else { 0.0 },
    }))
}
