//! Which examples share a batch, and in which order batches come.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

/// How [`plan_batches`] groups examples into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BatchOrder {
    /// The reference: shuffle, then cut into consecutive batches.
    Shuffled,
    /// Sort by length (ties in random order), cut into batches, shuffle the order of the batches:
    /// reviews of similar length share a batch, so padding to the longest wastes little.
    LengthBucketed,
}

impl FromStr for BatchOrder {
    type Err = String;

    /// `shuffled` or `length-bucketed`.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "shuffled" => Ok(Self::Shuffled),
            "length-bucketed" => Ok(Self::LengthBucketed),
            other => Err(format!(
                "unknown batch order {other:?}: use \"shuffled\" or \"length-bucketed\""
            )),
        }
    }
}

impl fmt::Display for BatchOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Shuffled => "shuffled",
            Self::LengthBucketed => "length-bucketed",
        })
    }
}

/// Splits examples whose [`crate::Classifier::length`]s are `lengths` into batches of
/// `batch_size` (the last may be smaller), returned as positions into `lengths`; every position
/// appears exactly once.
///
/// # Panics
/// If `batch_size` is 0 (callers validate their batch-size flags).
pub fn plan_batches<R: Rng + ?Sized>(
    lengths: &[usize],
    batch_size: usize,
    order: BatchOrder,
    rng: &mut R,
) -> Vec<Vec<usize>> {
    assert!(batch_size > 0, "batch size must be at least 1");
    let mut positions: Vec<usize> = (0..lengths.len()).collect();
    positions.shuffle(rng);
    if order == BatchOrder::LengthBucketed {
        // Stable, so equal lengths keep the shuffled order.
        positions.sort_by_key(|&position| lengths[position]);
    }
    let mut batches: Vec<Vec<usize>> = positions
        .chunks(batch_size)
        .map(<[usize]>::to_vec)
        .collect();
    if order == BatchOrder::LengthBucketed {
        batches.shuffle(rng);
    }
    batches
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn covers_every_position_once(batches: &[Vec<usize>], n: usize) {
        let mut all: Vec<usize> = batches.concat();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn shuffled_batches_cover_every_item_once() {
        let lengths: Vec<usize> = (0..10).map(|i| i % 4 + 1).collect();
        let batches = plan_batches(
            &lengths,
            3,
            BatchOrder::Shuffled,
            &mut ChaCha8Rng::seed_from_u64(1),
        );
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            [3, 3, 3, 1]
        );
        covers_every_position_once(&batches, 10);
    }

    #[test]
    fn length_bucketed_batches_group_similar_lengths() {
        let lengths: Vec<usize> = (0..12).map(|i| i * 7 % 12 + 1).collect();
        let batches = plan_batches(
            &lengths,
            4,
            BatchOrder::LengthBucketed,
            &mut ChaCha8Rng::seed_from_u64(2),
        );
        covers_every_position_once(&batches, 12);
        let mut length_ranges: Vec<(usize, usize)> = batches
            .iter()
            .map(|batch| {
                let lengths = batch.iter().map(|&p| lengths[p]);
                (lengths.clone().min().unwrap(), lengths.max().unwrap())
            })
            .collect();
        length_ranges.sort_unstable();
        assert_eq!(length_ranges, [(1, 4), (5, 8), (9, 12)]);
    }

    #[test]
    fn same_rng_seed_gives_same_plan() {
        let lengths: Vec<usize> = (0..20).map(|i| i % 5 + 1).collect();
        for order in [BatchOrder::Shuffled, BatchOrder::LengthBucketed] {
            let plan =
                |seed| plan_batches(&lengths, 4, order, &mut ChaCha8Rng::seed_from_u64(seed));
            assert_eq!(plan(3), plan(3));
            assert_ne!(plan(3), plan(4));
        }
    }

    #[test]
    fn order_names_round_trip() {
        for order in [BatchOrder::Shuffled, BatchOrder::LengthBucketed] {
            assert_eq!(order.to_string().parse::<BatchOrder>(), Ok(order));
        }
        assert!("sorted".parse::<BatchOrder>().is_err());
    }
}
