//! HTTP/2 abuse from single connections against the real binary, over h2c (prior knowledge)
//! and TLS (ALPN h2), with a raw-frame client (common/h2raw.rs): idle connections kept open by
//! PINGs (case 36), a header list over `max_header_bytes` once decoded (case 25) and malformed
//! requests that must not be downgraded to HTTP/1 (case 43). The floods, which measure latency
//! and load under 10 attackers at once, are in h2_floods.rs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::h2env::*;
use common::h2raw::*;
use common::*;

/// Case 25: a header block, small on the wire and larger than `max_header_bytes` once
/// decoded, gets 431 and never reaches the upstream; one more than 4x larger costs the client
/// its connection (GOAWAY). Guard: the h2 crate already enforces SETTINGS_MAX_HEADER_LIST_SIZE
/// on the decoded list, which the gateway sets to `max_header_bytes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_25_decoded_header_list_over_max_header_bytes_is_refused() {
    let env = Env::start("").await;
    for t in [Target::H2c, Target::Tls] {
        for (refs, allowed) in [
            (8, &[Answer::Status(431)][..]),
            (
                30,
                &[
                    Answer::GoAway(ENHANCE_YOUR_CALM),
                    Answer::GoAway(PROTOCOL_ERROR),
                    Answer::Closed,
                ][..],
            ),
        ] {
            let mut c = env.conn(t).await.unwrap();
            c.handshake().await;
            let block = big_block(refs);
            assert!(block.len() < 4200, "{} bytes on the wire", block.len());
            c.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &block))
                .await
                .unwrap();
            let answer = stream_answer(&mut c, 1).await;
            assert!(
                allowed.contains(&answer),
                "{t:?} {refs} references: {answer:?}"
            );
        }
        assert!(
            !env.up.seen.lock().iter().any(|r| r.uri == "/big-headers"),
            "{t:?}: the upstream saw the oversized request"
        );
    }
}

#[derive(Debug, PartialEq)]
enum Answer {
    Status(u16),
    Reset(u32),
    /// A connection error: GOAWAY with this code.
    GoAway(u32),
    Closed,
}

/// The first answer on `stream`: its response status, or its reset code.
async fn stream_answer(c: &mut Conn, stream: u32) -> Answer {
    loop {
        let Some(f) = c.rd.next(Duration::from_secs(10)).await else {
            return Answer::Closed;
        };
        if f.kind == PING && f.flags & ACK == 0 {
            let _ = c.send(&frame(PING, ACK, 0, &f.payload)).await;
        }
        // A graceful GOAWAY (NO_ERROR) lets streams already open finish.
        if f.kind == GOAWAY && f.error_code() != Some(0) {
            return Answer::GoAway(f.error_code().unwrap());
        }
        if f.stream != stream {
            continue;
        }
        match f.kind {
            HEADERS => return Answer::Status(f.status().unwrap_or(0)),
            RST_STREAM => return Answer::Reset(f.error_code().unwrap()),
            _ => {}
        }
    }
}

/// Case 43 (case 22's HTTP/2 half): requests that RFC 9113 §8.2 calls malformed are stream
/// errors (RST_STREAM PROTOCOL_ERROR) or 400, and the HTTP/1 upstream never receives them
/// whole: connection-specific fields, CR/LF/NUL in a value, uppercase names, and a
/// `content-length` that disagrees with the DATA frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_43_malformed_h2_requests_are_not_downgraded() {
    let env = Env::start("").await;
    type Fields = Vec<(&'static [u8], &'static [u8])>;
    let cases: Vec<(&str, Fields)> = vec![
        ("te-chunked", vec![(b"transfer-encoding", b"chunked")]),
        ("connection", vec![(b"connection", b"keep-alive")]),
        ("keep-alive", vec![(b"keep-alive", b"timeout=5")]),
        (
            "proxy-connection",
            vec![(b"proxy-connection", b"keep-alive")],
        ),
        ("upgrade", vec![(b"upgrade", b"websocket")]),
        ("te-gzip", vec![(b"te", b"gzip")]),
        ("cr", vec![(b"x-note", b"a\rb")]),
        ("lf", vec![(b"x-note", b"a\nx-injected: 1")]),
        ("nul", vec![(b"x-note", b"a\0b")]),
        ("crlf-name", vec![(b"x-a\r\nx-injected", b"1")]),
        ("uppercase", vec![(b"X-Upper", b"1")]),
    ];
    // A stream error, a 400, or (stricter) a connection error: h2 rejects an invalid field
    // value while decoding HPACK, whose state is the connection's.
    let refused = |a: &Answer| {
        matches!(
            a,
            Answer::Reset(PROTOCOL_ERROR)
                | Answer::Status(400)
                | Answer::GoAway(PROTOCOL_ERROR | COMPRESSION_ERROR)
        )
    };
    for t in [Target::H2c, Target::Tls] {
        for (name, fields) in &cases {
            let mut c = env.conn(t).await.unwrap();
            c.handshake().await;
            let path = format!("/case43-{name}");
            let block = request_block("GET", &host("data"), &path, fields);
            c.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &block))
                .await
                .unwrap();
            let answer = stream_answer(&mut c, 1).await;
            assert!(refused(&answer), "{t:?} {name}: {answer:?}");
        }
        // content-length disagreeing with the body, both ways.
        for (name, declared, sent) in [("cl-short", 10usize, 5usize), ("cl-long", 5, 10)] {
            let mut c = env.conn(t).await.unwrap();
            c.handshake().await;
            let path = format!("/case43-{name}");
            let cl = declared.to_string();
            let block = request_block(
                "POST",
                &host("data"),
                &path,
                &[(b"content-length", cl.as_bytes())],
            );
            let mut bytes = frame(HEADERS, END_HEADERS, 1, &block);
            bytes.extend(frame(DATA, END_STREAM, 1, &vec![b'x'; sent]));
            c.send(&bytes).await.unwrap();
            let answer = stream_answer(&mut c, 1).await;
            assert!(refused(&answer), "{t:?} {name}: {answer:?}");
        }
        // A good request is served.
        let mut c = env.conn(t).await.unwrap();
        c.handshake().await;
        let block = request_block("GET", &host("data"), "/case43-good", &[]);
        c.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &block))
            .await
            .unwrap();
        assert_eq!(stream_answer(&mut c, 1).await, Answer::Status(200), "{t:?}");
    }
    // Give an aborted upstream request time to be recorded, then check what arrived.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for r in env.up.seen.lock().iter() {
        if r.uri == "/case43-good" {
            continue;
        }
        // A request whose body the gateway aborted never reached the upstream whole.
        assert!(
            !r.uri.starts_with("/case43-") || !r.body_complete,
            "the upstream received a malformed request whole: {r:?}"
        );
        for name in [
            "transfer-encoding",
            "connection",
            "keep-alive",
            "proxy-connection",
            "upgrade",
            "x-injected",
            "x-upper",
        ] {
            assert!(
                r.headers.get(name).is_none(),
                "{name} reached the upstream: {r:?}"
            );
        }
        if let Some(cl) = r.headers.get("content-length") {
            if r.body_complete {
                assert_eq!(cl.to_str().unwrap(), r.body_len.to_string(), "{r:?}");
            }
        }
    }
}

/// An h2 client that keeps a connection open with PINGs, as keep-alive clients do.
async fn pinger(
    mut c: Conn,
    ack: bool,
    every: Duration,
    wait: Duration,
) -> (Option<Duration>, Option<Duration>) {
    let started = Instant::now();
    let mut goaway = None;
    let mut tick = tokio::time::interval(every);
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = &mut deadline => return (goaway, None),
            _ = tick.tick() => {
                n += 1;
                if c.send(&frame(PING, 0, 0, &n.to_be_bytes())).await.is_err() {
                    return (goaway, Some(started.elapsed()));
                }
            }
            f = c.rd.next(wait) => match f {
                None => return (goaway, Some(started.elapsed())),
                Some(f) if f.kind == GOAWAY => goaway = goaway.or(Some(started.elapsed())),
                Some(f) if f.kind == PING && f.flags & ACK == 0 && ack => {
                    let _ = c.send(&frame(PING, ACK, 0, &f.payload)).await;
                }
                Some(_) => {}
            }
        }
    }
}

/// Case 36: an HTTP/2 connection with no open stream for `idle_timeout` gets GOAWAY and is
/// closed, although keep-alive PINGs (and their ACKs) keep bytes moving; a client that never
/// acknowledges the GOAWAY's PING is closed as well. A stream that is open longer than the
/// idle timeout is not cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_36_idle_h2_connection_kept_alive_by_pings_is_closed() {
    let env = Env::start("idle_timeout = \"2s\"\n").await;
    let idle = Duration::from_secs(2);
    for t in [Target::H2c, Target::Tls] {
        // One request first, so that the idle time counts from its end.
        let mut a = env.conn(t).await.unwrap();
        a.handshake().await;
        let block = request_block("GET", &host("data"), "/idle-a", &[]);
        a.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &block))
            .await
            .unwrap();
        assert_eq!(stream_answer(&mut a, 1).await, Answer::Status(200), "{t:?}");
        let mut b = env.conn(t).await.unwrap();
        b.handshake().await;
        // A stream open for longer than the idle timeout, with PINGs beside it.
        let mut s = env.conn(t).await.unwrap();
        s.handshake().await;
        let block = request_block("GET", &host("data"), "/slow?ms=3000", &[]);
        s.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &block))
            .await
            .unwrap();
        let slow = tokio::spawn(async move {
            let started = Instant::now();
            let answer = stream_answer(&mut s, 1).await;
            (answer, started.elapsed())
        });
        let every = Duration::from_millis(300);
        let wait = Duration::from_secs(10);
        let (ra, rb) = tokio::join!(pinger(a, true, every, wait), pinger(b, false, every, wait));
        let (slow_answer, slow_took) = slow.await.unwrap();
        assert_eq!(
            slow_answer,
            Answer::Status(200),
            "{t:?}: the open stream was cut"
        );
        assert!(slow_took >= Duration::from_millis(2900), "{slow_took:?}");
        for (who, (goaway, closed)) in [("acking", ra), ("silent", rb)] {
            let closed = closed.unwrap_or_else(|| {
                panic!("{t:?}: the {who} pinger's connection is still open after {wait:?}")
            });
            assert!(goaway.is_some(), "{t:?}: the {who} pinger got no GOAWAY");
            // The idle timeout, then at most the GOAWAY's grace (the idle timeout again).
            assert!(
                closed <= idle * 2 + Duration::from_millis(1500),
                "{t:?}: the {who} pinger was closed after {closed:?}"
            );
        }
    }
}
