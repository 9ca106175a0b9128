//! `[proxy]`: upstream settings shared by every service.

use std::time::Duration;

use ipnet::IpNet;

use super::raw;
use super::validate::Validator;

/// Upstream proxy settings shared by every service.
#[derive(Clone, Debug)]
pub struct ProxySettings {
    /// Front proxies whose `X-Forwarded-For` is trusted.
    pub trusted_proxies: Vec<IpNet>,
    /// How long an idle upstream connection is kept.
    pub pool_idle_timeout: Duration,
    /// How many idle connections are kept per upstream.
    pub pool_max_idle_per_host: usize,
}

impl Validator<'_> {
    pub(super) fn proxy(&mut self, p: raw::RawProxy) -> ProxySettings {
        let mut trusted = Vec::new();
        for (i, c) in p
            .trusted_proxies
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let parsed = c
                .get_ref()
                .parse::<IpNet>()
                .or_else(|_| c.get_ref().parse::<std::net::IpAddr>().map(IpNet::from));
            match parsed {
                Ok(n) => trusted.push(n),
                Err(_) => self.issue(
                    format!("proxy.trusted_proxies[{i}]"),
                    &c,
                    "not a CIDR or IP address",
                    Some("write e.g. \"10.0.0.0/8\""),
                ),
            }
        }
        ProxySettings {
            trusted_proxies: trusted,
            pool_idle_timeout: self.duration(
                "proxy.pool_idle_timeout",
                p.pool_idle_timeout,
                Duration::from_secs(90),
            ),
            pool_max_idle_per_host: self.number(
                "proxy.pool_max_idle_per_host",
                p.pool_max_idle_per_host,
                256,
                0,
                100_000,
            ) as usize,
        }
    }
}
