//! OTLP trace export (HTTP/protobuf), built only when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set; the Knative names go on the resource.

use opentelemetry::KeyValue;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::registry::LookupSpan;

use crate::config::Revision;
use crate::error::{Error, Result};

/// The tracer provider, or `None` when no endpoint is configured.
pub(crate) fn provider(revision: &Revision) -> Result<Option<SdkTracerProvider>> {
    let configured = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var(name).is_ok_and(|v| !v.is_empty()));
    if !configured {
        return Ok(None);
    }
    let revision = revision.clone();
    // The blocking HTTP client must not be built on an async thread.
    let built = std::thread::spawn(move || {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| Error::Telemetry(e.to_string()))?;
        let mut attributes = Vec::new();
        if let Some(configuration) = &revision.configuration {
            attributes.push(KeyValue::new(
                "knative.configuration",
                configuration.clone(),
            ));
        }
        if let Some(rev) = &revision.revision {
            attributes.push(KeyValue::new("faas.version", rev.clone()));
            attributes.push(KeyValue::new("knative.revision", rev.clone()));
        }
        if let Some(service) = &revision.service {
            attributes.push(KeyValue::new("faas.name", service.clone()));
            attributes.push(KeyValue::new("knative.service", service.clone()));
        }
        let mut resource = Resource::builder().with_attributes(attributes);
        // OTEL_SERVICE_NAME, when set, wins over K_SERVICE.
        if std::env::var("OTEL_SERVICE_NAME").is_err()
            && let Some(service) = &revision.service
        {
            resource = resource.with_service_name(service.clone());
        }
        Ok(SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build())
    })
    .join()
    .map_err(|_| Error::Telemetry("the exporter set-up thread panicked".into()))??;
    Ok(Some(built))
}

/// The tracing layer that turns spans into OTel spans.
pub(crate) fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("okonomi"))
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes the request's `traceparent` the parent of its span.
pub(crate) fn set_parent(span: &tracing::Span, headers: &http::HeaderMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let _ = span.set_parent(cx);
}
