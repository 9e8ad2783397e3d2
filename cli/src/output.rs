//! Printing data in the format `-o` chose.

use serde::Serialize;

use crate::global::{Format, Global};

/// Prints `value` on stdout as JSON or YAML, or calls `text` for the human form.
pub fn print<T: Serialize>(
    global: &Global,
    value: &T,
    text: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    match global.output {
        Format::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Format::Yaml => print!("{}", serde_saphyr::to_string(value)?),
        Format::Text => {
            let t = text(value);
            if !t.is_empty() {
                println!("{t}");
            }
        }
    }
    Ok(())
}
