//! `POST /v1/explain`: the decision the gateway would make about a request, without making it.
//!
//! The request described in the body (method, URL, headers, client address) goes through the
//! same route table and layers as a real one (hop-by-hop headers, router, CORS, session layer,
//! CSRF, role check), marked as a dry run ([`DecisionRecord::dry_run`]): the proxy answers
//! instead of forwarding, resolvers read sessions without sliding them and count no metric,
//! and nothing passes the access log or the request metrics (those live in `Front`, which an
//! explained request never reaches). The answer is the decision record, the same one the access
//! log writes for a real request, as JSON: the verdict and its reason code, the route, the
//! credential and who it resolved to. No token or cookie value is ever echoed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use route_core::decision::{self, DecisionRecord, Refused, WouldProxy};
use route_core::{Body, ConnectionInfo, HopByHopLayer, Router, SharedRouteTable};
use serde::Deserialize;
use serde_json::{json, Value};
use tower::{Layer, ServiceExt};

use crate::reject;
use crate::stack::RouteService;

/// What to explain.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ask {
    #[serde(default)]
    method: Option<String>,
    url: String,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    /// The client's address as the gateway would see it.
    #[serde(default)]
    client: Option<IpAddr>,
    /// The role to ask for, sent in the configured role header (`X-Hasura-Role`).
    #[serde(default)]
    role: Option<String>,
}

fn bad(why: &str) -> Response {
    reject::with_detail(reject::INVALID_EXPLAIN_REQUEST, why, &[])
}

/// Answers `POST /v1/explain` with `body` against the current routes.
///
/// `role_header` is the session layer's role header: a `role` in the body is sent in it.
pub async fn explain(
    table: SharedRouteTable<RouteService>,
    role_header: &HeaderName,
    body: &[u8],
) -> Response {
    let ask: Ask = match serde_json::from_slice(body) {
        Ok(a) => a,
        Err(e) => return reject::with_detail(reject::INVALID_JSON, &e.to_string(), &[]),
    };
    let req = match build(&ask, role_header) {
        Ok(r) => r,
        Err(why) => return bad(&why),
    };
    let record = match req.extensions().get::<DecisionRecord>() {
        Some(r) => r.clone(),
        None => return bad("internal: no decision record"),
    };
    // The public listeners' stack below `Front` (no access log, no metrics, no tunnel hook).
    let service = HopByHopLayer::new().layer(Router::new(table).with_sni_check(true));
    let Ok(res) = service.oneshot(req).await;
    let answer = describe(&record, &res);
    (http::StatusCode::OK, axum::Json(answer)).into_response()
}

/// The request `ask` describes, as a listener would hand it to the stack.
fn build(ask: &Ask, role_header: &HeaderName) -> Result<Request<Body>, String> {
    let method = match &ask.method {
        None => Method::GET,
        Some(m) => Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("`method` {m:?} is not an HTTP method"))?,
    };
    let url: Uri = ask
        .url
        .parse()
        .map_err(|_| "`url` is not a URL (https://data.example.com/path)".to_owned())?;
    let tls = match url.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("`url` must start with http:// or https://".into()),
    };
    let authority = url
        .authority()
        .ok_or_else(|| "`url` has no host".to_owned())?
        .clone();
    if authority.as_str().contains('@') {
        return Err("`url` must not carry user information".into());
    }
    let path = url
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let mut req = Request::new(Body::empty());
    *req.method_mut() = method;
    // Origin form with a Host header, as HTTP/1.1 clients send it.
    *req.uri_mut() = path
        .parse()
        .map_err(|_| "`url` has a path the gateway cannot read".to_owned())?;
    for (name, value) in &ask.headers {
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("header name {name:?} is not valid"))?;
        if name == http::header::HOST {
            return Err("give the host in `url`, not as a header".into());
        }
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("the value of header {name} is not valid"))?;
        req.headers_mut().append(name, value);
    }
    if let Some(role) = &ask.role {
        let value = HeaderValue::from_str(role)
            .map_err(|_| "`role` is not a valid header value".to_owned())?;
        req.headers_mut().insert(role_header.clone(), value);
    }
    let host = HeaderValue::from_str(authority.as_str())
        .map_err(|_| "`url` has a host that is not a valid header value".to_owned())?;
    req.headers_mut().insert(http::header::HOST, host);
    let client = ask.client.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), if tls { 443 } else { 80 });
    req.extensions_mut().insert(ConnectionInfo {
        remote_addr: SocketAddr::new(client, 0),
        local_addr: local,
        tls,
        // A browser opening the URL sends its host as SNI.
        sni: tls.then(|| Arc::from(authority.host())),
    });
    req.extensions_mut().insert(DecisionRecord::dry_run());
    Ok(req)
}

/// The message in words of a reason code, from the workspace's rejection tables.
fn message_of(code: &str) -> Option<&'static str> {
    route_core::Rejection::ALL
        .iter()
        .chain(session_core::rejection::ALL)
        .chain(reject::ALL)
        .find(|r| r.code == code)
        .map(|r| r.message)
}

/// The decision record and the answer, as the explain API's JSON.
fn describe(record: &DecisionRecord, res: &http::Response<Body>) -> Value {
    let refused = res.extensions().get::<Refused>();
    let proxied = res.extensions().get::<WouldProxy>().is_some();
    record.read(|d| {
        let reason = decision::reason(d, refused);
        let allowed = reason == decision::ALLOWED;
        let message = if proxied {
            "the request would be sent to the upstream"
        } else if allowed {
            "the gateway would answer this request itself (a CORS preflight, say)"
        } else {
            refused
                .map(|r| r.message)
                .or_else(|| message_of(reason))
                .unwrap_or("refused")
        };
        let identity = d.user_id.as_ref().map(|user| {
            json!({
                "user_id": &**user,
                "role": d.role.as_deref(),
                "requested_role": d.requested_role.as_deref(),
                "allowed_roles": d.allowed_roles.as_ref().map(|r| r.iter().map(|r| &**r).collect::<Vec<_>>()),
            })
        });
        let route = d.service.as_ref().map(|s| {
            json!({
                "service": &**s,
                "upstream": d.upstream.as_deref(),
                // Written by the role check when it refuses; null otherwise.
                "allowed_roles": d.service_roles.as_ref().map(|r| r.iter().map(|r| &**r).collect::<Vec<_>>()),
            })
        });
        let mut detail = d.detail.as_deref().map(str::to_owned);
        if let (false, Some(location)) = (allowed, res.headers().get(http::header::LOCATION)) {
            // A browser would be sent to the login page rather than get the refusal.
            let to = location.to_str().unwrap_or("?");
            let note = format!("a browser would be redirected to {to}");
            detail = Some(match detail {
                Some(d) => format!("{d}; {note}"),
                None => note,
            });
        }
        json!({
            "verdict": if allowed { "allowed" } else { "refused" },
            "status": if proxied { Value::Null } else { Value::from(res.status().as_u16()) },
            "reason": reason,
            "message": message,
            "detail": detail,
            "route": route,
            "credential": d.credential.as_str(),
            "resolver": d.resolver,
            "identity": identity,
        })
    })
}
