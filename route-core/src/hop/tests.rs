use super::*;
use http::header::HOST;
use tower::{service_fn, Layer, ServiceExt};

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
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
fn strips_fixed_list_and_connection_named() {
    let mut h = headers(&[
        ("connection", "close, X-Custom, x-hasura-role"),
        ("connection", "Foo"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("proxy-authorization", "Basic x"),
        ("proxy-foo", "1"),
        ("te", "trailers"),
        ("trailer", "x"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "h2c"),
        ("x-custom", "1"),
        ("x-hasura-role", "admin"),
        ("foo", "bar"),
        ("host", "a.com"),
        ("x-keep", "yes"),
    ]);
    strip_hop_by_hop(&mut h);
    let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
    assert_eq!(left, vec!["host", "x-keep"]);
}

#[test]
fn fixed_strip_ignores_connection_tokens() {
    let mut h = headers(&[("connection", "x-hasura-role"), ("x-hasura-role", "user")]);
    strip_hop_by_hop_fixed(&mut h);
    assert_eq!(h.get("x-hasura-role").unwrap(), "user");
    assert!(h.get("connection").is_none());
}

#[test]
fn fixed_strip_removes_each_name_alone_with_all_its_values() {
    for name in [
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
        "proxy-x",
    ] {
        let mut h = headers(&[(name, "a"), ("host", "a.com"), (name, "b")]);
        strip_hop_by_hop_fixed(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["host"], "{name}");
        assert_eq!(h.len(), 1, "{name}");
    }
}

#[test]
fn clean_headers_untouched() {
    let mut h = headers(&[("host", "a.com"), ("accept", "*/*")]);
    strip_hop_by_hop(&mut h);
    assert_eq!(h.len(), 2);
}

fn upgrade_req(conn: &str, up: &[&str]) -> Request<()> {
    let mut b = Request::builder()
        .uri("/ws")
        .header(HOST, "a.com")
        .header(CONNECTION, conn);
    for u in up {
        b = b.header(UPGRADE, *u);
    }
    b.body(()).unwrap()
}

#[test]
fn websocket_detection() {
    assert!(is_websocket_upgrade(&upgrade_req(
        "keep-alive, Upgrade",
        &["WebSocket"]
    )));
    assert!(!is_websocket_upgrade(&upgrade_req("Upgrade", &["h2c"])));
    assert!(!is_websocket_upgrade(&upgrade_req("close", &["websocket"])));
    assert!(!is_websocket_upgrade(&upgrade_req(
        "upgrade",
        &["websocket", "h2c"]
    )));
    let mut post = upgrade_req("upgrade", &["websocket"]);
    *post.method_mut() = Method::POST;
    assert!(!is_websocket_upgrade(&post));
}

#[tokio::test]
async fn layer_records_upgrade_and_strips() {
    let svc = HopByHopLayer::new().layer(service_fn(|req: Request<()>| async move {
        Ok::<_, std::convert::Infallible>((
            req.extensions().get::<UpgradeRequest>().cloned(),
            req.headers().clone(),
        ))
    }));
    let (up, h) = svc
        .clone()
        .oneshot(upgrade_req("Upgrade", &["websocket"]))
        .await
        .unwrap();
    assert_eq!(up, Some(UpgradeRequest::websocket()));
    assert!(h.get(UPGRADE).is_none() && h.get(CONNECTION).is_none());

    let (up, h) = svc
        .oneshot(upgrade_req("Upgrade, HTTP2-Settings", &["h2c"]))
        .await
        .unwrap();
    assert_eq!(up, None);
    assert!(h.get(UPGRADE).is_none());
}
