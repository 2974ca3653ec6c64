//! Finding a model: a local model directory, a checkpoint this project saved, or a Hugging
//! Face model id fetched into the standard Hugging Face cache.

use std::path::{Path, PathBuf};

use hf_hub::Cache;
use hf_hub::api::sync::ApiBuilder;

use crate::checkpoint::{CheckpointMeta, METADATA_FILE};
use crate::config::BertConfig;
use crate::error::ModelError;
use crate::weights::WEIGHT_FILES;

/// The tokenizer files a model directory may carry; fetched along with the weights when present.
pub const TOKENIZER_FILES: [&str; 4] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
];

/// The model a run starts from when none is named.
pub const DEFAULT_MODEL: &str = "bert-base-uncased";

/// How Hugging Face model ids are fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubOptions {
    /// Base URL of the hub (`HF_ENDPOINT`, default `https://huggingface.co`).
    pub endpoint: String,
    /// The hub cache directory (`$HF_HOME/hub`, default `~/.cache/huggingface/hub`).
    pub cache_dir: PathBuf,
    /// Use only what is cached (`HF_HUB_OFFLINE=1`).
    pub offline: bool,
}

impl HubOptions {
    /// The options the Hugging Face tools read from the environment: `HF_ENDPOINT`, `HF_HOME`,
    /// `HF_HUB_OFFLINE`.
    pub fn from_env() -> Self {
        let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|value| {
            matches!(
                value.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        });
        Self {
            endpoint: std::env::var("HF_ENDPOINT")
                .unwrap_or_else(|_| "https://huggingface.co".to_string()),
            cache_dir: Cache::from_env().path().clone(),
            offline,
        }
    }
}

/// A model on local disk, ready to load.
#[derive(Debug, Clone)]
pub struct ModelDir {
    /// The directory holding config.json and the tokenizer files.
    pub root: PathBuf,
    /// Its config.json.
    pub config: BertConfig,
    /// The weight file (model.safetensors preferred over pytorch_model.bin).
    pub weights: PathBuf,
    /// Present when the directory is a checkpoint written by this project.
    pub checkpoint: Option<CheckpointMeta>,
}

impl ModelDir {
    /// Opens a local model or checkpoint directory.
    pub fn open(root: &Path) -> Result<Self, ModelError> {
        if !root.is_dir() {
            return Err(ModelError::NotADirectory {
                path: root.to_path_buf(),
            });
        }
        let config = BertConfig::load(&root.join("config.json"))?;
        let weights = WEIGHT_FILES
            .iter()
            .map(|name| root.join(name))
            .find(|path| path.is_file())
            .ok_or_else(|| ModelError::NoWeights {
                dir: root.to_path_buf(),
            })?;
        let metadata = root.join(METADATA_FILE);
        let checkpoint = metadata
            .is_file()
            .then(|| CheckpointMeta::load(&metadata))
            .transpose()?;
        Ok(Self {
            root: root.to_path_buf(),
            config,
            weights,
            checkpoint,
        })
    }
}

/// A model directory without weights: config.json and the tokenizer files only (e.g.
/// `bert-base-uncased-config`, to benchmark a model's size without downloading its weights).
///
/// [`ModelDir::open`] refuses such a directory with [`ModelError::NoWeights`]; only
/// [`crate::random_classifier`] builds a model from one, with random weights, so a command can
/// never train or score untrained weights by mistake.
#[derive(Debug, Clone)]
pub struct ConfigDir {
    /// The directory holding config.json and the tokenizer files.
    pub root: PathBuf,
    /// Its config.json.
    pub config: BertConfig,
}

impl ConfigDir {
    /// Opens the config of a local model directory, with or without weights.
    pub fn open(root: &Path) -> Result<Self, ModelError> {
        if !root.is_dir() {
            return Err(ModelError::NotADirectory {
                path: root.to_path_buf(),
            });
        }
        Ok(Self {
            root: root.to_path_buf(),
            config: BertConfig::load(&root.join("config.json"))?,
        })
    }
}

/// Resolves `--bert-model`: an existing directory is opened as a model or checkpoint
/// directory; a spec that looks like a path but names no directory is an error; anything else
/// is a Hugging Face model id, taken from the cache or downloaded into it.
pub fn resolve_model(spec: &str, hub: &HubOptions) -> Result<ModelDir, ModelError> {
    let path = Path::new(spec);
    if path.is_dir() {
        return ModelDir::open(path);
    }
    if path.exists() || looks_like_path(spec) {
        return Err(ModelError::NotADirectory {
            path: path.to_path_buf(),
        });
    }
    let root = fetch_from_hub(spec, hub)?;
    ModelDir::open(&root)
}

/// Hub ids are `name` or `owner/name`; anything else is meant as a path.
fn looks_like_path(spec: &str) -> bool {
    spec.is_empty()
        || spec.starts_with(['.', '/', '~'])
        || spec.ends_with('/')
        || spec.contains('\\')
        || spec.matches('/').count() > 1
}

/// Fetches config, weights and tokenizer files of `model_id`; returns the snapshot directory.
fn fetch_from_hub(model_id: &str, hub: &HubOptions) -> Result<PathBuf, ModelError> {
    let cache = Cache::new(hub.cache_dir.clone()).model(model_id.to_string());
    let api = if hub.offline {
        None
    } else {
        let api = ApiBuilder::from_cache(Cache::new(hub.cache_dir.clone()))
            .with_endpoint(hub.endpoint.clone())
            .with_progress(false)
            .build()
            .map_err(|e| download_error(model_id, "config.json", hub, e.to_string()))?;
        Some(api.model(model_id.to_string()))
    };
    // Ok(None): the hub has no such file (HTTP 404), or it is not cached while offline.
    let fetch = |file: &str| -> Result<Option<PathBuf>, ModelError> {
        if let Some(path) = cache.get(file) {
            return Ok(Some(path));
        }
        let Some(repo) = &api else {
            return Ok(None);
        };
        match repo.download(file) {
            Ok(path) => Ok(Some(path)),
            Err(hf_hub::api::sync::ApiError::RequestError(error))
                if matches!(*error, ureq::Error::Status(404, _)) =>
            {
                Ok(None)
            }
            Err(error) => Err(download_error(model_id, file, hub, error.to_string())),
        }
    };
    let missing = |file: &str| {
        if hub.offline {
            ModelError::Offline {
                model_id: model_id.to_string(),
                file: file.to_string(),
                cache: hub.cache_dir.clone(),
            }
        } else {
            download_error(
                model_id,
                file,
                hub,
                "the hub has no such file (HTTP 404)".into(),
            )
        }
    };
    let config = fetch("config.json")?.ok_or_else(|| missing("config.json"))?;
    let mut weights = None;
    for file in WEIGHT_FILES {
        if let Some(path) = fetch(file)? {
            weights = Some(path);
            break;
        }
    }
    weights.ok_or_else(|| missing(WEIGHT_FILES[0]))?;
    for file in TOKENIZER_FILES {
        fetch(file)?;
    }
    Ok(config
        .parent()
        .expect("a cached file lives in a snapshot directory")
        .to_path_buf())
}

fn download_error(model_id: &str, file: &str, hub: &HubOptions, message: String) -> ModelError {
    ModelError::Download {
        model_id: model_id.to_string(),
        file: file.to_string(),
        endpoint: hub.endpoint.clone(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_and_paths_are_told_apart() {
        for id in [
            "bert-base-uncased",
            "sentence-transformers/all-MiniLM-L6-v2",
        ] {
            assert!(!looks_like_path(id), "{id}");
        }
        for path in ["./model", "/abs/model", "~/m", "a/b/c", "dir/", ""] {
            assert!(looks_like_path(path), "{path}");
        }
    }

    #[test]
    fn a_missing_path_is_not_sent_to_the_hub() {
        let hub = HubOptions {
            endpoint: "http://127.0.0.1:9".into(),
            cache_dir: PathBuf::from("/nonexistent"),
            offline: false,
        };
        let error = resolve_model("./no/such/model", &hub).unwrap_err();
        assert!(matches!(error, ModelError::NotADirectory { .. }), "{error}");
    }
}
