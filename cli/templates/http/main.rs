//! {{name}}: an okonomi HTTP function.

use okonomi::{IntoResponse, Request};

/// Answers every request with a greeting.
async fn handle(_request: Request) -> impl IntoResponse {
    "Hello from {{name}}!\n"
}

#[okonomi::tokio::main(crate = "okonomi::tokio")]
async fn main() -> Result<(), okonomi::Error> {
    okonomi::serve(okonomi::handler(handle)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[okonomi::tokio::test(crate = "okonomi::tokio")]
    async fn answers_with_a_greeting() {
        let request = Request::new(okonomi::Body::empty());
        let response = handle(request).await.into_response();
        assert_eq!(response.status(), 200);
        let body = okonomi::axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("the body is readable");
        assert_eq!(&body[..], b"Hello from {{name}}!\n");
    }
}
