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
        Ready { service: S, request: Option<Request<B>> },
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

    pub(super) fn ready(service: S, request: Request<B>) -> Self {
        ResponseFuture {
            state: State::Ready {
                service,
                request: Some(request),
            },
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
                StateProj::Ready { service, request } => {
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
