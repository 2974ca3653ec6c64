//! A training command's --output-dir: refusing to clobber results, `--overwrite`, `--resume`,
//! and hyparams.json. Everything is checked before any input is loaded, but nothing is written
//! or removed until [`RunDir::open`], which commands call only once every input has loaded, so
//! a bad input never costs earlier results.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::logging;

/// Every setting actually used, the command and the versions that ran it.
pub const HYPARAMS: &str = "hyparams.json";
/// One JSON object per line: outer steps, epochs, evaluations.
pub const METRICS: &str = "metrics.jsonl";
/// Written once, when the run has finished.
pub const RESULTS: &str = "results.json";
/// The run's log (appended to when resumed).
pub const LOG: &str = "train.log";
/// Checkpoint directories.
pub const CHECKPOINTS: &str = "ckpt";

/// What a run writes; `--overwrite` removes exactly these and leaves other files alone.
const ARTEFACTS: [&str; 5] = [HYPARAMS, METRICS, RESULTS, LOG, CHECKPOINTS];

/// A training command's output flags.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct OutputArgs {
    /// Directory for the run's files (see below).
    #[arg(long)]
    pub output_dir: PathBuf,
    /// Replace the results of an earlier run in --output-dir.
    #[arg(long, conflicts_with = "resume")]
    #[serde(skip)]
    pub overwrite: bool,
    /// Continue the run in --output-dir from its latest checkpoint (same flags required);
    /// a finished run is left as it is.
    #[arg(long)]
    #[serde(skip)]
    pub resume: bool,
}

impl OutputArgs {
    /// The checked output directory, or `None` when `--resume` finds the run finished (then
    /// there is nothing to do).
    pub fn run_dir(&self) -> anyhow::Result<Option<RunDir>> {
        let run_dir = RunDir::check(&self.output_dir, self.overwrite, self.resume)?;
        if run_dir.is_complete() {
            tracing::info!(
                "{} already holds a finished run (results.json): nothing to resume",
                run_dir.root().display()
            );
            return Ok(None);
        }
        Ok(Some(run_dir))
    }
}

/// How a run starts in its output directory.
#[derive(Debug)]
enum Start {
    /// A new run; `clear` removes an earlier run's files first (`--overwrite`).
    Fresh { clear: bool },
    /// `--resume` of an unfinished run whose hyparams.json held this.
    Resume { previous: Value },
    /// `--resume` of a run that already wrote results.json.
    Complete,
}

/// The output directory of a training command, checked but not yet touched.
#[derive(Debug)]
pub struct RunDir {
    root: PathBuf,
    start: Start,
}

impl RunDir {
    /// Decides how the run starts in `root`. Errors if `root` is a file, or already holds a
    /// run and neither `overwrite` nor `resume` is given.
    pub fn check(root: &Path, overwrite: bool, resume: bool) -> anyhow::Result<Self> {
        if root.exists() && !root.is_dir() {
            bail!(
                "--output-dir {} is a file, not a directory: choose a directory path",
                root.display()
            );
        }
        let present: Vec<String> = match root.is_dir() {
            true => std::fs::read_dir(root)
                .with_context(|| format!("cannot list the output directory {}", root.display()))?
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect(),
            false => Vec::new(),
        };
        let start = if present.is_empty() {
            if resume {
                tracing::info!(
                    "nothing to resume in {}: starting a new run",
                    root.display()
                );
            }
            Start::Fresh { clear: false }
        } else if resume {
            if root.join(RESULTS).is_file() {
                Start::Complete
            } else {
                let previous = read_json(&root.join(HYPARAMS)).with_context(|| {
                    format!(
                        "--resume: {} holds files but no readable {HYPARAMS}, so it is not an \
                         unfinished meta-bert run; use another --output-dir or --overwrite",
                        root.display()
                    )
                })?;
                Start::Resume { previous }
            }
        } else if overwrite {
            Start::Fresh { clear: true }
        } else {
            let mut shown = present;
            shown.sort();
            bail!(
                "the output directory {} already holds results ({}): pass --overwrite to replace \
                 them, or --resume to continue that run",
                root.display(),
                shown.join(", ")
            );
        };
        Ok(Self {
            root: root.to_path_buf(),
            start,
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether `--resume` found a finished run (results.json present): nothing to do.
    pub fn is_complete(&self) -> bool {
        matches!(self.start, Start::Complete)
    }

    /// Whether this continues an earlier run.
    pub fn is_resume(&self) -> bool {
        matches!(self.start, Start::Resume { .. })
    }

    /// Errors, naming each difference, if a resumed run's settings are not those it started
    /// with: a resumed run must compute what the uninterrupted one would have.
    pub fn check_same_settings(&self, hyparams: &Value) -> anyhow::Result<()> {
        let Start::Resume { previous } = &self.start else {
            return Ok(());
        };
        let mut differences = Vec::new();
        for key in ["command", "settings"] {
            diff(key, &previous[key], &hyparams[key], &mut differences);
        }
        if !differences.is_empty() {
            bail!(
                "--resume: the settings differ from those {} was started with ({}): repeat the \
                 original flags, or start a new run with --overwrite",
                self.root.join(HYPARAMS).display(),
                differences.join("; ")
            );
        }
        Ok(())
    }

    /// Makes the directory ready: removes an earlier run's files under `--overwrite`, creates
    /// `ckpt/`, starts the log file and writes hyparams.json (a resumed run keeps its own).
    pub fn open(&self, hyparams: &Value) -> anyhow::Result<()> {
        if let Start::Fresh { clear: true } = self.start {
            for name in ARTEFACTS {
                remove(&self.root.join(name))?;
            }
        }
        let checkpoints = self.root.join(CHECKPOINTS);
        std::fs::create_dir_all(&checkpoints)
            .with_context(|| format!("cannot create {}", checkpoints.display()))?;
        logging::log_to_file(&self.root.join(LOG))?;
        if !self.is_resume() {
            let bytes = serde_json::to_vec_pretty(hyparams).expect("JSON values serialise");
            atomic_io::write_file(&self.root.join(HYPARAMS), &bytes)?;
        }
        Ok(())
    }

    /// Writes results.json atomically.
    pub fn write_results(&self, results: &Value) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(results).expect("JSON values serialise");
        atomic_io::write_file(&self.root.join(RESULTS), &bytes)?;
        Ok(())
    }
}

/// hyparams.json's common part: the command, the versions that ran it, and the settings.
pub fn hyparams(command: &str, settings: Value, resolved: Value) -> Value {
    serde_json::json!({
        "command": command,
        "versions": {
            "meta-bert": env!("CARGO_PKG_VERSION"),
            "burn": env!("METABERT_BURN_VERSION"),
        },
        "settings": settings,
        "resolved": resolved,
    })
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

fn remove(path: &Path) -> anyhow::Result<()> {
    let result = match path.is_dir() {
        true => std::fs::remove_dir_all(path),
        false => std::fs::remove_file(path),
    };
    match result {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("--overwrite: cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Collects `path: was → now` for every leaf where `before` and `after` differ.
fn diff(path: &str, before: &Value, after: &Value, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(old), Value::Object(new)) => {
            let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let null = Value::Null;
                diff(
                    &format!("{path}.{key}"),
                    old.get(key).unwrap_or(&null),
                    new.get(key).unwrap_or(&null),
                    out,
                );
            }
        }
        _ if before != after => out.push(format!("{path}: was {before}, now {after}")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_each_changed_setting() {
        let before = serde_json::json!({"settings": {"epochs": 1, "seed": 42, "lr": 0.1}});
        let after = serde_json::json!({"settings": {"epochs": 2, "seed": 42}});
        let mut out = Vec::new();
        diff("hyparams", &before, &after, &mut out);
        assert_eq!(
            out,
            [
                "hyparams.settings.epochs: was 1, now 2",
                "hyparams.settings.lr: was 0.1, now null"
            ]
        );
    }

    #[test]
    fn a_non_empty_directory_is_refused_without_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RESULTS), "{}").unwrap();
        let error = RunDir::check(dir.path(), false, false)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("--overwrite") && error.contains(RESULTS),
            "{error}"
        );
        assert!(RunDir::check(dir.path(), true, false).is_ok());
        assert!(
            RunDir::check(dir.path(), false, true)
                .unwrap()
                .is_complete()
        );
    }

    #[test]
    fn overwrite_removes_only_our_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RESULTS), "{}").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let run = RunDir::check(dir.path(), true, false).unwrap();
        run.open(&serde_json::json!({"settings": {}})).unwrap();
        assert!(!dir.path().join(RESULTS).exists());
        assert!(dir.path().join("notes.txt").is_file());
        assert!(dir.path().join(HYPARAMS).is_file());
    }
}
