//! What can go wrong while meta-training, adapting, fine-tuning or scoring.

use std::path::PathBuf;

use burn::store::RecordError;

/// An error of this crate. Each names where it happened and what would fix it.
#[derive(Debug, thiserror::Error)]
pub enum MamlError {
    /// A loss became NaN or infinite while meta-training or adapting to a task.
    #[error(
        "{phase} loss of task {task} (domain `{domain}`) {} is {value}: lower the learning rates \
         or set a gradient-norm limit",
        when_computed(*step)
    )]
    NonFiniteTaskLoss {
        /// The outer step (1-based) being computed; 0 while adapting to evaluation tasks.
        step: usize,
        /// The task's position in its outer batch (0-based).
        task: usize,
        /// The task's domain.
        domain: String,
        /// `inner` (support set) or `query`.
        phase: &'static str,
        /// The offending value.
        value: f64,
    },
    /// The mean meta-gradient became NaN or infinite.
    #[error(
        "the meta-gradient of outer step {step} has norm {norm}: lower the learning rates or set \
         a gradient-norm limit"
    )]
    NonFiniteGradient {
        /// The outer step (1-based).
        step: usize,
        /// The offending norm.
        norm: f64,
    },
    /// A training loss became NaN or infinite while fine-tuning.
    #[error(
        "fine-tuning loss at epoch {epoch}, batch {batch} is {value}: lower the learning rate or \
         set a gradient-norm limit"
    )]
    NonFiniteFinetuneLoss {
        /// The epoch (1-based).
        epoch: usize,
        /// The batch within the epoch (1-based).
        batch: usize,
        /// The offending value.
        value: f64,
    },
    /// A setting that cannot work (zero batch size, zero tasks, step size out of range, ...).
    #[error("invalid setting `{setting}` = {value}: {expected}")]
    InvalidSetting {
        /// The setting, as named in the config struct.
        setting: &'static str,
        /// What it was.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
    /// ANIL's head-only inner loop on a model that has no separate head.
    #[error(
        "the model has no separate head to adapt alone (Classifier::head_features gave none): \
         adapt every weight instead of the head only"
    )]
    NoHead,
    /// Adapting to the validation or test tasks of a meta-training run failed.
    #[error("cannot evaluate the {what} tasks after outer step {step}")]
    Evaluation {
        /// `validation` or `test`.
        what: &'static str,
        /// The outer step just applied.
        step: usize,
        /// What failed.
        #[source]
        source: Box<MamlError>,
    },
    /// A set that must hold examples is empty.
    #[error("{what} is empty: {fix}")]
    Empty {
        /// Which set.
        what: String,
        /// What would fix it.
        fix: &'static str,
    },
    /// An example's label is not one the classifier predicts.
    #[error(
        "example {source_index} has label id {label}, but the classifier predicts {num_labels} \
         labels: use a model made for this label set"
    )]
    LabelOutOfRange {
        /// The review's position in the source file.
        source_index: usize,
        /// Its label id.
        label: usize,
        /// Labels the classifier predicts.
        num_labels: usize,
    },
    /// A review has more tokens than the batches or the model allow.
    #[error(
        "review {source_index} has {len} tokens, more than the {max_seq_len} allowed: encode \
         with the same maximum sequence length as the batches use (at most the model's \
         max_position_embeddings)"
    )]
    TooLong {
        /// The review's position in the source file.
        source_index: usize,
        /// Its token count.
        len: usize,
        /// The limit.
        max_seq_len: usize,
    },
    /// An episode refers to an example that the encoded set does not have.
    #[error(
        "episode of domain `{domain}` refers to review {index}, but only {len} reviews are encoded: \
         encode the same review file the episodes were drawn from"
    )]
    ExampleOutOfRange {
        /// The episode's domain.
        domain: String,
        /// The offending index.
        index: usize,
        /// How many encoded reviews there are.
        len: usize,
    },
    /// Saving or loading optimizer state failed.
    #[error("cannot {action} optimizer state {}: {source}", path.display())]
    OptimizerState {
        /// `save` or `load`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Burn's error.
        source: RecordError,
    },
}

/// Where a task loss was computed: an outer step, or (step 0) evaluation, which callers place.
fn when_computed(step: usize) -> String {
    match step {
        0 => "while adapting to an evaluation task".to_string(),
        step => format!("at outer step {step}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loss_while_evaluating_is_not_placed_at_an_outer_step() {
        let error = |step| MamlError::NonFiniteTaskLoss {
            step,
            task: 1,
            domain: "books".into(),
            phase: "inner",
            value: f64::NAN,
        };
        assert_eq!(
            error(0).to_string(),
            "inner loss of task 1 (domain `books`) while adapting to an evaluation task is NaN: \
             lower the learning rates or set a gradient-norm limit"
        );
        assert!(error(3).to_string().contains("at outer step 3 is NaN"));
    }
}
