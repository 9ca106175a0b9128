//! Just enough HTTP/1.1 for the load clients: a fixed GET and a response reader that knows
//! `Content-Length` and chunked bodies. A full client (hyper) would cost more CPU than the
//! proxies under test on the shared core.

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::Res;

/// `GET /` for `host`, with a bearer token when there is one. Same bytes as `bench/lua/mix.lua`.
pub(crate) fn get(host: &str, token: Option<&str>) -> Vec<u8> {
    let mut r = format!("GET / HTTP/1.1\r\nHost: {host}\r\n");
    if let Some(t) = token {
        r.push_str("Authorization: Bearer ");
        r.push_str(t);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads one response from `io`, using `buf` for leftovers between calls. Returns the status.
pub(crate) async fn read_response<R: AsyncRead + Unpin>(io: &mut R, buf: &mut Vec<u8>) -> Res<u16> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if io.read_buf(buf).await? == 0 {
            return Err("connection closed before a response head".into());
        }
    };
    let head = std::str::from_utf8(&buf[..head_end])?;
    let status: u16 = head.get(9..12).ok_or("short status line")?.parse()?;
    let mut length = None;
    let mut chunked = false;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>()?);
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.eq_ignore_ascii_case("chunked")
        {
            chunked = true;
        }
    }
    let end = if chunked {
        // The bodies here are tiny; the last-chunk marker is enough.
        loop {
            if let Some(i) = find(&buf[head_end..], b"0\r\n\r\n") {
                break head_end + i + 5;
            }
            if io.read_buf(buf).await? == 0 {
                return Err("connection closed inside a chunked body".into());
            }
        }
    } else {
        let end = head_end + length.unwrap_or(0);
        while buf.len() < end {
            if io.read_buf(buf).await? == 0 {
                return Err("connection closed inside a body".into());
            }
        }
        end
    };
    buf.drain(..end);
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_length_chunked_and_leftovers() {
        let wire: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\nHTTP/1.1 401 Unauthorized\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
        let mut io = wire;
        let mut buf = Vec::new();
        assert_eq!(read_response(&mut io, &mut buf).await.unwrap(), 200);
        assert_eq!(read_response(&mut io, &mut buf).await.unwrap(), 401);
        assert!(buf.is_empty());
        assert!(read_response(&mut io, &mut buf).await.is_err());
    }

    #[test]
    fn get_matches_the_wrk_script() {
        assert_eq!(
            get("a.bench.test", None),
            b"GET / HTTP/1.1\r\nHost: a.bench.test\r\n\r\n"
        );
        assert_eq!(
            get("c.bench.test", Some("t")),
            b"GET / HTTP/1.1\r\nHost: c.bench.test\r\nAuthorization: Bearer t\r\n\r\n"
        );
    }
}
