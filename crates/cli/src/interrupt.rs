//! Ctrl-C (SIGINT) and SIGTERM: the first asks the running command to stop after the unit of
//! work in progress (an outer step, an epoch) and to write what it finished; the second quits at
//! once, which is safe because every file is written atomically.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use signal_hook::consts::{SIGINT, SIGTERM};

static REQUESTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Installs the handlers. Call it once, before the long work starts.
pub fn install(unit: &'static str) -> anyhow::Result<()> {
    let flag = REQUESTED.get_or_init(|| Arc::new(AtomicBool::new(false)));
    for signal in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag before the second handler sets it: exits only
        // when the flag was already set, i.e. on the second signal.
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(flag))
            .context("cannot install the Ctrl-C handler")?;
        signal_hook::flag::register(signal, Arc::clone(flag))
            .context("cannot install the Ctrl-C handler")?;
    }
    tracing::debug!("Ctrl-C stops after the current {unit}; a second Ctrl-C quits at once");
    Ok(())
}

/// Whether Ctrl-C (or SIGTERM) was received.
pub fn requested() -> bool {
    REQUESTED
        .get()
        .is_some_and(|flag| flag.load(Ordering::SeqCst))
}
