//! Classification metrics over a scored set of examples.

use serde::{Deserialize, Serialize};

/// How one class fared: counts, and precision/recall/F1 derived from them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassCounts {
    /// The label id (position in the label set).
    pub label: usize,
    /// Examples whose true label is this class.
    pub support: usize,
    /// Examples predicted as this class.
    pub predicted: usize,
    /// Examples of this class predicted correctly.
    pub correct: usize,
    /// `correct / predicted`, 0 when nothing was predicted as this class.
    pub precision: f64,
    /// `correct / support`, 0 when the class has no examples.
    pub recall: f64,
    /// Harmonic mean of precision and recall, 0 when both are 0.
    pub f1: f64,
}

/// Metrics of a classifier on one scored set.
///
/// Accuracy counts examples (not a mean of per-batch accuracies). Macro-F1 averages the F1 of the
/// classes that occur among the true labels or the predictions, as scikit-learn's
/// `f1_score(average="macro")` does by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Number of scored examples.
    pub n: usize,
    /// Correct predictions / `n`.
    pub accuracy: f64,
    /// Unweighted mean of per-class F1 (see above for which classes count).
    pub macro_f1: f64,
    /// Mean cross-entropy over examples.
    pub mean_loss: f64,
    /// `confusion[true_label][predicted_label]`: counts.
    pub confusion: Vec<Vec<usize>>,
    /// One entry per label of the classifier, in label order.
    pub per_class: Vec<ClassCounts>,
    /// Accuracy of always predicting the most frequent true label of this set.
    pub majority_baseline: f64,
}

impl Metrics {
    /// Metrics from the true labels, the predicted labels and the summed per-example loss.
    ///
    /// An empty set gives zeros everywhere (no NaN), so it serialises as valid JSON.
    ///
    /// # Panics
    /// If `labels` and `predictions` differ in length or a label is `>= num_labels` (the
    /// callers in this crate check labels first).
    pub fn from_predictions(
        labels: &[usize],
        predictions: &[usize],
        loss_sum: f64,
        num_labels: usize,
    ) -> Self {
        assert_eq!(labels.len(), predictions.len(), "one prediction per label");
        let mut confusion = vec![vec![0usize; num_labels]; num_labels];
        for (&truth, &predicted) in labels.iter().zip(predictions) {
            confusion[truth][predicted] += 1;
        }
        Self::from_confusion(confusion, loss_sum)
    }

    /// The metrics of several scored sets taken together (e.g. the query sets of all test
    /// tasks): confusion matrices and losses are summed, then every rate is recomputed.
    ///
    /// # Panics
    /// If the sets were scored with different numbers of labels, or `sets` is empty.
    pub fn pooled(sets: &[Metrics]) -> Self {
        let num_labels = sets
            .first()
            .expect("at least one scored set")
            .confusion
            .len();
        let mut confusion = vec![vec![0usize; num_labels]; num_labels];
        for set in sets {
            assert_eq!(
                set.confusion.len(),
                num_labels,
                "sets scored with different label counts"
            );
            for (total_row, row) in confusion.iter_mut().zip(&set.confusion) {
                for (total, count) in total_row.iter_mut().zip(row) {
                    *total += count;
                }
            }
        }
        let loss_sum = sets.iter().map(|set| set.mean_loss * set.n as f64).sum();
        Self::from_confusion(confusion, loss_sum)
    }

    fn from_confusion(confusion: Vec<Vec<usize>>, loss_sum: f64) -> Self {
        let num_labels = confusion.len();
        let n: usize = confusion.iter().flatten().sum();
        let per_class: Vec<ClassCounts> = (0..num_labels)
            .map(|label| {
                let support: usize = confusion[label].iter().sum();
                let predicted: usize = confusion.iter().map(|row| row[label]).sum();
                let correct = confusion[label][label];
                let precision = ratio(correct, predicted);
                let recall = ratio(correct, support);
                let f1 = if precision + recall > 0.0 {
                    2.0 * precision * recall / (precision + recall)
                } else {
                    0.0
                };
                ClassCounts {
                    label,
                    support,
                    predicted,
                    correct,
                    precision,
                    recall,
                    f1,
                }
            })
            .collect();
        let present: Vec<&ClassCounts> = per_class
            .iter()
            .filter(|c| c.support > 0 || c.predicted > 0)
            .collect();
        let macro_f1 = if present.is_empty() {
            0.0
        } else {
            present.iter().map(|c| c.f1).sum::<f64>() / present.len() as f64
        };
        let correct: usize = per_class.iter().map(|c| c.correct).sum();
        let largest_class = per_class.iter().map(|c| c.support).max().unwrap_or(0);
        Self {
            n,
            accuracy: ratio(correct, n),
            macro_f1,
            mean_loss: if n == 0 { 0.0 } else { loss_sum / n as f64 },
            confusion,
            per_class,
            majority_baseline: ratio(largest_class, n),
        }
    }
}

fn ratio(numerator: usize, denominator: usize) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_accuracy_f1_confusion_and_majority_baseline() {
        // truth:     0 0 0 1 1
        // predicted: 0 1 0 1 0
        let m = Metrics::from_predictions(&[0, 0, 0, 1, 1], &[0, 1, 0, 1, 0], 2.5, 2);
        assert_eq!(m.n, 5);
        assert_eq!(m.accuracy, 0.6);
        assert_eq!(m.confusion, vec![vec![2, 1], vec![1, 1]]);
        assert_eq!(m.per_class[0].support, 3);
        assert_eq!(m.per_class[0].predicted, 3);
        assert_eq!(m.per_class[1].correct, 1);
        // class 0: p = r = 2/3; class 1: p = r = 1/2.
        assert!((m.macro_f1 - (2.0 / 3.0 + 0.5) / 2.0).abs() < 1e-12);
        assert_eq!(m.mean_loss, 0.5);
        assert_eq!(m.majority_baseline, 0.6);
    }

    #[test]
    fn macro_f1_ignores_classes_absent_from_truth_and_predictions() {
        let m = Metrics::from_predictions(&[0, 0], &[0, 0], 0.0, 3);
        assert_eq!(m.macro_f1, 1.0);
        assert_eq!(m.per_class[2].f1, 0.0);
    }

    #[test]
    fn empty_set_gives_zeros_not_nan() {
        let m = Metrics::from_predictions(&[], &[], 0.0, 2);
        assert_eq!(
            (m.n, m.accuracy, m.macro_f1, m.mean_loss),
            (0, 0.0, 0.0, 0.0)
        );
        assert_eq!(m.majority_baseline, 0.0);
    }

    #[test]
    fn pooled_sets_equal_scoring_all_examples_at_once() {
        let a = Metrics::from_predictions(&[0, 1, 1], &[0, 0, 1], 1.5, 2);
        let b = Metrics::from_predictions(&[1, 0], &[1, 1], 0.5, 2);
        let all = Metrics::from_predictions(&[0, 1, 1, 1, 0], &[0, 0, 1, 1, 1], 2.0, 2);
        let pooled = Metrics::pooled(&[a, b]);
        assert_eq!(pooled.confusion, all.confusion);
        assert_eq!(
            (pooled.n, pooled.accuracy, pooled.macro_f1),
            (all.n, all.accuracy, all.macro_f1)
        );
        assert!((pooled.mean_loss - all.mean_loss).abs() < 1e-12);
    }
}
