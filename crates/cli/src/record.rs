//! `--record`: what a run consumed, for the PyTorch replay (fidelity/replay.py). FIDELITY.md
//! describes the files: `record/initial/` (the weights and head the run started from, loadable
//! by transformers) and `record/record.jsonl` (one JSON object per line: the run's settings,
//! then every task's reviews and batches or every fine-tuning batch, with every loss).

use std::path::{Path, PathBuf};

use anyhow::Context;
use maml::DrawnTask;
use model::BertClassifier;
use serde::Serialize;
use serde_json::{Value, json};

use crate::checkpoints::Saver;

/// The directory under --output-dir.
pub const RECORD_DIR: &str = "record";

/// `--record` and `--no-dropout`, shared by meta-train and finetune.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct RecordArgs {
    /// Write record/record.jsonl (every task's support and query reviews and inner batches,
    /// every fine-tuning batch, every loss) and record/initial/ (the weights and head the run
    /// starts from) into --output-dir, for the PyTorch replay fidelity/replay.py (FIDELITY.md).
    /// Not with --resume.
    #[arg(long, conflicts_with = "resume")]
    pub record: bool,
    /// Train without dropout (what PyTorch's model.eval() computes, gradients included); the
    /// replay needs it, since dropout masks are not PyTorch's.
    #[arg(long)]
    pub no_dropout: bool,
}

/// What the first line of every record says besides the command's own settings.
pub struct RunHeader<'a> {
    /// `meta-train` or `finetune`.
    pub command: &'static str,
    /// The review file.
    pub data: &'a Path,
    /// `--max-seq-len`.
    pub max_seq_len: usize,
    /// Whether dropout was on.
    pub dropout: bool,
}

/// The record of one run, being written.
pub struct Recorder {
    path: PathBuf,
    /// The tasks the next task lines are about.
    drawn: Option<Drawn>,
}

/// Tasks of one outer step or one evaluation, as review indices.
struct Drawn {
    step: usize,
    /// `None` for meta-training tasks; `validation` or `test` for an evaluation's.
    split: Option<&'static str>,
    /// Each task's support and query reviews.
    tasks: Vec<(Vec<usize>, Vec<usize>)>,
}

impl Recorder {
    /// Starts the record of a run in `run_root` (replacing an earlier one): writes the starting
    /// model to record/initial/, and `header` with the command's `settings` as the first line.
    pub fn start(
        run_root: &Path,
        saver: &Saver,
        model: &BertClassifier,
        header: RunHeader,
        settings: Value,
    ) -> anyhow::Result<Self> {
        let dir = run_root.join(RECORD_DIR);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot remove the earlier record {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        model::save_checkpoint(
            model,
            saver.source,
            saver.labels.names(),
            &saver.meta(0, 0),
            &dir.join("initial"),
            |_| Ok(()),
        )
        .context("cannot save the starting model into the record")?;
        let recorder = Self {
            path: dir.join("record.jsonl"),
            drawn: None,
        };
        let mut first = json!({
            "kind": "run",
            "command": header.command,
            "data": absolute(header.data),
            "labels": saver.labels.names(),
            "max_seq_len": header.max_seq_len,
            "seed": saver.seed,
            "dropout": header.dropout,
        });
        merge(&mut first, settings);
        recorder.line(&first)?;
        Ok(recorder)
    }

    /// Appends one line.
    pub fn line(&self, value: &Value) -> anyhow::Result<()> {
        atomic_io::append_line(&self.path, &value.to_string())
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// The tasks of outer step `step` (`split` `None`) or of an evaluation after it, whose
    /// examples are positions in the review file; the following [`Recorder::task`] lines are
    /// about them.
    pub fn tasks_drawn(&mut self, step: usize, split: Option<&'static str>, tasks: &[DrawnTask]) {
        self.drawn = Some(Drawn {
            step,
            split,
            tasks: tasks
                .iter()
                .map(|task| (task.support.to_vec(), task.query.to_vec()))
                .collect(),
        });
    }

    /// One line for the `task`-th drawn task: its reviews, its inner batches (positions in its
    /// support set) as review indices, and `outcome`'s fields (losses or scores).
    pub fn task(
        &self,
        task: usize,
        domain: &str,
        support_batches: &[Vec<usize>],
        outcome: Value,
    ) -> anyhow::Result<()> {
        let drawn = self
            .drawn
            .as_ref()
            .context("a task finished before its tasks were drawn")?;
        let (support, query) = &drawn.tasks[task];
        let mut line = json!({
            "kind": if drawn.split.is_some() { "evaluation_task" } else { "task" },
            "step": drawn.step,
            "task": task,
            "domain": domain,
            "support": support,
            "query": query,
            "inner_batches": reviews_at(support_batches, support),
        });
        if let Some(split) = drawn.split {
            line["split"] = split.into();
        }
        merge(&mut line, outcome);
        self.line(&line)
    }
}

/// Each batch of positions in `reviews` as the reviews themselves.
pub fn reviews_at(batches: &[Vec<usize>], reviews: &[usize]) -> Vec<Vec<usize>> {
    batches
        .iter()
        .map(|batch| batch.iter().map(|&position| reviews[position]).collect())
        .collect()
}

fn merge(line: &mut Value, fields: Value) {
    if let (Value::Object(line), Value::Object(fields)) = (line, fields) {
        line.extend(fields);
    }
}

/// The review file as an absolute path, for the replay.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_name_the_reviews_at_their_positions() {
        let support = [40, 10, 30, 20];
        assert_eq!(
            reviews_at(&[vec![2, 0], vec![3, 1]], &support),
            [vec![30, 40], vec![20, 10]]
        );
    }

    #[test]
    fn a_task_line_names_its_reviews_batches_and_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let mut recorder = Recorder {
            path: dir.path().join("record.jsonl"),
            drawn: None,
        };
        assert!(recorder.task(0, "books", &[], json!({})).is_err());
        let support = [7, 3, 5];
        let query = [9];
        recorder.tasks_drawn(
            4,
            Some("test"),
            &[DrawnTask {
                domain: "books",
                support: &support,
                query: &query,
            }],
        );
        recorder
            .task(0, "books", &[vec![1, 2], vec![0]], json!({"accuracy": 0.5}))
            .unwrap();
        let written = std::fs::read_to_string(dir.path().join("record.jsonl")).unwrap();
        let line: Value = serde_json::from_str(written.trim()).unwrap();
        assert_eq!(
            line,
            json!({
                "kind": "evaluation_task", "step": 4, "split": "test", "task": 0,
                "domain": "books", "support": [7, 3, 5], "query": [9],
                "inner_batches": [[3, 5], [7]], "accuracy": 0.5,
            })
        );
    }
}
