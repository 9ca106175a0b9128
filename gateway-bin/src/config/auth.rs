//! `[auth]`: the resolvers besides the session store — JWTs (Hasura GraphQL Engine's JWT
//! config, as TOML tables, as its JSON in a string, or from an environment variable) and an
//! auth webhook.

use serde::Deserialize;
use session_core::jwt::JwtConfig;
use session_core::webhook::WebhookConfig;
use toml::Spanned;

use super::raw;
use super::validate::Validator;

/// The resolvers besides the session store (`[auth]`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Auth {
    /// The JWT configurations, in order: `[[auth.jwt]]` tables, then `jwt_secret`, then the
    /// variable named by `jwt_secret_env`.
    pub jwt: Vec<JwtConfig>,
    /// The auth webhook.
    pub webhook: Option<WebhookConfig>,
}

impl Auth {
    /// Whether anything besides the session store resolves requests.
    pub fn is_configured(&self) -> bool {
        !self.jwt.is_empty() || self.webhook.is_some()
    }
}

impl Validator<'_> {
    pub(super) fn auth(&mut self, a: raw::RawAuth) -> Auth {
        let mut jwt = Vec::new();
        for (i, table) in a.jwt.into_iter().flatten().enumerate() {
            let key = format!("auth.jwt[{i}]");
            match JwtConfig::deserialize(table.get_ref().clone()) {
                Ok(config) => self.jwt_config(&key, &table, config, &mut jwt),
                Err(e) => self.issue(key, &table, e.to_string(), None),
            }
        }
        if let Some(json) = &a.jwt_secret {
            self.hasura_json("auth.jwt_secret", json, json.get_ref(), &mut jwt);
        }
        if let Some(var) = &a.jwt_secret_env {
            match std::env::var(var.get_ref()) {
                Ok(json) => self.hasura_json("auth.jwt_secret_env", var, &json, &mut jwt),
                Err(_) => self.issue(
                    "auth.jwt_secret_env",
                    var,
                    format!(
                        "the environment variable `{}` is not set (or not UTF-8)",
                        var.get_ref()
                    ),
                    Some("export it with Hasura's JWT config JSON, e.g. HASURA_GRAPHQL_JWT_SECRET='{\"type\":\"RS256\",\"jwk_url\":\"https://…\"}'"),
                ),
            }
        }
        let webhook =
            a.webhook.and_then(
                |table| match WebhookConfig::deserialize(table.get_ref().clone()) {
                    Ok(config) => match config.validate() {
                        Ok(()) => Some(config),
                        Err(e) => {
                            self.issue("auth.webhook", &table, e.to_string(), None);
                            None
                        }
                    },
                    Err(e) => {
                        self.issue("auth.webhook", &table, e.to_string(), None);
                        None
                    }
                },
            );
        Auth { jwt, webhook }
    }

    /// Hasura's JSON: one config object (`HASURA_GRAPHQL_JWT_SECRET`) or a list of them
    /// (`HASURA_GRAPHQL_JWT_SECRETS`). Errors never quote the JSON: it may hold an HMAC key.
    fn hasura_json<T>(&mut self, key: &str, at: &Spanned<T>, json: &str, out: &mut Vec<JwtConfig>) {
        let value: serde_json::Value = match serde_json::from_str(json) {
            Ok(v) => v,
            Err(e) => {
                self.issue(
                    key,
                    at,
                    format!("not JSON (line {}, column {})", e.line(), e.column()),
                    Some("paste Hasura's JWT config: {\"type\": \"RS256\", \"jwk_url\": \"https://…\"}"),
                );
                return;
            }
        };
        let items = match value {
            serde_json::Value::Array(items) => items,
            one => vec![one],
        };
        for (i, item) in items.into_iter().enumerate() {
            let key = format!("{key}[{i}]");
            match JwtConfig::deserialize(item) {
                Ok(config) => self.jwt_config(&key, at, config, out),
                Err(e) => self.issue(key, at, e.to_string(), None),
            }
        }
    }

    fn jwt_config<T>(
        &mut self,
        key: &str,
        at: &Spanned<T>,
        config: JwtConfig,
        out: &mut Vec<JwtConfig>,
    ) {
        match config.validate() {
            Ok(()) => out.push(config),
            Err(e) => self.issue(format!("{key}.{}", e.field), at, e.message, None),
        }
    }
}
