//! Traces over OTLP/HTTP (JSON) when `telemetry.otlp_endpoint` is set: each request's
//! span (with its `request_id`) and, inside it, the spans the code opens under the
//! target [`TARGET`] — the store's Redis commands, the token refresh, the upstream call.
//! Off (the default), those spans are never enabled, so they cost a branch each.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

use crate::config::TelemetrySettings;

/// The target of the spans that exist for tracing only (no log line is made of them).
pub const TARGET: &str = "otel";

/// Longest an export may take; a collector that does not answer loses that batch.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Posts the exporter's batches with the process's reqwest, on the runtime `handle`
/// (the SDK exports from a thread of its own, outside any runtime).
#[derive(Debug)]
struct Client {
    http: reqwest::Client,
    handle: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Client {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let http = self.http.clone();
        let answer = self.handle.spawn(async move {
            let resp = http.execute(request).await?;
            let mut out = http::Response::builder().status(resp.status());
            for (name, value) in resp.headers() {
                out = out.header(name, value);
            }
            let body = resp.bytes().await?;
            Ok::<_, opentelemetry_http::HttpError>(out.body(body)?)
        });
        answer.await?
    }
}

/// The tracer layer for `settings`, or `None` when traces are off.
pub fn layer<S>(
    settings: &TelemetrySettings,
    handle: &tokio::runtime::Handle,
) -> Option<tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let endpoint = settings.otlp_endpoint.trim_end_matches('/');
    if endpoint.is_empty() {
        return None;
    }
    let url = match endpoint.ends_with("/v1/traces") {
        true => endpoint.to_owned(),
        false => format!("{endpoint}/v1/traces"),
    };
    let http = reqwest::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .ok()?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(url)
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(Client {
            http,
            handle: handle.clone(),
        })
        .build()
        .map_err(|e| eprintln!("sessiongate: telemetry.otlp_endpoint: {e}"))
        .ok()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(settings.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("sessiongate");
    let _ = PROVIDER.set(provider);
    Some(tracing_opentelemetry::layer().with_tracer(tracer))
}

/// Sends the spans still waiting (at shutdown). Blocks; call it outside the runtime,
/// which must still be running.
pub fn flush() {
    if let Some(provider) = PROVIDER.get() {
        if let Err(e) = provider.shutdown() {
            eprintln!("sessiongate: traces not all sent: {e}");
        }
    }
}
