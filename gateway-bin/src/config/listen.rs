//! `[listen]`: the listeners and the admin listener's host names.

use std::net::SocketAddr;

use toml::Spanned;

use super::raw;
use super::validate::{ConfigIssue, Validator};

/// The listeners. Each is optional; at least one of `http` and `https` is required.
#[derive(Clone, Debug)]
pub struct Listen {
    /// The plain HTTP listener.
    pub http: Option<SocketAddr>,
    /// The HTTPS listener.
    pub https: Option<SocketAddr>,
    /// The admin listener (sessions API, metrics, health).
    pub admin: Option<SocketAddr>,
    /// Whether plain HTTP redirects to HTTPS (ACME challenges are always answered).
    pub redirect_http_to_https: bool,
    /// Host names the admin listener serves besides IP literals and `localhost` (normalised:
    /// lowercase, no port, no trailing dot). Any other `Host` gets 421: a web page that rebinds
    /// its own DNS name to the admin address cannot read the admin API.
    pub admin_hosts: Vec<String>,
}

impl Validator<'_> {
    pub(super) fn listen(&mut self, l: raw::RawListen) -> Listen {
        let listen = Listen {
            http: self.addr("listen.http", l.http),
            https: self.addr("listen.https", l.https),
            admin: self.addr("listen.admin", l.admin),
            redirect_http_to_https: l.redirect_http_to_https.unwrap_or(false),
            admin_hosts: self.admin_hosts(l.admin_hosts.unwrap_or_default()),
        };
        if listen.http.is_none() && listen.https.is_none() {
            self.issues.push(ConfigIssue {
                key: "listen".into(),
                line: None,
                message: "no listener: set listen.http or listen.https".into(),
                hint: Some("add http = \"0.0.0.0:8080\" under [listen]".into()),
            });
        }
        listen
    }

    fn addr(&mut self, key: &str, v: Option<Spanned<String>>) -> Option<SocketAddr> {
        let v = v?;
        if v.get_ref().is_empty() {
            return None;
        }
        match v.get_ref().parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.issue(
                    key,
                    &v,
                    format!("`{}` is not an address", v.get_ref()),
                    Some("write ip:port, e.g. \"127.0.0.1:8080\""),
                );
                None
            }
        }
    }

    fn admin_hosts(&mut self, raw: Vec<Spanned<String>>) -> Vec<String> {
        let mut out = Vec::new();
        for (i, h) in raw.iter().enumerate() {
            let key = format!("listen.admin_hosts[{i}]");
            match route_core::normalize_host(h.get_ref()) {
                Ok(n) => out.push(n.into_owned()),
                Err(route_core::HostError::IpLiteral) => self.issue(
                    key,
                    h,
                    "IP literals are always served; list names only",
                    Some("remove it"),
                ),
                _ => self.issue(
                    key,
                    h,
                    format!("`{}` is not a host name", h.get_ref()),
                    Some("write a DNS name such as \"gateway-admin.internal\""),
                ),
            }
        }
        out
    }
}
