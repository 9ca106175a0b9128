//! Listeners and connections: accepting under a connection cap, HTTP/1.1 and HTTP/2 with
//! header limits and timeouts, an idle timeout, and a graceful drain.
//!
//! A connection that hyper upgrades (a WebSocket tunnel) keeps its socket, and so its place
//! under the cap, after its HTTP connection ends: the proxy's tunnel task owns the socket, and
//! [`serve_connection`] returns only once that task drops it. Meanwhile the tunnel is closed
//! when no byte moved either way for `tunnel_idle_timeout`, or when the shutdown grace period
//! ends.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use futures_util::FutureExt;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use pin_project_lite::pin_project;
use route_core::{Body, ConnectionInfo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::Service;

use crate::config::Limits;

mod threads;

pub use threads::{bind, bind_std, runtime, PublicListeners, RuntimeShape, ServingThreads};

/// What every connection of a listener shares.
#[derive(Clone)]
pub struct ConnSettings {
    /// The limits from the config.
    pub limits: Limits,
    /// Shared by every listener: one permit per open client connection.
    pub permits: Arc<Semaphore>,
    /// Flips to `true` when the gateway starts draining.
    pub shutdown: watch::Receiver<bool>,
    /// The admin listener's connections are counted apart from the public ones
    /// (`gateway_admin_active_connections`, `gateway_admin_connections_refused_total`).
    pub admin: bool,
}

impl ConnSettings {
    fn active_gauge(&self) -> &'static str {
        if self.admin {
            "gateway_admin_active_connections"
        } else {
            "gateway_active_connections"
        }
    }
}

/// Makes the per-connection service; called once per accepted connection.
pub trait MakeService: Clone + Send + Sync + 'static {
    /// The service for one connection.
    type Service: Service<
            Request<Incoming>,
            Response = http::Response<Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static;
    /// Builds it for a connection.
    fn make(&self, info: &ConnectionInfo) -> Self::Service;
}

impl<F, S> MakeService for F
where
    F: Fn(&ConnectionInfo) -> S + Clone + Send + Sync + 'static,
    S: Service<
            Request<Incoming>,
            Response = http::Response<Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Service = S;
    fn make(&self, info: &ConnectionInfo) -> S {
        self(info)
    }
}

/// Accepts connections until shutdown, under the connection cap: a connection over the cap is
/// closed at once (and counted), and each accepted one is handed to `handle` with its permit,
/// which it holds until the connection ends.
pub async fn accept_loop<F, Fut>(listener: TcpListener, settings: &ConnSettings, mut handle: F)
where
    F: FnMut(TcpStream, SocketAddr, Option<SocketAddr>, OwnedSemaphorePermit) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let local = listener.local_addr().ok();
    let mut shutdown = settings.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let (stream, remote) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = settings.permits.clone().try_acquire_owned() else {
            let refused = if settings.admin {
                "gateway_admin_connections_refused_total"
            } else {
                "gateway_connections_refused_total"
            };
            metrics::counter!(refused).increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(handle(stream, remote, local, permit));
    }
}

/// Accepts plain TCP connections until shutdown.
pub async fn serve_plain<M>(listener: TcpListener, make: M, settings: ConnSettings)
where
    M: MakeService,
    <M::Service as Service<Request<Incoming>>>::Future: Send + 'static,
{
    let conn_settings = settings.clone();
    accept_loop(listener, &settings, move |stream, remote, local, permit| {
        let info = ConnectionInfo {
            remote_addr: remote,
            local_addr: local.unwrap_or(remote),
            tls: false,
            sni: None,
        };
        let svc = make.make(&info);
        let gauge = conn_settings.active_gauge();
        metrics::gauge!(gauge).increment(1.0);
        // The task's future is the connection's future itself, set up here: not the socket,
        // service and settings it was made from, and not a second copy of it either (an
        // `async` block that awaited it would keep both).
        serve_connection(stream, info, svc, &conn_settings).map(move |()| {
            metrics::gauge!(gauge).decrement(1.0);
            drop(permit);
        })
    })
    .await;
}

/// Serves one connection (plain or TLS) until it ends, idles out, or the gateway drains; an
/// upgraded connection until its tunnel ends too (see the module docs).
///
/// Not an `async fn`: the connection is set up here and the returned future holds only what
/// the wait needs. An `async fn` keeps its arguments in its future for as long as it lives,
/// moved out or not, so `io` (a TLS stream is 1.2 KB), `svc` and `info` would sit beside
/// hyper's own copies in every idle connection's task (`bench/README.md`, "Idle memory per
/// connection").
pub fn serve_connection<I, S>(
    io: I,
    info: ConnectionInfo,
    svc: S,
    settings: &ConnSettings,
) -> impl Future<Output = ()> + Send + 'static
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<
            Request<Incoming>,
            Response = http::Response<Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let limits = &settings.limits;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper answers 431 when a request head outgrows the read buffer, so the buffer size is the
    // header limit (hyper-util's auto builder does not expose `max_header_size`). Bodies
    // stream through it in chunks of at most this size.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(limits.max_header_bytes as u32)
        // h2's own flood limits, stated here so that they are reviewed with ours: more than
        // 20 streams reset by the client before they are served (rapid reset), or 1024
        // streams the client made us reset as malformed, get GOAWAY ENHANCE_YOUR_CALM.
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(1024)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    let activity = Arc::new(AtomicU64::new(0));
    let epoch = Instant::now();
    let cut = Arc::new(Cut::default());
    let (io_dropped, dropped) = oneshot::channel();
    let io = IdleIo {
        inner: io,
        activity: activity.clone(),
        epoch,
        cut: cut.clone(),
        _dropped: io_dropped,
    };
    let watch = route_core::h2guard::ConnWatch::new();
    let io = route_core::h2guard::FrameGuard::new(
        io,
        watch.clone(),
        limits.h2_max_control_frames_per_second,
        limits.h2_max_concurrent_streams,
    );
    let info = Arc::new(info);
    let streams = watch.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert((*info).clone());
        let mut svc = svc.clone();
        // Open from here until hyper drops the response body (sent, or reset by the client).
        let stream = streams.stream_started();
        async move {
            let res = svc.call(req).await?;
            Ok::<_, std::convert::Infallible>(
                res.map(|body| route_core::h2guard::TrackedBody::new(body, stream)),
            )
        }
    });
    // Boxed so that it can be dropped before the tunnel wait below: a finished connection
    // still holds the socket unless hyper handed it to an upgrade. Owned: it keeps a copy of
    // the builder until the protocol is known, instead of borrowing one from the future.
    let mut conn = Box::pin(
        builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned(),
    );
    let mut shutdown = settings.shutdown.clone();
    let idle = limits.idle_timeout;
    let (tunnel_idle, grace) = (limits.tunnel_idle_timeout, limits.shutdown_grace);
    let mut draining = *shutdown.borrow();
    if draining {
        conn.as_mut().graceful_shutdown();
    }
    async move {
        // In a block of its own: the idle timer is gone before the tunnel wait, whose future
        // then takes the timer's place in this one instead of sitting beside it.
        {
            // One timer per connection, moved forward only when it fires: an idle connection
            // wakes about once per idle timeout, a busy one never pays for its traffic with
            // timer resets.
            let idle_timer = tokio::time::sleep(idle);
            tokio::pin!(idle_timer);
            // After an idle GOAWAY, how long an HTTP/2 client gets to close: hyper's graceful
            // shutdown waits for the client to acknowledge a PING, which a hostile one never
            // does.
            let mut idle_goaway = false;
            let goaway_grace = idle.min(Duration::from_secs(5));
            loop {
                tokio::select! {
                    res = conn.as_mut() => {
                        if let Err(e) = res {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    _ = shutdown.wait_for(|s| *s), if !draining => {
                        draining = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    _ = &mut idle_timer, if !draining || idle_goaway => {
                        if idle_goaway {
                            // A stream opened before the final GOAWAY gets to finish.
                            if !watch.has_open_streams() {
                                break;
                            }
                            idle_timer.as_mut().reset(Instant::now() + goaway_grace);
                            continue;
                        }
                        let last = Duration::from_millis(activity.load(Ordering::Relaxed));
                        let mut quiet = epoch.elapsed().saturating_sub(last);
                        // HTTP/2: PINGs move bytes, so idle means no open stream
                        // (SECURITY-CASES 36).
                        if let Some(h2_quiet) = watch.h2_quiet() {
                            quiet = quiet.max(h2_quiet);
                        }
                        if quiet >= idle {
                            draining = true;
                            conn.as_mut().graceful_shutdown();
                            if watch.h2_quiet().is_some() {
                                idle_goaway = true;
                                idle_timer.as_mut().reset(Instant::now() + goaway_grace);
                            }
                        } else {
                            idle_timer.as_mut().reset(Instant::now() + (idle - quiet));
                        }
                    }
                }
            }
        }
        drop(conn);
        outlive_tunnel(
            dropped,
            &cut,
            &activity,
            epoch,
            tunnel_idle,
            grace,
            shutdown,
        )
        .await;
    }
}

/// Returns at once unless the socket lives on in a tunnel (hyper handed it to an upgrade);
/// then waits until the tunnel drops it, cutting it after `idle` (`tunnel_idle_timeout`)
/// without a byte either way, or when the shutdown grace period `grace` ends.
async fn outlive_tunnel(
    mut dropped: oneshot::Receiver<()>,
    cut: &Cut,
    activity: &AtomicU64,
    epoch: Instant,
    idle: Duration,
    grace: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Err(oneshot::error::TryRecvError::Closed) = dropped.try_recv() {
        return;
    }
    let mut watching_shutdown = true;
    let mut grace_end: Option<Instant> = None;
    loop {
        let last = epoch + Duration::from_millis(activity.load(Ordering::Relaxed));
        let idle_end = later(last, idle);
        let wake = grace_end.map_or(idle_end, |g| g.min(idle_end));
        tokio::select! {
            _ = &mut dropped => return,
            started = async { shutdown.wait_for(|s| *s).await.is_ok() }, if watching_shutdown => {
                watching_shutdown = false;
                // The gateway drains from now: the tunnel gets the grace period, as in-flight
                // requests do. (A dropped sender means no drain will ever be announced.)
                if started {
                    grace_end = Some(later(Instant::now(), grace));
                }
            }
            () = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                let last = epoch + Duration::from_millis(activity.load(Ordering::Relaxed));
                let reason = if grace_end.is_some_and(|g| now >= g) {
                    "shutdown"
                } else if now >= later(last, idle) {
                    "idle"
                } else {
                    continue;
                };
                metrics::counter!("gateway_tunnels_closed_total", "reason" => reason).increment(1);
                tracing::debug!(reason, "closing a websocket tunnel");
                cut.cut();
                // The tunnel's next read or write fails, and it drops the socket.
                let _ = dropped.await;
                return;
            }
        }
    }
}

/// `t + d`, or about 30 years after `t` when that overflows (a configured "100000000y").
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .unwrap_or_else(|| t + Duration::from_secs(30 * 365 * 86_400))
}

/// A switch that makes a socket fail every read and write, from outside the task that owns
/// it: how a tunnel, whose socket belongs to the proxy's task, is closed.
#[derive(Default)]
struct Cut {
    cut: AtomicBool,
    read: AtomicWaker,
    write: AtomicWaker,
}

impl Cut {
    fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Acquire)
    }

    /// Cuts the socket and wakes whoever waits on it.
    fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        self.read.wake();
        self.write.wake();
    }

    /// For a read or write that is pending: `cut` will wake it. `true` if already cut.
    fn park(&self, slot: &AtomicWaker, cx: &Context<'_>) -> bool {
        slot.register(cx.waker());
        self.is_cut()
    }

    fn error() -> io::Error {
        io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "connection closed by the gateway",
        )
    }
}

pin_project! {
    /// Records when bytes last moved, for the idle timeouts. Once cut, every read and write
    /// fails. Dropping it (the socket) completes `_dropped`'s receiver.
    struct IdleIo<T> {
        #[pin]
        inner: T,
        activity: Arc<AtomicU64>,
        epoch: Instant,
        cut: Arc<Cut>,
        _dropped: oneshot::Sender<()>,
    }
}

impl<T> IdleIo<T> {
    fn touch(activity: &AtomicU64, epoch: Instant) {
        activity.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<T: AsyncRead> AsyncRead for IdleIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if this.cut.is_cut() {
            return Poll::Ready(Err(Cut::error()));
        }
        let before = buf.filled().len();
        let res = this.inner.poll_read(cx, buf);
        if res.is_pending() && this.cut.park(&this.cut.read, cx) {
            return Poll::Ready(Err(Cut::error()));
        }
        if buf.filled().len() > before {
            Self::touch(this.activity, *this.epoch);
        }
        res
    }
}

impl<T: AsyncWrite> AsyncWrite for IdleIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        if this.cut.is_cut() {
            return Poll::Ready(Err(Cut::error()));
        }
        let res = this.inner.poll_write(cx, buf);
        if res.is_pending() && this.cut.park(&this.cut.write, cx) {
            return Poll::Ready(Err(Cut::error()));
        }
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            Self::touch(this.activity, *this.epoch);
        }
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        if this.cut.is_cut() {
            return Poll::Ready(Err(Cut::error()));
        }
        let res = this.inner.poll_write_vectored(cx, bufs);
        if res.is_pending() && this.cut.park(&this.cut.write, cx) {
            return Poll::Ready(Err(Cut::error()));
        }
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            Self::touch(this.activity, *this.epoch);
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// Waits until every connection has closed, or `grace` has passed. Returns how many were
/// still open at the end.
pub async fn drain(permits: &Semaphore, max: usize, grace: Duration) -> usize {
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    match tokio::time::timeout(grace, permits.acquire_many(all)).await {
        Ok(_) => 0,
        Err(_) => max.saturating_sub(permits.available_permits()),
    }
}

/// A future that resolves on SIGTERM or SIGINT.
pub fn shutdown_signal() -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let term = signal(SignalKind::terminate());
            let int = signal(SignalKind::interrupt());
            match (term, int) {
                (Ok(mut t), Ok(mut i)) => {
                    tokio::select! {
                        _ = t.recv() => {}
                        _ = i.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    })
}
