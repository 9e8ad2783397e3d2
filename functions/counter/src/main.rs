//! counter: the hands-on's Redis hit counter, as an okonomi function.
//!
//! `GET /` increments the `hits` key in Redis and answers `Hello Container
//! World! I have been seen N times.`. Redis is found at `REDIS_URL`, else at
//! `REDIS_SERVICE_HOST`:`REDIS_SERVICE_PORT` (the Kubernetes service variables
//! the seed app used), else at `redis://127.0.0.1:6379`. When Redis cannot be
//! reached the answer is 503 with a message saying so; the count resumes when
//! Redis is back.

use std::sync::Arc;
use std::time::Duration;

use okonomi::axum::extract::State;
use okonomi::axum::routing::get;
use okonomi::axum::{Router, http::StatusCode};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Where Redis is, from the environment.
fn redis_url(lookup: impl Fn(&str) -> Option<String>) -> String {
    if let Some(url) = lookup("REDIS_URL").filter(|u| !u.is_empty()) {
        return url;
    }
    match lookup("REDIS_SERVICE_HOST").filter(|h| !h.is_empty()) {
        Some(host) => {
            let port = lookup("REDIS_SERVICE_PORT")
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "6379".into());
            format!("redis://{host}:{port}")
        }
        None => "redis://127.0.0.1:6379".into(),
    }
}

struct Counter {
    client: redis::Client,
    /// Where Redis is, without credentials, for messages.
    location: String,
    connection: tokio::sync::Mutex<Option<ConnectionManager>>,
}

impl Counter {
    async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = &*slot {
            return Ok(connection.clone());
        }
        // Short timeouts: a request should learn quickly that Redis is away.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(1))
            .set_response_timeout(Duration::from_secs(2))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(self.client.clone(), config).await?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    async fn hit(&self) -> redis::RedisResult<i64> {
        let mut connection = self.connection().await?;
        redis::cmd("INCR")
            .arg("hits")
            .query_async(&mut connection)
            .await
    }
}

async fn count(State(counter): State<Arc<Counter>>) -> (StatusCode, String) {
    match counter.hit().await {
        Ok(n) => (
            StatusCode::OK,
            format!("Hello Container World! I have been seen {n} times."),
        ),
        Err(error) => {
            okonomi::tracing::warn!(%error, redis = %counter.location, "Redis is unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "Redis at {} is unavailable ({error}); the count resumes when it is back. Set REDIS_URL to point elsewhere.\n",
                    counter.location
                ),
            )
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = redis_url(|name| std::env::var(name).ok());
    let client = redis::Client::open(url.as_str()).map_err(|e| {
        format!("REDIS_URL={url:?} is not a Redis URL ({e}); use redis://host:port")
    })?;
    let location = client.get_connection_info().addr.to_string();
    let counter = Arc::new(Counter {
        client,
        location,
        connection: tokio::sync::Mutex::new(None),
    });
    let app = Router::new().route("/", get(count)).with_state(counter);
    okonomi::serve(app).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::redis_url;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn url_from_env_like_the_seed() {
        assert_eq!(redis_url(lookup(&[])), "redis://127.0.0.1:6379");
        assert_eq!(
            redis_url(lookup(&[("REDIS_SERVICE_HOST", "10.0.0.7")])),
            "redis://10.0.0.7:6379"
        );
        assert_eq!(
            redis_url(lookup(&[
                ("REDIS_SERVICE_HOST", "redis"),
                ("REDIS_SERVICE_PORT", "6380")
            ])),
            "redis://redis:6380"
        );
        assert_eq!(
            redis_url(lookup(&[
                ("REDIS_URL", "redis://db:1"),
                ("REDIS_SERVICE_HOST", "x")
            ])),
            "redis://db:1"
        );
    }
}
