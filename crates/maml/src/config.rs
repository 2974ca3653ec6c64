//! Hyper-parameters of meta-training, adaptation and fine-tuning.
//!
//! Defaults are the reference's (pjlintw/Meta-BERT): outer batch 5 tasks, inner batch 16,
//! 10 inner epochs, learning rate 5e-5 inside and outside, dropout on while training.

use serde::{Deserialize, Serialize};
use tasks::{BatchOrder, Padding};

/// How a set of examples is cut into batches and padded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batching {
    /// Examples per batch (the last batch may be smaller).
    pub batch_size: usize,
    /// Shuffled (the reference) or length-bucketed.
    pub order: BatchOrder,
    /// Pad each batch to its longest sequence, or every sequence to `max_seq_len`.
    pub padding: Padding,
    /// The length [`Padding::Max`] pads to (sequences are already truncated by the encoder).
    pub max_seq_len: usize,
}

impl Batching {
    /// The reference's batching: shuffled, padded to the longest sequence of each batch, 256 tokens.
    pub fn shuffled(batch_size: usize) -> Self {
        Self {
            batch_size,
            order: BatchOrder::Shuffled,
            padding: Padding::Longest,
            max_seq_len: 256,
        }
    }
}

/// Which weights the inner loop adapts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdaptScope {
    /// Every weight (the reference).
    Full,
    /// ANIL: only the classifier head. The pooled features of the support set are computed once
    /// per task, without dropout or gradient, and the head is trained on them; the query
    /// gradient still reaches every weight.
    HeadOnly,
}

/// The inner loop: adapting a copy of the meta-model to one task's support set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InnerLoopConfig {
    /// Learning rate of the fresh inner Adam (β = (0.9, 0.999), ε = 1e-8, as torch's defaults).
    pub lr: f64,
    /// Epochs over the support set (the reference's `inner_update_step`).
    pub epochs: usize,
    /// Support-set batches (the reference: shuffled batches of 16).
    pub batching: Batching,
    /// Which weights adapt.
    pub scope: AdaptScope,
    /// Dropout during adaptation and query gradients (the reference trains in train mode).
    pub dropout: bool,
}

impl Default for InnerLoopConfig {
    fn default() -> Self {
        Self {
            lr: 5e-5,
            epochs: 10,
            batching: Batching::shuffled(16),
            scope: AdaptScope::Full,
            dropout: true,
        }
    }
}

/// How the meta-weights learn from the adapted copies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum MetaAlgorithm {
    /// First-order MAML: the mean query-loss gradient at the adapted weights, applied by the
    /// outer Adam (whose state persists across outer steps).
    Fomaml,
    /// Reptile: the meta-weights move toward the mean adapted weights,
    /// `θ ← θ + step_size · mean(φ − θ)`. The query set is only scored.
    Reptile {
        /// Interpolation factor ε in (0, 1].
        step_size: f64,
    },
}

/// Meta-training: the algorithm, the outer optimizer and the inner loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetaConfig {
    /// FOMAML (the reference) or Reptile.
    pub algorithm: MetaAlgorithm,
    /// Learning rate of the outer Adam (FOMAML only).
    pub outer_lr: f64,
    /// Clip the mean meta-gradient to this global L2 norm (as `torch.nn.utils.clip_grad_norm_`).
    pub max_grad_norm: Option<f64>,
    /// Adaptation to each task.
    pub inner: InnerLoopConfig,
}

impl Default for MetaConfig {
    fn default() -> Self {
        Self {
            algorithm: MetaAlgorithm::Fomaml,
            outer_lr: 5e-5,
            max_grad_norm: None,
            inner: InnerLoopConfig::default(),
        }
    }
}

/// Plain fine-tuning with AdamW, the "BERT" and "Meta-BERT" rows of the experiments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneConfig {
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW's decoupled weight decay. Default 0.01, torch's default (Burn's is 1e-4).
    pub weight_decay: f64,
    /// Training batches (the reference: shuffled batches of 32).
    pub batching: Batching,
    /// Batch size when scoring validation and test sets.
    pub eval_batch_size: usize,
    /// Passes over the training set.
    pub epochs: usize,
    /// Dropout while training.
    pub dropout: bool,
    /// Clip each batch's gradient to this global L2 norm.
    pub max_grad_norm: Option<f64>,
    /// Each training batch is cut into this many micro-batches (rows split as evenly as
    /// possible, each padded on its own) whose gradients are summed in order: the same mean-loss
    /// gradient up to rounding, with dropout masks drawn per micro-batch. Micro-batches run at
    /// once on [`crate::FineTuner::with_threads`] threads. 1 = the whole batch at once.
    #[serde(default = "one")]
    pub micro_batches: usize,
}

fn one() -> usize {
    1
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        Self {
            lr: 5e-5,
            weight_decay: 0.01,
            batching: Batching::shuffled(32),
            eval_batch_size: 32,
            epochs: 3,
            dropout: true,
            max_grad_norm: None,
            micro_batches: 1,
        }
    }
}
