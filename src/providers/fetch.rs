//! Every request to an identity provider — token, refresh, revocation, discovery, JWKS,
//! profile — goes through one client: bounded in time ([`PROVIDER_TIMEOUT`]) and in the
//! size of the answer it reads ([`MAX_ANSWER_BYTES`]). A hostile or broken provider that
//! answers without end costs at most that much memory, and the sign-in or refresh fails
//! as with any unusable answer.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use oauth2::{HttpRequest, HttpResponse};
use serde_json::Value;

use super::Failure;

/// Longest wait for any answer of a provider.
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest provider answer read.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// The providers' HTTP client (shares the process's connection pool).
#[derive(Clone)]
pub struct ProviderHttp(reqwest::Client);

/// Why a provider request failed (for the log).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Unreachable(#[from] reqwest::Error),
    #[error("answer over {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
    #[error("{0}")]
    Malformed(String),
}

impl From<FetchError> for Failure {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::Unreachable(e) => Failure::Unreachable(e.to_string()),
            other => Failure::Garbage(other.to_string()),
        }
    }
}

impl ProviderHttp {
    pub fn new(client: reqwest::Client) -> Self {
        Self(client)
    }

    /// A request builder with the provider timeout.
    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.0.request(method, url).timeout(PROVIDER_TIMEOUT)
    }

    /// The body of `resp`, refused once it passes [`MAX_ANSWER_BYTES`] (the rest is never
    /// read: the connection is dropped).
    pub async fn read(mut resp: reqwest::Response) -> Result<Vec<u8>, FetchError> {
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// GET a JSON document (optionally with a Bearer token).
    pub async fn fetch_json(&self, url: &str, bearer: Option<&str>) -> Result<Value, Failure> {
        let mut req = self
            .request(reqwest::Method::GET, url)
            .header("accept", "application/json");
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Failure::Unreachable(format!("{url}: {e}")))?;
        let status = resp.status();
        if status.is_server_error() {
            return Err(Failure::Unreachable(format!("{url}: status {status}")));
        }
        if !status.is_success() {
            return Err(Failure::Refused(format!("{url}: status {status}")));
        }
        let body = Self::read(resp).await.map_err(|e| match e {
            FetchError::Unreachable(e) => Failure::Unreachable(format!("{url}: {e}")),
            other => Failure::Garbage(format!("{url}: {other}")),
        })?;
        serde_json::from_slice(&body)
            .map_err(|e| Failure::Garbage(format!("{url}: not JSON ({e})")))
    }
}

/// The `oauth2` crate's token, refresh and revocation requests, through the same client
/// and the same cap (its own reqwest adapter reads answers whole).
impl<'c> oauth2::AsyncHttpClient<'c> for ProviderHttp {
    type Error = FetchError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, FetchError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let resp = self
                .request(parts.method, &parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let mut answer = poem::http::Response::builder().status(resp.status());
            if let Some(headers) = answer.headers_mut() {
                *headers = resp.headers().clone();
            }
            let body = Self::read(resp).await?;
            answer
                .body(body)
                .map_err(|e| FetchError::Malformed(e.to_string()))
        })
    }
}
