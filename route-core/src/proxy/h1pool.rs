//! HTTP/1.1 upstream connections, kept idle per runtime thread.
//!
//! Why not hyper-util's pooled client for HTTP/1.1: its pool is one map behind a lock, keyed by
//! a hashed scheme and authority, and it rebuilds the URI of every request. A minimal proxy
//! measured 0.89 of nginx's throughput with it and 1.00 with connection-level senders
//! (ARCHITECTURE.md). Here each thread keeps its own idle [`SendRequest`]s per upstream
//! authority: a checkout and a return touch a thread-local `Vec`, with no lock. With the
//! current-thread runtime that is the whole gateway; with several worker threads each keeps
//! its own idle connections (a few more upstream connections, no contention).
//!
//! - A connection goes back to the pool when its response body has been read to the end (or
//!   dropped after its end), never earlier: an HTTP/1.1 connection carries one exchange at a
//!   time. A response dropped before its end closes the connection (hyper cannot reuse it).
//! - A checkout takes the most recently used idle connection that hyper says is ready. One that
//!   has closed (the upstream timed it out) is dropped; one that is not ready yet is left in
//!   the pool for later. If none is usable, a new connection is made.
//! - A request that hyper hands back unsent (the connection closed just before it) is sent on
//!   another connection. A request written to a reused connection that the upstream closed
//!   without answering a byte (its idle timeout raced the request) is sent again on another
//!   connection when it is idempotent and has no body, as nginx does; any other request that
//!   was written is never resent.
//! - Idle connections older than the idle timeout are dropped at the next checkout for their
//!   upstream; at most `max_idle` are kept per upstream and thread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::connector::UpstreamConnector;
use crate::{Body, BoxError};

struct IdleConn {
    sender: SendRequest<Body>,
    since: Instant,
}

thread_local! {
    /// Idle connections of this thread, by upstream authority (lowercase `host:port`). The
    /// keys come from the config, not from clients, so a fast hasher is safe here.
    static IDLE: RefCell<HashMap<Arc<str>, Vec<IdleConn>, foldhash::fast::RandomState>> =
        RefCell::new(HashMap::with_hasher(foldhash::fast::RandomState::default()));
}

/// Settings of the per-thread pools.
#[derive(Clone)]
pub(crate) struct H1Pool {
    connector: UpstreamConnector,
    idle_timeout: Duration,
    max_idle: usize,
}

/// Why an upstream exchange failed: while connecting (the upstream may be down) or after.
#[derive(Debug)]
pub(crate) enum UpstreamError {
    /// Connecting or the HTTP/1.1 handshake failed.
    Connect(BoxError),
    /// The request or the response head failed on an open connection.
    Request(hyper::Error),
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Connect(_) => f.write_str("connecting to the upstream failed"),
            UpstreamError::Request(_) => f.write_str("the upstream request failed"),
        }
    }
}

impl std::error::Error for UpstreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UpstreamError::Connect(e) => Some(&**e),
            UpstreamError::Request(e) => Some(e),
        }
    }
}

impl UpstreamError {
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, UpstreamError::Connect(_))
    }
}

impl H1Pool {
    pub(crate) fn new(
        connector: UpstreamConnector,
        idle_timeout: Duration,
        max_idle: usize,
    ) -> Self {
        H1Pool {
            connector,
            idle_timeout,
            max_idle,
        }
    }

    /// A ready idle connection to `key`, if this thread has one.
    fn checkout(&self, key: &Arc<str>) -> Option<SendRequest<Body>> {
        IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            let conns = idle.get_mut(key)?;
            let now = Instant::now();
            let mut found = None;
            let mut not_ready = Vec::new();
            while let Some(conn) = conns.pop() {
                if now.saturating_duration_since(conn.since) > self.idle_timeout {
                    // The rest are older still.
                    conns.clear();
                    break;
                }
                if conn.sender.is_closed() {
                    continue;
                }
                if conn.sender.is_ready() {
                    found = Some(conn.sender);
                    break;
                }
                not_ready.push(conn);
            }
            // Keep the recency order: the ones passed over were the most recent.
            conns.extend(not_ready.into_iter().rev());
            found
        })
    }

    /// Puts a connection whose exchange is complete back into this thread's pool.
    fn give_back(key: Arc<str>, sender: SendRequest<Body>, max_idle: usize) {
        if sender.is_closed() || max_idle == 0 {
            return;
        }
        IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            let conns = idle.entry(key).or_default();
            if conns.len() >= max_idle {
                conns.remove(0);
            }
            conns.push(IdleConn {
                sender,
                since: Instant::now(),
            });
        });
    }

    /// Sends `req` (origin-form URI, `Host` set) to the upstream `key`, on an idle connection
    /// of this thread or a new one to `connect_uri`.
    pub(crate) async fn send(
        &self,
        key: Arc<str>,
        connect_uri: Uri,
        mut req: Request<Body>,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        while let Some(mut sender) = self.checkout(&key) {
            let again = replayable(&req);
            match sender.try_send_request(req).await {
                Ok(res) => return Ok(self.wrap(res, key, sender)),
                Err(mut e) => match (e.take_message(), again) {
                    // Not written: the connection closed under it. Try another one.
                    (Some(unsent), _) => req = unsent,
                    (None, Some(copy)) if closed_before_answer(e.error()) => {
                        tracing::debug!(
                            "pooled upstream connection closed before answering; resending"
                        );
                        req = copy;
                    }
                    (None, _) => return Err(UpstreamError::Request(e.into_error())),
                },
            }
        }
        let mut connector = self.connector.clone();
        let stream = connector
            .call(connect_uri)
            .await
            .map_err(UpstreamError::Connect)?;
        let (mut sender, conn) = http1::Builder::new()
            .handshake(stream)
            .await
            .map_err(|e| UpstreamError::Connect(e.into()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        match sender.send_request(req).await {
            Ok(res) => Ok(self.wrap(res, key, sender)),
            Err(e) => Err(UpstreamError::Request(e)),
        }
    }

    fn wrap(
        &self,
        res: Response<Incoming>,
        key: Arc<str>,
        sender: SendRequest<Body>,
    ) -> Response<PooledBody> {
        let max_idle = self.max_idle;
        res.map(|inner| PooledBody {
            inner,
            back: Some(Back {
                key,
                sender,
                max_idle,
            }),
        })
    }
}

/// Whether a reused connection failed the way an upstream's idle close racing our request does:
/// closed (or reset, having not read the request) before a byte of the answer arrived. hyper
/// reports it as an incomplete message, as a cancellation, or as the I/O error itself, possibly
/// wrapped: the whole source chain is read.
fn closed_before_answer(e: &hyper::Error) -> bool {
    use std::io::ErrorKind;
    if e.is_incomplete_message() || e.is_canceled() {
        return true;
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
            ) {
                return true;
            }
        }
        if let Some(h) = c.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() {
                return true;
            }
        }
        cause = c.source();
    }
    false
}

/// A copy of `req` to send again if a reused connection closes before answering: only for
/// idempotent methods without a body (a body is streamed once and gone).
fn replayable(req: &Request<Body>) -> Option<Request<Body>> {
    use http::Method;
    let idempotent = matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    );
    if !idempotent || !http_body::Body::is_end_stream(req.body()) {
        return None;
    }
    let mut copy = Request::new(Body::empty());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

struct Back {
    key: Arc<str>,
    sender: SendRequest<Body>,
    max_idle: usize,
}

pin_project! {
    /// A response body from a pooled connection: the connection goes back to the pool once the
    /// body has been read to its end.
    pub(crate) struct PooledBody {
        #[pin]
        inner: Incoming,
        back: Option<Back>,
    }

    impl PinnedDrop for PooledBody {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // A body dropped right at its end (no final poll) still leaves a reusable connection.
            if http_body::Body::is_end_stream(&*this.inner) {
                if let Some(b) = this.back.take() {
                    H1Pool::give_back(b.key, b.sender, b.max_idle);
                }
            }
        }
    }
}

impl http_body::Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => http_body::Body::is_end_stream(&*this.inner),
            // An error leaves the connection unusable: drop it.
            Poll::Ready(Some(Err(_))) => {
                this.back.take();
                false
            }
            Poll::Pending => false,
        };
        if ended {
            if let Some(b) = this.back.take() {
                H1Pool::give_back(b.key, b.sender, b.max_idle);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
