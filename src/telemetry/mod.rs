//! Tracing: human-readable lines by default, JSON with `log.format = "json"`. Every line
//! written while a request is served carries its `request_id` ([`lines`]). With
//! `telemetry.otlp_endpoint`, each request is a span too, and the spans go out over OTLP
//! ([`otlp`]).

mod lines;
pub mod metrics;
pub mod otlp;

use tracing_subscriber::filter::{filter_fn, Targets};
use tracing_subscriber::fmt::format::{DefaultFields, Format, JsonFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

use lines::{FieldsWithRequestId, JsonWithRequestId};

use crate::config::{LogFormat, LogSettings, TelemetrySettings};

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `log.level`.
pub fn init(settings: &LogSettings) {
    init_with_traces(settings, None);
}

/// [`init`], and traces over OTLP when `traces` names an endpoint (exported from
/// `handle`'s runtime).
pub fn init_with_traces(
    settings: &LogSettings,
    traces: Option<(&TelemetrySettings, &tokio::runtime::Handle)>,
) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal, never into a file or a pipe.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let traces = traces.and_then(|(t, handle)| otlp::layer(t, handle));
    let Some(traces) = traces else {
        // No traces: one global filter, as cheap as it gets on the request path; the
        // trace-only spans are off at their call sites.
        let filter = match format!("{}=off", otlp::TARGET).parse() {
            Ok(off) => filter.add_directive(off),
            Err(_) => filter,
        };
        let builder = fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(ansi);
        let _ = match settings.format {
            LogFormat::Pretty => builder
                .fmt_fields(FieldsWithRequestId(DefaultFields::new()))
                .try_init(),
            LogFormat::Json => builder
                .fmt_fields(JsonFields::new())
                .event_format(JsonWithRequestId(
                    Format::default().json().with_current_span(true),
                ))
                .try_init(),
        };
        return;
    };
    // Traces: the log keeps its filter and never sees the trace-only spans; the traces
    // get the request spans and the trace-only ones.
    let not_traces_only = filter_fn(|meta| meta.target() != otlp::TARGET);
    let lines = fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let lines = match settings.format {
        LogFormat::Pretty => lines
            .fmt_fields(FieldsWithRequestId(DefaultFields::new()))
            .boxed(),
        LogFormat::Json => lines
            .fmt_fields(JsonFields::new())
            .event_format(JsonWithRequestId(
                Format::default().json().with_current_span(true),
            ))
            .boxed(),
    };
    let traces = traces.with_filter(
        Targets::new()
            .with_target(otlp::TARGET, tracing::Level::INFO)
            .with_target("sessiongate::http::observe", tracing::Level::INFO),
    );
    let _ = tracing_subscriber::registry()
        .with(lines.with_filter(filter).with_filter(not_traces_only))
        .with(traces)
        .try_init();
}
