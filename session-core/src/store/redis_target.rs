//! Where the Redis is: one server, a Sentinel-watched master, or a Redis Cluster, read from a
//! URL (feature `redis`).
//!
//! | URL | target |
//! |---|---|
//! | `redis://[user[:password]@]host[:port][/db]`, `rediss://…`, `redis+unix:///path` | one server ([`RedisTarget::Single`]) |
//! | `redis+sentinel://[user[:password]@]host[:port][,host[:port]…]/<master>[/<db>][?sentinel_username=U&sentinel_password=P]` | the master that the Sentinels name ([`RedisTarget::Sentinel`]) |
//! | `redis+cluster://[user[:password]@]host[:port][,host[:port]…]` | a Redis Cluster, from these seed nodes ([`RedisTarget::Cluster`]) |
//!
//! `rediss+sentinel://` and `rediss+cluster://` use TLS (crate feature `redis-tls`). In a
//! Sentinel URL the user information is the master's (and its replicas') credentials, and the
//! Sentinels' own are in the query: they are separate accounts on separate servers. Sentinels
//! listen on 26379 unless a port is given; cluster nodes on 6379. User names and passwords are
//! percent-decoded.
//!
//! A URL may carry passwords: no error message and no `Debug` output contains one.

use std::borrow::Cow;
use std::fmt;

use percent_encoding::percent_decode_str;

use super::StoreError;

/// The default port of a Sentinel.
const SENTINEL_PORT: u16 = 26379;
/// The default port of a Redis server (and cluster node).
const REDIS_PORT: u16 = 6379;

/// Which Redis deployment a store talks to. [`RedisTarget::parse`] reads the URL forms in the
/// module docs; an embedder may also build one directly.
#[non_exhaustive]
#[derive(Clone)]
pub enum RedisTarget {
    /// One server, by its redis-rs URL (`redis://`, `rediss://`, `redis+unix://`).
    Single(String),
    /// The master of a replicated set, found through Redis Sentinel, followed across failovers.
    Sentinel(SentinelTarget),
    /// A Redis Cluster: commands go to the node holding their key's slot.
    Cluster(ClusterTarget),
}

/// The Sentinels to ask and the master to ask them about.
#[derive(Clone, Debug, Default)]
pub struct SentinelTarget {
    /// The Sentinels (at least one; list them all, any of them may be down).
    pub sentinels: Vec<RedisNode>,
    /// The name the Sentinels monitor the master under (`sentinel monitor <name> …`).
    pub master_name: String,
    /// Credentials for the master and its replicas.
    pub master_auth: RedisAuth,
    /// Credentials for the Sentinels themselves.
    pub sentinel_auth: RedisAuth,
    /// The database number on the master.
    pub db: i64,
    /// TLS to the Sentinels and to the master.
    pub tls: bool,
}

/// The seed nodes of a Redis Cluster; the rest of the cluster is discovered from them.
#[derive(Clone, Debug, Default)]
pub struct ClusterTarget {
    /// Seed nodes (at least one; list several, any of them may be down).
    pub nodes: Vec<RedisNode>,
    /// Credentials for every node.
    pub auth: RedisAuth,
    /// TLS to every node.
    pub tls: bool,
}

/// A host and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisNode {
    /// Host name or IP address (an IPv6 address without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// A user name and password (Redis ACL user, or `requirepass` with no user). `Debug` shows
/// whether a password is set, never the password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RedisAuth {
    /// The ACL user; `None` for the default user.
    pub username: Option<String>,
    /// The password; `None` for none.
    pub password: Option<String>,
}

impl fmt::Debug for RedisAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisAuth")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The URL may hold a password.
            RedisTarget::Single(_) => f.write_str("Single(<url>)"),
            RedisTarget::Sentinel(s) => f.debug_tuple("Sentinel").field(s).finish(),
            RedisTarget::Cluster(c) => f.debug_tuple("Cluster").field(c).finish(),
        }
    }
}

impl RedisTarget {
    /// Reads a URL of one of the forms in the module docs. The error never contains the URL.
    pub fn parse(url: &str) -> Result<RedisTarget, StoreError> {
        let url = url.trim();
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("no scheme (redis://, redis+sentinel://, redis+cluster://)"))?;
        match scheme.to_ascii_lowercase().as_str() {
            "redis+sentinel" | "rediss+sentinel" => Ok(RedisTarget::Sentinel(sentinel(
                rest,
                scheme.starts_with("rediss"),
            )?)),
            "redis+cluster" | "rediss+cluster" => Ok(RedisTarget::Cluster(cluster(
                rest,
                scheme.starts_with("rediss"),
            )?)),
            _ => {
                // redis-rs reads the other forms; checked here so that a bad URL fails at start.
                redis::Client::open(url)
                    .map_err(|e| invalid_owned(format!("invalid Redis URL ({:?})", e.kind())))?;
                Ok(RedisTarget::Single(url.to_owned()))
            }
        }
    }

    /// `"single"`, `"sentinel"` or `"cluster"`, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            RedisTarget::Single(_) => "single",
            RedisTarget::Sentinel(_) => "sentinel",
            RedisTarget::Cluster(_) => "cluster",
        }
    }
}

impl std::str::FromStr for RedisTarget {
    type Err = StoreError;

    fn from_str(url: &str) -> Result<RedisTarget, StoreError> {
        RedisTarget::parse(url)
    }
}

fn invalid(why: &str) -> StoreError {
    invalid_owned(why.to_owned())
}

fn invalid_owned(why: String) -> StoreError {
    StoreError::Unavailable(format!("invalid Redis URL: {why}"))
}

/// The parts after the scheme: credentials, the host list, the path and the query.
struct Parts<'a> {
    auth: RedisAuth,
    hosts: &'a str,
    path: &'a str,
    query: Option<&'a str>,
}

fn split(rest: &str) -> Result<Parts<'_>, StoreError> {
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    if rest.contains('#') {
        return Err(invalid("a fragment (#) is not allowed"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    // The last `@`: a password may contain `@` only percent-encoded, but be lenient.
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let auth = match userinfo {
        None => RedisAuth::default(),
        Some(info) => {
            let (user, password) = match info.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (info, None),
            };
            RedisAuth {
                username: Some(decode(user, "user name")?).filter(|u| !u.is_empty()),
                password: password.map(|p| decode(p, "password")).transpose()?,
            }
        }
    };
    Ok(Parts {
        auth,
        hosts,
        path,
        query,
    })
}

fn decode(s: &str, what: &str) -> Result<String, StoreError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| invalid_owned(format!("the {what} is not UTF-8 once decoded")))
}

fn nodes(hosts: &str, default_port: u16) -> Result<Vec<RedisNode>, StoreError> {
    let mut out = Vec::new();
    for h in hosts.split(',') {
        let h = h.trim();
        if h.is_empty() {
            return Err(invalid("an empty host in the host list"));
        }
        let (host, port) = if let Some(v6) = h.strip_prefix('[') {
            let (addr, after) = v6
                .split_once(']')
                .ok_or_else(|| invalid("an IPv6 address without its closing ]"))?;
            match after.strip_prefix(':') {
                Some(p) => (addr, Some(p)),
                None if after.is_empty() => (addr, None),
                None => return Err(invalid("text after an IPv6 address")),
            }
        } else {
            match h.rsplit_once(':') {
                Some((host, p)) => (host, Some(p)),
                None => (h, None),
            }
        };
        let port = match port {
            None => default_port,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| invalid("a port that is not a number from 1 to 65535"))?,
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(invalid("an empty or malformed host"));
        }
        out.push(RedisNode {
            host: host.to_owned(),
            port,
        });
    }
    Ok(out)
}

fn sentinel(rest: &str, tls: bool) -> Result<SentinelTarget, StoreError> {
    let p = split(rest)?;
    let sentinels = nodes(p.hosts, SENTINEL_PORT)?;
    let mut segments = p.path.split('/').filter(|s| !s.is_empty());
    let master_name = segments
        .next()
        .map(|m| decode(m, "master name"))
        .transpose()?
        .ok_or_else(|| {
            invalid("redis+sentinel:// needs the master name as its path (/mymaster)")
        })?;
    let db = match segments.next() {
        None => 0,
        Some(d) => d
            .parse::<i64>()
            .ok()
            .filter(|d| *d >= 0)
            .ok_or_else(|| invalid("the database after the master name is not a number"))?,
    };
    if segments.next().is_some() {
        return Err(invalid("the path has more than /<master>/<db>"));
    }
    let mut sentinel_auth = RedisAuth::default();
    for (k, v) in form_urlencoded::parse(p.query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "sentinel_username" => sentinel_auth.username = Some(v.into_owned()),
            "sentinel_password" => sentinel_auth.password = Some(v.into_owned()),
            other => {
                return Err(invalid_owned(format!(
                    "unknown query parameter {other:?} (sentinel_username, sentinel_password)"
                )))
            }
        }
    }
    Ok(SentinelTarget {
        sentinels,
        master_name,
        master_auth: p.auth,
        sentinel_auth,
        db,
        tls,
    })
}

fn cluster(rest: &str, tls: bool) -> Result<ClusterTarget, StoreError> {
    let p = split(rest)?;
    if !p.path.is_empty() && p.path != "0" {
        return Err(invalid("a Redis Cluster has only database 0"));
    }
    if p.query.is_some_and(|q| !q.is_empty()) {
        return Err(invalid("redis+cluster:// takes no query parameters"));
    }
    Ok(ClusterTarget {
        nodes: nodes(p.hosts, REDIS_PORT)?,
        auth: p.auth,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: u16) -> RedisNode {
        RedisNode {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn sentinel_urls() {
        let RedisTarget::Sentinel(s) = RedisTarget::parse(
            "redis+sentinel://app:p%40ss@10.0.0.1,10.0.0.2:26380,[::1]:5000/mymaster/2?sentinel_password=s%3Acret&sentinel_username=watch",
        )
        .unwrap() else {
            panic!("not a sentinel target")
        };
        assert_eq!(
            s.sentinels,
            [
                node("10.0.0.1", 26379),
                node("10.0.0.2", 26380),
                node("::1", 5000)
            ]
        );
        assert_eq!(s.master_name, "mymaster");
        assert_eq!(s.db, 2);
        assert_eq!(s.master_auth.username.as_deref(), Some("app"));
        assert_eq!(s.master_auth.password.as_deref(), Some("p@ss"));
        assert_eq!(s.sentinel_auth.username.as_deref(), Some("watch"));
        assert_eq!(s.sentinel_auth.password.as_deref(), Some("s:cret"));
        assert!(!s.tls);

        let RedisTarget::Sentinel(s) = RedisTarget::parse("rediss+sentinel://:pw@h/m").unwrap()
        else {
            panic!()
        };
        assert!(s.tls);
        assert_eq!(s.master_auth.username, None);
        assert_eq!(s.master_auth.password.as_deref(), Some("pw"));
        assert_eq!(s.db, 0);
    }

    #[test]
    fn cluster_urls() {
        let RedisTarget::Cluster(c) =
            RedisTarget::parse("redis+cluster://u:pw@a:7000,b,c:7002").unwrap()
        else {
            panic!()
        };
        assert_eq!(c.nodes, [node("a", 7000), node("b", 6379), node("c", 7002)]);
        assert_eq!(c.auth.password.as_deref(), Some("pw"));
        assert_eq!(
            RedisTarget::parse("redis+cluster://a").unwrap().kind(),
            "cluster"
        );
        assert_eq!(
            RedisTarget::parse("redis://a:1/0").unwrap().kind(),
            "single"
        );
    }

    #[test]
    fn bad_urls_say_why_without_the_secret() {
        for bad in [
            "redis+sentinel://u:hunter2@h1,h2",
            "redis+sentinel://u:hunter2@h1,,h2/m",
            "redis+sentinel://u:hunter2@h1:99999/m",
            "redis+sentinel://u:hunter2@h1/m/x",
            "redis+sentinel://u:hunter2@h1/m?password=x",
            "redis+cluster://u:hunter2@h1/3",
            "redis+cluster://u:hunter2@[::1/",
            "hunter2",
            "redis://u:hunter2@[::1",
        ] {
            let e = RedisTarget::parse(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} parsed"));
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        let t = RedisTarget::parse("redis+sentinel://u:hunter2@h/m?sentinel_password=x2").unwrap();
        let shown = format!("{t:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("x2"),
            "{shown}"
        );
        assert!(
            !format!("{:?}", RedisTarget::parse("redis://:hunter2@h").unwrap()).contains("hunter2")
        );
    }
}
