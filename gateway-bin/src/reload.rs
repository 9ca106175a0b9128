//! Hot reload: on SIGHUP, and when the config file changes (polled once a second, which
//! needs no platform-specific watcher and costs one `stat` a second).
//!
//! A valid new config is swapped in atomically; an invalid one is logged and the old one keeps
//! serving.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::config::Config;
use crate::state::GatewayState;

/// Watches `path` until shutdown.
pub async fn watch(path: PathBuf, shared: GatewayState, mut shutdown: watch::Receiver<bool>) {
    let mut last = modified(&path);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let hup_fut = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hup_fut = std::future::pending::<()>();
        let why = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = hup_fut => "SIGHUP",
            _ = tick.tick() => {
                let now = modified(&path);
                if now == last {
                    continue;
                }
                last = now;
                "file change"
            }
        };
        reload(&path, &shared, why);
    }
}

/// Loads, validates and applies the file once.
pub fn reload(path: &std::path::Path, shared: &GatewayState, why: &str) {
    match Config::load(path) {
        Ok(config) => match shared.apply(config) {
            Ok(()) => tracing::info!(why, path = %path.display(), "config reloaded"),
            Err(e) => {
                metrics::counter!("gateway_config_reloads_total", "result" => "error").increment(1);
                tracing::error!(why, error = %e, "new config rejected; the old one keeps serving");
            }
        },
        Err(e) => {
            metrics::counter!("gateway_config_reloads_total", "result" => "error").increment(1);
            tracing::error!(why, error = %e, "new config rejected; the old one keeps serving");
        }
    }
}

/// When a file was last modified, if it can be read.
fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
