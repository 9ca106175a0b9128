//! `[telemetry]`: the optional OTLP span export (off unless `otlp_endpoint` is set).
//!
//! ```toml
//! [telemetry]
//! otlp_endpoint = "http://127.0.0.1:4318/v1/traces"   # OTLP/HTTP; absent: no export
//! service_name = "gateway"                            # the spans' `service.name`
//! otlp_timeout = "5s"                                 # one export request, whole
//! ```

use std::time::Duration;

use http::Uri;

use super::raw;
use super::validate::Validator;

/// Where and how spans are exported over OTLP/HTTP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpSettings {
    /// The OTLP/HTTP traces URL (the full path, e.g. `/v1/traces`): `https`, or plain `http`
    /// to a loopback address (the rule of session-core's HTTP client, which sends them).
    pub endpoint: Uri,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// The most one export request may take (connect, send, answer).
    pub timeout: Duration,
}

/// Telemetry settings (changes need a restart).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Telemetry {
    /// The span export, when `otlp_endpoint` is set.
    pub otlp: Option<OtlpSettings>,
}

impl Validator<'_> {
    pub(super) fn telemetry(&mut self, t: raw::RawTelemetry) -> Telemetry {
        let timeout = self.duration(
            "telemetry.otlp_timeout",
            t.otlp_timeout,
            Duration::from_secs(5),
        );
        let service_name = match t.service_name {
            None => "gateway".to_owned(),
            Some(name) => {
                let text = name.get_ref().trim();
                if text.is_empty() || text.len() > 256 || text.chars().any(char::is_control) {
                    self.issue(
                        "telemetry.service_name",
                        &name,
                        "must be 1 to 256 characters without control characters",
                        Some("service_name = \"gateway\""),
                    );
                }
                text.to_owned()
            }
        };
        let Some(endpoint) = t.otlp_endpoint else {
            return Telemetry { otlp: None };
        };
        let parsed = endpoint
            .get_ref()
            .parse::<Uri>()
            .map_err(|_| format!("`{}` is not a URL", endpoint.get_ref()))
            .and_then(|uri| {
                // The client that sends the spans decides what it may reach; the config
                // refuses exactly what it would.
                session_core::http_client::check_url(&uri)
                    .map(|()| uri)
                    .map_err(|e| e.to_string())
            })
            .and_then(|uri| {
                if uri.query().is_some() {
                    Err(format!("`{}` must not have a query", endpoint.get_ref()))
                } else {
                    Ok(uri)
                }
            });
        match parsed {
            Ok(endpoint) => Telemetry {
                otlp: Some(OtlpSettings {
                    endpoint,
                    service_name,
                    timeout,
                }),
            },
            Err(message) => {
                self.issue(
                    "telemetry.otlp_endpoint",
                    &endpoint,
                    message,
                    Some("write the collector's OTLP/HTTP traces URL, e.g. \"https://collector.example.com:4318/v1/traces\", or \"http://127.0.0.1:4318/v1/traces\" for a local agent"),
                );
                Telemetry { otlp: None }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigIssue};

    const BASE: &str =
        "[project]\ndomains = [\"example.com\"]\n\n[listen]\nhttp = \"127.0.0.1:8080\"\n";

    fn parse(telemetry: &str) -> Result<Config, Vec<ConfigIssue>> {
        // `[telemetry]` starts on line 7.
        let text = format!("{BASE}\n[telemetry]\n{telemetry}\n");
        Config::parse(&text, std::path::Path::new(".")).map_err(|e| e.issues().to_vec())
    }

    #[test]
    fn export_is_off_by_default() {
        let c = Config::parse(BASE, std::path::Path::new(".")).unwrap();
        assert_eq!(c.telemetry.otlp, None);
        assert_eq!(parse("").unwrap().telemetry.otlp, None);
    }

    #[test]
    fn an_endpoint_turns_export_on() {
        let c = parse("otlp_endpoint = \"http://127.0.0.1:4318/v1/traces\"\nservice_name = \"edge\"\notlp_timeout = \"2s\"").unwrap();
        let otlp = c.telemetry.otlp.unwrap();
        assert_eq!(otlp.endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(otlp.service_name, "edge");
        assert_eq!(otlp.timeout, std::time::Duration::from_secs(2));
        let c = parse("otlp_endpoint = \"https://collector.example.net/v1/traces\"").unwrap();
        assert_eq!(c.telemetry.otlp.unwrap().service_name, "gateway");
    }

    #[test]
    fn bad_values_are_reported_with_key_and_line() {
        for (value, key, words) in [
            (
                "otlp_endpoint = \"ftp://127.0.0.1/v1/traces\"",
                "telemetry.otlp_endpoint",
                "scheme",
            ),
            (
                "otlp_endpoint = \"http://collector.example.net/v1/traces\"",
                "telemetry.otlp_endpoint",
                "loopback",
            ),
            (
                "otlp_endpoint = \"not a url\"",
                "telemetry.otlp_endpoint",
                "not a URL",
            ),
            (
                "otlp_endpoint = \"https://c.example.net/v1/traces?x=1\"",
                "telemetry.otlp_endpoint",
                "query",
            ),
            (
                "otlp_endpoint = \"https://c.example.net/v1/traces\"\notlp_timeout = \"soon\"",
                "telemetry.otlp_timeout",
                "duration",
            ),
            (
                "service_name = \"\"",
                "telemetry.service_name",
                "characters",
            ),
        ] {
            let issues = parse(value).unwrap_err();
            assert_eq!(issues.len(), 1, "{value}: {issues:?}");
            assert_eq!(issues[0].key, key, "{value}");
            assert!(
                issues[0].message.contains(words),
                "{value}: {}",
                issues[0].message
            );
            assert!(
                issues[0].line.is_some_and(|l| l >= 8),
                "{value}: {:?}",
                issues[0].line
            );
        }
        let issues = parse("otlp = \"x\"").unwrap_err();
        assert!(issues[0].message.contains("unknown field"), "{issues:?}");
    }
}
