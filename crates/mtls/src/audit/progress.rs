//! The progress line on stderr while an audit runs: only on a terminal, never in a pipe or
//! a CI log, and gone before the report is printed.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A one-line progress bar, or nothing.
pub struct ProgressLine(ProgressBar);

impl ProgressLine {
    /// On stderr when it is a terminal; hidden otherwise.
    pub fn on_stderr() -> Self {
        Self(crate::cli::progress_bar())
    }

    /// Draws nothing (tests, pipes, JSON for CI).
    pub fn hidden() -> Self {
        Self(ProgressBar::hidden())
    }

    pub(crate) fn start(&self, total: usize) {
        self.0.set_length(total as u64);
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} audit [{pos}/{len}] {elapsed} {wide_msg}")
        {
            self.0.set_style(style);
        }
        self.0.enable_steady_tick(Duration::from_millis(120));
    }

    /// `done` cases are finished; `what` runs now.
    pub(crate) fn step(&self, done: usize, what: &str) {
        self.0.set_position(done as u64);
        self.0.set_message(what.to_string());
    }

    pub(crate) fn finish(&self) {
        self.0.finish_and_clear();
    }
}
