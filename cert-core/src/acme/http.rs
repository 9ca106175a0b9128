//! The HTTP client instant-acme talks through: custom roots, and Retry-After capture.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::RETRY_AFTER;
use http::Request;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use parking_lot::Mutex;

use crate::certs::parse_chain;
use crate::tls::crypto_provider;
use crate::Error;

/// An [`HttpClient`] that remembers the last `Retry-After` an error response carried, because
/// instant-acme's error type does not expose response headers and the backoff must honour it.
#[derive(Clone)]
pub(crate) struct AcmeHttp {
    client: Client<HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>,
    retry_after: Arc<Mutex<Option<Duration>>>,
}

impl AcmeHttp {
    /// A client trusting `roots_pem` only when given (a test CA such as Pebble), else the
    /// platform's trust store.
    pub(crate) fn new(
        roots_pem: Option<&str>,
        retry_after: Arc<Mutex<Option<Duration>>>,
    ) -> Result<Self, Error> {
        let builder = match roots_pem {
            Some(pem) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in parse_chain(pem)? {
                    roots.add(cert)?;
                }
                let tls = rustls::ClientConfig::builder_with_provider(crypto_provider())
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                HttpsConnectorBuilder::new().with_tls_config(tls)
            }
            None => HttpsConnectorBuilder::new()
                .with_provider_and_platform_verifier(crypto_provider())
                .map_err(|e| Error::Config(format!("platform trust store: {e}")))?,
        };
        let connector = builder.https_only().enable_http1().enable_http2().build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            retry_after,
        })
    }
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let fut = self.client.request(req);
        let slot = self.retry_after.clone();
        Box::pin(async move {
            let rsp = fut
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            if !rsp.status().is_success() {
                if let Some(delay) = rsp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after)
                {
                    *slot.lock() = Some(delay);
                }
            }
            Ok(BytesResponse::from(rsp))
        })
    }
}

/// `Retry-After: <seconds>` or `Retry-After: <HTTP-date>` as a delay from now.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = u64::from_str(value) {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 1999 23:59:59 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
