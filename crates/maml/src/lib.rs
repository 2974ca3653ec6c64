//! The learning algorithms of Meta-BERT, written once for every Burn device: first-order MAML
//! (the reference's), Reptile and ANIL's head-only inner loop, test-task evaluation, plain
//! fine-tuning, and the metrics they report.
//!
//! This crate never names a backend: it runs on the device the model's parameters are on (with
//! autodiff for training). Progress leaves it as [`Event`]s through a callback; it prints
//! nothing.
//!
//! - [`MetaLearner`]: the meta-model and its outer optimizer. [`MetaLearner::task_update`] is
//!   the independent per-task unit (adapt a copy, take the query gradient);
//!   [`MetaLearner::outer_step`] sums the units of an outer batch in a [`MetaGradient`] and
//!   [`MetaLearner::apply`]s the mean. [`MetaLearner::evaluate_tasks`] adapts to test tasks and
//!   leaves the meta-model untouched.
//! - [`FineTuner`] / [`finetune`]: AdamW over a training set, validation and test scored each
//!   epoch (epoch 0 = zero-shot); optionally each batch as micro-batches whose gradients are
//!   summed ([`FinetuneConfig::micro_batches`]).
//! - Threads: [`MetaLearner::with_task_threads`] and [`FineTuner::with_threads`] compute tasks,
//!   micro-batches and scoring batches side by side (the CPU backend leaves cores idle
//!   otherwise); results are the same for every thread count.
//! - [`evaluate`] and [`Metrics`]: accuracy over examples, macro-F1, confusion matrix,
//!   majority-class baseline, mean loss.
//! - [`hold_out_validation`] and [`best_by_validation`]: checkpoint selection on validation
//!   episodes from the training domains, never on the test tasks.
//!
//! # Where this differs from PyTorch
//!
//! - Adam and AdamW use torch's ε = 1e-8 and AdamW torch's weight decay 0.01 (Burn's defaults
//!   are 1e-5 and 1e-4).
//! - Dropout masks are not PyTorch's. Every outer step and epoch draws seeds from the caller's
//!   `rng`: one for the device's generator (GPU backends) and, for meta-training, one per task
//!   for its support batch order and its Flex dropout stream (`model::seed_dropout`), so a
//!   seeded run repeats exactly on a deterministic device (Flex), whatever
//!   [`MetaLearner::with_task_threads`] says.
//! - Gradient clipping (`max_grad_norm`) is by global norm, like `clip_grad_norm_` (Burn's own
//!   clipping is per parameter).
//!
//! # Example
//!
//! ```
//! use burn::tensor::Device;
//! use maml::{MetaConfig, MetaLearner, Task};
//! use model::{BertClassifier, BertConfig};
//! use rand::SeedableRng;
//! use tasks::EncodedReview;
//!
//! let config = BertConfig::from_json(
//!     r#"{"vocab_size": 20, "hidden_size": 8, "num_hidden_layers": 1,
//!         "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 16}"#,
//! )
//! .unwrap();
//! let model = BertClassifier::init(&config, 2, 7, &Device::flex());
//! let review = |word: u32, label: usize| EncodedReview {
//!     ids: vec![1, word, 2],
//!     type_ids: vec![0; 3],
//!     label,
//!     source_index: 0,
//! };
//! let reviews: Vec<EncodedReview> = (0..8).map(|i| review(3 + i % 2, (i % 2) as usize)).collect();
//! let task = Task {
//!     domain: "toy",
//!     support: reviews[..4].iter().collect(),
//!     query: reviews[4..].iter().collect(),
//! };
//!
//! let mut config = MetaConfig::default();
//! config.inner.epochs = 1;
//! let mut learner = MetaLearner::new(model, config).unwrap();
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let mut seen = Vec::new();
//! let report = learner.outer_step(&[task], &mut rng, &mut |event| seen.push(event)).unwrap();
//! assert_eq!(report.step, 1);
//! assert!(report.mean_query_loss.is_finite());
//! assert_eq!(seen.len(), 2); // the task, then the outer step
//! ```

mod adapt;
mod config;
mod error;
mod evaluate;
mod event;
mod finetune;
mod gradients;
mod learner;
mod metrics;
mod optimizer_state;
mod parallel;
mod selection;
mod tensors;

pub use config::{
    AdaptScope, Batching, FinetuneConfig, InnerLoopConfig, MetaAlgorithm, MetaConfig,
};
pub use error::MamlError;
pub use evaluate::evaluate;
pub use event::{Event, Split};
pub use finetune::{EpochRecord, FineTuner, FinetuneData, finetune};
pub use gradients::MetaGradient;
pub use learner::{MetaLearner, OuterStepReport, Task, TaskEvaluation, TaskUpdate};
pub use metrics::{ClassCounts, Metrics};
pub use selection::{ValidationHoldout, best_by_validation, hold_out_validation};
