use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use tower::{service_fn, ServiceExt};

use super::*;
use crate::{ConnectionInfo, RouteTable};

type Echo = tower::util::BoxCloneSyncService<Request<()>, Response<Bytes>, Infallible>;

/// A route that answers with its name, the URI it got and the matched pattern.
fn echo(name: &'static str) -> Echo {
    tower::util::BoxCloneSyncService::new(service_fn(move |req: Request<()>| async move {
        let pattern = req
            .extensions()
            .get::<RouteMatch>()
            .map(|m| m.pattern.to_string())
            .unwrap_or_default();
        Ok::<_, Infallible>(Response::new(Bytes::from(format!(
            "{name} {} {pattern}",
            req.uri()
        ))))
    }))
}

fn router() -> Router<Echo> {
    let mut t = RouteTable::new();
    t.insert("a.example.com", echo("a")).unwrap();
    t.insert("*.example.com", echo("wild")).unwrap();
    t.insert_prefix("p.example.com", "/api", echo("api"))
        .unwrap();
    Router::new(Arc::new(arc_swap::ArcSwap::from_pointee(t)))
}

async fn call(router: Router<Echo>, req: Request<()>) -> (u16, String) {
    let res = router.oneshot(req).await.unwrap();
    (
        res.status().as_u16(),
        String::from_utf8(res.into_body().to_vec()).unwrap(),
    )
}

fn req(host: &str, uri: &str) -> Request<()> {
    Request::builder()
        .uri(uri)
        .header("host", host)
        .body(())
        .unwrap()
}

#[tokio::test]
async fn routes_and_rewrites_the_path_keeping_the_query() {
    let (s, b) = call(
        router(),
        req("A.example.com.", "/x/%2e%2e//y/./z?q=%2e%2e&r=1"),
    )
    .await;
    assert_eq!((s, b.as_str()), (200, "a /y/z?q=%2e%2e&r=1 a.example.com"));
    let (s, b) = call(router(), req("b.example.com", "/")).await;
    assert_eq!((s, b.as_str()), (200, "wild / *.example.com"));
    let (s, b) = call(router(), req("p.example.com", "/api/../api/v1")).await;
    assert_eq!((s, b.as_str()), (200, "api /api/v1 p.example.com/api"));
}

#[tokio::test]
async fn rejections_are_json() {
    let cases = [
        (req("nope.org", "/"), 404, "unknown-host"),
        (req("p.example.com", "/other"), 404, "no-route"),
        (req("127.0.0.1", "/"), 421, "misdirected-request"),
        (req("a.example.com", "/a%2fb"), 400, "invalid-path"),
        (
            Request::builder().uri("/").body(()).unwrap(),
            400,
            "missing-host",
        ),
    ];
    for (r, status, code) in cases {
        let (s, b) = call(router(), r).await;
        assert_eq!(s, status, "{b}");
        assert!(b.contains(&format!("\"code\":\"{code}\"")), "{b}");
    }
}

#[tokio::test]
async fn sni_check_is_opt_in() {
    let info = |sni: &str| ConnectionInfo {
        remote_addr: "127.0.0.1:1".parse().unwrap(),
        local_addr: "127.0.0.1:443".parse().unwrap(),
        tls: true,
        sni: Some(sni.into()),
    };
    let mut r = req("a.example.com", "/");
    r.extensions_mut().insert(info("public.example.com"));
    assert_eq!(call(router(), r).await.0, 200);

    let mut r = req("a.example.com", "/");
    r.extensions_mut().insert(info("public.example.com"));
    assert_eq!(call(router().with_sni_check(true), r).await.0, 421);

    let mut r = req("A.example.com:443", "/");
    r.extensions_mut().insert(info("a.example.com."));
    assert_eq!(call(router().with_sni_check(true), r).await.0, 200);
}

/// A route service that is not ready until its gate opens.
#[derive(Clone)]
struct Gate {
    open: Arc<std::sync::atomic::AtomicBool>,
    waker: Arc<parking_lot::Mutex<Option<std::task::Waker>>>,
}

impl tower::Service<Request<()>> for Gate {
    type Response = Response<Bytes>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<Bytes>, Infallible>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        if self.open.load(std::sync::atomic::Ordering::Acquire) {
            return std::task::Poll::Ready(Ok(()));
        }
        *self.waker.lock() = Some(cx.waker().clone());
        std::task::Poll::Pending
    }

    fn call(&mut self, _req: Request<()>) -> Self::Future {
        assert!(
            self.open.load(std::sync::atomic::Ordering::Acquire),
            "called before it was ready"
        );
        std::future::ready(Ok(Response::new(Bytes::from_static(b"through"))))
    }
}

#[tokio::test]
async fn a_route_that_is_not_ready_is_waited_for_then_called() {
    let gate = Gate {
        open: Arc::default(),
        waker: Arc::default(),
    };
    let mut t = RouteTable::new();
    t.insert("g.example.com", gate.clone()).unwrap();
    let router = Router::new(Arc::new(arc_swap::ArcSwap::from_pointee(t)));
    let pending = tokio::spawn(router.oneshot(req("g.example.com", "/")));
    // The router asked once with a no-op waker, then its future asks with the task's waker.
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while gate.waker.lock().is_none() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    tokio::task::yield_now().await;
    assert!(!pending.is_finished());
    gate.open.store(true, std::sync::atomic::Ordering::Release);
    if let Some(w) = gate.waker.lock().take() {
        w.wake();
    }
    let res = tokio::time::timeout(std::time::Duration::from_secs(5), pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.into_body(), Bytes::from_static(b"through"));
}
