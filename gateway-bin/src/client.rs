//! A small client for the admin API, used by the CLI's session commands.

use std::path::Path;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::admin::Secret;

/// Why an admin call failed before an answer came.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No admin secret was found.
    #[error("no admin secret: set GATEWAY_ADMIN_SECRET or pass --admin-secret-file")]
    NoSecret,
    /// The secret file could not be read.
    #[error("cannot read {0}: {1}")]
    SecretFile(String, std::io::Error),
    /// The URL is not valid.
    #[error("invalid admin URL: {0}")]
    Url(String),
    /// The gateway could not be reached.
    #[error("cannot reach the admin API at {0}: {1}")]
    Connect(String, String),
}

/// Reads the admin secret from a file, or from `GATEWAY_ADMIN_SECRET`.
pub fn admin_secret(file: Option<&Path>) -> Result<Secret, ClientError> {
    let raw = match file {
        Some(f) => std::fs::read_to_string(f)
            .map_err(|e| ClientError::SecretFile(f.display().to_string(), e))?,
        None => std::env::var("GATEWAY_ADMIN_SECRET").map_err(|_| ClientError::NoSecret)?,
    };
    raw.lines()
        .next()
        .and_then(Secret::new)
        .ok_or(ClientError::NoSecret)
}

/// Calls the admin API; returns the status and the body.
pub async fn call(
    base: &str,
    secret: &Secret,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
    extra_header: Option<(&'static str, String)>,
) -> Result<(StatusCode, Bytes), ClientError> {
    let url = format!("{}{}", base.trim_end_matches('/'), path);
    let uri: http::Uri = url.parse().map_err(|_| ClientError::Url(url.clone()))?;
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", secret.expose()),
        )
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some((name, value)) = extra_header {
        req = req.header(name, value);
    }
    let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    let req = req
        .body(Full::new(body))
        .map_err(|e| ClientError::Url(e.to_string()))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let res = client
        .request(req)
        .await
        .map_err(|e| ClientError::Connect(base.to_owned(), e.to_string()))?;
    let status = res.status();
    let bytes = res
        .into_body()
        .collect()
        .await
        .map_err(|e| ClientError::Connect(base.to_owned(), e.to_string()))?
        .to_bytes();
    Ok((status, bytes))
}
