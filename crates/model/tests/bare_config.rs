//! A model directory without weights (config.json and tokenizer only): refused by
//! `ModelDir::open`, opened by `ConfigDir::open` and given random weights by
//! `random_classifier`.

use burn::tensor::Device;
use model::{BertInput, ConfigDir, HubOptions, ModelDir, ModelError, random_classifier};

#[test]
fn a_bare_config_is_refused_as_a_model_directory() {
    let tmp = tempfile::tempdir().unwrap();
    test_support::write_bare_tiny_config(tmp.path());
    let error = ModelDir::open(tmp.path()).unwrap_err();
    assert!(matches!(error, ModelError::NoWeights { .. }), "{error}");
    let hub = HubOptions {
        endpoint: "http://127.0.0.1:9".into(),
        cache_dir: tmp.path().join("hub"),
        offline: true,
    };
    let spec = tmp.path().to_str().unwrap();
    let error = model::resolve_model(spec, &hub).unwrap_err();
    assert!(matches!(error, ModelError::NoWeights { .. }), "{error}");
}

#[test]
fn the_shared_bert_base_config_opens_with_its_sizes() {
    let dir = ConfigDir::open(&test_support::bert_base_config_dir()).unwrap();
    let config = &dir.config;
    assert_eq!(
        (
            config.hidden_size,
            config.num_hidden_layers,
            config.num_attention_heads,
            config.intermediate_size,
            config.vocab_size,
        ),
        (768, 12, 12, 3072, 30522)
    );
    let error = ModelDir::open(&test_support::bert_base_config_dir()).unwrap_err();
    assert!(matches!(error, ModelError::NoWeights { .. }), "{error}");
}

#[test]
fn a_random_classifier_has_the_config_sizes_and_runs_forward() {
    let tmp = tempfile::tempdir().unwrap();
    test_support::write_bare_tiny_config(tmp.path());
    let dir = ConfigDir::open(tmp.path()).unwrap();
    let labels = test_support::sentiment_labels();
    let device = Device::flex();
    let model = random_classifier(&dir, &labels, 3, &device);
    assert_eq!(model.num_labels(), 2);
    assert_eq!(model.config().hidden_size, 32);
    assert_eq!(model.config().label_names(), Some(labels.clone()));
    let state = model.state_dict();
    let embeddings = state
        .iter()
        .find(|tensor| tensor.name == "bert.embeddings.word_embeddings.weight")
        .expect("the word embeddings are a parameter");
    assert_eq!(embeddings.shape, [30522, 32]);
    // transformers' initialisation: N(0, 0.02), so the sample deviation is close to 0.02.
    let n = embeddings.values.len() as f64;
    let std = (embeddings
        .values
        .iter()
        .map(|v| f64::from(*v).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    test_support::assert_rel(std, 0.02, 0.01, "std of the random word embeddings");

    let input = BertInput::new(
        vec![101, 2023, 102, 101, 102, 0],
        vec![1, 1, 1, 1, 1, 0],
        vec![0; 6],
        [2, 3],
        &device,
    );
    let logits: Vec<f32> = model
        .forward(&input)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert_eq!(logits.len(), 4);
    assert!(logits.iter().all(|v| v.is_finite()), "{logits:?}");
    let again = random_classifier(&dir, &labels, 3, &device).state_dict();
    assert_eq!(
        again[0].values, state[0].values,
        "the same seed gives the same weights"
    );
}
