//! Progress and results, as they leave the library (the crate prints nothing).

use std::time::Duration;

use crate::ScalingReport;
use crate::metrics::Metrics;

/// Which held-out set a score is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Validation (used to pick checkpoints).
    Validation,
    /// Test (reported, never used to pick anything).
    Test,
}

/// One thing that happened. Losses and accuracies are read back from the device once per task
/// (meta-learning) or once per batch (fine-tuning).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A task of an outer step was adapted and its query set scored.
    TaskAdapted {
        /// The outer step (1-based).
        step: usize,
        /// The task's position in the outer batch (0-based).
        task: usize,
        /// Tasks in the outer batch.
        tasks: usize,
        /// The task's domain.
        domain: String,
        /// The loss of each inner batch, before its update, in order.
        inner_losses: Vec<f64>,
        /// Each inner batch as positions in the task's support set, in order.
        support_batches: Vec<Vec<usize>>,
        /// Query loss at the adapted weights.
        query_loss: f64,
        /// Query accuracy at the adapted weights.
        query_accuracy: f64,
        /// Time spent on this task.
        elapsed: Duration,
    },
    /// An outer step was applied to the meta-model.
    OuterStep {
        /// The outer step (1-based).
        step: usize,
        /// Tasks in the outer batch.
        tasks: usize,
        /// Mean query loss over the tasks.
        mean_query_loss: f64,
        /// Mean query accuracy over the tasks.
        mean_query_accuracy: f64,
        /// Global L2 norm of the mean meta-gradient, before clipping (not finite: loss scaling
        /// skipped the step for an overflow).
        grad_norm: f64,
        /// What loss scaling did in the step, when it is on.
        loss_scaling: Option<ScalingReport>,
        /// Time spent on the whole step.
        elapsed: Duration,
    },
    /// A test or validation task was adapted and its query set scored.
    TaskEvaluated {
        /// The task's position (0-based).
        task: usize,
        /// Tasks being evaluated.
        tasks: usize,
        /// The task's domain.
        domain: String,
        /// Query-set metrics at the adapted weights.
        metrics: Metrics,
        /// Each inner batch as positions in the task's support set, in order.
        support_batches: Vec<Vec<usize>>,
        /// Time spent on this task.
        elapsed: Duration,
    },
    /// A fine-tuning batch was trained on.
    FinetuneBatch {
        /// The epoch (1-based).
        epoch: usize,
        /// The batch (1-based).
        batch: usize,
        /// Batches in the epoch.
        batches: usize,
        /// The batch's loss before its update.
        loss: f64,
        /// The batch's examples as positions in the training set, in order.
        rows: Vec<usize>,
    },
    /// A fine-tuning epoch finished.
    EpochFinished {
        /// The epoch (1-based).
        epoch: usize,
        /// Mean training loss over the epoch's examples.
        train_loss: f64,
        /// What loss scaling did in the epoch, when it is on.
        loss_scaling: Option<ScalingReport>,
        /// Time spent training this epoch.
        elapsed: Duration,
    },
    /// A held-out set was scored during fine-tuning (epoch 0: zero-shot, before training).
    Scored {
        /// Epochs trained so far.
        epoch: usize,
        /// Which set.
        split: Split,
        /// Its metrics.
        metrics: Metrics,
        /// Time spent scoring.
        elapsed: Duration,
    },
}
