use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

pin_project! {
    /// The router's response future: a rejection, or the route's service being driven to
    /// readiness and then called.
    #[project = Proj]
    pub struct ResponseFuture<S, B, RB>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B, RB>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, RB>
    where
        S: Service<Request<B>>,
    {
        Rejected { response: Option<Response<RB>> },
        // Boxed: a route's service is normally ready at once and called by the router itself
        // (`called`), so only a service that applies backpressure waits here, and the request
        // and service (a few hundred bytes) do not sit in every request's future.
        Ready { waiting: Box<(S, Option<Request<B>>)> },
        Called { #[pin] future: S::Future },
    }
}

impl<S, B, RB> ResponseFuture<S, B, RB>
where
    S: Service<Request<B>>,
{
    pub(super) fn rejected(response: Response<RB>) -> Self {
        ResponseFuture {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    /// The route's service has to be driven to readiness before it takes `request`.
    pub(super) fn ready(service: S, request: Request<B>) -> Self {
        ResponseFuture {
            state: State::Ready {
                waiting: Box::new((service, Some(request))),
            },
        }
    }

    /// The route's service was ready and has been called.
    pub(super) fn called(future: S::Future) -> Self {
        ResponseFuture {
            state: State::Called { future },
        }
    }
}

impl<S, B, RB> Future for ResponseFuture<S, B, RB>
where
    S: Service<Request<B>, Response = Response<RB>, Error = Infallible>,
{
    type Output = Result<Response<RB>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Rejected { response } => {
                    // Polled again after completion would be a caller bug; answer the
                    // rejection once and an (impossible) second poll stays pending.
                    return match response.take() {
                        Some(r) => Poll::Ready(Ok(r)),
                        None => Poll::Pending,
                    };
                }
                StateProj::Ready { waiting } => {
                    let (service, request) = &mut **waiting;
                    let Ok(()) = ready!(service.poll_ready(cx));
                    let Some(req) = request.take() else {
                        return Poll::Pending;
                    };
                    let future = service.call(req);
                    state.set(State::Called { future });
                }
                StateProj::Called { future } => return future.poll(cx),
            }
        }
    }
}
