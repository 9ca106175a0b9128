//! The floor that the gateway is measured against: the smallest hyper proxy that does the
//! bench's wire work.
//!
//! `bench/instructions` counts the gateway's user-space instructions per proxied request. That
//! figure alone says nothing about how much of it is the gateway's own doing: hyper parsing and
//! writing two HTTP/1.1 messages per request, tokio's I/O and the allocator cost something in
//! any Rust proxy. This crate is that "any Rust proxy", written as small as it can be while it
//! does what the bench's nginx does (`bench/nginx/proxy.conf.in`), with the same hyper and
//! hyper-util versions (workspace dependencies) set up the way the gateway sets them up:
//!
//! - a current-thread tokio runtime (the bench runs the gateway with `GATEWAY_THREADS=1`);
//! - hyper-util's `auto` server builder, as the gateway's plain listener uses, with the same
//!   HTTP/1 timer, header read timeout (10 s), header count (100) and buffer (16 KiB) limits;
//! - HTTP/1.1 upstream connections kept idle per thread in a `Vec` of hyper's connection-level
//!   [`SendRequest`]s, handed back when the response
//!   body ends: what `route-core`'s `proxy/h1pool.rs` does, without its per-upstream map and
//!   idle timeout (there is one upstream);
//! - routing by `Host` over `a.bench.test`, `b.bench.test` and `c.bench.test`, all to the one
//!   upstream (unknown host: 404);
//! - a token map loaded from the `TOKEN<TAB>USER_ID` file that `bench-tools mint` writes,
//!   looked up from `Authorization: Bearer <token>`: an unknown token gets 401, a request
//!   without `Authorization` is anonymous, and anonymous on `c` gets 401;
//! - the identity headers as nginx writes them (`X-Hasura-User-Id`: the user id or `0`,
//!   `X-Hasura-Role` and `X-Hasura-Allowed-Roles`: `user` or `anonymous`), `Authorization`
//!   and the hop-by-hop headers removed, and nginx's forwarded headers (`X-Forwarded-For`,
//!   `X-Forwarded-Proto`, `X-Forwarded-Host`, `Forwarded`), built once per connection.
//!
//! Nothing else: no logging, no metrics, no response timeout, no connection cap, no idle
//! timeout, no HTTP/2 upstreams, no upgrades. Whatever the gateway spends beyond this floor is
//! its own features (or its own overhead), which is what `bench/README.md` breaks down.
//! It is a measuring stick, not a product: never deploy it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_TYPE, FORWARDED, HOST, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, Request, Response, StatusCode, Uri, Version};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};

/// The routes, in the order of the per-connection `Forwarded` values: the `Host` names the
/// bench's mix uses, all proxied to the one upstream.
const ROUTES: [&str; 3] = ["a.bench.test", "b.bench.test", "c.bench.test"];
/// The index in [`ROUTES`] of the one route that refuses anonymous requests.
const USER_ONLY_ROUTE: usize = 2;
/// How many idle upstream connections a thread keeps (nginx's `keepalive 64` in the bench).
const MAX_IDLE: usize = 64;

static X_HASURA_USER_ID: HeaderName = HeaderName::from_static("x-hasura-user-id");
static X_HASURA_ROLE: HeaderName = HeaderName::from_static("x-hasura-role");
static X_HASURA_ALLOWED_ROLES: HeaderName = HeaderName::from_static("x-hasura-allowed-roles");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static ROLE_USER: HeaderValue = HeaderValue::from_static("user");
static ROLE_ANONYMOUS: HeaderValue = HeaderValue::from_static("anonymous");
static ANONYMOUS_USER_ID: HeaderValue = HeaderValue::from_static("0");
static PROTO_HTTP: HeaderValue = HeaderValue::from_static("http");
static JSON: HeaderValue = HeaderValue::from_static("application/json");
static ROUTE_HOSTS: [HeaderValue; 3] = [
    HeaderValue::from_static(ROUTES[0]),
    HeaderValue::from_static(ROUTES[1]),
    HeaderValue::from_static(ROUTES[2]),
];

/// The command line: `baseline --listen ADDR --upstream ADDR --tokens FILE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    /// Where the proxy listens (port 0 picks a free one; the address is printed).
    pub listen: SocketAddr,
    /// The one upstream every route goes to.
    pub upstream: SocketAddr,
    /// The `TOKEN<TAB>USER_ID` file (`bench-tools mint --out`).
    pub tokens: std::path::PathBuf,
}

const USAGE: &str = "usage: baseline --listen IP:PORT --upstream IP:PORT --tokens FILE";

/// Reads the command line (without the program name). Every option is required.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Args, String> {
    let (mut listen, mut upstream, mut tokens) = (None, None, None);
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let addr = || {
            value
                .parse::<SocketAddr>()
                .map_err(|e| format!("{flag} {value}: {e}\n{USAGE}"))
        };
        match flag.as_str() {
            "--listen" => listen = Some(addr()?),
            "--upstream" => upstream = Some(addr()?),
            "--tokens" => tokens = Some(value.into()),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    match (listen, upstream, tokens) {
        (Some(listen), Some(upstream), Some(tokens)) => Ok(Args {
            listen,
            upstream,
            tokens,
        }),
        _ => Err(USAGE.to_owned()),
    }
}

/// Bearer token → user id, the id kept as a ready header value so that a request copies
/// nothing. The keys are what clients send, so the map keeps std's SipHash (nginx's `map`
/// hashes them too).
#[derive(Debug, Default)]
pub struct Tokens(HashMap<Box<[u8]>, HeaderValue>);

impl Tokens {
    /// Reads `TOKEN<TAB>USER_ID` lines (what `bench-tools mint` and `mint-jwt` write); empty
    /// lines are skipped, a line without a tab or with an id that is not a header value is an
    /// error.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the text of a tokens file (see [`Tokens::load`]).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut map = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let (token, user) = line
                .split_once('\t')
                .ok_or_else(|| format!("line {}: no TAB between token and user id", n + 1))?;
            let user =
                HeaderValue::from_str(user).map_err(|e| format!("line {}: user id: {e}", n + 1))?;
            map.insert(token.as_bytes().into(), user);
        }
        Ok(Tokens(map))
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn user(&self, token: &[u8]) -> Option<&HeaderValue> {
        self.0.get(token)
    }
}

/// What every connection shares.
#[derive(Debug)]
pub struct BaselineState {
    tokens: Tokens,
    upstream: SocketAddr,
    builder: auto::Builder<TokioExecutor>,
}

impl BaselineState {
    /// The proxy's state: the token map, the upstream, and the server settings (those of the
    /// gateway's plain listener with its default limits).
    pub fn new(tokens: Tokens, upstream: SocketAddr) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .max_headers(100)
            .max_buf_size(16 * 1024);
        BaselineState {
            tokens,
            upstream,
            builder,
        }
    }
}

/// Accepts connections on `listener` and serves each on its own task, forever. An accept error
/// (file limit reached) waits 50 ms rather than spinning.
pub async fn serve(listener: TcpListener, shared: Arc<BaselineState>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // As the gateway does: responses are written whole, Nagle only delays them.
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(stream, peer, shared.clone()));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The forwarded header values of one client connection: they depend only on the peer and
/// the route, so they are built when the connection opens, not per request.
struct Forwarded {
    for_ip: HeaderValue,
    per_route: [HeaderValue; 3],
}

impl Forwarded {
    fn new(peer: IpAddr) -> Self {
        let ip = peer.to_string();
        // RFC 7239: an IPv6 node is quoted and bracketed.
        let node = match peer {
            IpAddr::V4(_) => ip.clone(),
            IpAddr::V6(_) => format!("\"[{ip}]\""),
        };
        let value = |s: String| {
            HeaderValue::from_maybe_shared(Bytes::from(s))
                .unwrap_or_else(|_| HeaderValue::from_static("for=unknown"))
        };
        Forwarded {
            for_ip: value(ip),
            per_route: ROUTES.map(|host| value(format!("for={node};host={host};proto=http"))),
        }
    }
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, shared: Arc<BaselineState>) {
    let fwd = Forwarded::new(peer.ip());
    let upstream = shared.upstream;
    let state = shared.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        // Everything but the upstream exchange is synchronous: the future holds only the
        // prepared request (or the refusal) and the upstream's address.
        let prepared = prepare(req, &state.tokens, &fwd);
        async move {
            Ok::<_, Infallible>(match prepared {
                Ok(req) => forward(upstream, req).await,
                Err(refusal) => refusal.response(),
            })
        }
    });
    // A connection error (client reset, header timeout) just ends the connection.
    let _ = shared
        .builder
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// The route a `Host` header names (port ignored, case-insensitive), if any.
fn route(headers: &HeaderMap) -> Option<usize> {
    let host = headers.get(HOST)?.as_bytes();
    let name = match host.iter().rposition(|&b| b == b':') {
        Some(colon) => &host[..colon],
        None => host,
    };
    ROUTES
        .iter()
        .position(|r| r.as_bytes().eq_ignore_ascii_case(name))
}

/// The user id for an `Authorization` value: `Some(None)` for no header (anonymous),
/// `Some(Some(id))` for a known bearer token, `None` for anything else.
fn identity<'t>(tokens: &'t Tokens, auth: Option<&HeaderValue>) -> Option<Option<&'t HeaderValue>> {
    let Some(auth) = auth else {
        return Some(None);
    };
    let auth = auth.as_bytes();
    let (scheme, token) = auth.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    tokens.user(token).map(Some)
}

/// The hop-by-hop headers a proxy must not forward (RFC 9110 §7.6.1), removed in both
/// directions. One pass finds the ones present and only those are removed: a `remove` hashes
/// its name, and a message usually carries one of them (`Connection: keep-alive`) or none.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let hops: [&HeaderName; 7] = [
        &CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &TE,
        &TRAILER,
        &TRANSFER_ENCODING,
        &UPGRADE,
    ];
    let mut present = 0u8;
    for name in headers.keys() {
        if let Some(i) = hops.iter().position(|h| *h == name) {
            present |= 1 << i;
        }
    }
    for (i, name) in hops.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(*name);
        }
    }
}

/// Routes, authenticates and rewrites a request for the upstream, or answers it here.
fn prepare(
    mut req: Request<Incoming>,
    tokens: &Tokens,
    fwd: &Forwarded,
) -> Result<Request<Incoming>, Refusal> {
    let headers = req.headers();
    let Some(route) = route(headers) else {
        return Err(Refusal::NoRoute);
    };
    let had_auth = headers.contains_key(AUTHORIZATION);
    let (user, role) = match identity(tokens, headers.get(AUTHORIZATION)) {
        None => return Err(Refusal::Unauthorized),
        Some(None) if route == USER_ONLY_ROUTE => return Err(Refusal::Unauthorized),
        Some(None) => (ANONYMOUS_USER_ID.clone(), &ROLE_ANONYMOUS),
        Some(Some(user)) => (user.clone(), &ROLE_USER),
    };

    // HTTP/1.1 upstreams get the origin form.
    if req.uri().authority().is_some() {
        let path = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        *req.uri_mut() = Uri::try_from(path).unwrap_or_else(|_| Uri::from_static("/"));
    }
    *req.version_mut() = Version::HTTP_11;
    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    if had_auth {
        headers.remove(AUTHORIZATION);
    }
    // hyper sizes a request's map for the headers it parsed: make room for ours once.
    headers.reserve(8);
    // `insert` replaces every copy the client sent, as nginx's proxy_set_header does.
    headers.insert(HOST, ROUTE_HOSTS[route].clone());
    headers.insert(X_HASURA_USER_ID.clone(), user);
    headers.insert(X_HASURA_ROLE.clone(), role.clone());
    headers.insert(X_HASURA_ALLOWED_ROLES.clone(), role.clone());
    headers.insert(X_FORWARDED_FOR.clone(), fwd.for_ip.clone());
    headers.insert(X_FORWARDED_PROTO.clone(), PROTO_HTTP.clone());
    headers.insert(X_FORWARDED_HOST.clone(), ROUTE_HOSTS[route].clone());
    headers.insert(FORWARDED, fwd.per_route[route].clone());
    Ok(req)
}

/// Why a request is answered here, not proxied (nginx's bodies in `bench/nginx/proxy.conf.in`).
#[derive(Clone, Copy, Debug)]
enum Refusal {
    /// Unknown `Host`: 404.
    NoRoute,
    /// Unknown token, or anonymous on the user-only route: 401.
    Unauthorized,
}

impl Refusal {
    fn response(self) -> Response<ResBody> {
        match self {
            Refusal::NoRoute => refusal(
                StatusCode::NOT_FOUND,
                r#"{"error":"no route","code":"not_found"}"#,
            ),
            Refusal::Unauthorized => refusal(
                StatusCode::UNAUTHORIZED,
                r#"{"error":"unauthorized","code":"unauthorized"}"#,
            ),
        }
    }
}

fn refusal(status: StatusCode, body: &'static str) -> Response<ResBody> {
    let mut res = Response::new(ResBody::Fixed(Some(Bytes::from_static(body.as_bytes()))));
    *res.status_mut() = status;
    res.headers_mut().insert(CONTENT_TYPE, JSON.clone());
    res
}

fn bad_gateway() -> Response<ResBody> {
    refusal(
        StatusCode::BAD_GATEWAY,
        r#"{"error":"bad gateway","code":"bad-gateway"}"#,
    )
}

thread_local! {
    /// This thread's idle upstream connections, most recently used last.
    static IDLE: std::cell::RefCell<Vec<SendRequest<Incoming>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The most recently used idle connection that can take a request now. Closed ones are
/// dropped; one that is not ready yet (its last exchange just ended and its task has not run)
/// stays in the pool.
fn checkout() -> Option<SendRequest<Incoming>> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let mut not_ready = Vec::new();
        let mut found = None;
        while let Some(sender) = idle.pop() {
            if sender.is_closed() {
                continue;
            }
            if sender.is_ready() {
                found = Some(sender);
                break;
            }
            not_ready.push(sender);
        }
        idle.extend(not_ready.into_iter().rev());
        found
    })
}

fn give_back(sender: SendRequest<Incoming>) {
    if sender.is_closed() {
        return;
    }
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    });
}

/// Sends the request on an idle connection of this thread, or on a new one; a request that
/// hyper hands back unsent (the connection closed under it) goes to the next one. Any other
/// failure is a 502.
async fn forward(upstream: SocketAddr, mut req: Request<Incoming>) -> Response<ResBody> {
    while let Some(mut sender) = checkout() {
        match sender.try_send_request(req).await {
            Ok(res) => return relay(res, sender),
            Err(mut e) => match e.take_message() {
                Some(unsent) => req = unsent,
                None => return bad_gateway(),
            },
        }
    }
    let Ok(tcp) = TcpStream::connect(upstream).await else {
        return bad_gateway();
    };
    let _ = tcp.set_nodelay(true);
    let Ok((mut sender, conn)) = http1::handshake(TokioIo::new(tcp)).await else {
        return bad_gateway();
    };
    tokio::spawn(conn);
    match sender.send_request(req).await {
        Ok(res) => relay(res, sender),
        Err(_) => bad_gateway(),
    }
}

fn relay(res: Response<Incoming>, sender: SendRequest<Incoming>) -> Response<ResBody> {
    let (mut parts, body) = res.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.version = Version::HTTP_11;
    Response::from_parts(
        parts,
        ResBody::Upstream {
            body,
            sender: Some(sender),
        },
    )
}

/// A response body: the upstream's, whose connection goes back to the pool when the body has
/// been read to its end, or a fixed one (refusals).
#[derive(Debug)]
pub enum ResBody {
    /// Relayed from the upstream.
    Upstream {
        /// The upstream's body.
        body: Incoming,
        /// Its connection, until the body ends.
        sender: Option<SendRequest<Incoming>>,
    },
    /// A body written here; `None` once sent.
    Fixed(Option<Bytes>),
}

impl http_body::Body for ResBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ResBody::Fixed(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ResBody::Upstream { body, sender } => {
                let polled = Pin::new(&mut *body).poll_frame(cx);
                let ended = match &polled {
                    Poll::Ready(None) => true,
                    Poll::Ready(Some(Ok(_))) => body.is_end_stream(),
                    // An error leaves the connection unusable.
                    Poll::Ready(Some(Err(_))) => {
                        sender.take();
                        false
                    }
                    Poll::Pending => false,
                };
                if ended {
                    if let Some(s) = sender.take() {
                        give_back(s);
                    }
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResBody::Fixed(bytes) => bytes.is_none(),
            ResBody::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResBody::Fixed(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ResBody::Upstream { body, .. } => body.size_hint(),
        }
    }
}

impl Drop for ResBody {
    fn drop(&mut self) {
        // A body dropped right at its end (hyper wrote it without a final poll) still leaves a
        // reusable connection; one dropped earlier closes with its unread rest.
        if let ResBody::Upstream { body, sender } = self {
            if http_body::Body::is_end_stream(body) {
                if let Some(s) = sender.take() {
                    give_back(s);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn routes_by_host_without_port_any_case() {
        assert_eq!(route(&map(&[("host", "a.bench.test")])), Some(0));
        assert_eq!(route(&map(&[("host", "B.Bench.Test:8080")])), Some(1));
        assert_eq!(route(&map(&[("host", "c.bench.test")])), Some(2));
        assert_eq!(route(&map(&[("host", "d.bench.test")])), None);
        assert_eq!(route(&map(&[("host", "a.bench.test.evil")])), None);
        assert_eq!(route(&map(&[])), None);
    }

    #[test]
    fn bearer_tokens_map_to_users() {
        let tokens = Tokens::parse("tok1\tuser-1\n\ntok2\tuser-2\n").unwrap();
        assert_eq!(tokens.len(), 2);
        let v = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(identity(&tokens, None), Some(None));
        assert_eq!(
            identity(&tokens, Some(&v("Bearer tok2"))),
            Some(Some(&v("user-2")))
        );
        assert_eq!(
            identity(&tokens, Some(&v("bearer tok1"))),
            Some(Some(&v("user-1")))
        );
        assert_eq!(identity(&tokens, Some(&v("Bearer tok3"))), None);
        assert_eq!(identity(&tokens, Some(&v("Basic tok1"))), None);
        assert_eq!(identity(&tokens, Some(&v("Bearer"))), None);
    }

    #[test]
    fn a_tokens_line_without_a_tab_is_an_error() {
        assert!(Tokens::parse("tok1 user-1\n").is_err());
    }

    #[test]
    fn hop_by_hop_headers_are_stripped() {
        let mut h = map(&[
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("x-keep", "1"),
            ("content-length", "3"),
        ]);
        strip_hop_by_hop(&mut h);
        let mut names: Vec<&str> = h.keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "x-keep"]);
    }

    #[test]
    fn the_command_line_needs_every_option() {
        let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let parsed = parse_args(args(
            "--listen 127.0.0.1:1 --upstream 127.0.0.1:2 --tokens t.tsv",
        ))
        .unwrap();
        assert_eq!(parsed.listen.port(), 1);
        assert_eq!(parsed.upstream.port(), 2);
        assert!(parse_args(args("--listen 127.0.0.1:1 --tokens t.tsv")).is_err());
        assert!(parse_args(args("--listen nowhere --upstream 127.0.0.1:2 --tokens t")).is_err());
        assert!(parse_args(args("--listen 127.0.0.1:1 --bogus x")).is_err());
    }
}
