//! The statistics of the summary: mean, sample standard deviation and Student-t interval over
//! seeds, and a paired percentile bootstrap over the test reviews of each seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Two-sided coverage of every interval in the summary.
pub const CONFIDENCE: f64 = 0.95;

/// Resamples of each bootstrap: enough that the 2.5 % and 97.5 % percentiles of a difference
/// of accuracies on 300 reviews move by well under 0.005 from one bootstrap seed to another.
pub const BOOTSTRAP_RESAMPLES: usize = 4000;

/// The seed of every bootstrap, so that a summary is the same each time it is written.
pub const BOOTSTRAP_SEED: u64 = 20_181_101;

/// A closed interval `[low, high]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Interval {
    /// Whether 0 lies outside the interval.
    pub fn excludes_zero(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// Mean, sample standard deviation (n - 1) and the 95 % Student-t interval of the mean of one
/// metric over seeds; no deviation or interval from a single seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    pub mean: f64,
    pub std: Option<f64>,
    pub interval: Option<Interval>,
}

impl Stat {
    /// Panics on an empty slice: a setting enters the summary only with at least one run.
    pub fn of(values: &[f64]) -> Stat {
        assert!(!values.is_empty(), "a statistic needs at least one value");
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.len() > 1).then(|| {
            let squares: f64 = values.iter().map(|value| (value - mean).powi(2)).sum();
            (squares / (n - 1.0)).sqrt()
        });
        let interval = std.map(|std| {
            let half_width = t_quantile(CONFIDENCE, values.len() - 1) * std / n.sqrt();
            Interval {
                low: mean - half_width,
                high: mean + half_width,
            }
        });
        Stat {
            mean,
            std,
            interval,
        }
    }
}

/// The two-sided `confidence` quantile of Student's t with `degrees_of_freedom`: the `t` with
/// P(|T| <= t) = confidence.
///
/// Panics on 0 degrees of freedom or a confidence outside (0, 1).
pub fn t_quantile(confidence: f64, degrees_of_freedom: usize) -> f64 {
    assert!(
        degrees_of_freedom > 0,
        "t needs at least 1 degree of freedom"
    );
    assert!(
        confidence > 0.0 && confidence < 1.0,
        "confidence must lie in (0, 1)"
    );
    StudentsT::new(0.0, 1.0, degrees_of_freedom as f64)
        .expect("location 0, scale 1 and positive degrees of freedom are valid")
        .inverse_cdf(0.5 + confidence / 2.0)
}

/// One test review as both models saw it: its true label and each model's prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairedPrediction {
    pub label: usize,
    pub baseline: usize,
    pub candidate: usize,
}

/// A score computed from (true label, predicted label) pairs: accuracy or macro-F1.
pub type Metric = fn(&mut dyn Iterator<Item = (usize, usize)>) -> f64;

/// Correct predictions over all predictions.
pub fn accuracy(pairs: &mut dyn Iterator<Item = (usize, usize)>) -> f64 {
    let (mut correct, mut total) = (0usize, 0usize);
    for (label, predicted) in pairs {
        correct += usize::from(label == predicted);
        total += 1;
    }
    correct as f64 / total.max(1) as f64
}

/// Unweighted mean of the F1 of every class that occurs among the labels or the predictions
/// (scikit-learn's `f1_score(average="macro")`, and meta-bert's own macro-F1).
pub fn macro_f1(pairs: &mut dyn Iterator<Item = (usize, usize)>) -> f64 {
    // (true count, predicted count, correct count) per class.
    let mut counts: Vec<(usize, usize, usize)> = Vec::new();
    for (label, predicted) in pairs {
        let needed = label.max(predicted) + 1;
        if counts.len() < needed {
            counts.resize(needed, (0, 0, 0));
        }
        counts[label].0 += 1;
        counts[predicted].1 += 1;
        counts[label].2 += usize::from(label == predicted);
    }
    let present: Vec<f64> = counts
        .iter()
        .filter(|(truth, predicted, _)| truth + predicted > 0)
        .map(|&(truth, predicted, correct)| 2.0 * correct as f64 / (truth + predicted) as f64)
        .collect();
    present.iter().sum::<f64>() / present.len().max(1) as f64
}

/// The candidate's score minus the baseline's on the given reviews.
fn difference(metric: Metric, reviews: &mut dyn Iterator<Item = &PairedPrediction>) -> f64 {
    let reviews: Vec<&PairedPrediction> = reviews.collect();
    let candidate = metric(&mut reviews.iter().map(|r| (r.label, r.candidate)));
    let baseline = metric(&mut reviews.iter().map(|r| (r.label, r.baseline)));
    candidate - baseline
}

/// Percentile bootstrap of the mean over seeds of `metric(candidate) - metric(baseline)`: each
/// resample draws, within every seed, as many of that seed's test reviews as it has, with
/// replacement, the same draw for both models (the difference is paired). Given one seed, it is
/// that seed's interval. It measures how much the difference owes to which test reviews were
/// drawn, not to the seed.
///
/// Panics when `seeds` is empty or a seed has no reviews.
pub fn bootstrap_difference(
    seeds: &[&[PairedPrediction]],
    metric: Metric,
    resamples: usize,
    rng_seed: u64,
) -> Interval {
    assert!(
        seeds.iter().all(|reviews| !reviews.is_empty()) && !seeds.is_empty(),
        "a bootstrap needs at least one seed with reviews"
    );
    let mut rng = ChaCha8Rng::seed_from_u64(rng_seed);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| {
            let total: f64 = seeds
                .iter()
                .map(|reviews| {
                    let draw: Vec<&PairedPrediction> = (0..reviews.len())
                        .map(|_| &reviews[rng.random_range(0..reviews.len())])
                        .collect();
                    difference(metric, &mut draw.into_iter())
                })
                .sum();
            total / seeds.len() as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let tail = (1.0 - CONFIDENCE) / 2.0;
    Interval {
        low: percentile(&means, tail),
        high: percentile(&means, 1.0 - tail),
    }
}

/// Linear interpolation between the closest ranks (numpy's default `percentile`), of sorted data.
fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    let position = fraction * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    sorted[below] + (sorted[above] - sorted[below]) * (position - below as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_printed_tables() {
        // Two-sided 95 % critical values of Student's t (e.g. NIST/SEMATECH e-Handbook,
        // table 1.3.6.7.2, upper 0.025 column).
        for (degrees_of_freedom, expected) in [
            (1, 12.706),
            (2, 4.303),
            (3, 3.182),
            (4, 2.776),
            (9, 2.262),
            (30, 2.042),
            (100, 1.984),
        ] {
            let t = t_quantile(0.95, degrees_of_freedom);
            assert!((t - expected).abs() < 5e-4, "df {degrees_of_freedom}: {t}");
        }
        // The two-sided 90 % value is the 95 % quantile: 2.920 for 2 degrees of freedom.
        assert!((t_quantile(0.90, 2) - 2.920).abs() < 5e-4);
    }

    #[test]
    fn mean_std_and_t_interval_match_hand_computed_values() {
        let stat = Stat::of(&[0.7, 0.8, 0.9]);
        assert!((stat.mean - 0.8).abs() < 1e-12);
        // squares 0.01 + 0 + 0.01, over n - 1 = 2: sqrt(0.01) = 0.1
        assert!((stat.std.unwrap() - 0.1).abs() < 1e-12);
        // 0.8 ± 4.302653 * 0.1 / sqrt(3) = 0.8 ± 0.248414
        let interval = stat.interval.unwrap();
        assert!((interval.low - 0.551586).abs() < 1e-6, "{interval:?}");
        assert!((interval.high - 1.048414).abs() < 1e-6, "{interval:?}");
        let stat = Stat::of(&[1.0, 2.0, 4.0, 5.0]);
        assert_eq!(stat.mean, 3.0);
        // (4 + 1 + 1 + 4) / 3 = 10 / 3; half width 3.182446 * sqrt(10/3) / 2 = 2.905163
        assert!((stat.std.unwrap() - (10.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((stat.interval.unwrap().high - 5.905163).abs() < 1e-6);
        assert_eq!(
            Stat::of(&[0.5]),
            Stat {
                mean: 0.5,
                std: None,
                interval: None
            }
        );
    }

    #[test]
    fn accuracy_and_macro_f1_match_hand_computed_values() {
        // truth 0 0 0 1 1, predicted 0 1 0 1 0: accuracy 3/5; F1 class 0 = 2*2/(3+3),
        // class 1 = 2*1/(2+2).
        let pairs = [(0, 0), (0, 1), (0, 0), (1, 1), (1, 0)];
        assert!((accuracy(&mut pairs.into_iter()) - 0.6).abs() < 1e-12);
        let expected = (4.0 / 6.0 + 0.5) / 2.0;
        assert!((macro_f1(&mut pairs.into_iter()) - expected).abs() < 1e-12);
        // A class absent from truth and predictions does not count.
        assert_eq!(macro_f1(&mut [(0, 0), (2, 2)].into_iter()), 1.0);
    }

    fn reviews(differences: &[(usize, usize)]) -> Vec<PairedPrediction> {
        // Label 1 throughout; (baseline, candidate) predictions.
        differences
            .iter()
            .map(|&(baseline, candidate)| PairedPrediction {
                label: 1,
                baseline,
                candidate,
            })
            .collect()
    }

    #[test]
    fn bootstrap_of_a_constant_difference_is_that_difference() {
        let always_better = reviews(&[(0, 1); 50]);
        let interval = bootstrap_difference(&[&always_better], accuracy, 200, 7);
        assert_eq!(
            interval,
            Interval {
                low: 1.0,
                high: 1.0
            }
        );
        assert!(interval.excludes_zero());
    }

    #[test]
    fn bootstrap_of_two_reviews_spans_their_differences() {
        // Differences 0 and 1: a resample's mean is 0, 1/2 or 1 with probability 1/4, 1/2,
        // 1/4, so with 4000 resamples the 2.5 % and 97.5 % percentiles are 0 and 1.
        let two = reviews(&[(1, 1), (0, 1)]);
        let interval = bootstrap_difference(&[&two], accuracy, BOOTSTRAP_RESAMPLES, 11);
        assert_eq!(
            interval,
            Interval {
                low: 0.0,
                high: 1.0
            }
        );
        assert!(!interval.excludes_zero());
    }

    #[test]
    fn bootstrap_matches_the_normal_approximation_and_is_fixed_by_its_seed() {
        // 300 reviews: the candidate alone right on 60, the baseline alone right on 30, both
        // right on the rest. Per-review differences: +1 (60), -1 (30), 0 (210); mean 0.1,
        // variance 90/300 - 0.01 = 0.29, standard error sqrt(0.29/300) = 0.031091; normal
        // interval 0.1 ± 1.96 * 0.031091 = [0.0391, 0.1609].
        let mut pairs = vec![(0, 1); 60];
        pairs.extend([(1, 0); 30]);
        pairs.extend([(1, 1); 210]);
        let seed = reviews(&pairs);
        assert!((difference(accuracy, &mut seed.iter()) - 0.1).abs() < 1e-12);
        let interval = bootstrap_difference(&[&seed], accuracy, BOOTSTRAP_RESAMPLES, 3);
        assert!((interval.low - 0.0391).abs() < 0.006, "{interval:?}");
        assert!((interval.high - 0.1609).abs() < 0.006, "{interval:?}");
        assert_eq!(
            interval,
            bootstrap_difference(&[&seed], accuracy, BOOTSTRAP_RESAMPLES, 3)
        );
        // Two such seeds, resampled independently: the mean's standard error shrinks by
        // sqrt(2), to 0.021985; interval 0.1 ± 0.043090.
        let pooled = bootstrap_difference(&[&seed, &seed], accuracy, BOOTSTRAP_RESAMPLES, 3);
        assert!((pooled.low - 0.0569).abs() < 0.005, "{pooled:?}");
        assert!((pooled.high - 0.1431).abs() < 0.005, "{pooled:?}");
    }

    #[test]
    fn percentile_interpolates_between_ranks() {
        let sorted = [0.0, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&sorted, 0.0), 0.0);
        assert_eq!(percentile(&sorted, 0.5), 2.0);
        // position 0.975 * 4 = 3.9
        assert!((percentile(&sorted, 0.975) - 3.9).abs() < 1e-12);
    }
}
