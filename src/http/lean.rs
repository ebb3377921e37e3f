//! Endpoints and middleware that add no layer of their own to a request's future.
//!
//! Each of poem's own wrappers (`.data()`, `make`, `map_to_response`, `CatchPanic`) is an
//! `async fn` that holds the request, so each adds a copy of it to the future every
//! request builds, and every box of that future (one per nested route group) copies it
//! all again. These hand back the inner future itself. A layer that works on the answer
//! `map`s its inner future rather than awaiting it in an `async` block: a block that
//! awaits a future it captured holds it twice (the capture and the awaited value), so
//! each such layer doubled the size of everything below it.
//!
//! The price: what a wrapper's `call` does, it does when the future is built, not when
//! it is first polled — and `Observe` builds its inner future before it enters the
//! request's id scope, span and panic catch. So these do no more at call time than
//! insert data or clone an `Arc`, and a [`handler`]'s function only builds its future
//! (its work goes inside the `async` block). Below the route table (poem's `Route`, an
//! `async fn`) nothing runs before the first poll.

use std::future::Future;

use futures_util::FutureExt;
use poem::{Endpoint, Request, Response};

/// `inner`, with `value` as request data (what poem's `.data(value)` does).
pub struct WithData<E, T> {
    inner: E,
    value: T,
}

/// `inner` with `value` as request data.
pub fn with_data<E, T>(inner: E, value: T) -> WithData<E, T> {
    WithData { inner, value }
}

impl<E: Endpoint, T: Clone + Send + Sync + 'static> Endpoint for WithData<E, T> {
    type Output = E::Output;

    fn call(&self, mut req: Request) -> impl Future<Output = poem::Result<E::Output>> + Send {
        req.set_data(self.value.clone());
        self.inner.call(req)
    }
}

/// An async function from request to response as an endpoint (what poem's `make` does).
pub struct Handler<F>(F);

/// `f` as an endpoint.
pub fn handler<F, Fut>(f: F) -> Handler<F>
where
    F: Fn(Request) -> Fut + Send + Sync,
    Fut: Future<Output = Response> + Send,
{
    Handler(f)
}

impl<F, Fut> Endpoint for Handler<F>
where
    F: Fn(Request) -> Fut + Send + Sync,
    Fut: Future<Output = Response> + Send,
{
    type Output = Response;

    fn call(&self, req: Request) -> impl Future<Output = poem::Result<Response>> + Send {
        (self.0)(req).map(Ok)
    }
}
