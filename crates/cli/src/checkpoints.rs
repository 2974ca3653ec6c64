//! Checkpoint directories under `OUTPUT_DIR/ckpt/` and the training state saved in them for
//! `--resume`. Only the best checkpoint (by validation) and the latest are kept.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::tensor::Device;
use dataset::LabelSet;
use maml::MamlError;
use model::{BertClassifier, CheckpointMeta, ModelDir};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::common;
use crate::run_dir::CHECKPOINTS;

/// Counters, RNG states and history of a run, beside the weights of each checkpoint.
pub const TRAINING_STATE: &str = "training_state.json";
/// The optimizer's state (Adam moments and step count), Burn's burnpack format.
pub const OPTIMIZER_STATE: &str = "optimizer.bpk";

/// The checkpoints of one run whose names start with `prefix` (`meta`, `transfer`).
#[derive(Debug, Clone)]
pub struct Checkpoints {
    dir: PathBuf,
    prefix: &'static str,
}

impl Checkpoints {
    /// The checkpoints in `dir` (a run's `ckpt/`).
    pub fn new(dir: PathBuf, prefix: &'static str) -> Self {
        Self { dir, prefix }
    }

    /// The name of this run's checkpoint `prefix.suffix`.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.prefix)
    }

    /// The directory of the checkpoint called `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The absolute path of checkpoint `name`, as results.json records it.
    pub fn absolute_path(&self, name: &str) -> anyhow::Result<String> {
        let path = self.path(name);
        let path = std::path::absolute(&path)
            .with_context(|| format!("cannot make {} absolute", path.display()))?;
        Ok(path.to_string_lossy().into_owned())
    }

    /// The complete checkpoint with the highest counter (the number ending its name), if any.
    /// Directories still being written carry hidden temporary names and are never seen here.
    pub fn latest(&self) -> anyhow::Result<Option<PathBuf>> {
        let mut found = Vec::new();
        for entry in self.entries()? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(counter) = self.counter(&name)
                && entry.path().join(TRAINING_STATE).is_file()
            {
                found.push((counter, entry.path()));
            }
        }
        Ok(found.into_iter().max().map(|(_, path)| path))
    }

    /// Removes every checkpoint of this run except `keep`, and what a crash left half-written.
    pub fn prune(&self, keep: &[&Path]) -> anyhow::Result<()> {
        let staging = format!(".{}.", self.prefix);
        for entry in self.entries()? {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = self.counter(&name).is_some() || name.starts_with(&staging);
            if ours && !keep.contains(&path.as_path()) {
                std::fs::remove_dir_all(&path)
                    .with_context(|| format!("cannot remove old checkpoint {}", path.display()))?;
            }
        }
        Ok(())
    }

    fn entries(&self) -> anyhow::Result<Vec<std::fs::DirEntry>> {
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => Ok(entries.filter_map(Result::ok).collect()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(error) => Err(error).with_context(|| format!("cannot list {}", self.dir.display())),
        }
    }

    /// `prefix.….N` → N.
    fn counter(&self, name: &str) -> Option<u64> {
        let rest = name.strip_prefix(self.prefix)?.strip_prefix('.')?;
        rest.rsplit('-').next()?.parse().ok()
    }
}

/// The checkpoint a run continues from, with the training state saved in it.
pub struct Resumed<S> {
    /// The checkpoint directory.
    pub dir: PathBuf,
    /// Its [`TRAINING_STATE`].
    pub state: S,
}

impl<S> Resumed<S> {
    /// Hands the optimizer state saved in the checkpoint to `resume` (the trainer's).
    pub fn restore_optimizer(
        &self,
        resume: impl FnOnce(&Path) -> Result<(), MamlError>,
    ) -> anyhow::Result<()> {
        resume(&self.dir.join(OPTIMIZER_STATE))
            .with_context(|| format!("cannot resume from {}", self.dir.display()))
    }
}

/// Everything a training run needs to start from and write its checkpoints: where they go,
/// and what each is made of besides the weights.
pub struct Saver<'a> {
    /// The run's checkpoint directories.
    pub checkpoints: Checkpoints,
    /// The model the run started from: config and tokenizer files of every checkpoint.
    pub source: &'a ModelDir,
    /// The labels the model predicts.
    pub labels: &'a LabelSet,
    /// `--seed`.
    pub seed: u64,
    /// `--bert-model`, as given.
    pub bert_model: &'a str,
}

impl<'a> Saver<'a> {
    /// The saver of the run in `run_root`, whose checkpoints are named `prefix.…`.
    pub fn new(
        run_root: &Path,
        prefix: &'static str,
        source: &'a ModelDir,
        labels: &'a LabelSet,
        seed: u64,
        bert_model: &'a str,
    ) -> Self {
        Self {
            checkpoints: Checkpoints::new(run_root.join(CHECKPOINTS), prefix),
            source,
            labels,
            seed,
            bert_model,
        }
    }

    /// The model the run starts from on `device`, and with `resume` the latest complete
    /// checkpoint it continues, whose weights then replace the source model's. No checkpoint
    /// yet (a run killed before its first) starts afresh.
    pub fn starting_point<S: DeserializeOwned>(
        &self,
        resume: bool,
        device: &Device,
    ) -> anyhow::Result<(BertClassifier, Option<Resumed<S>>)> {
        let latest = match resume {
            true => self.latest()?,
            false => None,
        };
        let Some(resumed) = latest else {
            let model = common::load_classifier(self.source, self.labels, self.seed, device)?;
            return Ok((model, None));
        };
        let model = self.load(&resumed.dir, device)?;
        Ok((model, Some(resumed)))
    }

    /// The latest complete checkpoint of the run and its training state, if any.
    pub fn latest<S: DeserializeOwned>(&self) -> anyhow::Result<Option<Resumed<S>>> {
        let Some(dir) = self.checkpoints.latest()? else {
            return Ok(None);
        };
        let state = read_state(&dir)?;
        Ok(Some(Resumed { dir, state }))
    }

    /// The weights of checkpoint `dir` on `device`.
    pub fn load(&self, dir: &Path, device: &Device) -> anyhow::Result<BertClassifier> {
        let model_dir = ModelDir::open(dir)
            .with_context(|| format!("cannot open checkpoint {}", dir.display()))?;
        common::load_classifier(&model_dir, self.labels, self.seed, device)
    }

    /// Metadata of a checkpoint after `step` steps and `epoch` epochs, without scores.
    pub fn meta(&self, step: usize, epoch: usize) -> CheckpointMeta {
        CheckpointMeta {
            step: step as u64,
            epoch: epoch as u64,
            seed: self.seed,
            metrics: Default::default(),
            source_model: self.bert_model.to_string(),
        }
    }

    /// Writes checkpoint `name` atomically with everything `--resume` needs — `model`, the
    /// optimizer state `save_optimizer` writes, `meta` and the training `state` — then removes
    /// the run's other checkpoints except `best`.
    pub fn save(
        &self,
        name: &str,
        model: &BertClassifier,
        save_optimizer: impl FnOnce(&Path) -> Result<(), MamlError>,
        meta: &CheckpointMeta,
        state: &impl Serialize,
        best: Option<&str>,
    ) -> anyhow::Result<()> {
        let path = self.checkpoints.path(name);
        model::save_checkpoint(
            model,
            self.source,
            self.labels.names(),
            meta,
            &path,
            |dir| {
                save_optimizer(&dir.join(OPTIMIZER_STATE)).map_err(std::io::Error::other)?;
                write_state(dir, state)
            },
        )
        .with_context(|| format!("cannot save checkpoint {}", path.display()))?;
        let best = best.map(|name| self.checkpoints.path(name));
        let mut keep = vec![path.as_path()];
        keep.extend(best.as_deref());
        self.checkpoints.prune(&keep)?;
        tracing::info!("saved {}", path.display());
        Ok(())
    }
}

/// Writes `state` as [`TRAINING_STATE`] into a checkpoint being assembled.
fn write_state(dir: &Path, state: &impl Serialize) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    std::fs::write(dir.join(TRAINING_STATE), json)
}

/// Reads the [`TRAINING_STATE`] of checkpoint `dir`.
fn read_state<T: DeserializeOwned>(dir: &Path) -> anyhow::Result<T> {
    let path = dir.join(TRAINING_STATE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a training state this version understands",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_ignores_incomplete_and_foreign_directories_and_prune_keeps_what_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = Checkpoints::new(dir.path().to_path_buf(), "meta");
        for (name, complete) in [
            ("meta.epoch-1.step-2", true),
            ("meta.epoch-1.step-10", true),
            ("meta.epoch-2.step-12", false),
            (".meta.epoch-2.step-14.tmp-1-0", true),
            ("transfer.epoch-3", true),
        ] {
            let path = dir.path().join(name);
            std::fs::create_dir(&path).unwrap();
            if complete {
                std::fs::write(path.join(TRAINING_STATE), "{}").unwrap();
            }
        }
        let latest = checkpoints.latest().unwrap().unwrap();
        assert_eq!(latest, checkpoints.path("meta.epoch-1.step-10"));
        let best = checkpoints.path(&checkpoints.name("epoch-1.step-2"));
        checkpoints.prune(&[&best, &latest]).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "meta.epoch-1.step-10",
                "meta.epoch-1.step-2",
                "transfer.epoch-3"
            ]
        );
    }
}
