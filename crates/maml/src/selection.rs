//! Choosing checkpoints without looking at the test tasks.
//!
//! The reference picked meta-checkpoints by their test-task accuracy, which leaks the test set
//! into model selection. Here checkpoints are compared on validation tasks (for reviews:
//! `tasks::hold_out_validation` draws them from the training domains).

use crate::Metrics;

/// The candidate with the highest validation accuracy; ties go to the lower validation loss,
/// then to the earlier candidate. `None` if there are no candidates.
pub fn best_by_validation<'a, T>(
    candidates: impl IntoIterator<Item = (T, &'a Metrics)>,
) -> Option<T> {
    let mut best: Option<(T, &Metrics)> = None;
    for (candidate, metrics) in candidates {
        let better = match &best {
            None => true,
            Some((_, leader)) => {
                metrics.accuracy > leader.accuracy
                    || (metrics.accuracy == leader.accuracy && metrics.mean_loss < leader.mean_loss)
            }
        };
        if better {
            best = Some((candidate, metrics));
        }
    }
    best.map(|(candidate, _)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(accuracy: f64, mean_loss: f64) -> Metrics {
        let mut m = Metrics::from_predictions(&[0], &[0], 0.0, 2);
        m.accuracy = accuracy;
        m.mean_loss = mean_loss;
        m
    }

    #[test]
    fn best_by_validation_prefers_accuracy_then_loss_then_earliest() {
        let scores = [
            metrics(0.7, 0.5),
            metrics(0.8, 0.6),
            metrics(0.8, 0.4),
            metrics(0.8, 0.4),
        ];
        let best = best_by_validation(scores.iter().enumerate());
        assert_eq!(best, Some(2));
        assert_eq!(
            best_by_validation(std::iter::empty::<(usize, &Metrics)>()),
            None
        );
    }
}
