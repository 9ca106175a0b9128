//! `[admin]`: where the admin secret comes from (never the secret itself), and where the
//! services added through the admin API are kept.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::raw;
use super::validate::Validator;

/// The variable systemd sets for a unit with `LoadCredential=`: the directory holding its
/// credentials, readable by the unit's user only.
const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// Where the admin secret is read from. The secret itself is never written in the TOML.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminSecretSource {
    /// An environment variable, by name.
    Env(String),
    /// A file whose first line is the secret.
    File(PathBuf),
    /// A systemd credential, by name (`LoadCredential=NAME:/etc/gateway/admin-secret`): the
    /// first line of `$CREDENTIALS_DIRECTORY/NAME`.
    Credential(String),
}

impl AdminSecretSource {
    /// The file a [`AdminSecretSource::Credential`] is read from, `$CREDENTIALS_DIRECTORY/NAME`,
    /// or `None` when the variable is not set (the gateway was not started by systemd with
    /// `LoadCredential=`). The name is a plain file name: validation refused any other.
    pub fn credential_path(name: &str) -> Option<PathBuf> {
        std::env::var_os(CREDENTIALS_DIRECTORY)
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(&d).join(name))
    }
}

/// A systemd credential name is used as a file name in the credentials directory: one
/// non-empty path component, so `../x` or `/etc/shadow` can never be named through it.
fn is_credential_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0')
}

impl Validator<'_> {
    pub(super) fn admin(&mut self, a: raw::RawAdmin) -> AdminSecretSource {
        if let Some(s) = &a.secret {
            self.issue("admin.secret", s, "the admin secret is never written in the config file", Some("set secret_env = \"GATEWAY_ADMIN_SECRET\", secret_file = \"/run/secrets/gateway-admin\" or secret_credential = \"admin-secret\""));
        }
        let mut chosen: Vec<(&str, AdminSecretSource, Spanned<()>)> = Vec::new();
        if let Some(e) = a.secret_env {
            let span = Spanned::new(e.span(), ());
            chosen.push((
                "admin.secret_env",
                AdminSecretSource::Env(e.into_inner()),
                span,
            ));
        }
        if let Some(f) = a.secret_file {
            let span = Spanned::new(f.span(), ());
            let source = AdminSecretSource::File(PathBuf::from(f.into_inner()));
            chosen.push(("admin.secret_file", source, span));
        }
        if let Some(c) = a.secret_credential {
            if !is_credential_name(c.get_ref()) {
                self.issue(
                    "admin.secret_credential",
                    &c,
                    format!("`{}` is not a credential name", c.get_ref()),
                    Some("the NAME of LoadCredential=NAME:PATH in the unit, a file name without '/', e.g. \"admin-secret\""),
                );
            }
            let span = Spanned::new(c.span(), ());
            let source = AdminSecretSource::Credential(c.into_inner());
            chosen.push(("admin.secret_credential", source, span));
        }
        let mut chosen = chosen.into_iter();
        match chosen.next() {
            None => AdminSecretSource::Env("GATEWAY_ADMIN_SECRET".into()),
            Some((_, first, _)) => {
                for (key, _, span) in chosen {
                    self.issue(
                        key,
                        &span,
                        "set one of secret_env, secret_file and secret_credential",
                        None,
                    );
                }
                first
            }
        }
    }

    /// `[admin] services_file`: where the services added through the admin API are kept.
    /// `None` when absent: they go next to the config file, as before the key existed.
    pub(super) fn services_file(
        &mut self,
        raw: Option<Spanned<String>>,
        base: &Path,
    ) -> Option<PathBuf> {
        let raw = raw?;
        let path = Path::new(raw.get_ref());
        // The file is replaced by a rename in its directory, so the path must end in a file
        // name: "", "/var/lib/gateway/" or "x/.." would name a directory.
        if path.file_name().is_none() || raw.get_ref().ends_with('/') {
            self.issue(
                "admin.services_file",
                &raw,
                format!("`{}` does not name a file", raw.get_ref()),
                Some("e.g. services_file = \"/var/lib/gateway/gateway-services.json\""),
            );
        }
        Some(base.join(raw.get_ref()))
    }
}
