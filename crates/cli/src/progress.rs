//! Progress bars with ETA for every long loop, drawn on stderr only when it is a terminal and
//! `--quiet` is off. Log lines are printed through [`suspend`] so bars and logs do not garble
//! each other.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// Decides once whether bars are drawn.
pub fn init(quiet: bool) {
    let target = if quiet || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    // A second call keeps the first decision.
    let _ = BARS.set(MultiProgress::with_draw_target(target));
}

fn bars() -> &'static MultiProgress {
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::hidden()))
}

/// A bar over `len` units of work, labelled `what`, with elapsed time and ETA.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{prefix:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} ETA {eta} {msg}",
    )
    .expect("the template is valid");
    let bar = ProgressBar::new(len)
        .with_style(style)
        .with_prefix(what.to_string());
    bars().add(bar)
}

/// A spinner for one step of unknown length (loading, tokenising).
pub fn spinner(what: &str) -> ProgressBar {
    let style = ProgressStyle::with_template("{spinner} {prefix} [{elapsed_precise}] {msg}")
        .expect("the template is valid");
    let spinner = ProgressBar::new_spinner()
        .with_style(style)
        .with_prefix(what.to_string());
    let spinner = bars().add(spinner);
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner
}

/// Runs `print` with the bars cleared from the screen, then redraws them.
pub fn suspend<R>(print: impl FnOnce() -> R) -> R {
    bars().suspend(print)
}
