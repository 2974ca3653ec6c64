//! What `cargo xtask reproduce` expects `meta-bert` to write: the fields it reads from each run's
//! `results.json`. Unknown fields are ignored, so the CLI may write more.
//!
//! `meta-bert meta-train --output-dir D ...` writes `D/results.json`:
//! ```json
//! {"best_checkpoint": "D/ckpt/meta.epoch-2.step-4"}
//! ```
//! the checkpoint chosen on validation tasks from the training domains; an absolute path, or
//! one relative to D.
//!
//! `meta-bert finetune --output-dir D ...` writes `D/results.json`:
//! ```json
//! {"epochs": [{"epoch": 1,
//!              "validation": {"accuracy": 0.8, "macro_f1": 0.79, "majority_baseline": 0.5},
//!              "test": {"accuracy": 0.7, "macro_f1": 0.6, "majority_baseline": 0.83}}],
//!  "zero_shot": {"test": {"accuracy": 0.5, "macro_f1": 0.4, "majority_baseline": 0.83}}}
//! ```
//! `zero_shot` only with `--zero-shot`, which evaluates the model as given on the test split
//! without training it (as the reference did); `epochs` may then be empty or absent.
//! `test_predictions` holds the final model's prediction for every test review, in review-file
//! order (runs written before it existed lack it; the summary then has no bootstrap):
//! ```json
//! {"test_predictions": {"review_index": [8298, 8299], "label": [1, 0], "predicted": [1, 1],
//!                       "probabilities": [[0.1, 0.9], [0.4, 0.6]]}}
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

/// The file every run writes last, and whose presence marks the run complete.
pub const RESULTS_FILE: &str = "results.json";

/// `results.json` of `meta-bert meta-train`.
#[derive(Debug, Deserialize)]
pub struct MetaTrainResults {
    pub best_checkpoint: PathBuf,
}

/// `results.json` of `meta-bert finetune`.
#[derive(Debug, Deserialize)]
pub struct FinetuneResults {
    #[serde(default)]
    pub epochs: Vec<EpochResults>,
    #[serde(default)]
    pub zero_shot: Option<ZeroShotResults>,
    #[serde(default)]
    pub test_predictions: Option<TestPredictions>,
}

/// The final model's prediction for each test review; the three lists run in parallel.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TestPredictions {
    /// The review's position in the review file.
    pub review_index: Vec<usize>,
    /// Its true label id.
    pub label: Vec<usize>,
    /// The label id the model gave it.
    pub predicted: Vec<usize>,
}

#[derive(Debug, Deserialize)]
pub struct EpochResults {
    pub epoch: usize,
    pub test: SplitMetrics,
}

#[derive(Debug, Deserialize)]
pub struct ZeroShotResults {
    pub test: SplitMetrics,
}

/// Scores on one split. `majority_baseline` is the accuracy of always answering the split's
/// most frequent label.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct SplitMetrics {
    pub accuracy: f64,
    pub macro_f1: f64,
    pub majority_baseline: f64,
}

/// Reads and parses `<run_dir>/results.json`.
pub fn read_results<T: for<'de> Deserialize<'de>>(run_dir: &Path) -> Result<T> {
    let path = run_dir.join(RESULTS_FILE);
    let text =
        fs::read_to_string(&path).with_context(|| format!("cannot read `{}`", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "`{}` does not hold the fields xtask expects (see xtask/src/contract.rs)",
            path.display()
        )
    })
}

impl MetaTrainResults {
    /// The checkpoint directory, resolved against the run's output directory when relative.
    pub fn checkpoint_dir(&self, run_dir: &Path) -> Result<PathBuf> {
        let candidates = [
            run_dir.join(&self.best_checkpoint),
            self.best_checkpoint.clone(),
        ];
        candidates
            .into_iter()
            .find(|candidate| candidate.is_dir())
            .with_context(|| {
                format!(
                    "`{}` names best_checkpoint `{}`, which is not a directory",
                    run_dir.join(RESULTS_FILE).display(),
                    self.best_checkpoint.display()
                )
            })
    }
}

impl FinetuneResults {
    /// Test scores of the last epoch trained.
    pub fn final_test(&self, run_dir: &Path) -> Result<SplitMetrics> {
        self.epochs
            .iter()
            .max_by_key(|epoch| epoch.epoch)
            .map(|epoch| epoch.test)
            .with_context(|| format!("`{}` has no epochs", run_dir.join(RESULTS_FILE).display()))
    }

    /// Test scores of the untrained model.
    pub fn zero_shot_test(&self, run_dir: &Path) -> Result<SplitMetrics> {
        self.zero_shot
            .as_ref()
            .map(|zero_shot| zero_shot.test)
            .with_context(|| {
                format!(
                    "`{}` has no zero_shot entry",
                    run_dir.join(RESULTS_FILE).display()
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_final_epoch_whatever_the_order() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(RESULTS_FILE),
            r#"{"epochs": [
                {"epoch": 2, "validation": {"accuracy": 0.9}, "test": {"accuracy": 0.8, "macro_f1": 0.7, "majority_baseline": 0.6, "n": 300}},
                {"epoch": 1, "test": {"accuracy": 0.5, "macro_f1": 0.4, "majority_baseline": 0.6}}
            ], "extra": true}"#,
        )
        .unwrap();
        let results: FinetuneResults = read_results(dir.path()).unwrap();
        let last = results.final_test(dir.path()).unwrap();
        assert_eq!((last.accuracy, last.macro_f1), (0.8, 0.7));
        assert!(results.zero_shot_test(dir.path()).is_err());
    }

    #[test]
    fn names_the_file_that_lacks_a_field() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(RESULTS_FILE), r#"{"best": "x"}"#).unwrap();
        let error = read_results::<MetaTrainResults>(dir.path()).unwrap_err();
        assert!(
            format!("{error:#}").contains("best_checkpoint"),
            "{error:#}"
        );
        assert!(error.to_string().contains(RESULTS_FILE));
    }

    #[test]
    fn resolves_a_relative_checkpoint_against_the_run_dir() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("ckpt/meta.epoch-1.step-2")).unwrap();
        let results = MetaTrainResults {
            best_checkpoint: PathBuf::from("ckpt/meta.epoch-1.step-2"),
        };
        assert_eq!(
            results.checkpoint_dir(dir.path()).unwrap(),
            dir.path().join("ckpt/meta.epoch-1.step-2")
        );
        let missing = MetaTrainResults {
            best_checkpoint: PathBuf::from("ckpt/none"),
        };
        assert!(missing.checkpoint_dir(dir.path()).is_err());
    }
}
