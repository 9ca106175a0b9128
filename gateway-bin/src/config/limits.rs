//! `[limits]`: connection and request limits.

use std::time::Duration;

use super::raw;
use super::validate::Validator;

/// Connection and request limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// How long a client may take to send a request head (also the HTTP/1 keep-alive wait).
    pub header_read_timeout: Duration,
    /// A connection with no bytes moving in either direction for this long is closed.
    pub idle_timeout: Duration,
    /// How long a TLS handshake may take.
    pub tls_handshake_timeout: Duration,
    /// The largest request head, in bytes (431 above it).
    pub max_header_bytes: usize,
    /// The most request headers (431 above it).
    pub max_headers: usize,
    /// The default request body limit (413 above it); a service may override it.
    pub max_body_bytes: u64,
    /// The most open client connections; more are refused at once.
    pub max_connections: usize,
    /// The most concurrent HTTP/2 streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// The most PING, SETTINGS, PRIORITY and RST_STREAM frames an HTTP/2 client may send in
    /// one second; past it the connection is closed (floods, SECURITY-CASES 25).
    pub h2_max_control_frames_per_second: u32,
    /// How long in-flight requests get to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// A WebSocket tunnel with no bytes moving in either direction for this long is closed.
    pub tunnel_idle_timeout: Duration,
}

impl Validator<'_> {
    pub(super) fn limits(&mut self, l: raw::RawLimits) -> Limits {
        Limits {
            header_read_timeout: self.duration(
                "limits.header_read_timeout",
                l.header_read_timeout,
                Duration::from_secs(10),
            ),
            idle_timeout: self.duration(
                "limits.idle_timeout",
                l.idle_timeout,
                Duration::from_secs(60),
            ),
            tls_handshake_timeout: self.duration(
                "limits.tls_handshake_timeout",
                l.tls_handshake_timeout,
                Duration::from_secs(10),
            ),
            max_header_bytes: self.number(
                "limits.max_header_bytes",
                l.max_header_bytes,
                16 * 1024,
                8192,
                1024 * 1024,
            ) as usize,
            max_headers: self.number("limits.max_headers", l.max_headers, 100, 8, 1000) as usize,
            max_body_bytes: self.number(
                "limits.max_body_bytes",
                l.max_body_bytes,
                10 * 1024 * 1024,
                0,
                u64::MAX,
            ),
            max_connections: self.number(
                "limits.max_connections",
                l.max_connections,
                10_000,
                1,
                10_000_000,
            ) as usize,
            h2_max_concurrent_streams: self.number(
                "limits.h2_max_concurrent_streams",
                l.h2_max_concurrent_streams,
                100,
                1,
                10_000,
            ) as u32,
            h2_max_control_frames_per_second: self.number(
                "limits.h2_max_control_frames_per_second",
                l.h2_max_control_frames_per_second,
                1000,
                10,
                1_000_000,
            ) as u32,
            shutdown_grace: self.duration(
                "limits.shutdown_grace",
                l.shutdown_grace,
                Duration::from_secs(30),
            ),
            tunnel_idle_timeout: self.duration(
                "limits.tunnel_idle_timeout",
                l.tunnel_idle_timeout,
                Duration::from_secs(300),
            ),
        }
    }
}
