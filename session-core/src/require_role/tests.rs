use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::WWW_AUTHENTICATE;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, ServiceBuilder, ServiceExt};

use crate::test_util::StaticResolver;
use crate::{
    AnonymousConfig, Identity, RequireRole, RequireRoleLayer, SessionConfig, SessionLayer,
};

async fn call(
    layer: RequireRoleLayer,
    identity: Option<Identity>,
) -> (StatusCode, Response<Full<Bytes>>) {
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::from("inner")))
        }));
    let mut req = Request::new(());
    if let Some(identity) = identity {
        req.extensions_mut().insert(identity);
    }
    let res = svc.oneshot(req).await.unwrap();
    (res.status(), res)
}

async fn code(res: Response<Full<Bytes>>) -> String {
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["code"].as_str().unwrap().to_owned()
}

fn user() -> Identity {
    Identity::new("7", "user", ["user", "admin"])
}

fn anonymous() -> Identity {
    Identity::anonymous(&AnonymousConfig::default())
}

#[tokio::test]
async fn allowed_role_passes() {
    let (status, res) = call(RequireRoleLayer::new(["user", "editor"]), Some(user())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "inner");
}

#[tokio::test]
async fn empty_set_allows_any_role_including_anonymous() {
    let none: [&str; 0] = [];
    assert_eq!(
        call(RequireRoleLayer::new(none), Some(user())).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(RequireRoleLayer::new(none), Some(anonymous())).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn other_role_gets_401_authorization_required() {
    let (status, res) = call(RequireRoleLayer::new(["editor"]), Some(user())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()[WWW_AUTHENTICATE], "Bearer");
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(code(res).await, "authorization-required");
    let (status, _) = call(RequireRoleLayer::new(["user"]), Some(anonymous())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_selected_role_is_checked_not_every_allowed_role() {
    // `user()` holds admin but has selected `user`.
    let (status, _) = call(RequireRoleLayer::new(["admin"]), Some(user())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let mut admin = user();
    admin.role = "admin".into();
    assert_eq!(
        call(RequireRoleLayer::new(["admin"]), Some(admin)).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn roles_are_case_sensitive() {
    let (status, _) = call(RequireRoleLayer::new(["User"]), Some(user())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn forbid_authenticated_answers_403_for_sessions_only() {
    let layer = RequireRoleLayer::new(["editor"]).forbid_authenticated(true);
    let (status, res) = call(layer.clone(), Some(user())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(res).await, "insufficient-role");
    let (status, res) = call(layer.clone(), Some(anonymous())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(res).await, "authorization-required");
    let (status, _) = call(layer.forbid_authenticated(false), Some(user())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn missing_identity_is_a_500_never_let_through() {
    let none: [&str; 0] = [];
    for layer in [RequireRoleLayer::new(["user"]), RequireRoleLayer::new(none)] {
        let (status, res) = call(layer, None).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(code(res).await, "internal-error");
    }
}

#[tokio::test]
async fn behind_the_session_layer() {
    let resolver = StaticResolver::new().with("tok", user());
    let svc = ServiceBuilder::new()
        .layer(SessionLayer::new(
            Arc::new(resolver),
            SessionConfig::default(),
        ))
        .layer(RequireRoleLayer::new(["admin"]))
        .service(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::from("inner")))
        }));
    let send = |role: Option<&str>| {
        let mut b = Request::builder().header("authorization", "Bearer tok");
        if let Some(role) = role {
            b = b.header("x-hasura-role", role);
        }
        svc.clone().oneshot(b.body(()).unwrap())
    };
    assert_eq!(send(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(send(Some("admin")).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn service_constructors_and_accessors() {
    let inner = service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
    });
    let mut svc = RequireRole::new(inner, ["user"]);
    let _ = svc.get_ref();
    let _ = svc.get_mut();
    let svc = RequireRole::<()>::layer(["user"]);
    let _ = format!("{svc:?}");
}
