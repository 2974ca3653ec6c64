//! Which positions of a `[batch, seq_len]` input the encoder computes, and the grids attention
//! runs on.
//!
//! Padding is masked out of attention, so a padded position never reaches a real one: every
//! layer but attention's scores can run on the real tokens alone, as `[rows, width]`. The scores
//! need a `[sequences, positions]` grid, in which every sequence pays for the longest one; so
//! the batch's sequences are cut into contiguous groups, each attending on its own grid as long
//! as its own longest sequence.

use burn::tensor::{Device, Int, Tensor, TensorData};

/// What a group costs besides its score elements (sequences × length²), in score elements: about
/// one 64-token sequence's scores, for the dozen extra operations each group adds per layer.
const GROUP_OVERHEAD: usize = 64 * 64;

/// The positions that carry a token, built on the host from the attention mask when the input is
/// made, so that skipping padding costs no read-back.
#[derive(Debug, Clone)]
pub(crate) struct Packing {
    /// Positions (`sequence * seq_len + position`) computed: every attended one and each
    /// sequence's first, which the pooler reads whether attended or not.
    kept: Tensor<1, Int>,
    /// Each sequence's first position, as a row of `kept`.
    firsts: Tensor<1, Int>,
    groups: Vec<AttentionGroup>,
}

/// Contiguous sequences whose scores share one grid.
#[derive(Debug, Clone)]
struct AttentionGroup {
    sequences: usize,
    seq_len: usize,
    /// For each grid slot, its kept row, or the number of kept rows (the zero row appended
    /// after them) where none is kept.
    slot_rows: Tensor<1, Int>,
    /// For each of the group's kept rows, in order, its grid slot.
    row_slots: Tensor<1, Int>,
    /// `[sequences, 1, 1, seq_len]`: 0 where attended, −∞ elsewhere.
    mask: Tensor<4>,
}

impl Packing {
    /// `None` when every position is kept.
    pub(crate) fn from_mask(
        attention_mask: &[i64],
        [batch, seq_len]: [usize; 2],
        device: &Device,
    ) -> Option<Self> {
        let keeps = |sequence: usize, position: usize| {
            position == 0 || attention_mask[sequence * seq_len + position] != 0
        };
        let kept: Vec<i64> = (0..batch * seq_len)
            .filter(|&at| keeps(at / seq_len, at % seq_len))
            .map(|at| at as i64)
            .collect();
        if kept.len() == attention_mask.len() || seq_len == 0 {
            return None;
        }
        let zero_row = kept.len() as i64;
        let lengths: Vec<usize> = (0..batch)
            .map(|sequence| {
                (0..seq_len)
                    .rev()
                    .find(|&p| keeps(sequence, p))
                    .map_or(1, |p| p + 1)
            })
            .collect();
        let mut firsts = Vec::with_capacity(batch);
        let mut groups = Vec::new();
        let mut next_row = 0;
        for sequences in contiguous_groups(&lengths) {
            let group_len = sequences.clone().map(|s| lengths[s]).max().unwrap_or(1);
            let mut slot_rows = Vec::with_capacity(sequences.len() * group_len);
            let mut row_slots = Vec::new();
            let mut mask = Vec::with_capacity(sequences.len() * group_len);
            for (local, sequence) in sequences.clone().enumerate() {
                firsts.push(next_row);
                for position in 0..group_len {
                    let slot = local * group_len + position;
                    if keeps(sequence, position) {
                        slot_rows.push(next_row);
                        row_slots.push(slot as i64);
                        next_row += 1;
                    } else {
                        slot_rows.push(zero_row);
                    }
                    let attended = attention_mask[sequence * seq_len + position] != 0;
                    mask.push(if attended { 0.0f32 } else { f32::NEG_INFINITY });
                }
            }
            let count = sequences.len();
            groups.push(AttentionGroup {
                sequences: count,
                seq_len: group_len,
                slot_rows: int_tensor(slot_rows, device),
                row_slots: int_tensor(row_slots, device),
                mask: Tensor::from_data(TensorData::new(mask, [count, 1, 1, group_len]), device),
            });
        }
        Some(Self {
            kept: int_tensor(kept, device),
            firsts: int_tensor(firsts, device),
            groups,
        })
    }

    #[cfg(test)]
    pub(crate) fn group_count(&self) -> usize {
        self.groups.len()
    }
}

fn int_tensor(values: Vec<i64>, device: &Device) -> Tensor<1, Int> {
    let len = values.len();
    Tensor::from_data(TensorData::new(values, [len]), device)
}

/// Cuts sequences of these lengths into contiguous groups of least total cost (score elements
/// plus [`GROUP_OVERHEAD`] per group), by dynamic programming over the cut points.
fn contiguous_groups(lengths: &[usize]) -> Vec<std::ops::Range<usize>> {
    let count = lengths.len();
    // best[end] = (cost of the best cut of sequences 0..end, start of its last group).
    let mut best = vec![(0usize, 0usize); count + 1];
    for end in 1..=count {
        let mut longest = 0;
        best[end] = (usize::MAX, 0);
        for start in (0..end).rev() {
            longest = longest.max(lengths[start]);
            let cost = best[start].0 + (end - start) * longest * longest + GROUP_OVERHEAD;
            if cost < best[end].0 {
                best[end] = (cost, start);
            }
        }
    }
    let mut groups = Vec::new();
    let mut end = count;
    while end > 0 {
        let start = best[end].1;
        groups.push(start..end);
        end = start;
    }
    groups.reverse();
    groups
}

/// The rows a forward pass computes, `[rows, width]`, and how attention sees them.
pub(crate) enum Grid<'a> {
    /// Every position, row-major; attention on the whole `[batch, seq_len]` grid with `mask`
    /// (`[batch, 1, 1, seq_len]`, 0 where attended, −∞ at padding).
    Full {
        batch: usize,
        seq_len: usize,
        mask: Box<Tensor<4>>,
    },
    /// Only the positions the packing keeps; attention per group.
    Packed(&'a Packing),
}

impl Grid<'_> {
    /// Every position of `attention_mask`'s grid.
    pub(crate) fn full(attention_mask: &Tensor<2, Int>) -> Self {
        let [batch, seq_len] = attention_mask.dims();
        // Built once per forward and shared by every layer. transformers adds f32::MIN instead;
        // both give padding exactly zero weight, but exp() of a huge finite negative takes
        // libm's slow underflow path (about 4 % of a CPU training step) where exp(-inf) returns
        // at once. No row is all -inf: [CLS] is always attended.
        let padding = attention_mask.clone().equal_elem(0);
        let mask = Tensor::<2>::zeros([batch, seq_len], &attention_mask.device())
            .mask_fill(padding, f32::NEG_INFINITY)
            .reshape([batch, 1, 1, seq_len]);
        Self::Full {
            batch,
            seq_len,
            mask: Box::new(mask),
        }
    }

    /// `[batch, seq_len, width]` → the rows computed.
    pub(crate) fn to_rows(&self, grid: Tensor<3>) -> Tensor<2> {
        let [batch, seq_len, width] = grid.dims();
        let rows = grid.reshape([batch * seq_len, width]);
        match self {
            Self::Full { .. } => rows,
            Self::Packed(packing) => rows.select(0, packing.kept.clone()),
        }
    }

    /// `[batch, width]`: each sequence's first position.
    pub(crate) fn first_tokens(&self, rows: Tensor<2>) -> Tensor<2> {
        match self {
            Self::Full { batch, seq_len, .. } => {
                let [_, width] = rows.dims();
                rows.reshape([*batch, *seq_len, width])
                    .slice([0..*batch, 0..1])
                    .reshape([*batch, width])
            }
            Self::Packed(packing) => rows.select(0, packing.firsts.clone()),
        }
    }

    /// Attention over the rows: `attend` takes queries, keys and values as
    /// `[sequences, positions, width]` grids and their mask, and returns the context as a grid
    /// of the same shape.
    pub(crate) fn attend(
        &self,
        query_key_value: [Tensor<2>; 3],
        attend: impl Fn([Tensor<3>; 3], Tensor<4>) -> Tensor<3>,
    ) -> Tensor<2> {
        match self {
            Self::Full {
                batch,
                seq_len,
                mask,
            } => {
                let [_, width] = query_key_value[0].dims();
                let grid = |rows: Tensor<2>| rows.reshape([*batch, *seq_len, width]);
                attend(query_key_value.map(grid), mask.as_ref().clone())
                    .reshape([batch * seq_len, width])
            }
            Self::Packed(packing) => {
                // One zero row after the kept ones, for the grid slots that hold no token.
                let with_zero_row = query_key_value.map(|rows| {
                    let [_, width] = rows.dims();
                    let zero = Tensor::zeros([1, width], &rows.device());
                    Tensor::cat(vec![rows, zero], 0)
                });
                let mut contexts: Vec<Tensor<2>> = packing
                    .groups
                    .iter()
                    .map(|group| {
                        let grids = with_zero_row.each_ref().map(|rows| group.grid(rows));
                        group.rows(attend(grids, group.mask.clone()))
                    })
                    .collect();
                match contexts.len() {
                    1 => contexts.pop().expect("one group"),
                    _ => Tensor::cat(contexts, 0),
                }
            }
        }
    }
}

impl AttentionGroup {
    /// The group's `[sequences, seq_len, width]` grid from the kept rows followed by a zero row:
    /// zeros where nothing is kept (attention masks them as keys and drops them as queries).
    fn grid(&self, rows_and_zero_row: &Tensor<2>) -> Tensor<3> {
        let [_, width] = rows_and_zero_row.dims();
        rows_and_zero_row
            .clone()
            .select(0, self.slot_rows.clone())
            .reshape([self.sequences, self.seq_len, width])
    }

    /// The group's rows of a `[sequences, seq_len, width]` grid.
    fn rows(&self, grid: Tensor<3>) -> Tensor<2> {
        let [_, _, width] = grid.dims();
        grid.reshape([self.sequences * self.seq_len, width])
            .select(0, self.row_slots.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_long_sequence_gets_a_grid_of_its_own() {
        // One grid: 4 × 100² = 40,000 score elements; the long one alone: 10,000 + 3 × 3²,
        // plus one more group's overhead (4,096).
        assert_eq!(contiguous_groups(&[100, 3, 3, 3]), [0..1, 1..4]);
    }

    #[test]
    fn similar_lengths_share_a_grid() {
        // Cutting 30 | 20 would save 2 × 30² − (30² + 20²) = 500 elements, less than a group.
        assert_eq!(contiguous_groups(&[30, 20]), vec![0..2]);
        assert_eq!(contiguous_groups(&[7]), vec![0..1]);
        assert!(contiguous_groups(&[]).is_empty());
    }

    #[test]
    fn kept_rows_and_slots_follow_the_mask() {
        let device = Device::flex();
        // Sequence 0: 2 tokens of 3; sequence 1: first position masked, then 1 token.
        let packing = Packing::from_mask(&[1, 1, 0, 0, 1, 0], [2, 3], &device).unwrap();
        let ints = |tensor: &Tensor<1, Int>| -> Vec<i64> {
            tensor
                .clone()
                .into_data()
                .convert::<i64>()
                .try_into_vec()
                .unwrap()
        };
        assert_eq!(ints(&packing.kept), [0, 1, 3, 4]);
        assert_eq!(ints(&packing.firsts), [0, 2]);
        let [group] = packing.groups.as_slice() else {
            panic!("two short sequences share a grid");
        };
        assert_eq!((group.sequences, group.seq_len), (2, 2));
        assert_eq!(ints(&group.slot_rows), [0, 1, 2, 3]);
        assert_eq!(ints(&group.row_slots), [0, 1, 2, 3]);
        let mask: Vec<f32> = group.mask.clone().into_data().try_into_vec().unwrap();
        assert_eq!(mask, [0.0, 0.0, f32::NEG_INFINITY, 0.0]);
        assert!(Packing::from_mask(&[1, 1, 1, 1], [2, 2], &device).is_none());
    }
}
