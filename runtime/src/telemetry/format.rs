//! The two log line formats and the span extension that carries the trace id
//! from `traceparent` to every line logged inside a request.

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
        if let Some(scope) = ctx.event_scope() {
            for span in scope {
                if let Some(ids) = span.extensions().get::<TraceIds>() {
                    let trace = match &self.project {
                        Some(project) => format!("projects/{project}/traces/{}", ids.trace_id),
                        None => ids.trace_id.clone(),
                    };
                    line.insert("logging.googleapis.com/trace".into(), Value::from(trace));
                    if let Some(span_id) = &ids.span_id {
                        line.insert(
                            "logging.googleapis.com/spanId".into(),
                            Value::from(span_id.as_str()),
                        );
                    }
                    line.insert(
                        "logging.googleapis.com/trace_sampled".into(),
                        Value::from(ids.sampled),
                    );
                    break;
                }
            }
        }
        if let Some(labels) = &self.labels {
            line.insert("logging.googleapis.com/labels".into(), labels.clone());
        }
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Readable lines for a terminal, prefixed with the revision when known.
#[derive(Debug)]
pub struct Text {
    prefix: Option<String>,
    inner: Format<Full>,
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
        self.inner.format_event(ctx, writer, event)
    }
}
