//! Attention's probabilities, `dropout(softmax(scores · scale + mask))`, as one operation.
//!
//! As tensor operations, Burn's autodiff records five for the softmax (max, subtract, exp, sum,
//! divide) and one each for the scale, the mask and dropout, and keeps several
//! `[sequences, heads, queries, keys]` tensors — the largest of a training step — alive until
//! the backward pass. Here the forward pass is one sweep per row, the backward pass another
//! (`∂scores = scale · p ⊙ (g − Σ g ⊙ p)` for the probabilities `p` and their gradient `g`),
//! and only `p` is kept: the dropout mask is a pure function of its key and the element's
//! index, so the backward pass draws it again.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::nn::Dropout;
use burn::tensor::Tensor;
use burn::tensor::activation::softmax;
use rayon::prelude::*;

use super::simd::{self, multiversion};
use super::{
    Unwrapped, contiguous_f32, exp_non_positive, into_unique_contiguous, lane_max, lane_sum,
    record, unwrap, update_chunks,
};
use crate::dropout::{self, DropoutMask};

/// Rows per parallel work item.
const ROWS_PER_TASK: usize = 64;

/// `dropout(softmax(scores · scale + mask, 3))` for `[sequences, heads, queries, keys]` scores
/// and a `[sequences, 1, 1, keys]` additive mask (0 or −∞), dropout drawn as
/// [`dropout::apply`] draws it.
pub(crate) fn probabilities(
    scores: Tensor<4>,
    mask: Tensor<4>,
    scale: f64,
    dropout: &Dropout,
) -> Tensor<4> {
    let device = scores.device();
    match (unwrap(scores), unwrap(mask)) {
        (Unwrapped::Tracked(scores), Unwrapped::Tracked(mask)) => {
            let dropout_mask =
                dropout::is_active(dropout, &device).then(|| DropoutMask::draw(dropout.prob));
            let (scores, node) = scores.into_parts();
            let probs = softmax_forward(scores, mask.primitive(), scale as f32);
            let output = match dropout_mask {
                Some(dropout_mask) => {
                    let level = simd::active();
                    update_chunks(probs.clone(), |first, probs| {
                        dropout_mask.scale(level, probs, first);
                    })
                }
                None => probs.clone(),
            };
            let state = Saved {
                probs,
                scale: scale as f32,
                dropout_mask,
            };
            Tensor::from_primitive::<Autodiff<Flex>>(record(
                ProbabilitiesBackward,
                [node],
                state,
                output,
            ))
        }
        // No autodiff: dropout is off, as `dropout::apply` would leave it.
        (Unwrapped::Plain(scores), Unwrapped::Plain(mask)) => {
            Tensor::from_primitive::<Flex>(softmax_forward(scores, &mask, scale as f32))
        }
        (scores, mask) => composed(scores.into_tensor(), mask.into_tensor(), scale, dropout),
    }
}

/// The same function as tensor operations, for every other backend.
fn composed(scores: Tensor<4>, mask: Tensor<4>, scale: f64, dropout: &Dropout) -> Tensor<4> {
    dropout::apply(dropout, softmax(scores * scale + mask, 3))
}

#[derive(Debug)]
struct ProbabilitiesBackward;

/// What the backward pass needs: the probabilities before dropout, and how they were dropped.
#[derive(Debug, Clone)]
struct Saved {
    probs: FlexTensor,
    scale: f32,
    dropout_mask: Option<DropoutMask>,
}

impl Backward<Flex, 1> for ProbabilitiesBackward {
    type State = Saved;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let Saved {
            probs,
            scale,
            dropout_mask,
        } = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            softmax_backward(grad, &probs, scale, dropout_mask)
        });
    }
}

/// `softmax(scores · scale + mask)` along the last axis, in the scores' own buffer when no one
/// else holds it.
fn softmax_forward(scores: FlexTensor, mask: &FlexTensor, scale: f32) -> FlexTensor {
    let dims = scores.layout().shape().to_vec();
    let [sequences, heads, queries, keys] = dims[..] else {
        panic!("attention scores must be [sequences, heads, queries, keys], got {dims:?}");
    };
    let mask = contiguous_f32(mask);
    assert_eq!(
        mask.len(),
        sequences * keys,
        "the attention mask must be [sequences, 1, 1, keys]"
    );
    let mut probs = into_unique_contiguous(scores);
    if keys > 0 {
        let level = simd::active();
        let rows_per_sequence = heads * queries;
        probs
            .try_storage_mut::<f32>()
            .expect("a unique buffer")
            .par_chunks_mut(ROWS_PER_TASK * keys)
            .enumerate()
            .for_each(|(task, rows)| {
                let first_row = task * ROWS_PER_TASK;
                softmax_rows(
                    level,
                    rows,
                    keys,
                    first_row,
                    rows_per_sequence,
                    &mask,
                    scale,
                );
            });
    }
    probs
}

multiversion! {
    /// The softmax of consecutive rows of `keys` scores, the first being row `first_row` of
    /// the tensor, with `masks` holding one mask of `keys` values per `rows_per_sequence` rows.
    fn softmax_rows<A>(
        rows: &mut [f32],
        keys: usize,
        first_row: usize,
        rows_per_sequence: usize,
        masks: &[f32],
        scale: f32,
    ) {
        for (offset, row) in rows.chunks_mut(keys).enumerate() {
            let sequence = (first_row + offset) / rows_per_sequence;
            let mask = &masks[sequence * keys..][..keys];
            for (value, &masked) in row.iter_mut().zip(mask) {
                *value = A::mul_add(*value, scale, masked);
            }
            let max = lane_max(row);
            for value in row.iter_mut() {
                *value = exp_non_positive::<A>(*value - max);
            }
            let sum = lane_sum(row, row, |value, _| value);
            for value in row.iter_mut() {
                *value /= sum;
            }
        }
    }
}

/// The gradient of the scores from that of the (dropped) probabilities, in the gradient's
/// buffer when no one else holds it.
fn softmax_backward(
    grad: FlexTensor,
    probs: &FlexTensor,
    scale: f32,
    dropout_mask: Option<DropoutMask>,
) -> FlexTensor {
    let keys = *probs.layout().shape().last().expect("rank-4 probabilities");
    let probs = contiguous_f32(probs);
    let mut grad = into_unique_contiguous(grad);
    if keys > 0 {
        let level = simd::active();
        grad.try_storage_mut::<f32>()
            .expect("a unique buffer")
            .par_chunks_mut(ROWS_PER_TASK * keys)
            .zip(probs.par_chunks(ROWS_PER_TASK * keys))
            .enumerate()
            .for_each(|(task, (grads, probs))| {
                if let Some(dropout_mask) = dropout_mask {
                    dropout_mask.scale(level, grads, task * ROWS_PER_TASK * keys);
                }
                softmax_rows_backward(level, grads, probs, keys, scale);
            });
    }
    grad
}

multiversion! {
    /// The scores' gradient from the probabilities' one, `grads`, row by row of `keys`.
    fn softmax_rows_backward<A>(grads: &mut [f32], probs: &[f32], keys: usize, scale: f32) {
        for (grad, probs) in grads.chunks_mut(keys).zip(probs.chunks(keys)) {
            let dot = lane_sum(grad, probs, |grad, prob| grad * prob);
            for (grad, &prob) in grad.iter_mut().zip(probs) {
                *grad = scale * prob * (*grad - dot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::DropoutConfig;
    use burn::tensor::{Device, Int, TensorData};

    use super::*;
    use crate::dropout::seed_dropout;
    use crate::fused::simd::SimdLevel;
    use crate::fused::{wide, widen};

    const SHAPE: [usize; 4] = [2, 3, 5, 7];
    const SCALE: f64 = 0.4;

    /// Scores spread over about ±6, and a mask that lets the first sequence attend to all seven
    /// keys and the second to its first four.
    fn scores_and_mask(device: &Device) -> (Tensor<4>, Tensor<4>) {
        let count = SHAPE.iter().product::<usize>();
        let scores: Vec<f32> = (0..count)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 8.0)
            .collect();
        let mask: Vec<f32> = (0..2 * 7)
            .map(|i| {
                if i >= 7 && i % 7 >= 4 {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        (
            Tensor::from_data(TensorData::new(scores, SHAPE), device),
            Tensor::from_data(TensorData::new(mask, [2, 1, 1, 7]), device),
        )
    }

    #[test]
    fn probabilities_are_those_of_the_tensor_operations() {
        let device = Device::flex();
        let dropout = DropoutConfig::new(0.1).init();
        let (scores, mask) = scores_and_mask(&device);
        let fused = probabilities(scores.clone(), mask.clone(), SCALE, &dropout);
        let expected = wide(composed(scores, mask, SCALE, &dropout));
        test_support::assert_close(&wide(fused), &expected, 1e-7, 1e-6, "probabilities");
        // Masked keys get nothing.
        assert_eq!(expected[7 * 3 * 5 + 4], 0.0);
    }

    #[test]
    fn gradients_are_those_of_the_tensor_operations_with_and_without_dropout() {
        let device = Device::flex().autodiff();
        for prob in [0.0, 0.3] {
            let dropout = DropoutConfig::new(prob).init();
            let run = |attend: fn(Tensor<4>, Tensor<4>, f64, &Dropout) -> Tensor<4>| {
                let (scores, mask) = scores_and_mask(&device);
                let scores = scores.require_grad();
                seed_dropout(5);
                let probs = attend(scores.clone(), mask, SCALE, &dropout);
                // Unequal weights, so that every probability reaches the gradient.
                let weights = Tensor::<1, Int>::arange(0..210, &device)
                    .float()
                    .reshape(SHAPE)
                    .sin();
                let gradients = (probs.clone() * weights).sum().backward();
                let grad = scores.grad(&gradients).expect("scores take part");
                (wide(probs), wide(grad))
            };
            let (fused_probs, fused_grad) = run(probabilities);
            let (expected_probs, expected_grad) = run(composed);
            let what = format!("dropout {prob}");
            test_support::assert_close(&fused_probs, &expected_probs, 1e-7, 1e-6, &what);
            test_support::assert_close(&fused_grad, &expected_grad, 1e-7, 1e-5, &what);
            let dropped = expected_probs.iter().filter(|&&p| p == 0.0).count();
            // 15 masked keys of the second sequence's 15 rows, then dropout's share of the rest.
            let masked = 3 * 5 * 3;
            assert_eq!(dropped > masked, prob > 0.0, "{what}: {dropped} zeros");
        }
    }

    #[test]
    fn every_simd_level_computes_the_portable_probabilities_and_gradient() {
        // Rows no multiple of a vector register long; the second sequence masks 17 keys.
        let (keys, rows_per_sequence) = (37, 5);
        let count = 2 * rows_per_sequence * keys;
        let scores: Vec<f32> = (0..count)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 8.0)
            .collect();
        let masks: Vec<f32> = (0..2 * keys)
            .map(|i| {
                if i >= keys && i % keys >= 20 {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let upstream: Vec<f32> = (0..count).map(|i| (i as f32 * 0.3).sin()).collect();
        let scale = SCALE as f32;
        let run = |level| {
            let mut probs = scores.clone();
            softmax_rows(level, &mut probs, keys, 0, rows_per_sequence, &masks, scale);
            let mut grads = upstream.clone();
            softmax_rows_backward(level, &mut grads, &probs, keys, scale);
            (widen(&probs), widen(&grads))
        };
        let (probs, grads) = run(SimdLevel::Portable);
        for level in SimdLevel::supported() {
            let (level_probs, level_grads) = run(level);
            let what = format!("{level:?}");
            test_support::assert_close(&level_probs, &probs, 1e-7, 1e-6, &what);
            test_support::assert_close(&level_grads, &grads, 1e-7, 1e-5, &what);
        }
    }
}
