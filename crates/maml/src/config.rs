//! Hyper-parameters of meta-training, adaptation and fine-tuning.
//!
//! Defaults are the reference's (pjlintw/Meta-BERT): outer batch 5 tasks, inner batch 16,
//! 10 inner epochs, learning rate 5e-5 inside and outside, dropout on while training.

use serde::{Deserialize, Serialize};

use crate::{BatchOrder, Classifier, FineTuner, LossScaling, MamlError, MetaLearner};

/// Builder methods `with_field(value) -> Self`, one per named field, as Burn's configs have.
macro_rules! builders {
    ($config:ident<$options:ident> { $($setter:ident => $field:ident: $type:ty),* $(,)? }) => {
        impl<$options> $config<$options> {
            $(
                #[doc = concat!("Sets `", stringify!($field), "`.")]
                #[must_use]
                pub fn $setter(mut self, $field: $type) -> Self {
                    self.$field = $field;
                    self
                }
            )*
        }
    };
}

/// How a set of examples is cut into batches. `options` says the rest of what the model needs
/// ([`crate::Classifier::BatchOptions`]; for BERT the padding and the longest sequence), and is
/// saved flattened beside the other fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batching<O> {
    /// Examples per batch (the last batch may be smaller).
    pub batch_size: usize,
    /// Shuffled (the reference) or length-bucketed.
    pub order: BatchOrder,
    /// The model's own batching options.
    #[serde(flatten)]
    pub options: O,
}

impl<O: Default> Batching<O> {
    /// The reference's batching: shuffled, the model's default options (BERT: padded to the
    /// longest sequence of each batch, 256 tokens).
    pub fn shuffled(batch_size: usize) -> Self {
        Self {
            batch_size,
            order: BatchOrder::Shuffled,
            options: O::default(),
        }
    }
}

builders!(Batching<O> {
    with_batch_size => batch_size: usize,
    with_order => order: BatchOrder,
    with_options => options: O,
});

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
pub struct InnerLoopConfig<O> {
    /// Learning rate of the fresh inner Adam (β = (0.9, 0.999), ε = 1e-8, as torch's defaults).
    pub lr: f64,
    /// Epochs over the support set (the reference's `inner_update_step`).
    pub epochs: usize,
    /// Support-set batches (the reference: shuffled batches of 16).
    pub batching: Batching<O>,
    /// Which weights adapt.
    pub scope: AdaptScope,
    /// Dropout during adaptation and query gradients (the reference trains in train mode).
    pub dropout: bool,
}

impl<O: Default> Default for InnerLoopConfig<O> {
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
pub struct MetaConfig<O> {
    /// FOMAML (the reference) or Reptile.
    pub algorithm: MetaAlgorithm,
    /// Learning rate of the outer Adam (FOMAML only).
    pub outer_lr: f64,
    /// Clip the mean meta-gradient to this global L2 norm (as `torch.nn.utils.clip_grad_norm_`).
    pub max_grad_norm: Option<f64>,
    /// Adaptation to each task.
    pub inner: InnerLoopConfig<O>,
    /// Dynamic loss scaling of every backward pass (inner, query and evaluation adaptation), for
    /// a model computing in f16; `None` (the default) for full precision. One scale serves the
    /// whole step: it shrinks after any overflow in the step and grows after
    /// `growth_interval` clean outer steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scaling: Option<LossScaling>,
}

impl<O: Default> Default for MetaConfig<O> {
    fn default() -> Self {
        Self {
            algorithm: MetaAlgorithm::Fomaml,
            outer_lr: 5e-5,
            max_grad_norm: None,
            inner: InnerLoopConfig::default(),
            loss_scaling: None,
        }
    }
}

/// Plain fine-tuning with AdamW, the "BERT" and "Meta-BERT" rows of the experiments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneConfig<O> {
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW's decoupled weight decay. Default 0.01, torch's default (Burn's is 1e-4).
    pub weight_decay: f64,
    /// Training batches (the reference: shuffled batches of 32).
    pub batching: Batching<O>,
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
    /// Dynamic loss scaling of every batch's backward pass, for a model computing in f16;
    /// `None` (the default) for full precision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scaling: Option<LossScaling>,
}

fn one() -> usize {
    1
}

impl<O: Default> Default for FinetuneConfig<O> {
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
            loss_scaling: None,
        }
    }
}

builders!(InnerLoopConfig<O> {
    with_lr => lr: f64,
    with_epochs => epochs: usize,
    with_batching => batching: Batching<O>,
    with_scope => scope: AdaptScope,
    with_dropout => dropout: bool,
});

builders!(MetaConfig<O> {
    with_algorithm => algorithm: MetaAlgorithm,
    with_outer_lr => outer_lr: f64,
    with_max_grad_norm => max_grad_norm: Option<f64>,
    with_inner => inner: InnerLoopConfig<O>,
    with_loss_scaling => loss_scaling: Option<LossScaling>,
});

builders!(FinetuneConfig<O> {
    with_lr => lr: f64,
    with_weight_decay => weight_decay: f64,
    with_batching => batching: Batching<O>,
    with_eval_batch_size => eval_batch_size: usize,
    with_epochs => epochs: usize,
    with_dropout => dropout: bool,
    with_max_grad_norm => max_grad_norm: Option<f64>,
    with_micro_batches => micro_batches: usize,
    with_loss_scaling => loss_scaling: Option<LossScaling>,
});

impl<O> MetaConfig<O> {
    /// A learner that meta-trains `model` with these settings (Burn's `XConfig::init` idiom), on
    /// the device its parameters are on (with autodiff). With `inner.dropout` off, the held
    /// model's dropout probabilities are set to zero.
    ///
    /// Errors on a setting that cannot work (a zero batch size, a negative learning rate, ...).
    pub fn init<M: Classifier<BatchOptions = O>>(
        self,
        model: M,
    ) -> Result<MetaLearner<M>, MamlError> {
        MetaLearner::new(model, self)
    }
}

impl<O> FinetuneConfig<O> {
    /// A tuner that fine-tunes `model` with these settings (Burn's `XConfig::init` idiom), on the
    /// device its parameters are on (with autodiff): AdamW with torch's defaults
    /// (β = (0.9, 0.999), ε = 1e-8) and `weight_decay`. With `dropout` off, the held model's
    /// dropout probabilities are set to zero.
    ///
    /// Errors on a setting that cannot work (a zero batch size, a negative learning rate, ...).
    pub fn init<M: Classifier<BatchOptions = O>>(
        self,
        model: M,
    ) -> Result<FineTuner<M>, MamlError> {
        FineTuner::new(model, self)
    }
}
