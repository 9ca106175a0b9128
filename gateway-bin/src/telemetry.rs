//! Logging and metrics set-up, and the optional OTLP span export ([`otlp`]).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

pub mod access;
pub mod otlp;

/// Installs the global tracing subscriber. `RUST_LOG` overrides the configured level. A second
/// call (tests that start several gateways) keeps the first subscriber.
pub fn init_tracing(settings: &LogSettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    // Colour codes only for a terminal: in a file or a log collector they are noise that
    // every line pays for.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    // The access line is not a `tracing` event (see [`access`]), but the filter still decides
    // whether it is written: `level = "warn"` or `access=off` turn it off.
    if tracing::enabled!(target: access::ACCESS_TARGET, tracing::Level::INFO) {
        access::enable(settings.format);
    }
}

/// The process-wide Prometheus recorder, installed on first use. `None` if another recorder
/// was installed first (an embedding application's own).
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ];
            // Revocations travel in well under a millisecond when all is well: the buckets
            // resolve that range, up to the second a stalled subscription could take.
            let propagation = [
                0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01,
                0.02, 0.05, 0.1, 0.25, 0.5, 1.0,
            ];
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("gateway_request_duration_seconds".into()),
                    &buckets,
                )
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Full(session_core::PROPAGATION_METRIC.into()),
                    &propagation,
                )
                .ok()?
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()?;
            spawn_upkeep(handle.clone());
            Some(handle)
        })
        .clone()
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Name of the thread that runs [`PrometheusHandle::run_upkeep`].
pub(crate) const UPKEEP_THREAD: &str = "metrics-upkeep";

/// `install_recorder` starts no upkeep: every histogram sample (one per request) would stay
/// queued in memory until `/metrics` is rendered, so a gateway nobody scrapes would grow
/// without bound, and the first scrape after a long quiet spell would fold millions of samples
/// at once. A thread of its own, not a task: folding must not stall a runtime thread that
/// serves requests.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name(UPKEEP_THREAD.into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            handle.run_upkeep();
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "metrics upkeep thread not started; histogram samples are folded only when /metrics is scraped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names of this process's threads.
    fn thread_names() -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .map(|dir| {
                dir.flatten()
                    .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                    .map(|n| n.trim().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn the_recorder_comes_with_its_upkeep_and_keeps_every_sample() {
        let Some(handle) = metrics_handle() else {
            panic!("the recorder was not installed");
        };
        // A new thread names itself once it runs; until then it carries its parent's name.
        let started = std::time::Instant::now();
        while !thread_names().iter().any(|n| n == UPKEEP_THREAD) {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "no {UPKEEP_THREAD} thread in {:?}",
                thread_names()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        for _ in 0..1000 {
            metrics::histogram!("gateway_request_duration_seconds", "service" => "upkeep-test")
                .record(0.002);
        }
        // Folding moves samples into buckets; none is lost, whether or not upkeep ran yet.
        std::thread::sleep(UPKEEP_INTERVAL + std::time::Duration::from_millis(200));
        let text = handle.render();
        let count = text
            .lines()
            .find(|l| {
                l.starts_with("gateway_request_duration_seconds_count") && l.contains("upkeep-test")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok());
        assert_eq!(count, Some(1000), "{text}");
    }
}
