//! The errors of this crate: each names the file, tensor or setting at fault and what fixes it.

use std::io;
use std::path::PathBuf;

/// Why a model could not be resolved, loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read or written.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        /// What was being done, e.g. "read".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// `config.json` is not valid JSON or describes a model this crate cannot build.
    #[error("`{path}` is not a usable BERT config.json: {message}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A model directory has no weight file.
    #[error(
        "`{dir}` holds no model weights: expected `model.safetensors` or `pytorch_model.bin` next to config.json"
    )]
    NoWeights {
        /// The model directory.
        dir: PathBuf,
    },
    /// A weight file cannot be parsed: truncated, corrupt, or not the format its name says.
    #[error("`{path}` is corrupt or truncated ({message}); download or save the model again")]
    CorruptWeights {
        /// The weight file.
        path: PathBuf,
        /// What the parser found.
        message: String,
    },
    /// A tensor the encoder needs is not in the weight file.
    #[error(
        "`{path}` has no tensor `{name}` (looked for it with and without the `bert.` prefix): \
         the weights do not belong to a BERT model with the sizes config.json describes"
    )]
    MissingTensor {
        /// The weight file.
        path: PathBuf,
        /// The transformers name of the tensor, without the `bert.` prefix.
        name: String,
    },
    /// A tensor's shape disagrees with what config.json describes.
    #[error(
        "tensor `{name}` in `{path}` has shape {found:?}, but config.json describes {expected:?}: \
         config.json and the weights disagree (use the config.json saved with these weights)"
    )]
    ShapeMismatch {
        /// The weight file.
        path: PathBuf,
        /// The tensor's name in the file.
        name: String,
        /// The shape config.json implies (PyTorch layout).
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor is stored with an element type this crate does not convert.
    #[error(
        "tensor `{name}` in `{path}` has element type {dtype}; only F32, F16, BF16 and F64 weights can be loaded"
    )]
    UnsupportedDtype {
        /// The weight file.
        path: PathBuf,
        /// The tensor's name in the file.
        name: String,
        /// The element type found.
        dtype: String,
    },
    /// A checkpoint of this project was trained for other labels than the data has.
    #[error(
        "checkpoint `{path}` classifies {found:?} but the data's labels are {expected:?}: \
         use a checkpoint made for these labels, or start from a base model (e.g. bert-base-uncased)"
    )]
    LabelMismatch {
        /// The checkpoint directory.
        path: PathBuf,
        /// The labels of the data.
        expected: Vec<String>,
        /// The labels the checkpoint was trained for.
        found: Vec<String>,
    },
    /// A model spec that looks like a path names no directory.
    #[error("model directory `{path}` does not exist (or is not a directory)")]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// A Hugging Face model is not in the local cache and downloads are switched off.
    #[error(
        "`{file}` of Hugging Face model `{model_id}` is not in the cache at `{cache}` and HF_HUB_OFFLINE is set: \
         unset HF_HUB_OFFLINE to download it, or pass a local model directory (config.json, weights, tokenizer files) \
         instead of a model id"
    )]
    Offline {
        /// The model id.
        model_id: String,
        /// The file that was needed.
        file: String,
        /// The Hugging Face cache directory searched.
        cache: PathBuf,
    },
    /// A Hugging Face download failed.
    #[error(
        "cannot download `{file}` of Hugging Face model `{model_id}` from {endpoint}: {message}. \
         Without network access, download the model on another machine and pass its local directory \
         (config.json, weights, tokenizer files) instead of a model id"
    )]
    Download {
        /// The model id.
        model_id: String,
        /// The file that was requested.
        file: String,
        /// The hub endpoint used.
        endpoint: String,
        /// The client's error.
        message: String,
    },
    /// A checkpoint metadata file is unreadable.
    #[error("`{path}` is not valid checkpoint metadata: {message}")]
    Metadata {
        /// The metadata file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Writing a checkpoint failed; the destination was left as it was.
    #[error("cannot save the checkpoint: {0}")]
    Save(#[from] atomic_io::AtomicWriteError),
}

impl ModelError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| ModelError::Io {
            action,
            path,
            source,
        }
    }
}
