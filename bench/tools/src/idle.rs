//! Idle keep-alive connections and the server's RSS growth.
//!
//! Each connection sends one request (so the server has gone through a whole request and
//! back to its keep-alive state, buffers released) and is then held open without traffic.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::{http1, proc, Res};

/// A held connection; never read again, only dropped.
#[allow(dead_code)]
enum Held {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

async fn open(addr: SocketAddr, req: &[u8], tls: Option<(&TlsConnector, &str)>) -> Res<Held> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(1024);
    match tls {
        None => {
            let mut s = tcp;
            s.write_all(req).await?;
            http1::read_response(&mut s, &mut buf).await?;
            Ok(Held::Plain(s))
        }
        Some((connector, host)) => {
            let name = ServerName::try_from(host.to_owned())?;
            let mut s = connector.connect(name, tcp).await?;
            s.write_all(req).await?;
            s.flush().await?;
            http1::read_response(&mut s, &mut buf).await?;
            Ok(Held::Tls(Box::new(s)))
        }
    }
}

/// Opens connections up to each of `counts` (ascending checkpoints) and reports, at each, the
/// RSS growth of `pids` over the baseline taken before the first connection, as JSON.
pub(crate) async fn run(
    addr: SocketAddr,
    host: &str,
    tls: Option<Arc<ClientConfig>>,
    counts: &[usize],
    concurrency: usize,
    settle: Duration,
    pids: &[u32],
) -> Res<serde_json::Value> {
    let req: Arc<[u8]> = http1::get(host, None).into();
    let connector = tls.map(TlsConnector::from);
    let host: Arc<str> = host.into();
    let before = proc::rss_kib(pids)?;
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut held = Vec::new();
    let mut errors = 0u64;
    let mut first_error = None;
    let mut checkpoints = Vec::new();
    for &target in counts {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in held.len()..target {
            let (req, connector, host, permits) = (
                req.clone(),
                connector.clone(),
                host.clone(),
                permits.clone(),
            );
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await?;
                open(addr, &req, connector.as_ref().map(|c| (c, &*host))).await
            });
        }
        while let Some(r) = tasks.join_next().await {
            match r? {
                Ok(h) => held.push(h),
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        tokio::time::sleep(settle).await;
        let after = proc::rss_kib(pids)?;
        let open = held.len();
        checkpoints.push(serde_json::json!({
            "requested": target,
            "open": open,
            "rss_after_kib": after,
            "kib_per_conn": if open > 0 { after.saturating_sub(before) as f64 / open as f64 } else { 0.0 },
        }));
    }
    drop(held);
    Ok(serde_json::json!({
        "rss_before_kib": before,
        "errors": errors,
        "first_error": first_error,
        "checkpoints": checkpoints,
    }))
}
