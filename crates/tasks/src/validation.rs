//! Validation episodes held out of the training reviews, to choose checkpoints on.
//!
//! The reference picked meta-checkpoints by their test-task accuracy, which leaks the test set
//! into model selection. Validation episodes come from the *training* domains instead, from
//! reviews held out of the pool that meta-training episodes are sampled from.

use std::collections::BTreeMap;

use dataset::ReviewSet;
use rand::Rng;
use rand::seq::SliceRandom;

use crate::{Episode, TaskError};

/// Training reviews split into a meta-training pool and validation episodes.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationHoldout {
    /// Training indices left for meta-training episodes (ascending).
    pub meta_train: Vec<usize>,
    /// Validation episodes, `episodes_per_domain` per training domain, domains in name order.
    pub episodes: Vec<Episode>,
}

/// Holds `episodes_per_domain` episodes of `num_support` + `num_query` reviews out of every
/// training domain (reviews drawn at random with `rng`); the rest stay for meta-training.
///
/// Errors if a domain would keep fewer than `num_support + num_query` reviews for
/// meta-training.
pub fn hold_out_validation(
    set: &ReviewSet,
    training_indices: &[usize],
    episodes_per_domain: usize,
    num_support: usize,
    num_query: usize,
    rng: &mut impl Rng,
) -> Result<ValidationHoldout, TaskError> {
    let episode_size = num_support + num_query;
    let mut by_domain: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &index in training_indices {
        let review = set.reviews.get(index).ok_or(TaskError::IndexOutOfRange {
            index,
            len: set.reviews.len(),
        })?;
        by_domain.entry(&review.domain).or_default().push(index);
    }
    let mut meta_train = Vec::with_capacity(training_indices.len());
    let mut episodes = Vec::new();
    for (domain, mut indices) in by_domain {
        let held_out = episodes_per_domain * episode_size;
        if indices.len() < held_out + episode_size {
            return Err(TaskError::ValidationDomainTooSmall {
                domain: domain.to_string(),
                available: indices.len(),
                held_out,
                needed: episode_size,
            });
        }
        indices.sort_unstable();
        indices.shuffle(rng);
        for chunk in indices[..held_out].chunks(episode_size) {
            episodes.push(Episode {
                domain: domain.to_string(),
                support: chunk[..num_support].to_vec(),
                query: chunk[num_support..].to_vec(),
            });
        }
        meta_train.extend_from_slice(&indices[held_out..]);
    }
    meta_train.sort_unstable();
    Ok(ValidationHoldout {
        meta_train,
        episodes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataset::{LabelSet, Review};
    use rand::SeedableRng;

    /// 28 reviews of `books` and 14 of `tools`, interleaved.
    fn two_domains() -> ReviewSet {
        let reviews = (0..42)
            .map(|i| Review {
                text: format!("review {i}"),
                label: i % 2,
                domain: if i % 3 == 0 { "tools" } else { "books" }.into(),
                source_index: i,
            })
            .collect();
        ReviewSet {
            path: "reviews.json".into(),
            reviews,
            labels: LabelSet::sentiment(),
        }
    }

    #[test]
    fn validation_episodes_are_held_out_of_the_meta_training_pool() {
        let set = two_domains();
        let training: Vec<usize> = (0..set.len()).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let holdout = hold_out_validation(&set, &training, 2, 2, 1, &mut rng).unwrap();
        assert_eq!(
            holdout.episodes.len(),
            4,
            "2 episodes from each of 2 domains"
        );
        let mut held: Vec<usize> = Vec::new();
        for episode in &holdout.episodes {
            assert_eq!((episode.support.len(), episode.query.len()), (2, 1));
            for &index in episode.support.iter().chain(&episode.query) {
                assert_eq!(set.reviews[index].domain, episode.domain);
                held.push(index);
            }
        }
        assert_eq!(holdout.meta_train.len() + held.len(), set.len());
        assert!(held.iter().all(|index| !holdout.meta_train.contains(index)));
        let mut again = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        assert_eq!(
            hold_out_validation(&set, &training, 2, 2, 1, &mut again).unwrap(),
            holdout
        );
    }

    #[test]
    fn holding_out_too_much_of_a_domain_is_an_error() {
        let set = two_domains();
        let training: Vec<usize> = (0..set.len()).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let error = hold_out_validation(&set, &training, 3, 2, 2, &mut rng).unwrap_err();
        assert!(
            matches!(error, TaskError::ValidationDomainTooSmall { ref domain, .. } if domain == "tools"),
            "{error}"
        );
    }
}
