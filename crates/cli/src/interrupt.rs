//! Ctrl-C: the first press asks the running command to stop after the unit of work in progress
//! (an outer step, an epoch) and to write what it finished; the second quits at once, which is
//! safe because every file is written atomically.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Installs the handler. Call it once, before the long work starts.
pub fn install(unit: &'static str) -> anyhow::Result<()> {
    ctrlc::set_handler(move || {
        if REQUESTED.swap(true, Ordering::SeqCst) {
            tracing::warn!("interrupted again: quitting now");
            std::process::exit(130);
        }
        tracing::warn!(
            "interrupted: stopping after the current {unit} and saving it; press Ctrl-C again to quit at once"
        );
    })
    .context("cannot install the Ctrl-C handler")
}

/// Whether Ctrl-C was pressed.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
