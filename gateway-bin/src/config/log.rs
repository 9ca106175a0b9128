//! `[log]`: the log format and the default filter.

use super::raw;
use super::validate::Validator;

/// Log output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Clone, Debug)]
pub struct LogSettings {
    /// The format.
    pub format: LogFormat,
    /// The default filter directive (`RUST_LOG` overrides it).
    pub level: String,
}

impl Validator<'_> {
    pub(super) fn log(&mut self, l: raw::RawLog) -> LogSettings {
        let format = match l.format.as_ref().map(|f| f.get_ref().as_str()) {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(_) => {
                if let Some(f) = &l.format {
                    self.issue("log.format", f, "must be \"pretty\" or \"json\"", None);
                }
                LogFormat::Pretty
            }
        };
        let level = match l.level {
            None => "info".into(),
            Some(v) => {
                // The same parser `init_tracing` uses: a level or `tracing` filter directives.
                // It would otherwise skip a bad directive silently at start. A lone word is a
                // level: the parser would take a misspelt one ("warning") for a target name.
                let text = v.get_ref().trim();
                const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
                let problem = if !text.contains([',', '=', ':', '[']) {
                    (!LEVELS.iter().any(|l| l.eq_ignore_ascii_case(text)))
                        .then(|| format!("\"{text}\" is not a level"))
                } else {
                    tracing_subscriber::EnvFilter::builder()
                        .parse(text)
                        .err()
                        .map(|e| format!("is not a log filter: {e}"))
                };
                if let Some(message) = problem {
                    self.issue(
                        "log.level",
                        &v,
                        message,
                        Some("write a level (trace, debug, info, warn, error, off) or directives like \"info,access=off\""),
                    );
                }
                v.into_inner()
            }
        };
        LogSettings { format, level }
    }
}
