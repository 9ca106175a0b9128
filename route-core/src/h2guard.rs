//! HTTP/2 guards that hyper and the `h2` crate leave to the server (SECURITY-CASES 25, 36).
//!
//! - **Open streams.** An HTTP/2 connection is idle when it has no open stream, not when no
//!   bytes move: keep-alive PINGs and their ACKs are bytes, so a byte-based idle timer never
//!   fires for a client that pings. [`ConnWatch`] counts the streams being served (a request
//!   counts from the service call until its response body is dropped) and remembers when the
//!   count last changed.
//! - **Control-frame floods.** `h2` answers every PING and SETTINGS frame and accepts every
//!   PRIORITY and RST_STREAM frame without a rate limit of its own; a client that reads the
//!   ACKs keeps one core busy per connection for as long as it likes. Likewise `h2` answers a
//!   stream whose decoded header list is over the limit with 431 itself, and resets a
//!   malformed one, stream after stream, without closing the connection. [`FrameGuard`] parses
//!   the frame headers of what the client sends and closes the connection when, within one
//!   second, it sends more than `[limits] h2_max_control_frames_per_second` of those control
//!   frames, or opens more than twice `h2_max_concurrent_streams` streams that never reach the
//!   service.
//!
//! Neither guard looks at an HTTP/1 connection: the parser waits for the HTTP/2 connection
//! preface and steps aside for good when the first bytes are anything else.
//!
//! They live in route-core, beside the router and the proxy, because every server that serves
//! HTTP/2 with hyper needs them, not only the gateway binary: a listener wraps the socket in a
//! [`FrameGuard`], each response body in a [`TrackedBody`], and closes the connection (a
//! graceful GOAWAY) once [`ConnWatch::h2_quiet`] says it has been without a stream for its idle
//! timeout. The gateway's listener (`gateway-bin/src/server.rs`) is the example.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::{Body, BoxError};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The client connection preface of HTTP/2 (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types that cost the server work without carrying a request: PRIORITY, RST_STREAM,
/// SETTINGS and PING (RFC 9113 §6). WINDOW_UPDATE is left out: a client downloading at speed
/// sends one per DATA frame or two, honestly.
const CONTROL_FRAMES: [u8; 4] = [0x2, 0x3, 0x4, 0x6];

/// The HEADERS frame type.
const HEADERS: u8 = 0x1;

/// What one connection's guards share with its idle timer.
#[derive(Debug)]
pub struct ConnWatch {
    epoch: Instant,
    is_h2: AtomicBool,
    open: AtomicUsize,
    /// Streams handed to the service since the connection opened.
    served: AtomicU64,
    /// Milliseconds after `epoch` at which the open-stream count last changed.
    changed: AtomicU64,
}

impl ConnWatch {
    /// The watch of a new connection: no stream yet, not known to be HTTP/2 yet.
    pub fn new() -> Arc<ConnWatch> {
        Arc::new(ConnWatch {
            epoch: Instant::now(),
            is_h2: AtomicBool::new(false),
            open: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            changed: AtomicU64::new(0),
        })
    }

    /// How long this HTTP/2 connection has had no open stream: zero while one is open, and
    /// `None` for HTTP/1 (whose idle time is counted in bytes, as before).
    pub fn h2_quiet(&self) -> Option<Duration> {
        if !self.is_h2.load(Ordering::Relaxed) {
            return None;
        }
        if self.open.load(Ordering::Acquire) > 0 {
            return Some(Duration::ZERO);
        }
        let changed = Duration::from_millis(self.changed.load(Ordering::Relaxed));
        Some(self.epoch.elapsed().saturating_sub(changed))
    }

    /// Whether a stream is being served.
    pub fn has_open_streams(&self) -> bool {
        self.open.load(Ordering::Acquire) > 0
    }

    /// Counts a stream as open until the returned guard is dropped.
    pub fn stream_started(self: &Arc<Self>) -> StreamGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        self.served.fetch_add(1, Ordering::Relaxed);
        self.touch();
        StreamGuard(self.clone())
    }

    fn touch(&self) {
        let now = self.epoch.elapsed().as_millis();
        self.changed
            .store(u64::try_from(now).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// One open stream of a [`ConnWatch`]; dropping it closes the stream's count.
#[derive(Debug)]
pub struct StreamGuard(Arc<ConnWatch>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project! {
    /// A response body that keeps its stream counted as open until hyper drops it, which it
    /// does once the body is sent or the client resets the stream.
    pub struct TrackedBody {
        #[pin]
        inner: Body,
        _stream: StreamGuard,
    }
}

impl TrackedBody {
    /// `inner`, counted as an open stream until it is dropped.
    pub fn new(inner: Body, stream: StreamGuard) -> TrackedBody {
        TrackedBody {
            inner,
            _stream: stream,
        }
    }
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Where the frame parser is in the client's byte stream.
#[derive(Debug)]
enum Phase {
    /// Matching the connection preface; the number of bytes matched so far.
    Preface(usize),
    /// Reading frames: the header bytes gathered so far, or the payload bytes left to skip.
    Frames,
    /// Not HTTP/2: nothing to parse.
    Off,
}

/// Counts control frames in what a client sends.
#[derive(Debug)]
struct FrameCounter {
    phase: Phase,
    head: [u8; 9],
    head_len: usize,
    skip: usize,
    window_start: Instant,
    in_window: u32,
    limit: u32,
    /// The most streams per second that may be refused before reaching the service.
    refused_limit: u64,
    /// The highest stream the client opened: a HEADERS frame above it opens a new one (below
    /// it, it carries trailers).
    max_stream: u32,
    /// Streams opened in this window, and the service's count when the window began.
    opened_in_window: u64,
    served_at_window_start: u64,
}

impl FrameCounter {
    /// Feeds bytes read from the client; returns `false` once the control-frame budget of the
    /// current second is spent.
    fn feed(&mut self, mut bytes: &[u8], watch: &ConnWatch) -> bool {
        while !bytes.is_empty() {
            match self.phase {
                Phase::Off => return true,
                Phase::Preface(matched) => {
                    let n = bytes.len().min(PREFACE.len() - matched);
                    if bytes[..n] != PREFACE[matched..matched + n] {
                        self.phase = Phase::Off;
                        return true;
                    }
                    bytes = &bytes[n..];
                    if matched + n == PREFACE.len() {
                        self.phase = Phase::Frames;
                        watch.is_h2.store(true, Ordering::Relaxed);
                    } else {
                        self.phase = Phase::Preface(matched + n);
                    }
                }
                Phase::Frames if self.skip > 0 => {
                    let n = bytes.len().min(self.skip);
                    self.skip -= n;
                    bytes = &bytes[n..];
                }
                Phase::Frames => {
                    let n = bytes.len().min(9 - self.head_len);
                    self.head[self.head_len..self.head_len + n].copy_from_slice(&bytes[..n]);
                    self.head_len += n;
                    bytes = &bytes[n..];
                    if self.head_len == 9 {
                        self.head_len = 0;
                        let h = self.head;
                        self.skip = (usize::from(h[0]) << 16)
                            | (usize::from(h[1]) << 8)
                            | usize::from(h[2]);
                        self.roll(watch);
                        if CONTROL_FRAMES.contains(&h[3]) {
                            self.in_window += 1;
                            if self.in_window > self.limit {
                                return false;
                            }
                        }
                        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
                        if h[3] == HEADERS && stream > self.max_stream {
                            self.max_stream = stream;
                            self.opened_in_window += 1;
                            // Streams read but not yet handed to the service count too; the
                            // limit leaves room for them.
                            let served = watch
                                .served
                                .load(Ordering::Relaxed)
                                .saturating_sub(self.served_at_window_start);
                            if self.opened_in_window.saturating_sub(served) > self.refused_limit {
                                return false;
                            }
                        }
                    }
                }
            }
        }
        true
    }

    /// Starts a new one-second window when the current one is over.
    fn roll(&mut self, watch: &ConnWatch) {
        let now = Instant::now();
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.in_window = 0;
            self.opened_in_window = 0;
            self.served_at_window_start = watch.served.load(Ordering::Relaxed);
        }
    }
}

pin_project! {
    /// Reads through to the connection, counting the client's HTTP/2 control frames; past the
    /// budget it fails the read, which ends the connection.
    pub struct FrameGuard<T> {
        #[pin]
        inner: T,
        counter: FrameCounter,
        watch: Arc<ConnWatch>,
        tripped: bool,
    }
}

impl<T> FrameGuard<T> {
    /// Guards `inner`, allowing `limit` control frames per second, and twice `max_streams`
    /// (the concurrent-stream limit) refused streams per second: an honest client cannot have
    /// more streams in flight than that, so cannot have more read but not yet served; refusing
    /// an oversized header list costs far more than answering a PING, hence the lower bound.
    pub fn new(inner: T, watch: Arc<ConnWatch>, limit: u32, max_streams: u32) -> FrameGuard<T> {
        FrameGuard {
            inner,
            counter: FrameCounter {
                phase: Phase::Preface(0),
                head: [0; 9],
                head_len: 0,
                skip: 0,
                window_start: Instant::now(),
                in_window: 0,
                limit,
                refused_limit: 2 * u64::from(max_streams),
                max_stream: 0,
                opened_in_window: 0,
                served_at_window_start: 0,
            },
            watch,
            tripped: false,
        }
    }
}

fn flood() -> io::Error {
    io::Error::other("HTTP/2 control-frame flood")
}

impl<T: AsyncRead> AsyncRead for FrameGuard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if *this.tripped {
            return Poll::Ready(Err(flood()));
        }
        let before = buf.filled().len();
        let res = this.inner.poll_read(cx, buf);
        if !this.counter.feed(&buf.filled()[before..], this.watch) {
            // The flood's last bytes are dropped with the connection: hyper never sees them.
            *this.tripped = true;
            buf.set_filled(before);
            metrics::counter!("gateway_h2_flood_closed_total").increment(1);
            tracing::debug!("closing an HTTP/2 connection that floods control frames");
            return Poll::Ready(Err(flood()));
        }
        res
    }
}

impl<T: AsyncWrite> AsyncWrite for FrameGuard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(limit: u32) -> FrameCounter {
        FrameCounter {
            phase: Phase::Preface(0),
            head: [0; 9],
            head_len: 0,
            skip: 0,
            window_start: Instant::now(),
            in_window: 0,
            limit,
            refused_limit: u64::from(limit),
            max_stream: 0,
            opened_in_window: 0,
            served_at_window_start: 0,
        }
    }

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            0,
            0,
            0,
            0,
            1,
        ];
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn http1_is_never_parsed() {
        let watch = ConnWatch::new();
        let mut c = counter(0);
        assert!(c.feed(b"GET / HTTP/1.1\r\n", &watch));
        assert!(c.feed(&frame(6, &[0; 8]), &watch));
        assert!(watch.h2_quiet().is_none());
    }

    #[test]
    fn control_frames_past_the_budget_trip_it_even_split_across_reads() {
        let watch = ConnWatch::new();
        let mut c = counter(3);
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(4, &[0; 6]));
        // A HEADERS frame with a payload that looks like PING headers is skipped, not parsed.
        bytes.extend(frame(1, &frame(6, &[0; 8])));
        bytes.extend(frame(6, &[0; 8]));
        bytes.extend(frame(6, &[0; 8]));
        for chunk in bytes.chunks(5) {
            assert!(c.feed(chunk, &watch));
        }
        assert!(watch.h2_quiet().is_some());
        assert!(
            !c.feed(&frame(3, &[0; 4]), &watch),
            "the fourth control frame"
        );
    }

    fn headers(stream: u32) -> Vec<u8> {
        let mut f = frame(HEADERS, &[0; 4]);
        f[5..9].copy_from_slice(&stream.to_be_bytes());
        f
    }

    #[test]
    fn streams_the_service_never_sees_trip_it_served_ones_and_trailers_do_not() {
        let watch = ConnWatch::new();
        let mut c = counter(2);
        assert!(c.feed(PREFACE, &watch));
        // Served streams, each with a trailers block: never counted.
        for id in [1, 3, 5, 7] {
            let _served = watch.stream_started();
            assert!(c.feed(&headers(id), &watch));
            assert!(c.feed(&headers(id), &watch), "trailers of stream {id}");
        }
        // Refused before the service: the third one trips it.
        assert!(c.feed(&headers(9), &watch));
        assert!(c.feed(&headers(11), &watch));
        assert!(!c.feed(&headers(13), &watch));
    }
}
