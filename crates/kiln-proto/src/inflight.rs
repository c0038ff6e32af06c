//! Requests in flight keep their connection from counting as idle: a
//! server layer that marks each request busy on its connection from the
//! moment its headers arrive until its response's last byte is handed to
//! the transport (for a stream, until the stream ends), however long the
//! server works on it in silence.

use crate::conn::{ConnInfo, StreamGuard};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::codegen::http::{Request, Response};
use tonic::codegen::{Body, Service};

/// Wraps every service of the server in [`InFlight`].
#[derive(Debug, Clone, Copy, Default)]
pub struct InFlightLayer;

impl<S> tower_layer::Layer<S> for InFlightLayer {
    type Service = InFlight<S>;

    fn layer(&self, inner: S) -> InFlight<S> {
        InFlight(inner)
    }
}

#[derive(Debug, Clone)]
pub struct InFlight<S>(S);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, RB> Service<Request<B>> for InFlight<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = Response<Busy<RB>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, r: Request<B>) -> Self::Future {
        let guard = r.extensions().get::<ConnInfo>().map(|c| c.activity.open());
        let fut = self.0.call(r);
        Box::pin(async move {
            let res = fut.await?;
            Ok(res.map(|body| Busy {
                body,
                _guard: guard,
            }))
        })
    }
}

/// A response body that keeps its connection busy until it is dropped:
/// once sent whole, or given up.
pub struct Busy<B> {
    body: B,
    _guard: Option<StreamGuard>,
}

impl<B: Body + Unpin> Body for Busy<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
