//! The learning algorithms of Meta-BERT, written once for every Burn classifier and every Burn
//! device: first-order MAML (the reference's), Reptile and ANIL's head-only inner loop, a whole
//! resumable meta-training run, test-task evaluation, plain fine-tuning, and the metrics they
//! report.
//!
//! This crate never names a backend or a model: it runs any Burn module that implements
//! [`Classifier`] (examples in, logits out) on the device its parameters are on (with autodiff
//! for training). BERT over tokenised reviews is one such model ([`bert`], feature `bert`);
//! `examples/keyword_tasks.rs` meta-trains another. Progress leaves it as [`Event`]s through a
//! callback; it prints nothing.
//!
//! - [`Classifier`]: what the algorithms need of a model, the crate's one seam.
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
//! - [`MetaTraining`]: outer steps over a [`TaskSampler`]'s tasks, evaluation every few steps,
//!   checkpoint selection on validation tasks ([`best_by_validation`], never the test tasks)
//!   and exact resume, with checkpoints written by the caller's [`TrainingHost`].
//!
//! # Where this differs from PyTorch
//!
//! - Adam and AdamW use torch's ε = 1e-8 and AdamW torch's weight decay 0.01 (Burn's defaults
//!   are 1e-5 and 1e-4).
//! - Dropout masks are not PyTorch's. Every outer step and epoch draws seeds from the caller's
//!   `rng`: one for the device's generator (GPU backends) and, for meta-training, one per task
//!   for its support batch order and the model's own dropout stream
//!   ([`Classifier::seed_dropout`]; BERT on Flex), so a seeded run repeats exactly on a
//!   deterministic device (Flex), whatever [`MetaLearner::with_task_threads`] says.
//! - Gradient clipping (`max_grad_norm`) is by global norm, like `clip_grad_norm_` (Burn's own
//!   clipping is per parameter).
//!
//! # Example
//!
//! A linear classifier of points, meta-trained on two-point tasks with one outer step:
//!
//! ```
//! use burn::module::Module;
//! use burn::nn::{Linear, LinearConfig};
//! use burn::tensor::{Device, Tensor, TensorData};
//! use maml::{Classifier, Forward, MamlError, MetaConfig, MetaLearner, NoOptions, Task};
//! use rand::SeedableRng;
//!
//! #[derive(Module, Debug)]
//! struct Points {
//!     linear: Linear,
//! }
//!
//! struct Point {
//!     xy: [f32; 2],
//!     label: usize,
//! }
//!
//! impl Classifier for Points {
//!     type Example = Point;
//!     type BatchOptions = NoOptions;
//!     fn label(point: &Point) -> usize {
//!         point.label
//!     }
//!     fn length(_: &Point) -> usize {
//!         1
//!     }
//!     fn num_labels(&self) -> usize {
//!         2
//!     }
//!     fn check(&self, point: &Point, _: &NoOptions) -> Result<(), MamlError> {
//!         match point.label {
//!             0 | 1 => Ok(()),
//!             label => Err(MamlError::LabelOutOfRange { source_index: 0, label, num_labels: 2 }),
//!         }
//!     }
//!     fn scoring_options(&self, _: &NoOptions) -> NoOptions {
//!         NoOptions {}
//!     }
//!     fn forward(&self, points: &[&Point], _: &NoOptions, device: &Device) -> Forward {
//!         let values: Vec<f32> = points.iter().flat_map(|point| point.xy).collect();
//!         let input = Tensor::from_data(TensorData::new(values, [points.len(), 2]), device);
//!         Forward { logits: self.linear.forward(input), work: points.len() }
//!     }
//!     fn without_dropout(self) -> Self {
//!         self
//!     }
//! }
//!
//! let model = Points { linear: LinearConfig::new(2, 2).init(&Device::flex()) };
//! let points: Vec<Point> = (0..4)
//!     .map(|i| Point { xy: [i as f32, 1.0], label: i % 2 })
//!     .collect();
//! let task = Task::pick("toy", &[0, 1], &[2, 3], &points).unwrap();
//! let config = MetaConfig::default()
//!     .with_inner(maml::InnerLoopConfig::default().with_epochs(1));
//! let mut learner = config.init(model).unwrap();
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let mut seen = Vec::new();
//! let report = learner.outer_step(&[task], &mut rng, &mut |event| seen.push(event)).unwrap();
//! assert_eq!(report.step, 1);
//! assert!(report.mean_query_loss.is_finite());
//! assert_eq!(seen.len(), 2); // the task, then the outer step
//! ```

mod adapt;
mod batches;
#[cfg(feature = "bert")]
pub mod bert;
mod classifier;
mod config;
mod error;
mod evaluate;
mod event;
mod finetune;
mod gradients;
mod learner;
mod loss_scaling;
mod metrics;
mod optimizer_state;
mod parallel;
mod selection;
mod tensors;
mod training;

pub use batches::{BatchOrder, plan_batches};
pub use classifier::{Classifier, Forward, NoOptions};
pub use config::{
    AdaptScope, Batching, FinetuneConfig, InnerLoopConfig, MetaAlgorithm, MetaConfig,
};
pub use error::MamlError;
pub use evaluate::{evaluate, scoring_logits};
pub use event::{Event, Split};
pub use finetune::{EpochRecord, FineTuner, FinetuneData, finetune};
pub use gradients::MetaGradient;
pub use learner::{MetaLearner, OuterStepReport, Task, TaskEvaluation, TaskUpdate};
pub use loss_scaling::{LossScaler, LossScaling, ScalingReport};
pub use metrics::{ClassCounts, Metrics};
pub use selection::best_by_validation;
pub use tensors::cross_entropy;
pub use training::{
    Checkpoint, DrawnTask, Evaluation, MetaTraining, Progress, RngState, RunEnd, Saved, Scores,
    Stream, TaskIndices, TaskSampler, TaskScore, TrainingError, TrainingHost, TrainingPlan,
    TrainingState,
};
