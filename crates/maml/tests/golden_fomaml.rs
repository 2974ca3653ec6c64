//! One FOMAML meta-step on the MiniLM golden checkpoint, against transformers
//! (`fomaml_step` in ../shared/fixtures/minilm-l6-golden/golden.json), on the backend
//! `METABERT_TEST_BACKEND` names (default flex).

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use maml::{Batching, Event, InnerLoopConfig, MetaConfig, MetaGradient, Task};
use model::{
    BackendKind, BertClassifier, BertInput, HubOptions, NamedTensor, load_classifier, resolve_model,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use tasks::{Collation, EncodedReview};
use test_support::{assert_close, assert_rel, flatten_f64, flatten_i64, minilm_golden};

const REL: f64 = 1e-3;

/// Flex unless `METABERT_TEST_BACKEND` names another backend (README, *The tch backend*).
fn device() -> Device {
    test_support::test_device(BackendKind::device)
}

/// The golden's dropout-free FOMAML: support of 4 in one batch, 2 inner Adam steps and one outer
/// Adam step, both at lr 1e-3.
fn golden_config() -> MetaConfig<Collation> {
    MetaConfig::default().with_outer_lr(1e-3).with_inner(
        InnerLoopConfig::default()
            .with_lr(1e-3)
            .with_epochs(2)
            .with_batching(Batching::shuffled(4))
            .with_dropout(false),
    )
}

fn golden_checkpoint() -> BertClassifier {
    let dir = resolve_model(
        test_support::golden_checkpoint_dir()
            .to_str()
            .expect("UTF-8 path"),
        &HubOptions::from_env(),
    )
    .expect("golden checkpoint resolves");
    load_classifier(&dir, &test_support::sentiment_labels(), 0, &device())
        .expect("golden checkpoint loads")
        .0
}

/// The reviews of a golden batch (`input_ids` etc. padded to the longest), padding removed.
fn reviews(batch: &Value) -> Vec<EncodedReview> {
    let rows = |key: &str| -> Vec<Vec<i64>> {
        batch[key]
            .as_array()
            .expect("a list of rows")
            .iter()
            .map(flatten_i64)
            .collect()
    };
    let (ids, masks, types) = (
        rows("input_ids"),
        rows("attention_mask"),
        rows("token_type_ids"),
    );
    let labels = flatten_i64(&batch["labels"]);
    (0..ids.len())
        .map(|row| {
            let len = masks[row].iter().filter(|&&m| m == 1).count();
            let tokens = |values: &[i64]| values[..len].iter().map(|&v| v as u32).collect();
            EncodedReview {
                ids: tokens(&ids[row]),
                type_ids: tokens(&types[row]),
                label: labels[row] as usize,
                source_index: row,
            }
        })
        .collect()
}

fn probe_input(batch: &Value, device: &Device) -> BertInput {
    let batch = test_support::golden_batch(batch);
    BertInput::new(
        batch.input_ids,
        batch.attention_mask,
        batch.token_type_ids,
        batch.shape,
        device,
    )
}

/// Gradients under transformers names in PyTorch layout, by putting them in the parameters'
/// place and reading the model's state dict.
fn named(model: &BertClassifier, gradients: &GradientsParams) -> HashMap<String, NamedTensor> {
    struct Swap<'a>(&'a GradientsParams);
    impl ModuleMapper for Swap<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (id, value, mapper) = param.consume();
            let gradient = self.0.get::<D>(id).unwrap_or_else(|| value.zeros_like());
            Param::from_mapped_value(id, gradient, mapper)
        }
    }
    model
        .valid()
        .map(&mut Swap(gradients))
        .state_dict()
        .into_iter()
        .map(|tensor| (tensor.name.clone(), tensor))
        .collect()
}

/// `values[index]` for the golden's index strings (`[:, 0:8]`, `[0:4, 0:4]`, `[0:8]`, `[:]`).
fn slice(tensor: &NamedTensor, index: &str) -> Vec<f64> {
    let ranges: Vec<(usize, usize)> = index
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .zip(&tensor.shape)
        .map(|(part, &dim)| {
            let (start, stop) = part.trim().split_once(':').expect("start:stop");
            let parse = |s: &str, default| {
                if s.is_empty() {
                    default
                } else {
                    s.parse().expect("index")
                }
            };
            (parse(start, 0), parse(stop, dim))
        })
        .collect();
    let values = |flat: usize| f64::from(tensor.values[flat]);
    match ranges.as_slice() {
        [(a, b)] => (*a..*b).map(values).collect(),
        [(r0, r1), (c0, c1)] => {
            let cols = tensor.shape[1];
            (*r0..*r1)
                .flat_map(|r| (*c0..*c1).map(move |c| r * cols + c))
                .map(values)
                .collect()
        }
        _ => panic!("unsupported index {index}"),
    }
}

/// Each golden task's support and query reviews.
fn support_and_query_sets(golden_tasks: &[Value]) -> Vec<(Vec<EncodedReview>, Vec<EncodedReview>)> {
    golden_tasks
        .iter()
        .map(|task| (reviews(&task["support"]), reviews(&task["query"])))
        .collect()
}

/// The tasks over `sets`.
fn tasks(sets: &[(Vec<EncodedReview>, Vec<EncodedReview>)]) -> Vec<Task<'_, EncodedReview>> {
    sets.iter()
        .map(|(support, query)| Task {
            domain: "golden",
            support: support.iter().collect(),
            query: query.iter().collect(),
        })
        .collect()
}

#[test]
fn fomaml_step_matches_transformers() {
    let golden = &minilm_golden()["fomaml_step"];
    let golden_tasks = golden["tasks"].as_array().expect("tasks");
    let sets = support_and_query_sets(golden_tasks);
    let tasks = tasks(&sets);
    let meta = golden_checkpoint();
    let mut rng = ChaCha8Rng::seed_from_u64(0);

    // The per-task units and their mean, before the outer step.
    let units = golden_config().init(meta.clone()).expect("valid config");
    let mut meta_gradient = MetaGradient::new();
    for (task, expected) in tasks.iter().zip(golden_tasks) {
        let update = units.task_update(task, &mut rng).expect("task adapts");
        let inner = flatten_f64(&expected["inner_losses_before_each_step"]);
        assert_close(&update.inner_losses, &inner, 0.0, REL, "inner losses");
        let query = expected["query_loss_at_adapted_weights"]
            .as_f64()
            .expect("loss");
        assert_rel(update.query_loss, query, REL, "query loss");
        meta_gradient.add(units.model(), update.gradient);
    }
    let mean = named(units.model(), &meta_gradient.mean(units.model()));
    let expected = &golden["meta_gradient_before_outer_step"];
    for (name, norm) in expected["grad_norms"].as_object().expect("norms") {
        let tensor = &mean[name];
        let ours = tensor
            .values
            .iter()
            .map(|&v| f64::from(v).powi(2))
            .sum::<f64>()
            .sqrt();
        // Some norms are float noise around zero (key biases): an absolute floor for those.
        let norm = norm.as_f64().expect("norm");
        assert_close(
            &[ours],
            &[norm],
            1e-6,
            REL,
            &format!("gradient norm of {name}"),
        );
    }
    for (name, expected) in expected["grad_slices"].as_object().expect("slices") {
        let index = expected["index"].as_str().expect("index");
        let values = flatten_f64(&expected["values"]);
        let scale = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert_close(
            &slice(&mean[name], index),
            &values,
            1e-4 * scale,
            REL,
            &format!("mean gradient {name}{index}"),
        );
    }

    // The whole outer step, through the public entry point.
    let mut learner = golden_config().init(meta).expect("valid config");
    let mut events = Vec::new();
    learner
        .outer_step(&tasks, &mut rng, &mut |event| events.push(event))
        .expect("outer step");
    let query_losses: Vec<f64> = events
        .iter()
        .filter_map(|event| match event {
            Event::TaskAdapted { query_loss, .. } => Some(*query_loss),
            _ => None,
        })
        .collect();
    let expected_query: Vec<f64> = golden_tasks
        .iter()
        .map(|task| {
            task["query_loss_at_adapted_weights"]
                .as_f64()
                .expect("loss")
        })
        .collect();
    assert_close(
        &query_losses,
        &expected_query,
        0.0,
        REL,
        "query losses of the outer step",
    );

    let model = learner.model().valid();
    let device = device();
    let probe = minilm_golden()["batch"].clone();
    let logits: Vec<f64> = model
        .forward(&probe_input(&probe, &device))
        .into_data()
        .try_into_vec_as::<f64>()
        .expect("f64 logits");
    let expected_logits = flatten_f64(&golden["probe_logits_after_meta_step"]);
    assert_close(
        &logits,
        &expected_logits,
        1e-5,
        REL,
        "probe logits after the meta-step",
    );
    let state: HashMap<String, NamedTensor> = model
        .state_dict()
        .into_iter()
        .map(|tensor| (tensor.name.clone(), tensor))
        .collect();
    let bias: Vec<f64> = state["classifier.bias"]
        .values
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    assert_close(
        &bias,
        &flatten_f64(&golden["classifier_bias_after_meta_step"]),
        0.0,
        REL,
        "classifier bias after the meta-step",
    );
    let weight = &golden["classifier_weight_after_meta_step_slice"];
    assert_close(
        &slice(
            &state["classifier.weight"],
            weight["index"].as_str().expect("index"),
        ),
        &flatten_f64(&weight["values"]),
        0.0,
        REL,
        "classifier weight after the meta-step",
    );
}

/// The same meta-step with every matrix product in f16 and GradScaler's loss scaling, against
/// the f32 goldens. Tolerance from the format, as in model's `half_precision` test: 50 f16 unit
/// roundoffs (2.5·10⁻²) relative, on losses and on the probe logits (relative to their scale).
#[test]
fn fomaml_step_in_f16_with_loss_scaling_matches_transformers_within_half_precision() {
    let half_rel = 50.0 * 2f64.powi(-11);
    let golden = &minilm_golden()["fomaml_step"];
    let golden_tasks = golden["tasks"].as_array().expect("tasks");
    let sets = support_and_query_sets(golden_tasks);
    let tasks = tasks(&sets);
    let meta = golden_checkpoint().with_precision(model::Precision::F16);
    let mut learner = golden_config()
        .with_loss_scaling(Some(maml::LossScaling::default()))
        .init(meta)
        .expect("valid config");
    let mut events = Vec::new();
    let report = learner
        .outer_step(&tasks, &mut ChaCha8Rng::seed_from_u64(0), &mut |event| {
            events.push(event)
        })
        .expect("outer step");
    // No update was skipped, so the comparison is with the same step the goldens took.
    let scaling = report.loss_scaling.expect("loss scaling is on");
    assert_eq!(scaling.skipped_updates, 0, "{scaling:?}");
    assert_eq!(learner.loss_scaler().map(|s| s.scale), Some(65536.0));
    for (event, expected) in events
        .iter()
        .filter_map(|event| match event {
            Event::TaskAdapted {
                inner_losses,
                query_loss,
                ..
            } => Some((inner_losses, query_loss)),
            _ => None,
        })
        .zip(golden_tasks)
    {
        let (inner_losses, query_loss) = event;
        let inner = flatten_f64(&expected["inner_losses_before_each_step"]);
        assert_close(inner_losses, &inner, 0.0, half_rel, "f16 inner losses");
        let query = expected["query_loss_at_adapted_weights"]
            .as_f64()
            .expect("loss");
        assert_rel(*query_loss, query, half_rel, "f16 query loss");
    }
    let device = device();
    let logits: Vec<f64> = learner
        .model()
        .valid()
        .forward(&probe_input(&minilm_golden()["batch"], &device))
        .into_data()
        .try_into_vec_as::<f64>()
        .expect("f64 logits");
    let expected_logits = flatten_f64(&golden["probe_logits_after_meta_step"]);
    let scale = expected_logits.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert_close(
        &logits,
        &expected_logits,
        half_rel * scale,
        0.0,
        "f16 probe logits after the meta-step",
    );
}
