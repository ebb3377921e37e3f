//! The request id on every log line written while a request is served: read from the
//! task's [`request_id`] scope, so no span need be opened per request for it (a span per
//! request was about 5% of a proxied request's CPU time; `docs/perf/README.md`).
//!
//! - human-readable lines end with `request_id=…`, after the event's own fields;
//! - JSON lines carry it as a top-level `"request_id"`.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::request_id;

/// Fields as `inner` writes them, then the request's id (human-readable lines).
pub struct FieldsWithRequestId<N>(pub N);

impl<'w, N: for<'a> FormatFields<'a>> FormatFields<'w> for FieldsWithRequestId<N> {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        self.0.format_fields(writer.by_ref(), fields)?;
        request_id::with_current(|id| write!(writer, " request_id={id}")).unwrap_or(Ok(()))
    }
}

/// A JSON line as `inner` writes it, with the request's id as its first member.
pub struct JsonWithRequestId<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for JsonWithRequestId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let tagged = request_id::with_current(|id| {
            let mut line = String::new();
            self.0.format_event(ctx, Writer::new(&mut line), event)?;
            // Ids are plain (letters, digits, `-`, `_`): nothing to escape.
            match line.strip_prefix('{') {
                Some(rest) => write!(writer, "{{\"request_id\":\"{id}\",{rest}"),
                None => writer.write_str(&line),
            }
        });
        tagged.unwrap_or_else(|| self.0.format_event(ctx, writer, event))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::format::{DefaultFields, Format, JsonFields};

    use super::*;

    /// What the subscriber wrote.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Written {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Written {
        fn lines(&self) -> Vec<String> {
            let bytes = self.0.lock().unwrap().clone();
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    /// A line inside a request, then one outside.
    async fn log_twice() {
        request_id::scope("req-7".into(), async {
            tracing::warn!(route = "/api/data", "upstream timed out");
        })
        .await;
        tracing::warn!("no request");
    }

    #[tokio::test]
    async fn a_human_readable_line_ends_with_its_request_id() {
        let written = Written::default();
        let out = written.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .with_ansi(false)
            .fmt_fields(FieldsWithRequestId(DefaultFields::new()))
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        log_twice().await;
        let lines = written.lines();
        assert!(
            lines[0].ends_with("upstream timed out route=\"/api/data\" request_id=req-7"),
            "{lines:?}"
        );
        assert!(lines[1].ends_with("no request"), "{lines:?}");
    }

    #[tokio::test]
    async fn a_json_line_carries_its_request_id() {
        let written = Written::default();
        let out = written.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .fmt_fields(JsonFields::new())
            .event_format(JsonWithRequestId(
                Format::default().json().with_current_span(true),
            ))
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        log_twice().await;
        let lines: Vec<serde_json::Value> = written
            .lines()
            .iter()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(lines[0]["request_id"], "req-7");
        assert_eq!(lines[0]["fields"]["message"], "upstream timed out");
        assert_eq!(lines[0]["fields"]["route"], "/api/data");
        assert!(lines[1].get("request_id").is_none(), "{}", lines[1]);
    }
}
