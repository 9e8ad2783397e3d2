//! The two log line formats and the span extension that carries a span's
//! `trace_id` to every line logged inside it. Lines logged outside such a span
//! take the trace id from the current trace context ([`crate::trace`]), which
//! is how a request's `traceparent` reaches its lines when no span is made.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::config::Revision;

/// The W3C trace context of a request span, stored in its extensions.
#[derive(Debug, Clone)]
pub(crate) struct TraceIds {
    trace_id: String,
    span_id: Option<String>,
    sampled: bool,
}

/// Records `trace_id`/`span_id`/`sampled` of new spans in their extensions.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceIdsLayer;

impl<S> tracing_subscriber::Layer<S> for TraceIdsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut visitor = TraceVisitor::default();
        attrs.record(&mut visitor);
        if let (Some(trace_id), Some(span)) = (visitor.trace_id, ctx.span(id)) {
            span.extensions_mut().insert(TraceIds {
                trace_id,
                span_id: visitor.span_id,
                sampled: visitor.sampled,
            });
        }
    }
}

#[derive(Default)]
struct TraceVisitor {
    trace_id: Option<String>,
    span_id: Option<String>,
    sampled: bool,
}

impl Visit for TraceVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "trace_id" => self.trace_id = Some(value.to_string()),
            "span_id" => self.span_id = Some(value.to_string()),
            _ => {}
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "sampled" {
            self.sampled = value;
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "trace_id" | "span_id" => self.record_str(field, &format!("{value:?}")),
            _ => {}
        }
    }
}

/// Collects an event's fields into a JSON object.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_string(), Value::from(format!("{value:?}")));
    }
}

/// JSON lines in Cloud Logging's structured logging format.
#[derive(Debug, Clone)]
pub struct CloudLogging {
    labels: Option<Value>,
    project: Option<String>,
}

impl CloudLogging {
    /// Labels from the revision names; trace ids in `projects/<project>/traces/<id>`
    /// form when the project is known.
    pub fn new(revision: &Revision, project: Option<String>) -> Self {
        let mut labels = Map::new();
        for (key, value) in [
            ("k_service", &revision.service),
            ("k_configuration", &revision.configuration),
            ("k_revision", &revision.revision),
        ] {
            if let Some(value) = value {
                labels.insert(key.into(), Value::from(value.as_str()));
            }
        }
        Self {
            labels: (!labels.is_empty()).then_some(Value::Object(labels)),
            project,
        }
    }
}

impl CloudLogging {
    /// The fields Cloud Logging links to the trace with.
    fn insert_trace(
        &self,
        line: &mut Map<String, Value>,
        trace_id: &str,
        span_id: Option<&str>,
        sampled: bool,
    ) {
        let trace = match &self.project {
            Some(project) => format!("projects/{project}/traces/{trace_id}"),
            None => trace_id.to_string(),
        };
        line.insert("logging.googleapis.com/trace".into(), Value::from(trace));
        if let Some(span_id) = span_id {
            line.insert("logging.googleapis.com/spanId".into(), Value::from(span_id));
        }
        line.insert(
            "logging.googleapis.com/trace_sampled".into(),
            Value::from(sampled),
        );
    }
}

fn severity(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        _ => "DEBUG",
    }
}

impl<S, N> FormatEvent<S, N> for CloudLogging
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        line.insert(
            "severity".into(),
            Value::from(severity(event.metadata().level())),
        );
        let mut fields = Map::new();
        event.record(&mut JsonVisitor(&mut fields));
        let message = fields.remove("message").unwrap_or(Value::from(""));
        line.insert("message".into(), message);
        line.insert(
            "timestamp".into(),
            serde_json::json!({ "seconds": now.as_secs(), "nanos": now.subsec_nanos() }),
        );
        line.insert("target".into(), Value::from(event.metadata().target()));
        line.extend(fields);
        let mut from_span = false;
        for span in ctx.event_scope().into_iter().flatten() {
            if let Some(ids) = span.extensions().get::<TraceIds>() {
                self.insert_trace(
                    &mut line,
                    &ids.trace_id,
                    ids.span_id.as_deref(),
                    ids.sampled,
                );
                from_span = true;
                break;
            }
        }
        if !from_span && let Some(trace) = crate::trace::current() {
            self.insert_trace(
                &mut line,
                trace.trace_id.as_str(),
                Some(trace.parent_id.as_str()),
                trace.sampled,
            );
        }
        if let Some(labels) = &self.labels {
            line.insert("logging.googleapis.com/labels".into(), labels.clone());
        }
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Readable lines for a terminal, prefixed with the revision when known and
/// ending in ` trace_id=<id>` inside a request with a trace context (a span
/// that has a `trace_id` shows it among its own fields instead).
#[derive(Debug)]
pub struct Text {
    prefix: Option<String>,
    inner: Format<Full>,
    // For lines formatted into a buffer first, which has no terminal to ask
    // about colours: one per answer.
    plain: Format<Full>,
    colored: Format<Full>,
}

impl Text {
    /// Prefix lines with `[service/revision]` when those are set.
    pub fn new(revision: &Revision) -> Self {
        let prefix = revision.is_set().then(|| {
            let names: Vec<&str> = [
                &revision.service,
                &revision.configuration,
                &revision.revision,
            ]
            .into_iter()
            .filter_map(|n| n.as_deref())
            .collect();
            format!("[{}] ", names.join("/"))
        });
        Self {
            prefix,
            inner: Format::default(),
            plain: Format::default().with_ansi(false),
            colored: Format::default().with_ansi(true),
        }
    }
}

impl<S, N> FormatEvent<S, N> for Text
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if let Some(prefix) = &self.prefix {
            writer.write_str(prefix)?;
        }
        let span_has_ids = || {
            ctx.event_scope().is_some_and(|mut scope| {
                scope.any(|span| span.extensions().get::<TraceIds>().is_some())
            })
        };
        match crate::trace::current() {
            Some(trace) if !span_has_ids() => {
                let mut line = String::new();
                let format = if writer.has_ansi_escapes() {
                    &self.colored
                } else {
                    &self.plain
                };
                format.format_event(ctx, Writer::new(&mut line), event)?;
                let line = line.strip_suffix('\n').unwrap_or(&line);
                writeln!(writer, "{line} trace_id={}", trace.trace_id)
            }
            _ => self.inner.format_event(ctx, writer, event),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::{Layer, Registry};

    use super::{CloudLogging, Text, TraceIdsLayer};
    use crate::config::Revision;
    use crate::trace::{TraceParent, scoped};

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT: &str = "00f067aa0ba902b7";

    /// Log output collected in memory.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn lines(&self) -> Vec<String> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        }
    }

    fn trace() -> TraceParent {
        TraceParent::parse(&format!("00-{TRACE}-{PARENT}-01")).unwrap()
    }

    /// Logs "inside" in the trace context, then "outside" without it, and
    /// "in a span" inside a span of its own ids within the context.
    fn log_three_lines() {
        scoped(Some(trace()), || {
            tracing::info!("inside");
            let span = tracing::info_span!(
                "own",
                trace_id = "0af7651916cd43dd8448eb211c80319c",
                span_id = "b7ad6b7169203331",
                sampled = false,
            );
            span.in_scope(|| tracing::info!("in a span"));
        });
        tracing::info!("outside");
    }

    fn log_with<L>(layer: L)
    where
        L: Layer<tracing_subscriber::layer::Layered<TraceIdsLayer, Registry>> + Send + Sync,
    {
        let subscriber = Registry::default().with(TraceIdsLayer).with(layer);
        tracing::subscriber::with_default(subscriber, log_three_lines);
    }

    #[test]
    fn cloud_logging_takes_the_ids_from_a_span_else_the_current_context() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        log_with(
            tracing_subscriber::fmt::layer()
                .event_format(CloudLogging::new(
                    &Revision::default(),
                    Some("demo-project".into()),
                ))
                .with_writer(move || writer.clone()),
        );
        let lines: Vec<Value> = buffer
            .lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        let [inside, in_span, outside] = &lines[..] else {
            unreachable!()
        };
        assert_eq!(inside["message"], "inside");
        assert_eq!(
            inside["logging.googleapis.com/trace"],
            format!("projects/demo-project/traces/{TRACE}")
        );
        assert_eq!(inside["logging.googleapis.com/spanId"], PARENT);
        assert_eq!(inside["logging.googleapis.com/trace_sampled"], true);
        assert_eq!(in_span["message"], "in a span");
        assert_eq!(
            in_span["logging.googleapis.com/trace"],
            "projects/demo-project/traces/0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(in_span["logging.googleapis.com/spanId"], "b7ad6b7169203331");
        assert_eq!(in_span["logging.googleapis.com/trace_sampled"], false);
        assert_eq!(outside["message"], "outside");
        assert!(outside.get("logging.googleapis.com/trace").is_none());
        assert!(outside.get("logging.googleapis.com/spanId").is_none());
    }

    #[test]
    fn text_ends_lines_in_a_trace_context_with_the_trace_id() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let revision = Revision {
            service: Some("svc".into()),
            ..Revision::default()
        };
        log_with(
            tracing_subscriber::fmt::layer()
                .event_format(Text::new(&revision))
                .with_ansi(false)
                .with_writer(move || writer.clone()),
        );
        let lines = buffer.lines();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines.iter().all(|l| l.starts_with("[svc] ")), "{lines:?}");
        assert!(
            lines[0].contains("inside") && lines[0].ends_with(&format!(" trace_id={TRACE}")),
            "{}",
            lines[0]
        );
        // The span shows its own trace id among its fields, once.
        assert!(
            lines[1].contains("own{trace_id=\"0af7651916cd43dd8448eb211c80319c\""),
            "{}",
            lines[1]
        );
        assert_eq!(lines[1].matches("trace_id").count(), 1, "{}", lines[1]);
        assert!(
            lines[2].contains("outside") && !lines[2].contains("trace_id"),
            "{}",
            lines[2]
        );
    }
}
