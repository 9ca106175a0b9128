//! Per-connection facts that the listener hands to the request path.

use std::net::SocketAddr;
use std::sync::Arc;

/// Per-connection facts the listener inserts into every request's extensions.
///
/// The proxy reads it to rebuild `X-Forwarded-*` and `Forwarded`. When it is absent
/// (a test, or an embedding that does not set it) the client address is treated as
/// unknown and the scheme as plain `http`.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    /// The peer address of the downstream TCP connection.
    pub remote_addr: SocketAddr,
    /// The local address the connection was accepted on.
    pub local_addr: SocketAddr,
    /// Whether the connection is TLS (so the client's scheme is `https`).
    pub tls: bool,
    /// The TLS SNI name the client sent, if any.
    pub sni: Option<Arc<str>>,
}
