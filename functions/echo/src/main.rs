//! echo: a CloudEvents function that answers with the event's data under a new
//! type and source.
//!
//! The reply keeps the data and its content type, gets a new id, type
//! `ECHO_TYPE` (default `dev.okonomi.echo.reply`) and source `ECHO_SOURCE`
//! (default `/okonomi/echo`), and travels in the mode the event came in.

use okonomi::cloudevents::{AttributesReader, Event, EventBuilder, EventBuilderV10, EventError};

/// The reply's type and source.
#[derive(Clone)]
struct Echo {
    ty: String,
    source: String,
}

impl Echo {
    fn reply(&self, event: &Event) -> Result<Event, EventError> {
        let mut reply = EventBuilderV10::new()
            .id(uuid::Uuid::new_v4().to_string())
            .ty(self.ty.clone())
            .source(self.source.clone())
            .build()
            .map_err(|e| EventError::internal(format!("cannot build the echo reply: {e}")))?;
        if let Some(data) = event.data() {
            match event.datacontenttype() {
                Some(content_type) => {
                    reply.set_data(content_type.to_string(), data.clone());
                }
                None => {
                    reply.set_data_unchecked(data.clone());
                }
            }
        }
        Ok(reply)
    }
}

#[tokio::main]
async fn main() -> Result<(), okonomi::Error> {
    let var = |name: &str, default: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_string())
    };
    let echo = Echo {
        ty: var("ECHO_TYPE", "dev.okonomi.echo.reply"),
        source: var("ECHO_SOURCE", "/okonomi/echo"),
    };
    okonomi::serve(okonomi::cloudevents::handler(move |event: Event| {
        let echo = echo.clone();
        async move { echo.reply(&event).map(Some) }
    }))
    .await
}
