//! `[admin]`: where the admin secret comes from (never the file itself).

use std::path::PathBuf;

use super::raw;
use super::validate::Validator;

/// Where the admin secret is read from. The secret itself is never written in the TOML.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminSecretSource {
    /// An environment variable, by name.
    Env(String),
    /// A file whose first line is the secret.
    File(PathBuf),
}

impl Validator<'_> {
    pub(super) fn admin(&mut self, a: raw::RawAdmin) -> AdminSecretSource {
        if let Some(s) = &a.secret {
            self.issue("admin.secret", s, "the admin secret is never written in the config file", Some("set secret_env = \"GATEWAY_ADMIN_SECRET\" or secret_file = \"/run/secrets/gateway-admin\""));
        }
        match (a.secret_env, a.secret_file) {
            (Some(e), Some(_)) => {
                self.issue(
                    "admin.secret_file",
                    &e,
                    "set secret_env or secret_file, not both",
                    None,
                );
                AdminSecretSource::Env(e.into_inner())
            }
            (Some(e), None) => AdminSecretSource::Env(e.into_inner()),
            (None, Some(f)) => AdminSecretSource::File(PathBuf::from(f.into_inner())),
            (None, None) => AdminSecretSource::Env("GATEWAY_ADMIN_SECRET".into()),
        }
    }
}
