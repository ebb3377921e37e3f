//! Request body limit. Unlike poem's `SizeLimit`, it also bounds chunked bodies (no
//! `Content-Length`) and lets body-less requests through.

use poem::http::header::CONTENT_LENGTH;
use poem::{Body, Endpoint, Middleware, Request};

use crate::error::AppError;

pub struct BodyLimit(pub usize);

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        BodyLimitEndpoint {
            inner,
            limit: self.0,
        }
    }
}

pub struct BodyLimitEndpoint<E> {
    inner: E,
    limit: usize,
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.limit as u64) {
            return Err(AppError::PayloadTooLarge.into());
        }
        if declared.is_none() {
            // Unknown length: read at most `limit` bytes now.
            let bytes =
                req.take_body()
                    .into_bytes_limit(self.limit)
                    .await
                    .map_err(|e| match e {
                        poem::error::ReadBodyError::PayloadTooLarge => AppError::PayloadTooLarge,
                        _ => AppError::BadRequest("The request body could not be read.".into()),
                    })?;
            req.set_body(Body::from(bytes));
        }
        self.inner.call(req).await
    }
}
