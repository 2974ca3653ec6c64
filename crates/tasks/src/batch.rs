//! Padding encoded reviews into rectangular batches.

use std::fmt;
use std::num::NonZeroUsize;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::DEFAULT_MAX_SEQ_LEN;

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

/// The multiple [`Padding::Buckets`] rounds to unless told otherwise: at the reference's 256
/// tokens a run sees four lengths.
pub const DEFAULT_BUCKET: NonZeroUsize = NonZeroUsize::new(64).expect("64 is not zero");

/// How far a batch is padded.
///
/// Serialised as its `Display` form (`longest`, `max`, `buckets:64`), the form users type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Padding {
    /// To the longest sequence of the batch (our default on the CPU: less padding, same
    /// results).
    #[default]
    Longest,
    /// To `max_seq_len`, as the reference did (for like-for-like comparisons).
    Max,
    /// To the longest sequence of the batch rounded up to a multiple of this, at most
    /// `max_seq_len`: batches take at most `max_seq_len / multiple` (rounded up) lengths. For
    /// backends that compile and autotune kernels for every new tensor shape (cubecl's wgpu and
    /// CUDA), where a few shapes with some padding beat many shapes with none.
    Buckets(NonZeroUsize),
}

impl Padding {
    /// The padded length of a batch whose longest sequence is `longest` tokens
    /// (`longest <= max_seq_len`).
    pub fn seq_len(self, longest: usize, max_seq_len: usize) -> usize {
        match self {
            Self::Longest => longest,
            Self::Max => max_seq_len,
            Self::Buckets(multiple) => longest.next_multiple_of(multiple.get()).min(max_seq_len),
        }
    }
}

impl FromStr for Padding {
    type Err = String;

    /// `longest`, `max`, `buckets` (multiples of [`DEFAULT_BUCKET`]) or `buckets:N`.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "longest" => Ok(Self::Longest),
            "max" => Ok(Self::Max),
            "buckets" => Ok(Self::Buckets(DEFAULT_BUCKET)),
            other => {
                match other.strip_prefix("buckets:") {
                    Some(multiple) => multiple.parse::<NonZeroUsize>().map(Self::Buckets).map_err(
                        |_| {
                            format!(
                                "padding {other:?}: the bucket multiple must be a positive whole \
                             number (e.g. buckets:64)"
                            )
                        },
                    ),
                    None => Err(format!(
                        "unknown padding {other:?}: use \"longest\", \"max\", \"buckets\" or \
                     \"buckets:N\""
                    )),
                }
            }
        }
    }
}

impl fmt::Display for Padding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Longest => f.write_str("longest"),
            Self::Max => f.write_str("max"),
            Self::Buckets(multiple) => write!(f, "buckets:{multiple}"),
        }
    }
}

impl From<Padding> for String {
    fn from(padding: Padding) -> Self {
        padding.to_string()
    }
}

impl TryFrom<String> for Padding {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

/// How encoded reviews are collated: what a text model needs besides which reviews share a
/// batch. Serialised with the experiment's settings (`padding`, `max_seq_len`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collation {
    /// Pad each batch to its longest review (rounded up to a bucket), or every review to
    /// `max_seq_len`.
    pub padding: Padding,
    /// The length [`Padding::Max`] pads to, and the longest review a batch may hold (reviews are
    /// already truncated to it by the encoder).
    pub max_seq_len: usize,
}

impl Default for Collation {
    /// The reference's: each batch padded to its longest review, at most 256 tokens.
    fn default() -> Self {
        Self {
            padding: Padding::Longest,
            max_seq_len: DEFAULT_MAX_SEQ_LEN,
        }
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
    let longest = items.iter().map(|item| item.len()).max().unwrap_or(0);
    let seq_len = padding.seq_len(longest, max_seq_len);
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

#[cfg(test)]
mod tests {
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

    #[test]
    fn option_names_round_trip() {
        let buckets_of_32 = Padding::Buckets(NonZeroUsize::new(32).unwrap());
        for padding in [Padding::Longest, Padding::Max, buckets_of_32] {
            assert_eq!(padding.to_string().parse::<Padding>(), Ok(padding));
            let json = serde_json::to_string(&padding).unwrap();
            assert_eq!(json, format!("\"{padding}\""));
            assert_eq!(serde_json::from_str::<Padding>(&json).unwrap(), padding);
        }
        assert_eq!(buckets_of_32.to_string(), "buckets:32");
        assert_eq!(
            "buckets".parse::<Padding>(),
            Ok(Padding::Buckets(NonZeroUsize::new(64).unwrap()))
        );
        for bad in ["wide", "buckets:0", "buckets:", "buckets:-4", "buckets:x"] {
            assert!(bad.parse::<Padding>().is_err(), "{bad}");
        }
    }

    #[test]
    fn buckets_round_the_longest_review_up_to_a_multiple() {
        let buckets = Padding::Buckets(NonZeroUsize::new(64).unwrap());
        let lengths: Vec<usize> = [1, 63, 64, 65, 128, 129, 200]
            .iter()
            .map(|&longest| buckets.seq_len(longest, 256))
            .collect();
        assert_eq!(lengths, [64, 64, 64, 128, 128, 192, 256]);
    }

    #[test]
    fn buckets_stop_at_max_seq_len() {
        let buckets = Padding::Buckets(NonZeroUsize::new(64).unwrap());
        assert_eq!(buckets.seq_len(129, 150), 150);
        assert_eq!(buckets.seq_len(150, 150), 150);
        assert_eq!(buckets.seq_len(40, 50), 50);
    }

    #[test]
    fn collate_pads_to_the_bucket_of_the_longest_review() {
        let (a, b) = (review(5, 0), review(2, 1));
        let batch = collate(
            &[&a, &b],
            Padding::Buckets(NonZeroUsize::new(4).unwrap()),
            16,
            0,
        );
        assert_eq!((batch.batch_size, batch.seq_len), (2, 8));
        assert_eq!(batch.attention_mask[..8], [1, 1, 1, 1, 1, 0, 0, 0]);
        assert_eq!(batch.attention_mask[8..], [1, 1, 0, 0, 0, 0, 0, 0]);
    }
}
