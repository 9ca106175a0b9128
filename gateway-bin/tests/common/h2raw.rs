//! A raw-frame HTTP/2 client for the abuse tests (h2_floods.rs, h2_abuse.rs): frames are built
//! by hand as bytes on a socket, because the `h2` crate's frame types need its semver-exempt
//! `unstable` feature and refuse to send what an attacker sends. Header blocks use HPACK literals
//! without Huffman coding, which any decoder must accept (RFC 7541 §6.2).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// RST_STREAM / GOAWAY error codes (RFC 9113 §7).
pub const PROTOCOL_ERROR: u32 = 0x1;
pub const REFUSED_STREAM: u32 = 0x7;
pub const COMPRESSION_ERROR: u32 = 0x9;
pub const CANCEL: u32 = 0x8;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// One frame as bytes.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    assert!(len < 1 << 24);
    let mut f = Vec::with_capacity(9 + len);
    f.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK integer with an `n`-bit prefix whose high bits are `first` (RFC 7541 §5.1).
pub fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

fn hpack_str(out: &mut Vec<u8>, s: &[u8]) {
    hpack_int(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

/// A literal header field without indexing, new name (RFC 7541 §6.2.2): bytes in, bytes out,
/// so a value may carry CR, LF or NUL.
pub fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x00);
    hpack_str(out, name);
    hpack_str(out, value);
}

/// A literal header field with incremental indexing, new name (RFC 7541 §6.2.1): the decoder
/// adds it to its dynamic table, at index 62 (the newest entry).
pub fn literal_indexed(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x40);
    hpack_str(out, name);
    hpack_str(out, value);
}

/// An indexed header field (RFC 7541 §6.1): one byte for a small index.
pub fn indexed(out: &mut Vec<u8>, index: usize) {
    hpack_int(out, 0x80, 7, index);
}

/// A header block for a request: the pseudo-headers, then `extra` fields.
pub fn request_block(
    method: &str,
    authority: &str,
    path: &str,
    extra: &[(&[u8], &[u8])],
) -> Vec<u8> {
    let mut b = Vec::new();
    literal(&mut b, b":method", method.as_bytes());
    literal(&mut b, b":scheme", b"https");
    literal(&mut b, b":authority", authority.as_bytes());
    literal(&mut b, b":path", path.as_bytes());
    for (n, v) in extra {
        literal(&mut b, n, v);
    }
    b
}

/// A frame read back from the server.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of a RST_STREAM or GOAWAY frame.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            RST_STREAM => 0,
            GOAWAY => 4,
            _ => return None,
        };
        let b = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The `:status` of a HEADERS frame the server sent, when its block starts with a static
    /// table `:status` entry (what h2 sends for 200, 204, 206, 304, 400, 404, 500) or a
    /// literal with a `:status` name (other codes; h2 Huffman-codes the value). `None` for a
    /// reference to the dynamic table (a code this connection has seen before).
    pub fn status(&self) -> Option<u16> {
        if self.kind != HEADERS {
            return None;
        }
        let p = &self.payload;
        let first = *p.first()?;
        let by_index = [200, 204, 206, 304, 400, 404, 500];
        let name_index = if first & 0x80 != 0 {
            let i = usize::from(first & 0x7f);
            return by_index.get(i.checked_sub(8)?).copied();
        } else if first & 0xc0 == 0x40 {
            first & 0x3f
        } else {
            first & 0x0f
        };
        if !(8..=14).contains(&name_index) {
            return None;
        }
        let head = *p.get(1)?;
        let value = p.get(2..2 + usize::from(head & 0x7f))?;
        let text = if head & 0x80 != 0 {
            huffman_digits(value)?
        } else {
            String::from_utf8(value.to_vec()).ok()?
        };
        text.parse().ok()
    }
}

/// Decodes a Huffman-coded string of ASCII digits (RFC 7541 Appendix B: '0'-'2' take 5 bits,
/// '3'-'9' take 6), which is all a `:status` value holds.
fn huffman_digits(bytes: &[u8]) -> Option<String> {
    let bits: Vec<u8> = bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
        .collect();
    let read = |at: usize, n: usize| -> Option<u8> {
        let s = bits.get(at..at + n)?;
        Some(s.iter().fold(0, |acc, b| acc << 1 | b))
    };
    let mut out = String::new();
    let mut at = 0;
    while at < bits.len() {
        // The rest is EOS padding: all ones, shorter than a byte.
        if bits.len() - at < 8 && bits[at..].iter().all(|b| *b == 1) {
            break;
        }
        match read(at, 5)? {
            v @ 0..=2 => {
                out.push(char::from(b'0' + v));
                at += 5;
            }
            _ => {
                let v = read(at, 6)?;
                if !(0b011001..=0b011111).contains(&v) {
                    return None;
                }
                out.push(char::from(b'0' + 3 + (v - 0b011001)));
                at += 6;
            }
        }
    }
    Some(out)
}

/// Anything a raw client can speak over.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// The read half of a raw HTTP/2 connection.
pub struct Reader {
    rd: ReadHalf<Box<dyn Io>>,
    buf: Vec<u8>,
}

impl Reader {
    /// The next frame, or `None` at EOF, on a reset, or when `wait` passes.
    pub async fn next(&mut self, wait: Duration) -> Option<Frame> {
        tokio::time::timeout(wait, self.next_frame())
            .await
            .ok()
            .flatten()
    }

    async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if self.buf.len() >= 9 {
                let len = (usize::from(self.buf[0]) << 16)
                    | (usize::from(self.buf[1]) << 8)
                    | usize::from(self.buf[2]);
                if self.buf.len() >= 9 + len {
                    let f = Frame {
                        kind: self.buf[3],
                        flags: self.buf[4],
                        stream: u32::from_be_bytes([
                            self.buf[5],
                            self.buf[6],
                            self.buf[7],
                            self.buf[8],
                        ]) & 0x7fff_ffff,
                        payload: self.buf[9..9 + len].to_vec(),
                    };
                    self.buf.drain(..9 + len);
                    return Some(f);
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.rd.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads until the server closes the connection (EOF or reset) or `wait` passes; returns
    /// every frame read and whether the connection closed.
    pub async fn until_closed(&mut self, wait: Duration) -> (Vec<Frame>, bool) {
        let deadline = tokio::time::Instant::now() + wait;
        let mut frames = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.next_frame()).await {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => return (frames, true),
                Err(_) => return (frames, false),
            }
        }
    }
}

/// A raw HTTP/2 connection, split so that a flood can be written while frames are read.
pub struct Conn {
    pub rd: Reader,
    pub wr: WriteHalf<Box<dyn Io>>,
}

impl Conn {
    /// Sends the preface and an empty SETTINGS frame over `io`.
    pub async fn start(io: Box<dyn Io>) -> std::io::Result<Conn> {
        let (rd, mut wr) = tokio::io::split(io);
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &[]));
        wr.write_all(&hello).await?;
        Ok(Conn {
            rd: Reader {
                rd,
                buf: Vec::new(),
            },
            wr,
        })
    }

    /// h2c with prior knowledge on 127.0.0.1:`port`.
    pub async fn h2c(port: u16) -> std::io::Result<Conn> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        tcp.set_nodelay(true)?;
        Conn::start(Box::new(tcp)).await
    }

    /// HTTP/2 over TLS (ALPN `h2`) on 127.0.0.1:`port`, trusting `tls`'s roots.
    pub async fn tls(port: u16, tls: &TlsClient, sni: &str) -> std::io::Result<Conn> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        tcp.set_nodelay(true)?;
        let name = rustls::pki_types::ServerName::try_from(sni.to_owned())
            .map_err(std::io::Error::other)?;
        let stream = tls.connector.connect(name, tcp).await?;
        assert_eq!(
            stream.get_ref().1.alpn_protocol(),
            Some(&b"h2"[..]),
            "ALPN negotiates h2"
        );
        Conn::start(Box::new(stream)).await
    }

    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.wr.write_all(bytes).await
    }

    /// Reads frames until the server's SETTINGS arrives, and acknowledges it.
    pub async fn handshake(&mut self) {
        loop {
            let f = self
                .rd
                .next(Duration::from_secs(10))
                .await
                .expect("the server's SETTINGS");
            if f.kind == SETTINGS && f.flags & ACK == 0 {
                self.send(&frame(SETTINGS, ACK, 0, &[])).await.unwrap();
                return;
            }
        }
    }
}

/// A TLS connector that trusts one CA and offers ALPN `h2`.
#[derive(Clone)]
pub struct TlsClient {
    pub connector: tokio_rustls::TlsConnector,
}

impl TlsClient {
    pub fn new(ca_pem: &[u8]) -> TlsClient {
        let mut config = super::client_config_trusting(ca_pem);
        config.alpn_protocols = vec![b"h2".to_vec()];
        TlsClient {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        }
    }
}
