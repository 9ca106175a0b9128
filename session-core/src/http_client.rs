//! [`HttpClient`]: the one HTTPS client the resolvers fetch with (JWKS, auth webhooks), feature
//! `http-client` (enabled by `jwt` and `webhook`).
//!
//! - **Trust**: the platform's roots (through `rustls-platform-verifier`), plus the PEM bundle
//!   named by `SSL_CERT_FILE` when set, plus any roots the caller gives. A private identity
//!   provider's CA is added with `SSL_CERT_FILE` without losing the public roots.
//! - **Plain HTTP only to loopback** ([`check_url`]): a key set or a webhook answer fetched in
//!   clear over a network could be rewritten by anyone on the path, and it decides who the
//!   caller is.
//! - **Bounded**: one timeout covers connecting, sending and reading the whole body, and the
//!   body is cut off at a size limit, so a slow or hostile endpoint can hold a request for at
//!   most the timeout and never exhaust memory.
//! - The crypto provider is ring, passed explicitly: an embedder's process-wide default is
//!   neither needed nor changed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;

/// Settings of an [`HttpClient`].
#[derive(Clone, Debug)]
pub struct HttpClientConfig {
    /// The whole exchange (connect, send, read the body) must end within this (default 5 s).
    pub timeout: Duration,
    /// The largest response body read (default 1 MiB); a longer one is an error.
    pub max_body: usize,
    /// More trusted roots (PEM), besides the platform's and `SSL_CERT_FILE`'s.
    pub extra_roots_pem: Option<String>,
}

impl Default for HttpClientConfig {
    fn default() -> Self {
        HttpClientConfig {
            timeout: Duration::from_secs(5),
            max_body: 1 << 20,
            extra_roots_pem: None,
        }
    }
}

/// Why a request through an [`HttpClient`] failed. Messages never include a response body.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum HttpClientError {
    /// The client or the URL is misconfigured (bad roots, plain HTTP to a remote host).
    #[error("{0}")]
    Config(String),
    /// No complete answer within the timeout.
    #[error("timed out")]
    Timeout,
    /// Connecting or the exchange failed (refused, TLS, reset).
    #[error("connection failed: {0}")]
    Connect(String),
    /// The body is longer than the limit.
    #[error("response body over the size limit")]
    TooLarge,
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// An HTTPS client (see the [module docs](self)). Cloning shares the connection pool.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
    max_body: usize,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client trusting the platform roots, `SSL_CERT_FILE` and `config.extra_roots_pem`.
    pub fn new(config: HttpClientConfig) -> Result<HttpClient, HttpClientError> {
        let mut extra = Vec::new();
        if let Some(path) = std::env::var_os("SSL_CERT_FILE") {
            let pem = std::fs::read(&path).map_err(|e| {
                HttpClientError::Config(format!(
                    "SSL_CERT_FILE {}: {e}",
                    std::path::Path::new(&path).display()
                ))
            })?;
            extra.extend(parse_roots(&pem, "SSL_CERT_FILE")?);
        }
        if let Some(pem) = &config.extra_roots_pem {
            extra.extend(parse_roots(pem.as_bytes(), "extra roots")?);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
                .map_err(|e| HttpClientError::Config(format!("trust store: {e}")))?;
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpClientError::Config(format!("TLS: {e}")))?
            .dangerous()
            // Not a weaker check: the platform verifier with our extra roots, which rustls can
            // only be given through this builder.
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        Ok(HttpClient {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
            timeout: config.timeout,
            max_body: config.max_body,
        })
    }

    /// Sends `req` and reads the whole answer, within the timeout and the size limit. The URL
    /// must pass [`check_url`].
    pub async fn send(&self, req: Request<Bytes>) -> Result<Response<Bytes>, HttpClientError> {
        check_url(req.uri())?;
        let req = req.map(Full::new);
        let exchange = async {
            let rsp = self
                .client
                .request(req)
                .await
                .map_err(|e| HttpClientError::Connect(error_chain(&e)))?;
            let (parts, body) = rsp.into_parts();
            let body = Limited::new(body, self.max_body)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        HttpClientError::TooLarge
                    } else {
                        HttpClientError::Connect(e.to_string())
                    }
                })?
                .to_bytes();
            Ok(Response::from_parts(parts, body))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(HttpClientError::Timeout),
        }
    }
}

/// `https://…`, or `http://…` to a loopback host (`localhost`, `127.0.0.0/8`, `[::1]`).
pub fn check_url(url: &Uri) -> Result<(), HttpClientError> {
    let host = url
        .host()
        .ok_or_else(|| HttpClientError::Config(format!("{url}: no host")))?;
    match url.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if is_loopback(host) => Ok(()),
        Some("http") => Err(HttpClientError::Config(format!(
            "{url}: plain http is allowed only to a loopback address; use https"
        ))),
        _ => Err(HttpClientError::Config(format!(
            "{url}: the scheme must be https (or http to a loopback address)"
        ))),
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The freshness directives of a `Cache-Control` value (several values may be given: HTTP
/// allows the header to repeat). The JWKS refresh and the webhook's cache each apply their own
/// rule to them; reading them is shared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CacheDirectives {
    /// `no-store` or `no-cache` is present.
    pub(crate) no_cache: bool,
    /// The first readable `max-age`, in seconds (quotes allowed).
    pub(crate) max_age: Option<u64>,
    /// A `max-age` that is not a number is present.
    pub(crate) bad_max_age: bool,
    /// The first readable `s-maxage`, in seconds.
    pub(crate) s_maxage: Option<u64>,
}

impl CacheDirectives {
    /// Reads every directive of `values`; names without case, unknown ones ignored.
    pub(crate) fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> CacheDirectives {
        let mut out = CacheDirectives::default();
        for directive in values.into_iter().flat_map(|v| v.split(',')) {
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            let secs = || arg.and_then(|a| a.parse::<u64>().ok());
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                out.no_cache = true;
            } else if name.eq_ignore_ascii_case("max-age") {
                match secs() {
                    Some(n) => out.max_age = out.max_age.or(Some(n)),
                    None => out.bad_max_age = true,
                }
            } else if name.eq_ignore_ascii_case("s-maxage") {
                out.s_maxage = out.s_maxage.or(secs());
            }
        }
        out
    }
}

/// The time from `now` until an `Expires` HTTP date: zero when it is past, `None` when it is
/// not a date.
pub(crate) fn expires_in(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let at = httpdate::parse_http_date(value.trim()).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn parse_roots(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, HttpClientError> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| HttpClientError::Config(format!("{what}: {e}")))?;
    if certs.is_empty() {
        return Err(HttpClientError::Config(format!(
            "{what}: no PEM certificate found"
        )));
    }
    Ok(certs)
}

/// The error and its sources, one line: hyper-util's outer error says only "client error".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "https://idp.example.com/.well-known/jwks.json",
            "http://127.0.0.1:8080/hook",
            "http://localhost/hook",
            "http://[::1]:9/x",
            "http://127.3.4.5/x",
        ] {
            assert_eq!(check_url(&ok.parse().unwrap()), Ok(()), "{ok}");
        }
        for bad in [
            "http://idp.example.com/jwks",
            "http://10.0.0.1/hook",
            "http://localhost.evil.test/x",
            "ftp://127.0.0.1/x",
            "/relative",
        ] {
            assert!(
                matches!(
                    check_url(&bad.parse().unwrap()),
                    Err(HttpClientError::Config(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn cache_directives_and_expires() {
        let d = CacheDirectives::parse(["public, max-age=\"120\", must-revalidate", "s-maxage=7"]);
        assert_eq!(
            d,
            CacheDirectives {
                no_cache: false,
                max_age: Some(120),
                bad_max_age: false,
                s_maxage: Some(7),
            }
        );
        let d = CacheDirectives::parse(["No-Store", "max-age=soon"]);
        assert!(d.no_cache && d.bad_max_age && d.max_age.is_none());
        assert_eq!(CacheDirectives::parse([]), CacheDirectives::default());

        let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(expires_in(&later, now), Some(Duration::from_secs(90)));
        assert_eq!(expires_in(&past, now), Some(Duration::ZERO));
        assert_eq!(expires_in("tomorrow", now), None);
    }

    #[test]
    fn extra_roots_must_be_certificates() {
        let err = HttpClient::new(HttpClientConfig {
            extra_roots_pem: Some("not a pem".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(err, HttpClientError::Config(m) if m.contains("no PEM certificate")));
    }

    #[tokio::test]
    async fn refused_slow_and_large_answers_are_errors() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let client = HttpClient::new(HttpClientConfig {
            timeout: Duration::from_millis(300),
            max_body: 16,
            extra_roots_pem: None,
        })
        .unwrap();
        // A closed port.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let req = |addr: std::net::SocketAddr| {
            Request::get(format!("http://{addr}/"))
                .body(Bytes::new())
                .unwrap()
        };
        assert!(matches!(
            client.send(req(closed)).await,
            Err(HttpClientError::Connect(_))
        ));
        // A server that answers with a long body, and one that never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                n += 1;
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                if n == 1 {
                    let body = "x".repeat(100);
                    let rsp = format!("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{body}");
                    let _ = s.write_all(rsp.as_bytes()).await;
                } else {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        });
        assert_eq!(
            client.send(req(addr)).await.unwrap_err(),
            HttpClientError::TooLarge
        );
        let started = std::time::Instant::now();
        assert_eq!(
            client.send(req(addr)).await.unwrap_err(),
            HttpClientError::Timeout
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
