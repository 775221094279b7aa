//! The progress bar on stderr while a run goes: only on a terminal, never in a pipe or a CI
//! log, and gone before the report is printed.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::Bound;

/// A progress bar, or nothing.
pub struct Progress(ProgressBar);

impl Progress {
    /// On stderr when it is a terminal; hidden otherwise.
    pub fn on_stderr() -> Self {
        Self(crate::cli::progress_bar())
    }

    /// Draws nothing (tests, pipes, JSON for scripts).
    pub fn hidden() -> Self {
        Self(ProgressBar::hidden())
    }

    /// A run of `label` starts: the bar fills with operations, or with time.
    pub(super) fn start(&self, label: &str, bound: Bound) {
        let length = match bound {
            Bound::Requests(n) => n,
            Bound::Duration(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        };
        self.0.reset();
        self.0.set_length(length);
        self.0.set_position(0);
        self.0.set_prefix(label.to_string());
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {elapsed} {wide_msg}")
        {
            self.0.set_style(style.progress_chars("=> "));
        }
        self.0.enable_steady_tick(Duration::from_millis(120));
    }

    /// `done` operations finished (`failed` of them failed), `elapsed` into the run.
    pub(super) fn update(&self, bound: Bound, done: u64, failed: u64, elapsed: Duration) {
        let position = match bound {
            Bound::Requests(_) => done,
            Bound::Duration(_) => u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        };
        self.0.set_position(position);
        self.0.set_message(format!("{done} done, {failed} failed"));
    }

    /// The run is over: the bar goes.
    pub(super) fn finish(&self) {
        self.0.finish_and_clear();
    }
}
