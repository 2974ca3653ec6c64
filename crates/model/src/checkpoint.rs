//! Saving a classifier as a directory transformers loads as `BertForSequenceClassification`.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use crate::bert::BertClassifier;
use crate::error::ModelError;
use crate::hub::{ModelDir, TOKENIZER_FILES};

/// Our own file in a checkpoint directory; its presence marks the directory as ours.
pub const METADATA_FILE: &str = "meta_bert.json";

/// What this project records about a checkpoint besides the weights.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Optimiser steps (meta-steps for meta-training) taken so far.
    pub step: u64,
    /// Completed epochs.
    pub epoch: u64,
    /// The run's seed.
    pub seed: u64,
    /// Named scalar results at this point, e.g. validation accuracy.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// The model the run started from (hub id or directory).
    #[serde(default)]
    pub source_model: String,
}

impl CheckpointMeta {
    pub(crate) fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(ModelError::io("read", path))?;
        serde_json::from_str(&text).map_err(|e| ModelError::Metadata {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}

/// Writes `model` to the directory `out` so that `transformers` loads it with
/// `BertForSequenceClassification.from_pretrained(out)`: config.json (with `num_labels`,
/// `id2label`, `label2id` from the label names `labels`, in id order), model.safetensors under transformers' names, the
/// tokenizer files of `source`, and [`METADATA_FILE`]. `extra` may add files to the same
/// directory (e.g. optimizer state) before it appears.
///
/// Atomic: the directory is filled under a temporary name and renamed into place, replacing
/// an older `out`; after a crash `out` is either the old or the new checkpoint.
pub fn save_checkpoint(
    model: &BertClassifier,
    source: &ModelDir,
    labels: &[String],
    meta: &CheckpointMeta,
    out: &Path,
    extra: impl FnOnce(&Path) -> io::Result<()>,
) -> Result<(), ModelError> {
    let mut config = model.config().clone();
    config.set_labels(labels);
    let config_json = serde_json::to_vec_pretty(&config).expect("a config serialises");
    let meta_json = serde_json::to_vec_pretty(meta).expect("metadata serialises");
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = model
        .state_dict()
        .into_iter()
        .map(|t| {
            let bytes = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (t.name, t.shape, bytes)
        })
        .collect();
    atomic_io::write_dir(out, |staging| {
        std::fs::write(staging.join("config.json"), &config_json)?;
        let views = tensors
            .iter()
            .map(|(name, shape, bytes)| {
                TensorView::new(Dtype::F32, shape.clone(), bytes)
                    .map(|view| (name.as_str(), view))
                    .map_err(io::Error::other)
            })
            .collect::<io::Result<Vec<_>>>()?;
        // transformers refuses a safetensors file without this metadata entry.
        let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::serialize_to_file(views, Some(metadata), &staging.join("model.safetensors"))
            .map_err(io::Error::other)?;
        for file in TOKENIZER_FILES {
            let from = source.root.join(file);
            if from.is_file() {
                std::fs::copy(&from, staging.join(file))?;
            }
        }
        std::fs::write(staging.join(METADATA_FILE), &meta_json)?;
        extra(staging)
    })?;
    Ok(())
}
