//! Loading a classifier from a model directory: the weights file's tensors by transformers
//! name, with a seeded head (and pooler) where the file has none.

use std::collections::HashSet;
use std::path::PathBuf;

use burn::tensor::Device;

use crate::bert::BertClassifier;
use crate::error::ModelError;
use crate::hub::{ConfigDir, ModelDir};
use crate::naming::{ParamRequest, ParamSource, SeededInit, fill_parameters};
use crate::weights::WeightFile;

/// What loading found in the weight file.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// The weight file read.
    pub weights: PathBuf,
    /// Parameters taken from the file.
    pub loaded: usize,
    /// Parameters initialised from the seed because the file lacks them (or, for the head,
    /// holds one of another size): transformers names.
    pub initialized: Vec<String>,
    /// Tensors in the file the classifier does not use (e.g. a pre-training head), sorted.
    pub unused: Vec<String>,
}

/// Buffers transformers stores beside the weights that are not parameters.
fn is_buffer(name: &str) -> bool {
    name.ends_with("position_ids")
}

struct FileSource {
    file: WeightFile,
    prefixed: bool,
    init: SeededInit,
    used: HashSet<String>,
    initialized: Vec<String>,
}

impl FileSource {
    /// The name `request` has in the file, if the file has it: with or without `bert.`, and
    /// with old checkpoints' `gamma`/`beta` for LayerNorm.
    fn key(&self, name: &str) -> Option<String> {
        let name = match name.strip_prefix("bert.") {
            Some(rest) if !self.prefixed => rest,
            _ => name,
        };
        let legacy = name
            .strip_suffix("LayerNorm.weight")
            .map(|stem| format!("{stem}LayerNorm.gamma"))
            .or_else(|| {
                name.strip_suffix("LayerNorm.bias")
                    .map(|stem| format!("{stem}LayerNorm.beta"))
            });
        std::iter::once(name.to_string())
            .chain(legacy)
            .find(|key| self.file.shape(key).is_some())
    }
}

impl ParamSource for FileSource {
    fn values(&mut self, request: &ParamRequest<'_>) -> Result<Vec<f32>, ModelError> {
        let may_initialize =
            request.name.starts_with("classifier.") || request.name.starts_with("bert.pooler.");
        match self.key(request.name) {
            Some(key) => {
                let found = self.file.shape(&key).expect("key() found it").to_vec();
                if found == request.shape {
                    let values = self.file.read_f32(&key)?;
                    self.used.insert(key);
                    return Ok(values);
                }
                if !request.name.starts_with("classifier.") {
                    return Err(ModelError::ShapeMismatch {
                        path: self.file.path().to_path_buf(),
                        name: key,
                        expected: request.shape.to_vec(),
                        found,
                    });
                }
                tracing::warn!(
                    tensor = %key, ?found, expected = ?request.shape,
                    "the classifier head in the weights has another number of labels; initialising a new head"
                );
            }
            None if may_initialize => {
                if request.name.starts_with("bert.pooler.") {
                    tracing::warn!(
                        tensor = request.name,
                        "the weights have no pooler; initialising it from the seed"
                    );
                }
            }
            None => {
                return Err(ModelError::MissingTensor {
                    path: self.file.path().to_path_buf(),
                    name: request.name.trim_start_matches("bert.").to_string(),
                });
            }
        }
        self.initialized.push(request.name.to_string());
        self.init.values(request)
    }
}

/// Loads the classifier in `dir` for the label names `labels` (in id order).
///
/// The encoder must be complete and shaped as config.json says. The pooler and the head are
/// taken from the weights when present with the right shape; otherwise they are initialised
/// from `seed` as transformers would (a base model has no head). A checkpoint written by this
/// project must have been trained for exactly `labels`.
pub fn load_classifier(
    dir: &ModelDir,
    labels: &[String],
    seed: u64,
    device: &Device,
) -> Result<(BertClassifier, LoadReport), ModelError> {
    if dir.checkpoint.is_some() {
        let found = dir.config.label_names().unwrap_or_default();
        if found != labels {
            return Err(ModelError::LabelMismatch {
                path: dir.root.clone(),
                expected: labels.to_vec(),
                found,
            });
        }
    }
    let file = WeightFile::open(&dir.weights)?;
    let prefixed = file.names().any(|name| name.starts_with("bert."));
    let mut config = dir.config.clone();
    config.set_labels(labels);
    let mut source = FileSource {
        file,
        prefixed,
        init: SeededInit::new(&config, seed),
        used: HashSet::new(),
        initialized: Vec::new(),
    };
    let skeleton = BertClassifier::skeleton(&config, labels.len(), device);
    let model = fill_parameters(skeleton, &mut source, device)?;
    let mut unused: Vec<String> = source
        .file
        .names()
        .filter(|name| !source.used.contains(*name) && !is_buffer(name))
        .map(str::to_string)
        .collect();
    unused.sort();
    if !unused.is_empty() {
        tracing::debug!(count = unused.len(), first = %unused[0], "tensors in the weights the classifier does not use");
    }
    let report = LoadReport {
        weights: dir.weights.clone(),
        loaded: source.used.len(),
        initialized: source.initialized,
        unused,
    };
    Ok((model, report))
}

/// A classifier for `labels` with the sizes of `dir`'s config.json and random weights drawn from
/// `seed` as transformers initialises a new model (see [`crate::BertConfig::init`]). Nothing is
/// learned: for measuring speed and memory, e.g. of a bert-base-sized config without its weights.
pub fn random_classifier(
    dir: &ConfigDir,
    labels: &[String],
    seed: u64,
    device: &Device,
) -> BertClassifier {
    let mut config = dir.config.clone();
    config.set_labels(labels);
    config.init(labels.len(), seed, device)
}
