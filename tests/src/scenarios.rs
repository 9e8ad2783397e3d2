//! Running a list of named scenarios against one target, as the
//! portability and conformance suites do: `OKONOMI_TEST_SCENARIOS=a,b`
//! picks some, every scenario runs even after one fails, and the failures
//! are reported together with the end of the engine's log.

use crate::Target;

/// A scenario: a step of a suite, given what the earlier ones left.
pub type Scenario<S> = fn(&mut S) -> anyhow::Result<()>;

/// Runs `scenarios` in order on `suite` (those OKONOMI_TEST_SCENARIOS
/// names, when set) and panics naming every one that failed.
pub fn run<S>(suite: &mut S, scenarios: &[(&str, Scenario<S>)], target: fn(&S) -> &Target) {
    let selected: Option<Vec<String>> = std::env::var("OKONOMI_TEST_SCENARIOS")
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| s.split(',').map(str::to_owned).collect());
    let mut failures = Vec::new();
    for (name, scenario) in scenarios {
        if let Some(selected) = &selected
            && !selected.iter().any(|s| s == name)
        {
            continue;
        }
        eprintln!("=== scenario {name} (context {})", target(suite).context);
        let started = std::time::Instant::now();
        match scenario(suite) {
            Ok(()) => eprintln!(
                "=== scenario {name}: ok ({:.1}s)",
                started.elapsed().as_secs_f64()
            ),
            Err(e) => {
                eprintln!("=== scenario {name}: FAILED: {e:#}");
                failures.push(format!("{name}: {e:#}"));
            }
        }
    }
    if !failures.is_empty() {
        let target = target(suite);
        let log = target.engine_log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(60)..];
        panic!(
            "{} scenario(s) failed on context {}:\n{}\n--- okonomi up (last lines)\n{}",
            failures.len(),
            target.context,
            failures.join("\n\n"),
            tail.join("\n")
        );
    }
}
