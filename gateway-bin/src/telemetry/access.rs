//! The access log: one line per request, written from the decision record into a per-thread
//! buffer that reaches stderr in batches.
//!
//! The line used to be a `tracing` event. Even with a hand-written text formatter it cost
//! about 9.7k instructions per request (a field visitor per value, a timestamp formatted from
//! scratch, the dispatch and filter) and one `write(2)` per line: at `info` the gateway served
//! about 0.8× what it served at `warn`, while nginx's own access log costs it next to nothing.
//! nginx's answer is a buffer (`access_log ... buffer=`); this is the same. Each line is written
//! field by field into the thread's buffer, with no formatting machinery beyond copying the
//! fields, and the buffer goes to stderr in one write:
//!
//! - when the runtime thread parks, i.e. at the end of the event-loop turn in which the lines
//!   were written ([`flush_local`], installed as the runtime's `on_thread_park` hook), so an
//!   idle gateway's log is as prompt as before;
//! - when it holds [`FLUSH_AT`] bytes, so a busy thread that never parks writes a 32 KiB batch
//!   instead of a line at a time;
//! - every [`TICK`] from a thread of its own (started with the log), for threads of a runtime
//!   without the hook (an embedder's) and anything else left behind;
//! - when its thread stops, and for every thread at [`flush_all`] (shutdown).
//!
//! The bytes are exactly what tracing-subscriber's `Full` text format and its flattened JSON
//! format printed for the old event (a test compares them), so nothing that reads the log
//! changes. Nothing here writes a token, a cookie or a secret: the line has no such field.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use route_core::trace::TraceId;

use crate::config::LogFormat;

/// The target the access line had as a `tracing` event (and still has in the JSON format's
/// `target` field): `RUST_LOG=access=off` or `level = "warn"` turns the log off.
pub(crate) const ACCESS_TARGET: &str = "access";

/// A buffer is written out once it holds this many bytes (about 100 lines).
pub const FLUSH_AT: usize = 32 * 1024;

/// How often the flushing thread writes out what the runtime threads have not.
pub const TICK: Duration = Duration::from_millis(200);

const OFF: u8 = 0;
const TEXT: u8 = 1;
const JSON: u8 = 2;

/// The access log's format, [`OFF`] until [`enable`] is called.
static FORMAT: AtomicU8 = AtomicU8::new(OFF);

/// Every thread's buffer, for the flushing thread and [`flush_all`]. Weak: a thread's buffer
/// goes (and is written out) with the thread.
static BUFFERS: Mutex<Vec<Weak<Mutex<Buffer>>>> = Mutex::new(Vec::new());

thread_local! {
    static LOCAL: Arc<Mutex<Buffer>> = {
        let buffer = Arc::new(Mutex::new(Buffer::default()));
        BUFFERS.lock().push(Arc::downgrade(&buffer));
        buffer
    };
}

/// Turns the access log on, in `format`. The first call decides; later calls (tests that start
/// several gateways in one process) change nothing.
pub(crate) fn enable(format: LogFormat) {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let code = match format {
            LogFormat::Pretty => TEXT,
            LogFormat::Json => JSON,
        };
        FORMAT.store(code, Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(|| loop {
                std::thread::sleep(TICK);
                flush_all();
            });
        if let Err(e) = spawned {
            // The hooks and the size bound still write everything; an embedder's idle
            // runtime thread may hold its last lines until it stops.
            tracing::warn!(error = %e, "access log flushing thread not started");
        }
    });
}

/// Whether access lines are written at all.
pub(crate) fn enabled() -> bool {
    FORMAT.load(Ordering::Relaxed) != OFF
}

/// Writes out this thread's buffered lines. The gateway's runtimes call it when a thread
/// parks or stops; an embedder running the gateway on a runtime of its own can install it as
/// `on_thread_park` too (without it, lines wait at most [`TICK`]).
pub fn flush_local() {
    // `try_with`: a hook may run while the thread's locals are being torn down.
    let _ = LOCAL.try_with(|b| {
        let mut b = b.lock();
        if !b.bytes.is_empty() {
            b.write_out();
        }
    });
}

/// Writes out every thread's buffered lines (the flushing thread, and shutdown).
pub fn flush_all() {
    let buffers: Vec<Arc<Mutex<Buffer>>> = {
        let mut all = BUFFERS.lock();
        all.retain(|w| w.strong_count() > 0);
        all.iter().filter_map(Weak::upgrade).collect()
    };
    for b in buffers {
        let mut b = b.lock();
        if !b.bytes.is_empty() {
            b.write_out();
        }
    }
}

/// One request's access line: the decision record's fields and what `Front` measured.
pub(crate) struct Line<'a> {
    pub method: &'a http::Method,
    pub host: Option<&'a str>,
    pub service: Option<&'a str>,
    pub status: u16,
    pub role: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub latency: Duration,
    pub client: Option<SocketAddr>,
    pub reason: &'a str,
    pub credential: &'a str,
    pub resolver: Option<&'a str>,
    pub requested_role: Option<&'a str>,
    pub upstream: Option<&'a str>,
    pub detail: Option<&'a str>,
    pub trace_id: Option<TraceId>,
}

/// Appends `line` to this thread's buffer (a no-op while the log is off).
pub(crate) fn write(line: &Line<'_>) {
    let format = FORMAT.load(Ordering::Relaxed);
    if format == OFF {
        return;
    }
    let now = SystemTime::now();
    let _ = LOCAL.try_with(|b| {
        let mut b = b.lock();
        let b = &mut *b;
        let stamp = b.clock.stamp(now);
        if format == JSON {
            json_line(&mut b.bytes, &stamp, line);
        } else {
            text_line(&mut b.bytes, &stamp, line);
        }
        if b.bytes.len() >= FLUSH_AT {
            b.write_out();
        }
    });
}

/// A thread's lines not yet written, and its clock.
#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    clock: Clock,
}

impl Buffer {
    fn write_out(&mut self) {
        // One write for the whole batch, under stderr's lock, so that lines from other threads
        // and other log events never land inside one.
        self.write_to(&mut std::io::stderr().lock());
    }

    fn write_to(&mut self, w: &mut dyn Write) {
        // A failed write (stderr closed) drops the batch: there is nowhere else to report it,
        // and keeping it would grow without bound.
        let _ = w.write_all(&self.bytes);
        self.bytes.clear();
        if self.bytes.capacity() > 4 * FLUSH_AT {
            self.bytes.shrink_to(FLUSH_AT);
        }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if !self.bytes.is_empty() {
            self.write_out();
        }
    }
}

/// RFC 3339 timestamps with microseconds, the date and time formatted once per second.
#[derive(Default)]
struct Clock {
    second: u64,
    /// `YYYY-MM-DDTHH:MM:SS` of `second`.
    prefix: [u8; 19],
}

impl Clock {
    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ` for `now`.
    fn stamp(&mut self, now: SystemTime) -> [u8; 27] {
        let since = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        if since.as_secs() != self.second || self.prefix[0] == 0 {
            let whole = SystemTime::UNIX_EPOCH + Duration::from_secs(since.as_secs());
            let text = humantime::format_rfc3339_seconds(whole).to_string();
            // `YYYY-MM-DDTHH:MM:SSZ` for every year humantime formats (up to 9999).
            if let Some(p) = text.as_bytes().get(..19) {
                self.prefix.copy_from_slice(p);
                self.second = since.as_secs();
            }
        }
        let mut out = [0u8; 27];
        out[..19].copy_from_slice(&self.prefix);
        out[19] = b'.';
        let mut micros = since.subsec_micros();
        for slot in out[20..26].iter_mut().rev() {
            // A digit: `micros % 10` is below 10.
            *slot = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        out[26] = b'Z';
        out
    }
}

/// The `-` written for a field with no value.
const DASH: &str = "-";

/// The line in tracing-subscriber's `Full` text format with colours off: `name=value` pairs,
/// strings quoted and escaped as `Debug` escapes them, so that a client-chosen host cannot
/// start a field or a line of its own.
fn text_line(out: &mut Vec<u8>, stamp: &[u8], l: &Line<'_>) {
    // Each constant carries the quote that closes the field before it and the one that
    // opens its own, so that a plain field costs two copies.
    out.reserve(512);
    out.extend_from_slice(stamp);
    out.extend_from_slice(b"  INFO access: method=");
    out.extend_from_slice(l.method.as_str().as_bytes());
    text_str(out, b" host=\"", l.host);
    text_str(out, b"\" service=\"", l.service);
    out.extend_from_slice(b"\" status=");
    out.extend_from_slice(itoa::Buffer::new().format(l.status).as_bytes());
    text_str(out, b" role=\"", l.role);
    text_str(out, b"\" user_id=\"", l.user_id);
    out.extend_from_slice(b"\" latency_ms=");
    latency(out, l.latency);
    out.extend_from_slice(b" client=");
    client(out, l.client);
    text_str(out, b" reason=\"", Some(l.reason));
    text_str(out, b"\" credential=\"", Some(l.credential));
    text_str(out, b"\" resolver=\"", l.resolver);
    text_str(out, b"\" requested_role=\"", l.requested_role);
    text_str(out, b"\" upstream=\"", l.upstream);
    text_str(out, b"\" detail=\"", l.detail);
    out.extend_from_slice(b"\" trace_id=");
    trace_id(out, l.trace_id);
    out.push(b'\n');
}

/// The line as tracing-subscriber's JSON format with `flatten_event(true)` printed it: the
/// timestamp, the level, the fields in order, then the target.
fn json_line(out: &mut Vec<u8>, stamp: &[u8], l: &Line<'_>) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    out.extend_from_slice(stamp);
    out.extend_from_slice(b"\",\"level\":\"INFO\"");
    json_str(out, b",\"method\":", Some(l.method.as_str()));
    json_str(out, b",\"host\":", l.host);
    json_str(out, b",\"service\":", l.service);
    out.extend_from_slice(b",\"status\":");
    out.extend_from_slice(itoa::Buffer::new().format(l.status).as_bytes());
    json_str(out, b",\"role\":", l.role);
    json_str(out, b",\"user_id\":", l.user_id);
    out.extend_from_slice(b",\"latency_ms\":");
    latency(out, l.latency);
    out.extend_from_slice(b",\"client\":\"");
    client(out, l.client);
    out.push(b'"');
    json_str(out, b",\"reason\":", Some(l.reason));
    json_str(out, b",\"credential\":", Some(l.credential));
    json_str(out, b",\"resolver\":", l.resolver);
    json_str(out, b",\"requested_role\":", l.requested_role);
    json_str(out, b",\"upstream\":", l.upstream);
    json_str(out, b",\"detail\":", l.detail);
    out.extend_from_slice(b",\"trace_id\":\"");
    trace_id(out, l.trace_id);
    out.extend_from_slice(b"\",\"target\":\"access\"}\n");
}

/// Printable ASCII without quote or backslash: copied as it is in both formats (the usual
/// host, role, user id and reason).
fn plain(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

/// Writes `prefix` (which ends with the opening quote) and the value, without its closing
/// quote: the next constant carries it.
fn text_str(out: &mut Vec<u8>, prefix: &[u8], value: Option<&str>) {
    let value = value.unwrap_or(DASH);
    if plain(value) {
        out.extend_from_slice(prefix);
        out.extend_from_slice(value.as_bytes());
    } else {
        // Client-chosen bytes: escaped exactly as `Debug` escapes them (quotes included, the
        // closing one taken off for the next constant). Writing to a `Vec` cannot fail.
        out.extend_from_slice(&prefix[..prefix.len() - 1]);
        let _ = write!(out, "{value:?}");
        out.pop();
    }
}

fn json_str(out: &mut Vec<u8>, name: &[u8], value: Option<&str>) {
    out.extend_from_slice(name);
    let value = value.unwrap_or(DASH);
    if plain(value) {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else if serde_json::to_writer(&mut *out, value).is_err() {
        // Serialising a `str` into a `Vec` does not fail; should it, the line stays valid.
        out.extend_from_slice(b"\"-\"");
    }
}

/// Milliseconds as the shortest decimal that reads back as the same `f64`, as `Debug` prints it.
fn latency(out: &mut Vec<u8>, elapsed: Duration) {
    let ms = elapsed.as_secs_f64() * 1000.0;
    out.extend_from_slice(ryu::Buffer::new().format(ms).as_bytes());
}

fn client(out: &mut Vec<u8>, addr: Option<SocketAddr>) {
    match addr {
        Some(SocketAddr::V4(a)) => {
            let mut n = itoa::Buffer::new();
            for (i, octet) in a.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(n.format(octet).as_bytes());
            }
            out.push(b':');
            out.extend_from_slice(n.format(a.port()).as_bytes());
        }
        Some(a) => {
            let _ = write!(out, "{a}");
        }
        None => out.extend_from_slice(DASH.as_bytes()),
    }
}

fn trace_id(out: &mut Vec<u8>, id: Option<TraceId>) {
    match id {
        Some(id) => out.extend_from_slice(&id.to_hex()),
        None => out.extend_from_slice(DASH.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use tracing::Level;

    use super::*;

    /// A log sink the test reads back.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    struct Owned {
        method: http::Method,
        host: Option<String>,
        service: Option<&'static str>,
        status: u16,
        role: Option<&'static str>,
        user_id: Option<String>,
        latency: Duration,
        client: Option<SocketAddr>,
        reason: &'static str,
        detail: Option<String>,
        trace_id: Option<TraceId>,
    }

    impl Owned {
        fn line(&self) -> Line<'_> {
            Line {
                method: &self.method,
                host: self.host.as_deref(),
                service: self.service,
                status: self.status,
                role: self.role,
                user_id: self.user_id.as_deref(),
                latency: self.latency,
                client: self.client,
                reason: self.reason,
                credential: "bearer",
                resolver: Some("sessions"),
                requested_role: None,
                upstream: Some("http://127.0.0.1:8080/"),
                detail: self.detail.as_deref(),
                trace_id: self.trace_id,
            }
        }

        /// The event the access line was before it was written directly (front.rs at
        /// cc5b0c7), field for field.
        fn emit(&self) {
            let l = self.line();
            struct OrDash<T>(Option<T>);
            impl<T: std::fmt::Display> std::fmt::Display for OrDash<T> {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    match &self.0 {
                        Some(v) => v.fmt(f),
                        None => f.write_str("-"),
                    }
                }
            }
            tracing::info!(
                target: "access",
                method = %l.method,
                host = l.host.unwrap_or("-"),
                service = l.service.unwrap_or("-"),
                status = l.status,
                role = l.role.unwrap_or("-"),
                user_id = l.user_id.unwrap_or("-"),
                latency_ms = l.latency.as_secs_f64() * 1000.0,
                client = %OrDash(l.client),
                reason = l.reason,
                credential = l.credential,
                resolver = l.resolver.unwrap_or("-"),
                requested_role = l.requested_role.unwrap_or("-"),
                upstream = l.upstream.unwrap_or("-"),
                detail = l.detail.unwrap_or("-"),
                trace_id = %OrDash(l.trace_id),
            );
        }
    }

    fn cases() -> Vec<Owned> {
        let hosts = [
            "data.example.com",
            "",
            "quote\"d",
            "back\\slash",
            "tab\there",
            "new\nline",
            "del\u{7f}",
            "caf\u{e9}.example",
            "esc\u{1b}[31mred",
            "x=1 y=\"2\"",
        ];
        let mut all: Vec<Owned> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| Owned {
                method: http::Method::POST,
                host: Some((*h).to_owned()),
                service: Some("data"),
                status: 502,
                role: Some("user"),
                user_id: Some(format!("4{i}")),
                latency: Duration::from_nanos(1_250_000 + 37_913 * i as u64),
                client: Some(([127, 0, 0, 1], 4242).into()),
                reason: "upstream-unreachable",
                detail: Some(format!("roles \"a\", {h}")),
                trace_id: Some(TraceId([i as u8 + 1; 16])),
            })
            .collect();
        all.push(Owned {
            method: http::Method::from_bytes(b"PURGE").unwrap(),
            host: None,
            service: None,
            status: 404,
            role: None,
            user_id: None,
            latency: Duration::from_nanos(26_821),
            client: None,
            reason: "unknown-host",
            detail: None,
            trace_id: None,
        });
        all.push(Owned {
            method: http::Method::GET,
            host: Some("v6.example".into()),
            service: Some("a"),
            status: 200,
            role: Some("anonymous"),
            user_id: Some("0".into()),
            latency: Duration::from_secs(3) + Duration::from_nanos(7),
            client: Some("[2001:db8::1]:65535".parse().unwrap()),
            reason: "allowed",
            detail: None,
            trace_id: Some(TraceId([0xab; 16])),
        });
        all
    }

    /// The lines tracing-subscriber writes for the old event, in `format`.
    fn theirs(format: LogFormat) -> String {
        let sink = Sink::default();
        let writer = sink.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(Level::TRACE)
            .with_writer(move || writer.clone());
        let emit = || cases().iter().for_each(Owned::emit);
        match format {
            LogFormat::Pretty => tracing::subscriber::with_default(builder.finish(), emit),
            LogFormat::Json => {
                tracing::subscriber::with_default(builder.json().flatten_event(true).finish(), emit)
            }
        }
        let bytes = sink.0.lock().clone();
        String::from_utf8(bytes).unwrap()
    }

    fn ours(format: LogFormat) -> String {
        let mut out = Vec::new();
        let mut clock = Clock::default();
        for c in cases() {
            let stamp = clock.stamp(SystemTime::now());
            match format {
                LogFormat::Pretty => text_line(&mut out, &stamp, &c.line()),
                LogFormat::Json => json_line(&mut out, &stamp, &c.line()),
            }
        }
        String::from_utf8(out).unwrap()
    }

    /// The lines with their timestamps replaced by `T`, each checked to be RFC 3339 with
    /// microseconds.
    fn untimed(log: &str, json: bool) -> Vec<String> {
        log.lines()
            .map(|line| {
                let (start, end) = if json {
                    let start = "{\"timestamp\":\"".len();
                    (start, start + 27)
                } else {
                    (0, 27)
                };
                let ts = &line[start..end];
                assert!(humantime::parse_rfc3339(ts).is_ok(), "{line}");
                assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{line}");
                format!("{}T{}", &line[..start], &line[end..])
            })
            .collect()
    }

    #[test]
    fn text_lines_are_byte_for_byte_what_the_full_format_wrote() {
        let ours = untimed(&ours(LogFormat::Pretty), false);
        let theirs = untimed(&theirs(LogFormat::Pretty), false);
        assert_eq!(ours.len(), cases().len());
        assert_eq!(ours, theirs);
        assert_eq!(
            ours[0],
            "T  INFO access: method=POST host=\"data.example.com\" service=\"data\" status=502 \
             role=\"user\" user_id=\"40\" latency_ms=1.25 client=127.0.0.1:4242 \
             reason=\"upstream-unreachable\" credential=\"bearer\" resolver=\"sessions\" \
             requested_role=\"-\" upstream=\"http://127.0.0.1:8080/\" detail=\"roles \\\"a\\\", \
             data.example.com\" trace_id=01010101010101010101010101010101"
        );
        // A client cannot start a field or a line of its own through the host it sends.
        assert!(ours[4].contains(r#"host="tab\there""#), "{}", ours[4]);
        assert!(ours[5].contains(r#"host="new\nline""#), "{}", ours[5]);
        assert!(ours[9].contains(r#"host="x=1 y=\"2\"""#), "{}", ours[9]);
    }

    #[test]
    fn json_lines_are_byte_for_byte_what_the_json_format_wrote() {
        let ours_raw = ours(LogFormat::Json);
        let ours = untimed(&ours_raw, true);
        let theirs = untimed(&theirs(LogFormat::Json), true);
        assert_eq!(ours.len(), cases().len());
        assert_eq!(ours, theirs);
        for (line, case) in ours_raw.lines().zip(cases()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["target"], "access");
            assert_eq!(v["host"], case.host.as_deref().unwrap_or("-"), "{line}");
        }
    }

    #[test]
    fn the_clock_reformats_only_when_the_second_changes() {
        let mut clock = Clock::default();
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_764_000_000_123_456);
        assert_eq!(&clock.stamp(t), b"2025-11-24T16:00:00.123456Z");
        assert_eq!(
            &clock.stamp(t + Duration::from_micros(7)),
            b"2025-11-24T16:00:00.123463Z"
        );
        assert_eq!(
            &clock.stamp(t + Duration::from_secs(61)),
            b"2025-11-24T16:01:01.123456Z"
        );
        assert_eq!(
            &clock.stamp(SystemTime::UNIX_EPOCH),
            b"1970-01-01T00:00:00.000000Z"
        );
    }

    #[test]
    fn a_full_buffer_is_written_out_and_a_thread_leaves_nothing_behind() {
        let mut b = Buffer::default();
        let c = &cases()[0];
        let stamp = b.clock.stamp(SystemTime::now());
        let mut lines = 0;
        while b.bytes.len() < FLUSH_AT {
            text_line(&mut b.bytes, &stamp, &c.line());
            lines += 1;
        }
        assert!(lines > 50, "{lines} lines fill a buffer");
        let len = b.bytes.len();
        let mut sink = Vec::new();
        b.write_to(&mut sink);
        assert_eq!(sink.len(), len);
        assert_eq!(sink.iter().filter(|&&c| c == b'\n').count(), lines);
        assert!(b.bytes.is_empty());
        assert!(b.bytes.capacity() >= FLUSH_AT, "the capacity is kept");

        // A thread's buffer is registered and goes with the thread.
        let before = BUFFERS
            .lock()
            .iter()
            .filter(|w| w.strong_count() > 0)
            .count();
        let registered = std::thread::spawn(move || {
            LOCAL.with(|_| ());
            BUFFERS
                .lock()
                .iter()
                .filter(|w| w.strong_count() > 0)
                .count()
        })
        .join()
        .unwrap();
        assert!(registered > before);
        flush_all();
        assert!(
            BUFFERS.lock().iter().all(|w| w.strong_count() > 0),
            "flush_all forgets the buffers of stopped threads"
        );
    }
}
