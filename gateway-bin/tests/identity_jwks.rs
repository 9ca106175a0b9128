//! Issue 15 end to end, against the real binary: the identity provider's key set over time.
//! The test plays the provider (common/identity.rs), serving its JWKS over HTTPS from a private
//! CA, and rotates it, makes it unreachable or failing, and lets a token expire under an open
//! WebSocket tunnel. The tokens themselves (RS256, HS256, claims, rejections) are in
//! identity_jwt.rs, the auth webhook in identity_webhook.rs. Keys are fixtures
//! (`tests/fixtures/identity/README.md`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::identity::*;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

// ---------------------------------------------------------------------------------------------
// (3) Rotation.

/// A gateway in front of a JWKS holding `k1` that answers `Cache-Control: max-age=1`, with
/// `jwks_refresh_min = "1s"`, ready, and a `k1` token that verified.
async fn rotating(jwks: &Jwks, up: &Upstream, k1: &RsaKey) -> (Gateway, String) {
    jwks.set_cache_control("max-age=1");
    let g = Gateway::start_with_env(
        &config(up, None, &jwks_auth(&jwks.url, "jwks_refresh_min = \"1s\"")),
        0,
        0,
        &jwks.env(),
    );
    ready(&g).await;
    let old = k1.sign("k1", &usual());
    assert_eq!(
        bearer(&g, "data", &old).await.status(),
        200,
        "log:\n{}",
        g.log()
    );
    (g, old)
}

/// The provider adds a key: a token with the new `kid` verifies on its first request (the
/// JWKS is refetched at once for an unknown `kid`), with the default refetch interval, right
/// after the gateway became ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_rotation_a_new_kid_verifies_at_once() {
    let (k1, k2) = (rsa("rsa1"), rsa("rsa2"));
    let jwks = Jwks::start(&[k1.jwk("k1")]).await;
    let up = Upstream::start().await;
    let (g, old) = rotating(&jwks, &up, &k1).await;

    jwks.set_keys(&[k1.jwk("k1"), k2.jwk("k2")]);
    let hits = jwks.hits();
    let new = k2.sign(
        "k2",
        &payload("u-18", 3600, hasura("u-18", &["user"], "user", json!({}))),
    );
    let res = bearer(&g, "data", &new).await;
    assert_eq!(
        res.status(),
        200,
        "the first token signed with a key just added to the JWKS was refused (JWKS fetches \
         since the rotation: {}); log:\n{}",
        jwks.hits() - hits,
        g.log()
    );
    assert_eq!(up.last().all("x-hasura-user-id"), ["u-18"]);
    assert_eq!(bearer(&g, "data", &old).await.status(), 200);
}

/// The provider rotates its keys: the new key verifies once the JWKS is refreshed (at the
/// latest as its `Cache-Control: max-age=1` says); the old key, once it leaves the set, stops
/// verifying after the refresh, its cached tokens included; a flood of unknown `kid`s does not
/// turn into a flood of fetches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_rotation_a_removed_kid_stops_verifying_after_the_refresh() {
    let (k1, k2) = (rsa("rsa1"), rsa("rsa2"));
    let jwks = Jwks::start(&[k1.jwk("k1")]).await;
    let up = Upstream::start().await;
    let (g, old) = rotating(&jwks, &up, &k1).await;

    jwks.set_keys(&[k1.jwk("k1"), k2.jwk("k2")]);
    let new = k2.sign(
        "k2",
        &payload("u-18", 3600, hasura("u-18", &["user"], "user", json!({}))),
    );
    let accepted = eventually(Duration::from_secs(5), || async {
        bearer(&g, "data", &new).await.status() == 200
    })
    .await;
    assert!(
        accepted,
        "a new key was still refused 5 s after it was published"
    );
    assert_eq!(up.last().all("x-hasura-user-id"), ["u-18"]);
    assert_eq!(bearer(&g, "data", &old).await.status(), 200);

    // The old key leaves: its (cached) token stops verifying after the refresh.
    jwks.set_keys(&[k2.jwk("k2")]);
    let removed = Instant::now();
    let refused = eventually(Duration::from_secs(6), || async {
        bearer(&g, "data", &old).await.status() == 401
    })
    .await;
    assert!(
        refused,
        "a token of a removed key still verified 6 s after its removal"
    );
    let res = bearer(&g, "data", &old).await;
    assert_invalid_token(&res, "a token of a removed key");
    eprintln!("removed key refused after {:?}", removed.elapsed());
    assert_eq!(bearer(&g, "data", &new).await.status(), 200);
    assert_eq!(up.last().all("x-hasura-user-id"), ["u-18"]);

    // A flood of unknown kids: every one refused, and only a few fetches.
    let before = jwks.hits();
    let started = Instant::now();
    let floods = (0..60).map(|i| {
        let token = k2.sign(&format!("unknown-{i}"), &usual());
        let g = &g;
        async move { bearer(g, "data", &token).await.status() }
    });
    let statuses = futures_util::future::join_all(floods).await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    let took = started.elapsed();
    let fetches = jwks.hits() - before;
    // Scheduled refreshes (one a second here) plus at most one refetch per interval.
    let allowed = took.as_secs() as usize + 3;
    assert!(
        fetches <= allowed,
        "{fetches} JWKS fetches for 60 unknown kids in {took:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// (5) No JWKS.

/// The JWKS cannot be reached when the gateway starts: `/readyz` answers 503 with a reason,
/// JWT requests get 503 (fail closed, never anonymous), while session-store tokens and
/// anonymous traffic are served; once the JWKS answers, everything is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_jwks_fails_closed_and_readyz_says_why() {
    let k1 = rsa("rsa1");
    // The provider's CA exists, but nothing listens on its port yet.
    let jwks = Jwks::new(free_port(), &[k1.jwk("k1")]);
    let up = Upstream::start().await;
    let g = Gateway::start_with_env(
        &config(
            &up,
            None,
            &jwks_auth(&jwks.url, "jwks_refetch_interval = \"1s\""),
        ),
        0,
        0,
        &jwks.env(),
    );
    let c = client();

    // /readyz: 503 with the reason once the start-up fetch has failed.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = c.get(g.admin_url("/readyz")).send().await.unwrap();
        let status = res.status();
        let body = res.text().await.unwrap();
        if status == 503 && body.to_ascii_lowercase().contains("jwks") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz answered {status} {body:?}; log:\n{}",
            g.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let token = k1.sign("k1", &usual());
    let before = up.count();
    let res = bearer(&g, "data", &token).await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(code(res).await, "session-store-unavailable");
    assert_eq!(up.count(), before);

    // The session store and anonymous traffic do not depend on the JWKS.
    let session = create_session(&g, "s-9", &["user"], None).await;
    assert_eq!(session.len(), 43);
    let res = bearer(&g, "data", &session).await;
    assert_eq!(res.status(), 200);
    assert_eq!(up.last().all("x-hasura-user-id"), ["s-9"]);
    let res = get(&g, "data", &[]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(up.last().all("x-hasura-role"), ["anonymous"]);

    // The JWKS comes up: the gateway becomes ready and the token verifies.
    jwks.listen().await;
    let ready = eventually(Duration::from_secs(10), || async {
        client()
            .get(g.admin_url("/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(ready, "/readyz never answered 200 once the JWKS was up");
    let res = bearer(&g, "data", &token).await;
    assert_eq!(res.status(), 200);
    assert_eq!(up.last().all("x-hasura-user-id"), ["u-17"]);
}

/// A JWKS that fails after the gateway has its keys: the last good set stays in use (tokens
/// verify, `/readyz` stays 200) while the refreshes fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_that_fails_later_keeps_the_last_good_key_set() {
    let k1 = rsa("rsa1");
    let jwks = Jwks::start(&[k1.jwk("k1")]).await;
    jwks.set_cache_control("max-age=1");
    let up = Upstream::start().await;
    let g = Gateway::start_with_env(
        &config(
            &up,
            None,
            &jwks_auth(
                &jwks.url,
                "jwks_refresh_min = \"1s\"\njwks_refetch_interval = \"1s\"",
            ),
        ),
        0,
        0,
        &jwks.env(),
    );
    ready(&g).await;
    let token = k1.sign("k1", &usual());
    assert_eq!(bearer(&g, "data", &token).await.status(), 200);
    jwks.set_status(500);
    let hits = jwks.hits();
    let failed = eventually(Duration::from_secs(5), || async { jwks.hits() >= hits + 2 }).await;
    assert!(failed, "the JWKS was not refreshed");
    // A token not seen before, so not a cache hit.
    let fresh = k1.sign(
        "k1",
        &payload("u-19", 600, hasura("u-19", &["user"], "user", json!({}))),
    );
    let res = bearer(&g, "data", &fresh).await;
    assert_eq!(res.status(), 200, "log:\n{}", g.log());
    assert_eq!(up.last().all("x-hasura-user-id"), ["u-19"]);
    let res = client().get(g.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

/// A JWKS URL naming `localhost` (the certificate's DNS name), as a test identity provider
/// often is, works as well as one naming the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_url_naming_localhost() {
    let k1 = rsa("rsa1");
    let jwks = Jwks::start(&[k1.jwk("k1")]).await;
    let url = jwks.url.replace("127.0.0.1", "localhost");
    let up = Upstream::start().await;
    let g = Gateway::start_with_env(&config(&up, None, &jwks_auth(&url, "")), 0, 0, &jwks.env());
    ready(&g).await;
    let res = bearer(&g, "data", &k1.sign("k1", &usual())).await;
    assert_eq!(res.status(), 200, "log:\n{}", g.log());
}

// ---------------------------------------------------------------------------------------------
// (6) WebSocket tunnels end with the token.

/// A WebSocket opened with a JWT is closed when the token expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_opened_with_a_jwt_closes_when_the_token_expires() {
    let k1 = rsa("rsa1");
    let jwks = Jwks::start(&[k1.jwk("k1")]).await;
    let up = Upstream::start().await;
    let ws = ws_echo().await;
    let g = Gateway::start_with_env(
        &config(&up, Some(ws), &jwks_auth(&jwks.url, "")),
        0,
        0,
        &jwks.env(),
    );
    ready(&g).await;
    let claims = payload("u-17", 4, hasura("u-17", &["user"], "user", json!({})));
    let token = k1.sign("k1", &claims);
    let exp = UNIX_EPOCH + Duration::from_secs(claims["exp"].as_u64().unwrap());
    let mut req = format!("ws://{}/chat", host("ws"))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", g.http))
        .await
        .unwrap();
    let (mut t, res) = tokio::time::timeout(
        Duration::from_secs(3),
        tokio_tungstenite::client_async(req, stream),
    )
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("the tunnel was not opened: {e}; log:\n{}", g.log()));
    assert_eq!(res.status(), 101);
    t.send(Message::text("hello")).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(2), t.next()).await {
        Ok(Some(Ok(Message::Text(m)))) => assert_eq!(m.as_str(), "hello"),
        other => panic!("no echo: {other:?}"),
    }

    // Open until the token's exp, closed soon after.
    let closed_at = loop {
        match tokio::time::timeout(Duration::from_secs(8), t.next()).await {
            Err(_) => panic!("the tunnel was still open 8 s after the last echo"),
            Ok(Some(Ok(Message::Text(m)))) => panic!("unexpected message {m}"),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => break SystemTime::now(),
        }
    };
    let early = exp.duration_since(closed_at).unwrap_or(Duration::ZERO);
    let late = closed_at.duration_since(exp).unwrap_or(Duration::ZERO);
    assert!(
        early <= Duration::from_millis(1100),
        "closed {early:?} before the token's exp"
    );
    assert!(
        late <= Duration::from_secs(3),
        "closed {late:?} after the token's exp"
    );
}
