use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::service::{Prepared, Resolved};
use crate::set_cookie::parse_set_cookie;
use crate::BoxFuture;

pin_project! {
    /// Response future of [`SessionService`](super::SessionService).
    ///
    /// A state machine: waiting for the resolver (only when it could not answer at once), then
    /// the inner service, or an answer the layer made itself.
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        // Boxed: this state holds the request and a clone of the inner service, several
        // hundred bytes that every layer above would otherwise carry (and copy) in its own
        // future on the common path, where the resolver answers at once and this state is never
        // entered. It is entered only when a resolver future is boxed anyway.
        Resolving {
            waiting: Box<Waiting<S, ReqBody>>,
        },
        Inner {
            #[pin]
            fut: S::Future,
            // Boxed: clearing a cookie is rare, and this future is moved by every layer above.
            clear_cookie: Option<Box<HeaderValue>>,
        },
        Rejected {
            response: Option<S::Response>,
        },
    }
}

/// The [`State::Resolving`] state: the resolver's future (which holds the request head) and
/// what the inner call needs.
struct Waiting<S, ReqBody> {
    fut: BoxFuture<'static, Resolved>,
    rest: Option<(ReqBody, S)>,
    shared: Arc<Prepared>,
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn inner(fut: S::Future, clear_cookie: Option<HeaderValue>) -> Self {
        ResponseFuture {
            state: State::Inner {
                fut,
                clear_cookie: clear_cookie.map(Box::new),
            },
        }
    }

    pub(crate) fn rejected(response: S::Response) -> Self {
        ResponseFuture {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    pub(crate) fn resolving(
        fut: BoxFuture<'static, Resolved>,
        body: ReqBody,
        inner: S,
        shared: Arc<Prepared>,
    ) -> Self {
        ResponseFuture {
            state: State::Resolving {
                waiting: Box::new(Waiting {
                    fut,
                    rest: Some((body, inner)),
                    shared,
                }),
            },
        }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Resolving { waiting } => {
                    let resolved = ready!(waiting.fut.as_mut().poll(cx));
                    let Some((body, mut inner)) = waiting.rest.take() else {
                        panic!("ResponseFuture polled after completion");
                    };
                    let Resolved {
                        result,
                        head,
                        pending,
                    } = resolved;
                    let mut req = Request::from_parts(head, body);
                    let shared = &waiting.shared;
                    let next = match shared.decide(result, pending, &mut req) {
                        Ok(clear) => State::Inner {
                            fut: inner.call(req),
                            clear_cookie: shared.clear_cookie(clear).map(Box::new),
                        },
                        Err(response) => State::Rejected {
                            response: Some(response),
                        },
                    };
                    this.state.set(next);
                }
                StateProj::Inner { fut, clear_cookie } => {
                    let mut response = ready!(fut.poll(cx))?;
                    if let Some(v) = clear_cookie.take() {
                        // A login with a stale cookie: the answer already sets a new session
                        // cookie of that name. Appended after it, the clearing cookie would
                        // make the browser drop the new session (SECURITY-CASES 34).
                        if !sets_same_cookie(response.headers(), &v) {
                            response.headers_mut().append(SET_COOKIE, *v);
                        }
                    }
                    return Poll::Ready(Ok(response));
                }
                StateProj::Rejected { response } => {
                    return match response.take() {
                        Some(r) => Poll::Ready(Ok(r)),
                        None => panic!("ResponseFuture polled after completion"),
                    };
                }
            }
        }
    }
}

/// Whether `headers` already hold a `Set-Cookie` whose cookie, as a browser parses it, has the
/// name of the clearing cookie `clear`.
fn sets_same_cookie(headers: &HeaderMap, clear: &HeaderValue) -> bool {
    let Ok(clear) = clear.to_str() else {
        return false;
    };
    let (name, _) = parse_set_cookie(clear);
    headers.get_all(SET_COOKIE).iter().any(|v| {
        let text = String::from_utf8_lossy(v.as_bytes());
        parse_set_cookie(&text).0 == name
    })
}

impl<S, ReqBody> std::fmt::Debug for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
