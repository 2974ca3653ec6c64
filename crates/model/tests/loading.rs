//! Model resolution and loading: bad model directories give errors that name the problem, and
//! Hugging Face ids are fetched into the cache (from a local HTTP server standing in for the
//! hub; there is no network in CI).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use model::{
    CheckpointMeta, HubOptions, ModelDir, ModelError, load_classifier, resolve_model,
    save_checkpoint,
};

/// The tiny fixture saved as one of our checkpoints (model.safetensors) in `parent/name`.
fn tiny_checkpoint(parent: &Path, name: &str) -> PathBuf {
    let source = ModelDir::open(&test_support::tiny_bert_dir()).unwrap();
    let (model, _) =
        load_classifier(&source, &test_support::tiny_labels(), 0, &Device::flex()).unwrap();
    let out = parent.join(name);
    save_checkpoint(
        &model,
        &source,
        &test_support::tiny_labels(),
        &CheckpointMeta::default(),
        &out,
        |_| Ok(()),
    )
    .unwrap();
    out
}

fn load_error(dir: &Path, labels: &[String]) -> ModelError {
    let dir = ModelDir::open(dir).unwrap();
    load_classifier(&dir, labels, 0, &Device::flex()).expect_err("loading must fail")
}

/// Rewrites `dir/model.safetensors` keeping only the tensors `keep` accepts.
fn filter_weights(dir: &Path, keep: impl Fn(&str) -> bool) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<_> = tensors
        .tensors()
        .into_iter()
        .filter(|(name, _)| keep(name))
        .collect();
    let out = safetensors::serialize(kept, None).unwrap();
    std::fs::write(&path, out).unwrap();
}

#[test]
fn truncated_or_corrupt_safetensors_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_checkpoint(tmp.path(), "ckpt");
    let weights = dir.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let error = load_error(&dir, &test_support::tiny_labels());
    assert!(
        matches!(error, ModelError::CorruptWeights { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("model.safetensors") && error.to_string().contains("truncated")
    );

    let mut garbled = bytes.clone();
    garbled[8..40].fill(b'#');
    std::fs::write(&weights, &garbled).unwrap();
    let error = load_error(&dir, &test_support::tiny_labels());
    assert!(
        matches!(error, ModelError::CorruptWeights { .. }),
        "{error}"
    );
}

#[test]
fn config_sizes_that_disagree_with_the_weights_name_tensor_and_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_checkpoint(tmp.path(), "ckpt");
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(
        &config_path,
        text.replace("\"hidden_size\": 32", "\"hidden_size\": 64"),
    )
    .unwrap();
    let error = load_error(&dir, &test_support::tiny_labels());
    let ModelError::ShapeMismatch {
        name,
        expected,
        found,
        ..
    } = &error
    else {
        panic!("expected a shape mismatch, got {error}");
    };
    assert_eq!(name, "bert.embeddings.word_embeddings.weight");
    assert_eq!(
        (expected.as_slice(), found.as_slice()),
        (&[30522, 64][..], &[30522, 32][..])
    );
    assert!(
        error
            .to_string()
            .contains("config.json and the weights disagree"),
        "{error}"
    );
}

#[test]
fn a_missing_encoder_tensor_is_an_error_and_a_missing_pooler_is_initialised() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_checkpoint(tmp.path(), "no-value");
    filter_weights(&dir, |name| {
        !name.contains("layer.1.attention.self.value.weight")
    });
    let error = load_error(&dir, &test_support::tiny_labels());
    assert!(
        matches!(&error, ModelError::MissingTensor { name, .. } if name == "encoder.layer.1.attention.self.value.weight"),
        "{error}"
    );

    let dir = tiny_checkpoint(tmp.path(), "no-pooler");
    filter_weights(&dir, |name| !name.contains("pooler"));
    let dir = ModelDir::open(&dir).unwrap();
    let (_, report) =
        load_classifier(&dir, &test_support::tiny_labels(), 0, &Device::flex()).unwrap();
    assert_eq!(
        report.initialized,
        ["bert.pooler.dense.weight", "bert.pooler.dense.bias"]
    );
}

#[test]
fn a_checkpoint_for_other_labels_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_checkpoint(tmp.path(), "ckpt");
    let error = load_error(&dir, &test_support::sentiment_labels());
    let ModelError::LabelMismatch {
        expected, found, ..
    } = &error
    else {
        panic!("expected a label mismatch, got {error}");
    };
    assert_eq!((expected.len(), found.len()), (2, 3));
}

#[test]
fn a_base_model_with_another_head_gets_a_new_head() {
    // The fixture is a plain transformers directory (not our checkpoint) with a 3-label head:
    // for 2 labels the head is initialised from the seed, the encoder still loaded.
    let dir = ModelDir::open(&test_support::tiny_bert_dir()).unwrap();
    let (model, report) =
        load_classifier(&dir, &test_support::sentiment_labels(), 0, &Device::flex()).unwrap();
    assert_eq!(model.num_labels(), 2);
    assert_eq!(report.initialized, ["classifier.weight", "classifier.bias"]);
    assert_eq!(report.unused, ["classifier.bias", "classifier.weight"]);
}

#[test]
fn a_directory_without_weights_or_config_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let error = ModelDir::open(tmp.path()).unwrap_err();
    assert!(
        matches!(error, ModelError::Io { .. }) && error.to_string().contains("config.json"),
        "{error}"
    );
    std::fs::copy(
        test_support::tiny_bert_dir().join("config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap();
    let error = ModelDir::open(tmp.path()).unwrap_err();
    assert!(matches!(error, ModelError::NoWeights { .. }), "{error}");
}

#[test]
fn hub_ids_download_into_the_cache_and_load_offline_afterwards() {
    let endpoint = test_support::serve_hub(test_support::tiny_bert_dir());
    let cache = tempfile::tempdir().unwrap();
    let online = HubOptions {
        endpoint,
        cache_dir: cache.path().to_path_buf(),
        offline: false,
    };
    let dir = resolve_model("meta-bert/tiny-bert", &online).unwrap();
    assert!(
        dir.root
            .starts_with(cache.path().join("models--meta-bert--tiny-bert/snapshots"))
    );
    assert!(
        dir.weights.ends_with("pytorch_model.bin"),
        "no model.safetensors on this hub"
    );
    assert!(dir.root.join("tokenizer.json").is_file() && dir.root.join("vocab.txt").is_file());
    assert_eq!(dir.config.hidden_size, 32);

    let golden = test_support::tiny_bert_golden();
    let offline = HubOptions {
        offline: true,
        ..online
    };
    let dir = resolve_model("meta-bert/tiny-bert", &offline).unwrap();
    let device = Device::flex();
    let (model, _) = load_classifier(&dir, &test_support::tiny_labels(), 0, &device).unwrap();
    let batch = test_support::golden_batch(&golden["batch"]);
    let input = model::BertInput::new(
        batch.input_ids,
        batch.attention_mask,
        batch.token_type_ids,
        batch.shape,
        &device,
    );
    let logits: Vec<f64> = model
        .forward(&input)
        .into_data()
        .convert::<f64>()
        .try_into_vec()
        .unwrap();
    test_support::assert_close(
        &logits,
        &test_support::flatten_f64(&golden["logits"]),
        1e-5,
        0.0,
        "logits",
    );
}

#[test]
fn offline_without_a_cached_copy_says_how_to_proceed() {
    let cache = tempfile::tempdir().unwrap();
    let hub = HubOptions {
        endpoint: "http://127.0.0.1:9".into(),
        cache_dir: cache.path().to_path_buf(),
        offline: true,
    };
    let error = resolve_model("bert-base-uncased", &hub).unwrap_err();
    assert!(matches!(error, ModelError::Offline { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("HF_HUB_OFFLINE") && message.contains("local model directory"),
        "{message}"
    );
}

#[test]
fn an_unreachable_hub_says_how_to_use_a_local_directory() {
    // Port 9 (discard) on the loopback refuses connections: the stand-in for "no network".
    let cache = tempfile::tempdir().unwrap();
    let hub = HubOptions {
        endpoint: "http://127.0.0.1:9".into(),
        cache_dir: cache.path().to_path_buf(),
        offline: false,
    };
    let error = resolve_model("bert-base-uncased", &hub).unwrap_err();
    assert!(matches!(error, ModelError::Download { .. }), "{error}");
    assert!(error.to_string().contains("local directory"), "{error}");
}
