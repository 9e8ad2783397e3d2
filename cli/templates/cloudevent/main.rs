//! {{name}}: an okonomi CloudEvents function. It takes an order event and
//! replies with a receipt event.

use okonomi::cloudevents::{EventError, Reply, TypedEvent};
use okonomi::serde::{Deserialize, Serialize};

/// The data of an incoming `com.example.order` event.
#[derive(Debug, Deserialize)]
#[serde(crate = "okonomi::serde")]
struct Order {
    id: u64,
}

/// The data of the reply.
#[derive(Debug, Serialize)]
#[serde(crate = "okonomi::serde")]
struct Receipt {
    order: u64,
    status: &'static str,
}

/// Handles one event; `Ok(None)` would acknowledge it without a reply.
async fn handle(event: TypedEvent<Order>) -> Result<Option<Reply<Receipt>>, EventError> {
    let receipt = Receipt {
        order: event.data.id,
        status: "accepted",
    };
    Ok(Some(Reply::new("com.example.receipt", "/{{name}}", receipt)))
}

#[okonomi::tokio::main(crate = "okonomi::tokio")]
async fn main() -> Result<(), okonomi::Error> {
    okonomi::serve(okonomi::cloudevents::typed(handle)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use okonomi::cloudevents::{AttributesReader, EventBuilder, EventBuilderV10};

    #[okonomi::tokio::test(crate = "okonomi::tokio")]
    async fn replies_with_a_receipt() {
        let event = EventBuilderV10::new()
            .id("1")
            .ty("com.example.order")
            .source("/test")
            .data("application/json", okonomi::serde_json::json!({"id": 7}))
            .build()
            .expect("a valid event");
        let reply = handle(TypedEvent { event, data: Order { id: 7 } })
            .await
            .expect("the handler accepts the order")
            .expect("the handler replies")
            .into_event()
            .expect("the reply is a valid event");
        assert_eq!(reply.ty(), "com.example.receipt");
        let data = okonomi::cloudevents::decode_data::<okonomi::serde_json::Value>(&reply)
            .expect("JSON data");
        assert_eq!(data, okonomi::serde_json::json!({"order": 7, "status": "accepted"}));
    }
}
