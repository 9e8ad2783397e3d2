//! The one duration syntax of every flag that takes a time (`--timeout` of
//! deploy, traffic, delete and invoke): Go-style durations as Knative's
//! annotations take them (`500ms`, `1s`, `90s`, `2m`, `1m30s`, `1h`), or
//! plain seconds.

use std::time::Duration;

/// Parses `500ms`, `1s`, `5m`, `1h`, `1m30s` or plain seconds (`60`).
pub fn parse(text: &str) -> Result<Duration, String> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    okonomi_knative::validation::parse_duration(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_timeout_is_taken() {
        assert_eq!(parse("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse("soon").is_err());
        assert!(parse("").is_err());
    }
}
