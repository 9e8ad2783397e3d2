//! Logs and traces: JSON lines Cloud Logging reads (severity, message, trace id
//! from `traceparent`, Knative names as labels) when stdout is not a terminal,
//! readable text when it is; OTLP trace export only when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//!
//! `OKONOMI_LOG_FORMAT=json|text` overrides the choice; `RUST_LOG` sets the
//! filter (default `info`).

pub mod format;
#[cfg(feature = "otlp")]
pub mod otlp;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::config::Config;
use crate::error::Result;

static OTLP_ACTIVE: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported over OTLP (so every request needs a span).
pub(crate) fn otlp_active() -> bool {
    OTLP_ACTIVE.load(Ordering::Relaxed)
}

/// Keeps the trace exporter alive; dropping it flushes pending spans.
#[must_use = "dropping the guard stops trace export"]
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.provider.take() {
            // The exporter's HTTP client blocks: flush off the async threads.
            let _ = std::thread::spawn(move || provider.shutdown()).join();
        }
    }
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for Cloud Logging and other collectors.
    Json,
    /// Readable text, for a terminal.
    Text,
}

impl LogFormat {
    /// `OKONOMI_LOG_FORMAT` if set, else text on a terminal and JSON elsewhere.
    pub fn from_env() -> Self {
        match std::env::var("OKONOMI_LOG_FORMAT").as_deref() {
            Ok("json") => Self::Json,
            Ok("text") => Self::Text,
            _ if std::io::stdout().is_terminal() => Self::Text,
            _ => Self::Json,
        }
    }
}

/// The filter for a `RUST_LOG` value: targets it names at their levels,
/// everything else at its bare level (`debug,hyper=warn`) or info.
fn log_filter(directives: &str) -> Targets {
    let targets = directives
        .parse::<Targets>()
        .unwrap_or_else(|_| Targets::new());
    match targets.default_level() {
        Some(_) => targets,
        None => targets.with_default(LevelFilter::INFO),
    }
}

/// Installs the global subscriber (a no-op if the program installed its own).
pub fn init(config: &Config) -> Result<TelemetryGuard> {
    let format = LogFormat::from_env();
    let filter = match std::env::var("RUST_LOG") {
        // `Targets` reads `info,hyper=warn,my_fn=debug`, the RUST_LOG forms a
        // function needs, without EnvFilter's regex engine: that alone kept
        // hello's image above 2 MiB. A directive it cannot read falls back to
        // info rather than failing start-up.
        Ok(directives) if !directives.is_empty() => log_filter(&directives).boxed(),
        _ => LevelFilter::INFO.boxed(),
    };
    let project = std::env::var("GOOGLE_CLOUD_PROJECT")
        .ok()
        .filter(|p| !p.is_empty());
    let revision = config.revision.clone();
    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .event_format(format::CloudLogging::new(&revision, project))
            .with_writer(std::io::stdout)
    });
    let text = (format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .event_format(format::Text::new(&revision))
            .with_writer(std::io::stdout)
    });
    #[allow(unused_mut)]
    let mut guard = TelemetryGuard::default();
    let registry = Registry::default()
        .with(filter)
        .with(format::TraceIdsLayer)
        .with(json)
        .with(text);

    #[cfg(feature = "otlp")]
    let (registry, exporting) = {
        let otel = match otlp::provider(&revision)? {
            Some(provider) => {
                let layer = otlp::layer(&provider);
                guard.provider = Some(provider);
                Some(layer)
            }
            None => None,
        };
        let exporting = otel.is_some();
        (registry.with(otel), exporting)
    };
    #[cfg(not(feature = "otlp"))]
    let exporting = false;

    if registry.try_init().is_ok() {
        // Every request needs a span only when spans leave the process.
        OTLP_ACTIVE.store(exporting, Ordering::Relaxed);
        if format == LogFormat::Json {
            // Panics become JSON lines too, instead of bare text on stderr.
            std::panic::set_hook(Box::new(|info| {
                tracing::error!(panic = %info, "panic");
            }));
        }
    }
    Ok(guard)
}

#[cfg(test)]
mod log_filter_tests {
    use super::log_filter;
    use tracing::Level;

    #[test]
    fn named_targets_keep_their_level_and_others_default_to_info() {
        let filter = log_filter("hyper=warn,my_fn=debug");
        assert!(filter.would_enable("my_fn::handler", &Level::DEBUG));
        assert!(!filter.would_enable("hyper::proto", &Level::INFO));
        assert!(filter.would_enable("other", &Level::INFO));
        assert!(!filter.would_enable("other", &Level::DEBUG));
    }

    #[test]
    fn a_bare_level_is_the_default() {
        let filter = log_filter("debug,hyper=warn");
        assert!(filter.would_enable("other", &Level::DEBUG));
        assert!(!filter.would_enable("hyper", &Level::INFO));
    }

    #[test]
    fn unreadable_directives_fall_back_to_info() {
        let filter = log_filter("[{not a directive");
        assert!(filter.would_enable("other", &Level::INFO));
        assert!(!filter.would_enable("other", &Level::DEBUG));
    }
}
