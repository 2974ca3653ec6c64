//! What the algorithms need of a model: the one seam between them and BERT.

use std::fmt::Debug;

use burn::module::Module;
use burn::optim::{AdamConfig, AdamWConfig, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::MamlError;
use crate::adapt::TORCH_ADAM_EPSILON;

/// A Burn classifier that [`crate::MetaLearner`], [`crate::FineTuner`] and [`crate::evaluate`]
/// can train and score: it turns a batch of its own examples into logits.
///
/// The algorithms decide which examples share a batch, in which order, and what happens to the
/// logits (cross-entropy, optimizer steps, metrics); the model decides what an example is and how
/// a batch of them becomes tensors. Like burn-train's `TrainStep` it is implemented by the model
/// type itself, and like candle-nn's `Optimizer` it asks only for what the loop calls.
///
/// BERT over tokenised reviews implements it in [`crate::bert`] (feature `bert`);
/// `examples/keyword_tasks.rs` meta-trains a model that is not BERT.
pub trait Classifier: Module + Sync + 'static {
    /// One labelled example (BERT: a tokenised review).
    type Example: Sync;
    /// How examples become a batch besides which share it: BERT's padding and longest sequence.
    /// Part of the experiment's settings ([`crate::Batching::options`]), saved with them; models
    /// that need none use [`NoOptions`].
    type BatchOptions: Clone
        + Debug
        + Default
        + PartialEq
        + Serialize
        + DeserializeOwned
        + Send
        + Sync;

    /// The label id of `example`, below [`Classifier::num_labels`].
    fn label(example: &Self::Example) -> usize;

    /// The size of `example` that padding depends on (BERT: its tokens). Length-bucketed batches
    /// put examples of similar size together; a model without padding returns 1.
    fn length(example: &Self::Example) -> usize;

    /// Classes the head predicts.
    fn num_labels(&self) -> usize;

    /// Errors unless `example` can go through this model batched with `options` (its label is
    /// one the head predicts, it is not longer than allowed, ...).
    fn check(&self, example: &Self::Example, options: &Self::BatchOptions)
    -> Result<(), MamlError>;

    /// The options [`crate::evaluate`] scores with in a run whose training batches use
    /// `training` (BERT: each batch padded to its longest example, or to its bucket when
    /// `training` pads to buckets; anything up to the model's position limit).
    fn scoring_options(&self, training: &Self::BatchOptions) -> Self::BatchOptions;

    /// Whether scoring batches made with `options` should all have the same number of rows, so
    /// that a backend that compiles kernels per tensor shape sees one shape fewer per scored set:
    /// [`crate::scoring_logits`] then fills a short batch with copies of its last example and
    /// drops their logits (BERT: when `options` pad to buckets). The default is `false`.
    fn fixed_rows(_options: &Self::BatchOptions) -> bool {
        false
    }

    /// Logits `[examples.len(), num_labels]` of `examples` (in order) on `device`, the model's
    /// device, and how much work the batch cost.
    fn forward(
        &self,
        examples: &[&Self::Example],
        options: &Self::BatchOptions,
        device: &Device,
    ) -> Forward;

    /// The same model with every dropout probability set to zero: gradients without dropout
    /// (PyTorch's `model.eval()` followed by `backward()`).
    fn without_dropout(self) -> Self;

    /// Seeds the dropout masks the calling thread draws next, for a model that draws them from
    /// a stream of its own rather than from the device's generator (BERT on Flex: one stream per
    /// thread, so tasks on different threads stay reproducible). Called on the thread that
    /// computes each task or micro-batch, before it starts. The default does nothing.
    fn seed_dropout(_seed: u64) {}

    /// ANIL: what the head reads, `[examples.len(), features]`, computed on `device` (a plain
    /// device: callers want no gradient); `None` for a model without a separate head, which then
    /// cannot adapt with [`crate::AdaptScope::HeadOnly`].
    fn head_features(
        &self,
        _examples: &[&Self::Example],
        _options: &Self::BatchOptions,
        _device: &Device,
    ) -> Option<Tensor<2>> {
        None
    }

    /// The optimizer every algorithm updates this model with: PyTorch's Adam (β = (0.9, 0.999),
    /// ε = 1e-8), with decoupled `weight_decay` (AdamW) when given. The default is Burn's `Adam`
    /// or `AdamW`; a model with a faster update that computes the same returns that instead
    /// (BERT: `model::FusedAdam`, one pass per parameter on Flex).
    fn adam(weight_decay: Option<f32>) -> ModuleOptimizer {
        match weight_decay {
            None => AdamConfig::new().with_epsilon(TORCH_ADAM_EPSILON).init(),
            Some(weight_decay) => AdamWConfig::new()
                .with_epsilon(TORCH_ADAM_EPSILON)
                .with_weight_decay(weight_decay)
                .init(),
        }
    }

    /// ANIL: the head alone applied to features from [`Classifier::head_features`].
    fn head_logits(&self, _features: Tensor<2>) -> Option<Tensor<2>> {
        None
    }
}

/// What [`Classifier::forward`] returns.
#[derive(Debug, Clone)]
pub struct Forward {
    /// `[batch, num_labels]`.
    pub logits: Tensor<2>,
    /// What a benchmark counts as work done, added up over a run (BERT: token positions,
    /// padding included, that went through the whole model).
    pub work: usize,
}

/// [`Classifier::BatchOptions`] of a model whose batches need no options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NoOptions {}
