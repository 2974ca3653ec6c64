//! Padding encoded reviews into rectangular batches, and choosing which reviews share a batch.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

/// A tokenised review: what a model needs of it, plus its label and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodedReview {
    /// Wordpiece ids, `[CLS] ... [SEP]`, at most `max_seq_len` long, unpadded.
    pub ids: Vec<u32>,
    /// Token type (segment) ids, as long as `ids`.
    pub type_ids: Vec<u32>,
    /// The label id.
    pub label: usize,
    /// The review's index in its source file (and in [`dataset::ReviewSet::reviews`]).
    pub source_index: usize,
}

impl EncodedReview {
    /// Number of real (unpadded) tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True for an encoding without tokens (never produced by [`crate::TextEncoder`]).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// How far a batch is padded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Padding {
    /// To the longest sequence of the batch (our default: less padding, same results).
    #[default]
    Longest,
    /// To `max_seq_len`, as the reference did (for like-for-like comparisons).
    Max,
}

impl FromStr for Padding {
    type Err = String;

    /// `longest` or `max`.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "longest" => Ok(Self::Longest),
            "max" => Ok(Self::Max),
            other => Err(format!(
                "unknown padding {other:?}: use \"longest\" or \"max\""
            )),
        }
    }
}

impl fmt::Display for Padding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Longest => "longest",
            Self::Max => "max",
        })
    }
}

/// A padded batch, ready to become tensors: the three id matrices are row-major
/// `[batch_size, seq_len]`; padding positions have id `pad_id`, mask 0 and type 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Wordpiece ids.
    pub input_ids: Vec<i64>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<i64>,
    /// Segment ids.
    pub token_type_ids: Vec<i64>,
    /// Label id of each row.
    pub labels: Vec<usize>,
    /// Real (unpadded) length of each row.
    pub lengths: Vec<usize>,
    /// Source-file index of each row's review.
    pub source_indices: Vec<usize>,
    /// Rows.
    pub batch_size: usize,
    /// Columns (padded length).
    pub seq_len: usize,
}

impl Batch {
    /// Tokens that are not padding.
    pub fn real_tokens(&self) -> usize {
        self.lengths.iter().sum()
    }

    /// All positions including padding (what the model computes on).
    pub fn padded_tokens(&self) -> usize {
        self.batch_size * self.seq_len
    }
}

/// Pads `items` into one [`Batch`], in the order given.
///
/// # Panics
/// If an item is longer than `max_seq_len` or its `type_ids` differ in length from its `ids`:
/// [`crate::TextEncoder`] never produces such items, so either is a bug in the caller.
pub fn collate(
    items: &[&EncodedReview],
    padding: Padding,
    max_seq_len: usize,
    pad_id: u32,
) -> Batch {
    for item in items {
        assert!(
            item.len() <= max_seq_len && item.type_ids.len() == item.len(),
            "review {} has {} ids and {} type ids; collate needs equal lengths of at most {max_seq_len}",
            item.source_index,
            item.ids.len(),
            item.type_ids.len(),
        );
    }
    let seq_len = match padding {
        Padding::Longest => items.iter().map(|item| item.len()).max().unwrap_or(0),
        Padding::Max => max_seq_len,
    };
    let cells = items.len() * seq_len;
    let mut batch = Batch {
        input_ids: Vec::with_capacity(cells),
        attention_mask: Vec::with_capacity(cells),
        token_type_ids: Vec::with_capacity(cells),
        labels: Vec::with_capacity(items.len()),
        lengths: Vec::with_capacity(items.len()),
        source_indices: Vec::with_capacity(items.len()),
        batch_size: items.len(),
        seq_len,
    };
    for item in items {
        let pad = seq_len - item.len();
        let widen = |&id: &u32| i64::from(id);
        batch.input_ids.extend(item.ids.iter().map(widen));
        batch
            .input_ids
            .extend(std::iter::repeat_n(i64::from(pad_id), pad));
        batch
            .attention_mask
            .extend(std::iter::repeat_n(1, item.len()));
        batch.attention_mask.extend(std::iter::repeat_n(0, pad));
        batch.token_type_ids.extend(item.type_ids.iter().map(widen));
        batch.token_type_ids.extend(std::iter::repeat_n(0, pad));
        batch.labels.push(item.label);
        batch.lengths.push(item.len());
        batch.source_indices.push(item.source_index);
    }
    batch
}

/// How [`plan_batches`] groups reviews into batches.
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

/// Splits `items` into batches of `batch_size` (the last may be smaller), returned as
/// positions into `items`; every position appears exactly once.
///
/// # Panics
/// If `batch_size` is 0 (callers validate their batch-size flags).
pub fn plan_batches<R: Rng + ?Sized>(
    items: &[&EncodedReview],
    batch_size: usize,
    order: BatchOrder,
    rng: &mut R,
) -> Vec<Vec<usize>> {
    assert!(batch_size > 0, "batch size must be at least 1");
    let mut positions: Vec<usize> = (0..items.len()).collect();
    positions.shuffle(rng);
    if order == BatchOrder::LengthBucketed {
        // Stable, so equal lengths keep the shuffled order.
        positions.sort_by_key(|&position| items[position].len());
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

    fn review(len: usize, source_index: usize) -> EncodedReview {
        EncodedReview {
            ids: (1..=len as u32).collect(),
            type_ids: vec![0; len],
            label: source_index % 2,
            source_index,
        }
    }

    #[test]
    fn collate_pads_to_longest_with_masks() {
        let (a, b) = (review(3, 7), review(1, 9));
        let batch = collate(&[&a, &b], Padding::Longest, 8, 0);
        assert_eq!((batch.batch_size, batch.seq_len), (2, 3));
        assert_eq!(batch.input_ids, [1, 2, 3, 1, 0, 0]);
        assert_eq!(batch.attention_mask, [1, 1, 1, 1, 0, 0]);
        assert_eq!(batch.token_type_ids, [0; 6]);
        assert_eq!(batch.labels, [1, 1]);
        assert_eq!(batch.lengths, [3, 1]);
        assert_eq!(batch.source_indices, [7, 9]);
        assert_eq!((batch.real_tokens(), batch.padded_tokens()), (4, 6));
    }

    #[test]
    fn collate_max_pads_to_max_seq_len_with_pad_id() {
        let a = review(2, 0);
        let batch = collate(&[&a], Padding::Max, 4, 5);
        assert_eq!(batch.input_ids, [1, 2, 5, 5]);
        assert_eq!(batch.attention_mask, [1, 1, 0, 0]);
    }

    #[test]
    fn collate_of_nothing_is_an_empty_batch() {
        let batch = collate(&[], Padding::Longest, 4, 0);
        assert_eq!((batch.batch_size, batch.seq_len), (0, 0));
        assert!(batch.input_ids.is_empty());
    }

    fn covers_every_position_once(batches: &[Vec<usize>], n: usize) {
        let mut all: Vec<usize> = batches.concat();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn shuffled_batches_cover_every_item_once() {
        let reviews: Vec<EncodedReview> = (0..10).map(|i| review(i % 4 + 1, i)).collect();
        let items: Vec<&EncodedReview> = reviews.iter().collect();
        let batches = plan_batches(
            &items,
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
        let reviews: Vec<EncodedReview> = (0..12).map(|i| review(i * 7 % 12 + 1, i)).collect();
        let items: Vec<&EncodedReview> = reviews.iter().collect();
        let batches = plan_batches(
            &items,
            4,
            BatchOrder::LengthBucketed,
            &mut ChaCha8Rng::seed_from_u64(2),
        );
        covers_every_position_once(&batches, 12);
        let mut length_ranges: Vec<(usize, usize)> = batches
            .iter()
            .map(|batch| {
                let lengths = batch.iter().map(|&p| items[p].len());
                (lengths.clone().min().unwrap(), lengths.max().unwrap())
            })
            .collect();
        length_ranges.sort_unstable();
        assert_eq!(length_ranges, [(1, 4), (5, 8), (9, 12)]);
    }

    #[test]
    fn same_rng_seed_gives_same_plan() {
        let reviews: Vec<EncodedReview> = (0..20).map(|i| review(i % 5 + 1, i)).collect();
        let items: Vec<&EncodedReview> = reviews.iter().collect();
        for order in [BatchOrder::Shuffled, BatchOrder::LengthBucketed] {
            let plan = |seed| plan_batches(&items, 4, order, &mut ChaCha8Rng::seed_from_u64(seed));
            assert_eq!(plan(3), plan(3));
            assert_ne!(plan(3), plan(4));
        }
    }

    #[test]
    fn option_names_round_trip() {
        for padding in [Padding::Longest, Padding::Max] {
            assert_eq!(padding.to_string().parse::<Padding>(), Ok(padding));
        }
        for order in [BatchOrder::Shuffled, BatchOrder::LengthBucketed] {
            assert_eq!(order.to_string().parse::<BatchOrder>(), Ok(order));
        }
        assert!("wide".parse::<Padding>().is_err());
    }
}
