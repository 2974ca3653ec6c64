//! Parity with PyTorch + transformers on the golden fixtures (computed by
//! ../shared/fixtures/make_golden.py; never by this code): forward, backward, three Adam steps,
//! loading a base model without head or prefix, a `pytorch_model.bin` of another size, and
//! save → reload. On the backend `METABERT_TEST_BACKEND` names (default flex).

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use model::{
    BackendKind, BertClassifier, BertInput, CheckpointMeta, HubOptions, ModelDir, load_classifier,
    resolve_model, save_checkpoint,
};
use serde_json::Value;
use test_support::{assert_close, assert_rel, flatten_f64, flatten_i64};

/// Tolerances the goldens' notes prescribe.
const FORWARD_ABS: f64 = 1e-4;
const TRAINING_REL: f64 = 1e-3;

/// Flex unless `METABERT_TEST_BACKEND` names another backend (README, *The tch backend*).
fn device() -> Device {
    test_support::test_device(BackendKind::device)
}

fn input(golden: &Value, device: &Device) -> (BertInput, Tensor<1, Int>) {
    let batch = test_support::golden_batch(&golden["batch"]);
    let labels = Tensor::from_data(TensorData::new(batch.labels, [batch.shape[0]]), device);
    let input = BertInput::new(
        batch.input_ids,
        batch.attention_mask,
        batch.token_type_ids,
        batch.shape,
        device,
    );
    (input, labels)
}

/// PyTorch's mean cross-entropy, as `BertForSequenceClassification` computes its loss.
fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>, device: &Device) -> Tensor<1> {
    CrossEntropyLossConfig::new()
        .init(device)
        .forward(logits, labels)
}

fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f64> {
    tensor.into_data().convert::<f64>().try_into_vec().unwrap()
}

fn load(dir: &ModelDir, labels: &[String], device: &Device) -> BertClassifier {
    load_classifier(dir, labels, 0, device).unwrap().0
}

fn golden_model(device: &Device) -> BertClassifier {
    let dir = ModelDir::open(&test_support::golden_checkpoint_dir()).unwrap();
    load(&dir, &test_support::sentiment_labels(), device)
}

fn check_hidden_and_pooler(model: &BertClassifier, golden: &Value, device: &Device) {
    let (input, _) = input(golden, device);
    let output = model.encode(&input);
    let forward = &golden["forward"];
    let [batch, seq_len, hidden] = output.last_hidden_state.dims();
    assert_eq!(
        vec![batch, seq_len, hidden],
        flatten_i64(&forward["last_hidden_state_shape"])
            .iter()
            .map(|&d| d as usize)
            .collect::<Vec<_>>()
    );
    let hidden_slice = output
        .last_hidden_state
        .clone()
        .slice([0..batch, 0..4, 0..8]);
    assert_close(
        &values(hidden_slice),
        &flatten_f64(&forward["last_hidden_state_slice"]["values"]),
        FORWARD_ABS,
        0.0,
        "last_hidden_state[:, 0:4, 0:8]",
    );
    // Over every real token, so that an error at later positions or padding cannot hide.
    let mask = input.attention_mask.clone().float().unsqueeze_dim::<3>(2);
    let masked_mean = (output.last_hidden_state.abs() * mask.clone())
        .sum_dim(2)
        .sum_dim(1)
        / (mask.sum_dim(2).sum_dim(1) * hidden as f64);
    assert_close(
        &values(masked_mean),
        &flatten_f64(&forward["last_hidden_state_masked_abs_mean"]),
        FORWARD_ABS,
        0.0,
        "masked mean |last_hidden_state|",
    );
    assert_close(
        &values(output.pooler_output.slice([0..batch, 0..16])),
        &flatten_f64(&forward["pooler_output_slice"]["values"]),
        FORWARD_ABS,
        0.0,
        "pooler_output[:, 0:16]",
    );
}

#[test]
fn forward_matches_transformers() {
    let golden = test_support::minilm_golden();
    let device = device();
    let model = golden_model(&device);
    check_hidden_and_pooler(&model, &golden, &device);
    let (input, _) = input(&golden, &device);
    assert_close(
        &values(model.forward(&input)),
        &flatten_f64(&golden["forward"]["logits"]),
        FORWARD_ABS,
        0.0,
        "logits",
    );
}

/// The values at a golden index such as `[:, 0:8]` or `[2000, 0:8] (comment)` of a row-major
/// tensor.
fn slice_values(values: &[f32], shape: &[usize], index: &str) -> Vec<f64> {
    let inner = &index[index.find('[').unwrap() + 1..index.find(']').unwrap()];
    let ranges: Vec<std::ops::Range<usize>> = inner
        .split(',')
        .zip(shape)
        .map(|(part, &dim)| match part.trim().split_once(':') {
            Some((start, end)) => start.parse().unwrap_or(0)..end.parse().unwrap_or(dim),
            None => {
                let at: usize = part.trim().parse().unwrap();
                at..at + 1
            }
        })
        .collect();
    let stride = if shape.len() == 2 { shape[1] } else { 1 };
    let rows = if ranges.len() == 2 {
        ranges[0].clone()
    } else {
        0..1
    };
    let cols = ranges.last().unwrap().clone();
    rows.flat_map(|r| cols.clone().map(move |c| r * stride + c))
        .map(|i| f64::from(values[i]))
        .collect()
}

#[test]
fn backward_matches_transformers() {
    let golden = test_support::minilm_golden();
    let expected = &golden["backward"];
    let device = device().autodiff();
    let model = golden_model(&device).without_dropout();
    let (input, labels) = input(&golden, &device);
    let loss = cross_entropy(model.forward(&input), labels, &device);
    assert_rel(
        values(loss.clone())[0],
        expected["loss"].as_f64().unwrap(),
        TRAINING_REL,
        "loss",
    );
    let gradients = model.named_gradients(&loss.backward());
    let norms = expected["grad_norms"].as_object().unwrap();
    let mut names: Vec<&str> = gradients.iter().map(|g| g.name.as_str()).collect();
    let mut golden_names: Vec<&str> = norms.keys().map(String::as_str).collect();
    names.sort();
    golden_names.sort();
    assert_eq!(
        names, golden_names,
        "every parameter, under transformers' names"
    );
    for gradient in &gradients {
        let norm = gradient
            .values
            .iter()
            .map(|&v| f64::from(v).powi(2))
            .sum::<f64>()
            .sqrt();
        // Key biases have a zero gradient in exact arithmetic (softmax ignores a shift shared
        // by a whole row of scores): both sides hold only rounding noise of about 1e-10, so an
        // absolute floor far below every real gradient norm (1e-4 and up here) replaces the
        // relative test for them.
        assert_close(
            &[norm],
            &[norms[&gradient.name].as_f64().unwrap()],
            1e-8,
            TRAINING_REL,
            &format!("gradient norm of {}", gradient.name),
        );
    }
    for (name, slice) in expected["grad_slices"].as_object().unwrap() {
        let gradient = gradients.iter().find(|g| &g.name == name).unwrap();
        let index = slice["index"].as_str().unwrap();
        let expected_values = flatten_f64(&slice["values"]);
        // Relative to the slice's largest entry, so that entries near zero are not held to
        // an impossibly tight absolute bound.
        let scale = expected_values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert_close(
            &slice_values(&gradient.values, &gradient.shape, index),
            &expected_values,
            TRAINING_REL * scale,
            TRAINING_REL,
            &format!("gradient of {name}{index}"),
        );
    }
}

/// Burn's Adam with `epsilon = 1e-8` is PyTorch's: Burn divides `m̂·√(1−β₂ᵗ)` by
/// `√v + ε·√(1−β₂ᵗ)`, which is PyTorch's `m̂ / (√v̂ + ε)` multiplied through by `√(1−β₂ᵗ)`.
#[test]
fn three_adam_steps_match_pytorch() {
    let golden = test_support::minilm_golden();
    let expected = &golden["adam_3_steps"];
    let device = device().autodiff();
    let mut model = golden_model(&device).without_dropout();
    let mut optimizer = AdamConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.999)
        .with_epsilon(1e-8)
        .init();
    let (input, labels) = input(&golden, &device);
    for (step, golden_loss) in flatten_f64(&expected["losses_before_each_step"])
        .iter()
        .enumerate()
    {
        let loss = cross_entropy(model.forward(&input), labels.clone(), &device);
        assert_rel(
            values(loss.clone())[0],
            *golden_loss,
            TRAINING_REL,
            &format!("loss before step {step}"),
        );
        let gradients = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(1e-3, model, gradients);
    }
    let logits = values(model.forward(&input));
    let golden_logits = flatten_f64(&expected["logits_after"]);
    assert_close(
        &logits,
        &golden_logits,
        0.0,
        TRAINING_REL,
        "logits after 3 Adam steps",
    );
}

#[test]
fn base_model_without_prefix_or_head_gives_golden_encoder_outputs() {
    let golden = test_support::minilm_golden();
    let device = device();
    let base = ModelDir::open(&test_support::minilm_dir()).unwrap();
    let (model, report) =
        load_classifier(&base, &test_support::sentiment_labels(), 3, &device).unwrap();
    assert_eq!(report.initialized, ["classifier.weight", "classifier.bias"]);
    assert!(report.unused.is_empty(), "{:?}", report.unused);
    check_hidden_and_pooler(&model, &golden, &device);

    // The fixture's head on the base model's pooled output gives the golden logits.
    let head = golden_model(&device).state_dict();
    let tensor = |name: &str| head.iter().find(|t| t.name == name).unwrap().clone();
    let (weight, bias) = (tensor("classifier.weight"), tensor("classifier.bias"));
    let (input, _) = input(&golden, &device);
    let pooled = values(model.encode(&input).pooler_output);
    let hidden = weight.shape[1];
    let logits: Vec<f64> = pooled
        .chunks(hidden)
        .flat_map(|row| {
            weight
                .values
                .chunks(hidden)
                .zip(&bias.values)
                .map(move |(w, b)| {
                    f64::from(*b)
                        + row
                            .iter()
                            .zip(w)
                            .map(|(x, w)| x * f64::from(*w))
                            .sum::<f64>()
                })
        })
        .collect();
    assert_close(
        &logits,
        &flatten_f64(&golden["forward"]["logits"]),
        FORWARD_ABS,
        0.0,
        "logits",
    );
}

/// A second size (2 layers, width 32, 4 heads, 3 labels) read from `pytorch_model.bin`.
#[test]
fn tiny_pytorch_bin_matches_transformers() {
    let golden = test_support::tiny_bert_golden();
    let device = device();
    let dir = resolve_model(
        test_support::tiny_bert_dir().to_str().unwrap(),
        &HubOptions::from_env(),
    )
    .unwrap();
    assert!(dir.weights.ends_with("pytorch_model.bin"));
    let (model, report) = load_classifier(&dir, &test_support::tiny_labels(), 0, &device).unwrap();
    assert!(report.initialized.is_empty(), "{:?}", report.initialized);
    assert_eq!(model.config().hidden_size, 32);
    let (input, _) = input(&golden, &device);
    assert_close(
        &values(model.forward(&input)),
        &flatten_f64(&golden["logits"]),
        1e-5,
        0.0,
        "tiny logits",
    );
}

#[test]
fn save_then_reload_gives_identical_logits() {
    let golden = test_support::tiny_bert_golden();
    let device = device();
    let source = ModelDir::open(&test_support::tiny_bert_dir()).unwrap();
    let labels = test_support::tiny_labels();
    let (model, _) = load_classifier(&source, &labels, 0, &device).unwrap();
    let out = tempfile::tempdir().unwrap();
    let checkpoint = out.path().join("checkpoint");
    let meta = CheckpointMeta {
        step: 12,
        seed: 5,
        source_model: "tiny".into(),
        ..CheckpointMeta::default()
    };
    save_checkpoint(&model, &source, &labels, &meta, &checkpoint, |dir| {
        std::fs::write(dir.join("optimizer.bin"), b"state")
    })
    .unwrap();

    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "vocab.txt",
        "meta_bert.json",
        "optimizer.bin",
    ] {
        assert!(checkpoint.join(file).is_file(), "{file} missing");
    }
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(checkpoint.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["num_labels"], 3);
    assert_eq!(config["id2label"]["1"], "neutral");
    assert_eq!(config["label2id"]["positive"], 2);
    assert_eq!(config["architectures"][0], "BertForSequenceClassification");
    let bytes = std::fs::read(checkpoint.join("model.safetensors")).unwrap();
    let saved = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let names = saved.names();
    assert!(names.contains(&"bert.encoder.layer.1.attention.self.query.weight"));
    assert!(names.contains(&"classifier.weight"));
    assert_eq!(saved.tensor("classifier.weight").unwrap().shape(), [3, 32]);

    let reloaded_dir =
        resolve_model(checkpoint.to_str().unwrap(), &HubOptions::from_env()).unwrap();
    assert_eq!(reloaded_dir.checkpoint.as_ref(), Some(&meta));
    let (reloaded, report) = load_classifier(&reloaded_dir, &labels, 99, &device).unwrap();
    assert!(
        report.initialized.is_empty() && report.unused.is_empty(),
        "{report:?}"
    );
    let (input, _) = input(&golden, &device);
    assert_eq!(
        values(model.forward(&input)),
        values(reloaded.forward(&input))
    );
}
