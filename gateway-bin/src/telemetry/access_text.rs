//! The text log format, with a fast path for the access log line.
//!
//! The access line is written once per request, and tracing-subscriber's `Full` formatter
//! spent about 14.7k instructions on it (+30% per proxied request, `bench/instructions` with
//! `BENCH_LOG_LEVEL=info`): each field name goes through `nu_ansi_term` styles even with
//! colours off, each value through `Debug`, and the timestamp is computed from scratch. Text
//! logs are the default, so every default deployment paid it. [`TextFormat`] writes that one
//! line itself, byte for byte as `Full` writes it (a test compares the two), and hands every
//! other event, and every event when colours are on, to `Full` unchanged.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::SystemTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The target of the per-request access log line (`front.rs`).
pub(crate) const ACCESS_TARGET: &str = "access";

#[cfg(test)]
thread_local! {
    /// Access lines this thread wrote by the fast path, so that a test can tell it ran. Per
    /// thread: tests running in parallel may log through a global subscriber of their own.
    static FAST_LINES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// tracing-subscriber's `Full` text format, with the access line written directly.
#[derive(Debug, Default)]
pub(crate) struct TextFormat {
    full: Format<Full, SystemTime>,
}

impl TextFormat {
    /// Whether `Full` would print this event exactly as the fast path does: the access
    /// target at INFO, no colours, no span around it (`Full` prints the span scope) and no
    /// message (`Full` prints it first, unnamed and sanitised).
    fn fast<S, N>(ctx: &FmtContext<'_, S, N>, writer: &Writer<'_>, event: &Event<'_>) -> bool
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        let meta = event.metadata();
        meta.target() == ACCESS_TARGET
            && *meta.level() == Level::INFO
            && !writer.has_ansi_escapes()
            && meta.fields().field("message").is_none()
            && ctx.event_scope().is_none()
    }
}

impl<S, N> FormatEvent<S, N> for TextFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if !Self::fast(ctx, &writer, event) {
            return self.full.format_event(ctx, writer, event);
        }
        #[cfg(test)]
        FAST_LINES.set(FAST_LINES.get() + 1);
        // `Full`: the timestamp and a space, the level padded to five, the target and ": ".
        write!(
            writer,
            "{}  INFO {ACCESS_TARGET}: ",
            humantime::format_rfc3339_micros(std::time::SystemTime::now())
        )?;
        let mut fields = Fields {
            writer: &mut writer,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// Writes `name=value` pairs separated by spaces, as `Full`'s default field visitor does with
/// colours off: a string is quoted and escaped as `Debug` does, anything else is its `Debug`.
struct Fields<'w, 'a> {
    writer: &'w mut Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn name(&mut self, field: &Field) -> fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.writer.write_char(' ')?;
        }
        let name = field.name();
        // `Full` drops the raw-identifier prefix.
        self.writer
            .write_str(name.strip_prefix("r#").unwrap_or(name))?;
        self.writer.write_char('=')
    }

    fn record(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.name(field).and_then(|()| value(self.writer));
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, |w| {
            // A string that `Debug` would not escape (printable ASCII without quote or
            // backslash, the usual host, role and user id) is copied between quotes; any
            // other goes through `Debug`, so client-chosen bytes are escaped exactly as before.
            if value
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
            {
                w.write_char('"')?;
                w.write_str(value)?;
                w.write_char('"')
            } else {
                write!(w, "{value:?}")
            }
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record(field, |w| write!(w, "{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record(field, |w| write!(w, "{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Arc;

    use super::*;

    /// A log sink the test reads back.
    #[derive(Clone, Default)]
    struct Sink(Arc<parking_lot::Mutex<Vec<u8>>>);

    impl io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What `emit` logs, with tracing-subscriber's own `Full` format or with [`TextFormat`].
    fn capture(ours: bool, emit: &dyn Fn()) -> String {
        let sink = Sink::default();
        let writer = sink.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(Level::TRACE)
            .with_writer(move || writer.clone());
        if ours {
            let subscriber = builder.event_format(TextFormat::default()).finish();
            tracing::subscriber::with_default(subscriber, emit);
        } else {
            tracing::subscriber::with_default(builder.finish(), emit);
        }
        let bytes = sink.0.lock().clone();
        String::from_utf8(bytes).unwrap()
    }

    /// The lines without their timestamps, each checked to be RFC 3339 with microseconds.
    fn untimed(log: &str) -> Vec<String> {
        log.lines()
            .map(|line| {
                let (ts, rest) = line.split_once(' ').unwrap();
                assert_eq!(ts.len(), "2026-11-29T04:55:24.844208Z".len(), "{line}");
                assert!(humantime::parse_rfc3339(ts).is_ok(), "{line}");
                rest.to_owned()
            })
            .collect()
    }

    fn access_line(host: &str, client: Option<std::net::SocketAddr>) {
        tracing::info!(
            target: "access",
            method = %http::Method::POST,
            host,
            service = "data",
            status = 502u16,
            role = "user",
            user_id = "42",
            latency_ms = 1.25f64,
            client = %crate::front::OrDash(client),
        );
    }

    #[test]
    fn access_lines_are_written_exactly_as_the_full_format_writes_them() {
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
        let emit = || {
            for host in hosts {
                access_line(host, Some(([127, 0, 0, 1], 4242).into()));
            }
            access_line("-", None);
            // Not on the fast path: another level, a message, a span, another target.
            tracing::warn!(target: "access", host = "w.example", status = 1u16);
            tracing::info!(target: "access", host = "m.example", "with a message");
            tracing::info_span!("conn", peer = 7).in_scope(|| access_line("span.example", None));
            tracing::info!(host = "other.example", "not the access log");
        };
        let before = FAST_LINES.get();
        let ours = capture(true, &emit);
        assert_eq!(FAST_LINES.get() - before, hosts.len() + 1);
        let theirs = capture(false, &emit);
        let (ours, theirs) = (untimed(&ours), untimed(&theirs));
        assert_eq!(ours.len(), hosts.len() + 5);
        assert_eq!(ours, theirs);
        assert_eq!(
            ours[0],
            " INFO access: method=POST host=\"data.example.com\" service=\"data\" status=502 \
             role=\"user\" user_id=\"42\" latency_ms=1.25 client=127.0.0.1:4242"
        );
        // A client cannot start a field or a line of its own through the host it sends.
        assert!(ours[4].contains(r#"host="tab\there""#), "{}", ours[4]);
        assert!(ours[9].contains(r#"host="x=1 y=\"2\"""#), "{}", ours[9]);
    }
}
