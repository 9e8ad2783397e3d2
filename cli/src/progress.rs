//! Progress bars on stderr (indicatif), drawn only on a terminal.

use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use okonomi_image::{PushEvent, PushProgress};

use crate::global::Global;

/// A byte bar fed by push events.
pub fn push_progress(global: &Global) -> (ProgressBar, PushProgress) {
    let bar = ProgressBar::with_draw_target(Some(0), target(global));
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {bytes}/{total_bytes}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message("Pushing");
    let b = bar.clone();
    let callback: PushProgress = Arc::new(move |event: &PushEvent| match event {
        PushEvent::Start { bytes, .. } => b.set_length(*bytes),
        PushEvent::Skipped { size, .. } | PushEvent::Uploaded { size, .. } => b.inc(*size),
        PushEvent::Manifest { .. } => {}
    });
    (bar, callback)
}

fn target(global: &Global) -> ProgressDrawTarget {
    if global.progress() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}
