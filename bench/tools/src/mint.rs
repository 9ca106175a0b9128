//! Minting sessions through the admin API, concurrently, over keep-alive connections.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::Res;

async fn worker(
    admin: SocketAddr,
    auth: Arc<str>,
    next: Arc<AtomicUsize>,
    count: usize,
) -> Res<Vec<(usize, String)>> {
    let tcp = TcpStream::connect(admin).await?;
    tcp.set_nodelay(true)?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let mut out = Vec::new();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= count {
            return Ok(out);
        }
        let body = format!(r#"{{"user_id":"user-{i}","roles":["user"]}}"#);
        let req = hyper::Request::post("/v1/sessions")
            .header(hyper::header::HOST, admin.to_string())
            .header(hyper::header::AUTHORIZATION, &*auth)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        send.ready().await?;
        let res = send.send_request(req).await?;
        let status = res.status();
        let bytes = res.into_body().collect().await?.to_bytes();
        if status.as_u16() != 201 && status.as_u16() != 200 {
            return Err(format!(
                "POST /v1/sessions: {status}: {}",
                String::from_utf8_lossy(&bytes)
            )
            .into());
        }
        let v: serde_json::Value = serde_json::from_slice(&bytes)?;
        let token = v
            .get("token")
            .and_then(|t| t.as_str())
            .ok_or("no token in the response")?;
        out.push((i, token.to_owned()));
    }
}

/// Creates `count` sessions for users `user-0…` with role `user` and writes
/// `TOKEN<TAB>USER_ID` lines to `out`.
pub(crate) async fn mint(
    admin: SocketAddr,
    secret: &str,
    count: usize,
    concurrency: usize,
    out: &Path,
) -> Res<()> {
    let auth: Arc<str> = format!("Bearer {secret}").into();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.clamp(1, count.max(1)) {
        tasks.spawn(worker(admin, auth.clone(), next.clone(), count));
    }
    let mut tokens = vec![String::new(); count];
    while let Some(r) = tasks.join_next().await {
        for (i, t) in r?? {
            tokens[i] = t;
        }
    }
    write(&tokens, out)
}

fn write(tokens: &[String], out: &Path) -> Res<()> {
    let mut s = String::with_capacity(tokens.len() * 64);
    for (i, t) in tokens.iter().enumerate() {
        if t.is_empty() {
            return Err(format!("session {i} was not minted").into());
        }
        writeln!(s, "{t}\tuser-{i}")?;
    }
    std::fs::write(out, s)?;
    Ok(())
}

/// Writes `count` made-up tokens in the same shape (43 base64url characters), for running
/// the nginx side without a gateway.
pub(crate) fn fake(count: usize, out: &Path) -> Res<()> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let tokens: Vec<String> = (0..count)
        .map(|_| {
            (0..43)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    ALPHABET[(x % 64) as usize] as char
                })
                .collect()
        })
        .collect();
    write(&tokens, out)
}

/// Signs `count` JWTs (users `user-0…`, role `user`, Hasura's claims namespace, valid for a
/// day) with `alg` and writes `TOKEN<TAB>USER_ID` lines to `out`.
pub(crate) fn jwt(alg: &str, key: &str, kid: Option<String>, count: usize, out: &Path) -> Res<()> {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let (algorithm, encoding) = match alg {
        "HS256" => (Algorithm::HS256, EncodingKey::from_secret(key.as_bytes())),
        "RS256" => (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&std::fs::read(key)?)?,
        ),
        other => return Err(format!("--alg {other}: use HS256 or RS256").into()),
    };
    let mut header = Header::new(algorithm);
    header.kid = kid;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 86_400;
    let mut text = String::new();
    for i in 0..count {
        let claims = serde_json::json!({
            "sub": format!("user-{i}"),
            "exp": exp,
            "https://hasura.io/jwt/claims": {
                "x-hasura-allowed-roles": ["user"],
                "x-hasura-default-role": "user",
                "x-hasura-user-id": format!("user-{i}"),
            },
        });
        let token = jsonwebtoken::encode(&header, &claims, &encoding)?;
        let _ = writeln!(text, "{token}\tuser-{i}");
    }
    std::fs::write(out, text)?;
    Ok(())
}
