//! Logs go to stderr (info, or warnings only with `--quiet`; `RUST_LOG` overrides) and, once a
//! command has an output directory, also to its log file (always at info level).

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::progress;

/// The run's log file, once [`log_to_file`] has opened it.
static LOG_FILE: Mutex<Option<File>> = Mutex::new(None);

/// Our crates at info, everything else (Burn, wgpu, tokenizers) at warn.
fn our_crates(level: LevelFilter) -> Targets {
    [
        "meta_bert",
        "maml",
        "model",
        "tasks",
        "dataset",
        "atomic_io",
    ]
    .into_iter()
    .fold(
        Targets::new().with_default(LevelFilter::WARN),
        |targets, name| targets.with_target(name, level),
    )
}

/// Installs the subscriber; call once, first thing.
pub fn init(quiet: bool) {
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_writer(|| ProgressAwareStderr)
        .with_ansi(io::stderr().is_terminal())
        .with_target(false);
    let stderr_layer = match EnvFilter::try_from_default_env() {
        Ok(filter) => stderr_layer.with_filter(filter).boxed(),
        Err(_) if quiet => stderr_layer.with_filter(LevelFilter::WARN).boxed(),
        Err(_) => stderr_layer
            .with_filter(our_crates(LevelFilter::INFO))
            .boxed(),
    };
    let file_layer = tracing_subscriber::fmt::layer()
        .with_writer(|| LogFileWriter)
        .with_ansi(false)
        .with_filter(our_crates(LevelFilter::INFO));
    tracing_subscriber::registry()
        .with(stderr_layer)
        .with(file_layer)
        .init();
}

/// From now on, log lines are also appended to `path`.
pub fn log_to_file(path: &Path) -> anyhow::Result<()> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the log file {}", path.display()))?;
    *LOG_FILE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(file);
    Ok(())
}

/// Prints a command's error on stderr (whatever the log level) and records it in the log file.
pub fn report_error(error: &anyhow::Error) {
    let message = format!("error: {error:#}\n");
    progress::suspend(|| {
        let _ = io::stderr().write_all(message.as_bytes());
    });
    let _ = LogFileWriter.write_all(message.as_bytes());
}

/// stderr, with the progress bars moved out of the way while a line is printed.
struct ProgressAwareStderr;

impl Write for ProgressAwareStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        progress::suspend(|| io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// The log file if one is open; otherwise lines are dropped.
struct LogFileWriter;

impl Write for LogFileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut file = LOG_FILE
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(file) = file.as_mut() {
            file.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut file = LOG_FILE
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match file.as_mut() {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}
