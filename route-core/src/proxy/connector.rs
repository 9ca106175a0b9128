//! The upstream connector: TCP with a per-upstream connect timeout, and HTTP/2 prior
//! knowledge for upstreams configured for it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use parking_lot::RwLock;
use pin_project_lite::pin_project;
use tokio::net::TcpStream;
use tower_service::Service;

use crate::BoxError;

/// Connecting took longer than the upstream's connect timeout.
#[derive(Debug, thiserror::Error)]
#[error("connect timed out after {0:?}")]
pub(crate) struct ConnectTimeout(pub(crate) Duration);

#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnSettings {
    pub(crate) connect_timeout: Duration,
    pub(crate) http2: bool,
}

/// Per-authority settings, read only when a new connection is made (never per request).
#[derive(Clone)]
pub(crate) struct UpstreamConnector {
    http: HttpConnector,
    settings: Arc<RwLock<HashMap<String, ConnSettings>>>,
    default: ConnSettings,
}

impl UpstreamConnector {
    pub(crate) fn new(default_timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(true);
        // The timeout is applied around the whole connect below, per upstream.
        http.set_connect_timeout(None);
        http.set_keepalive(Some(Duration::from_secs(60)));
        UpstreamConnector {
            http,
            settings: Arc::default(),
            default: ConnSettings {
                connect_timeout: default_timeout,
                http2: false,
            },
        }
    }

    pub(crate) fn register(&self, authority: &str, settings: ConnSettings) {
        self.settings
            .write()
            .insert(authority.to_ascii_lowercase(), settings);
    }

    fn settings_for(&self, uri: &Uri) -> ConnSettings {
        let Some(a) = uri.authority() else {
            return self.default;
        };
        let map = self.settings.read();
        map.get(a.as_str())
            .or_else(|| map.get(&a.as_str().to_ascii_lowercase()))
            .copied()
            .unwrap_or(self.default)
    }
}

impl Service<Uri> for UpstreamConnector {
    type Response = UpstreamStream;
    type Error = BoxError;
    // A new connection is rare next to requests on pooled ones, so one box here is fine.
    type Future = Pin<Box<dyn Future<Output = Result<UpstreamStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let settings = self.settings_for(&uri);
        let connecting = self.http.call(uri);
        Box::pin(async move {
            match tokio::time::timeout(settings.connect_timeout, connecting).await {
                Ok(Ok(io)) => Ok(UpstreamStream {
                    io,
                    h2: settings.http2,
                }),
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err(ConnectTimeout(settings.connect_timeout).into()),
            }
        })
    }
}

pin_project! {
    /// A TCP connection to an upstream that tells the pool whether to speak HTTP/2.
    pub(crate) struct UpstreamStream {
        #[pin]
        io: TokioIo<TcpStream>,
        h2: bool,
    }
}

impl Connection for UpstreamStream {
    fn connected(&self) -> Connected {
        let c = self.io.connected();
        if self.h2 {
            c.negotiated_h2()
        } else {
            c
        }
    }
}

impl hyper::rt::Read for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl hyper::rt::Write for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }
}
