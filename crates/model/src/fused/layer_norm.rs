//! LayerNorm over the last axis of `[rows, width]`, as one operation.
//!
//! Flex normalises in one pass, but not under autodiff: there Burn records LayerNorm as ten
//! operations (mean, subtract, square, mean, add ε, square root, divide, scale, shift) with a
//! backward pass for each. Here the forward pass keeps the normalised rows `x̂` and each row's
//! `1/σ`, and the backward pass is one sweep per row:
//! `∂x = (1/σ)·(∂x̂ − mean(∂x̂) − x̂·mean(∂x̂ ⊙ x̂))` with `∂x̂ = g ⊙ γ`, while the sums
//! `∂γ = Σ g ⊙ x̂` and `∂β = Σ g` are taken over fixed blocks of rows and added in block order,
//! so they do not depend on how threads are scheduled.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::nn::LayerNorm;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::simd::{self, multiversion};
use super::{Unwrapped, contiguous_f32, into_unique_contiguous, lane_sum, record, unwrap};

/// Rows per parallel work item, and per block of the parameter gradients' sums.
const ROWS_PER_TASK: usize = 64;

/// `norm` (with its shift) applied to `input`, whose last axis is `norm`'s width, with `epsilon`
/// (Burn's `LayerNorm` keeps its own private).
pub(crate) fn layer_norm(input: Tensor<2>, norm: &LayerNorm, epsilon: f64) -> Tensor<2> {
    let gamma = norm.gamma.val();
    let beta = norm
        .beta
        .as_ref()
        .expect("BERT's LayerNorm has a shift")
        .val();
    match (unwrap(input), unwrap(gamma), unwrap(beta)) {
        (Unwrapped::Tracked(input), Unwrapped::Tracked(gamma), Unwrapped::Tracked(beta)) => {
            let (input, input_node) = input.into_parts();
            let (gamma, gamma_node) = gamma.into_parts();
            let (beta, beta_node) = beta.into_parts();
            let normalized = normalize(input, epsilon as f32);
            let output = scale_and_shift(normalized.rows.clone(), &gamma, &beta);
            Tensor::from_primitive::<Autodiff<Flex>>(record(
                LayerNormBackward,
                [input_node, gamma_node, beta_node],
                Saved { normalized, gamma },
                output,
            ))
        }
        (Unwrapped::Plain(input), Unwrapped::Plain(gamma), Unwrapped::Plain(beta)) => {
            let normalized = normalize(input, epsilon as f32);
            Tensor::from_primitive::<Flex>(scale_and_shift(normalized.rows, &gamma, &beta))
        }
        (input, _, _) => norm.forward(input.into_tensor()),
    }
}

/// The rows normalised to mean 0 and variance 1, and each row's `1/σ`.
#[derive(Debug, Clone)]
struct Normalized {
    rows: FlexTensor,
    inverse_deviations: Arc<[f32]>,
}

#[derive(Debug, Clone)]
struct Saved {
    normalized: Normalized,
    gamma: FlexTensor,
}

#[derive(Debug)]
struct LayerNormBackward;

impl Backward<Flex, 3> for LayerNormBackward {
    type State = Saved;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let Saved { normalized, gamma } = ops.state;
        let grad = grads.consume::<Flex>(&ops.node);
        let [input, gamma_parent, beta_parent] = ops.parents;
        let gradients = backward(grad, &normalized, &gamma);
        for (parent, gradient) in [input, gamma_parent, beta_parent]
            .into_iter()
            .zip(gradients)
        {
            if let Some(parent) = parent {
                grads.register::<Flex>(parent.id, gradient);
            }
        }
    }
}

fn normalize(input: FlexTensor, epsilon: f32) -> Normalized {
    let shape = input.layout().shape().clone();
    let width = shape[1];
    let mut rows = into_unique_contiguous(input);
    let mut inverse_deviations = vec![0.0f32; shape[0]];
    if width > 0 {
        let level = simd::active();
        rows.try_storage_mut::<f32>()
            .expect("a unique buffer")
            .par_chunks_mut(ROWS_PER_TASK * width)
            .zip(inverse_deviations.par_chunks_mut(ROWS_PER_TASK))
            .for_each(|(rows, inverse_deviations)| {
                normalize_rows(level, rows, inverse_deviations, width, epsilon);
            });
    }
    Normalized {
        rows,
        inverse_deviations: inverse_deviations.into(),
    }
}

multiversion! {
    /// Normalises consecutive rows of `width` in place, writing each row's `1/σ`.
    fn normalize_rows<A>(
        rows: &mut [f32],
        inverse_deviations: &mut [f32],
        width: usize,
        epsilon: f32,
    ) {
        for (row, inverse_deviation) in rows.chunks_mut(width).zip(inverse_deviations) {
            let mean = lane_sum(row, row, |x, _| x) / width as f32;
            let variance = lane_sum(row, row, |x, _| (x - mean) * (x - mean)) / width as f32;
            *inverse_deviation = 1.0 / (variance + epsilon).sqrt();
            for x in row.iter_mut() {
                *x = (*x - mean) * *inverse_deviation;
            }
        }
    }
}

/// `normalized · γ + β`, in `normalized`'s own buffer when no one else holds it.
fn scale_and_shift(normalized: FlexTensor, gamma: &FlexTensor, beta: &FlexTensor) -> FlexTensor {
    let (gamma, beta) = (contiguous_f32(gamma), contiguous_f32(beta));
    let mut output = into_unique_contiguous(normalized);
    if !gamma.is_empty() {
        let level = simd::active();
        output
            .try_storage_mut::<f32>()
            .expect("a unique buffer")
            .par_chunks_mut(ROWS_PER_TASK * gamma.len())
            .for_each(|rows| scale_and_shift_rows(level, rows, &gamma, &beta));
    }
    output
}

multiversion! {
    /// `row · γ + β` for each row of γ's width, in place.
    fn scale_and_shift_rows<A>(rows: &mut [f32], gamma: &[f32], beta: &[f32]) {
        for row in rows.chunks_mut(gamma.len()) {
            for ((x, &g), &b) in row.iter_mut().zip(gamma).zip(beta) {
                *x = A::mul_add(*x, g, b);
            }
        }
    }
}

/// The gradients of the input, `γ` and `β`, from that of the output.
fn backward(grad: FlexTensor, normalized: &Normalized, gamma: &FlexTensor) -> [FlexTensor; 3] {
    let gamma_shape = gamma.layout().shape().clone();
    let gamma = contiguous_f32(gamma);
    let width = gamma.len();
    let rows = contiguous_f32(&normalized.rows);
    let mut grad = into_unique_contiguous(grad);
    let mut block_sums: Vec<(Vec<f32>, Vec<f32>)> = Vec::new();
    if width > 0 {
        let level = simd::active();
        grad.try_storage_mut::<f32>()
            .expect("a unique buffer")
            .par_chunks_mut(ROWS_PER_TASK * width)
            .zip(rows.par_chunks(ROWS_PER_TASK * width))
            .zip(normalized.inverse_deviations.par_chunks(ROWS_PER_TASK))
            .map(|((grads, rows), inverse_deviations)| {
                backward_rows(level, grads, rows, inverse_deviations, &gamma)
            })
            .collect_into_vec(&mut block_sums);
    }
    let mut gamma_grad = vec![0.0f32; width];
    let mut beta_grad = vec![0.0f32; width];
    for (gamma_sum, beta_sum) in &block_sums {
        for (total, &sum) in gamma_grad.iter_mut().zip(gamma_sum) {
            *total += sum;
        }
        for (total, &sum) in beta_grad.iter_mut().zip(beta_sum) {
            *total += sum;
        }
    }
    [
        grad,
        FlexTensor::from_data(TensorData::new(gamma_grad, gamma_shape.clone())),
        FlexTensor::from_data(TensorData::new(beta_grad, gamma_shape)),
    ]
}

multiversion! {
    /// The input's gradient in place of the output's, `grads`, for consecutive rows of γ's
    /// width, and these rows' sums `(Σ g ⊙ x̂, Σ g)`.
    fn backward_rows<A>(
        grads: &mut [f32],
        rows: &[f32],
        inverse_deviations: &[f32],
        gamma: &[f32],
    ) -> (Vec<f32>, Vec<f32>) {
        let width = gamma.len();
        let mut gamma_sum = vec![0.0f32; width];
        let mut beta_sum = vec![0.0f32; width];
        for ((grad, row), &inverse_deviation) in grads
            .chunks_mut(width)
            .zip(rows.chunks(width))
            .zip(inverse_deviations)
        {
            let sums = gamma_sum.iter_mut().zip(beta_sum.iter_mut());
            for (((grad, &x), &scale), (gamma_sum, beta_sum)) in
                grad.iter_mut().zip(row).zip(gamma).zip(sums)
            {
                *gamma_sum = A::mul_add(*grad, x, *gamma_sum);
                *beta_sum += *grad;
                *grad *= scale;
            }
            let mean_grad = lane_sum(grad, grad, |grad, _| grad) / width as f32;
            let mean_grad_x = lane_sum(grad, row, |grad, x| grad * x) / width as f32;
            for (grad, &x) in grad.iter_mut().zip(row) {
                *grad = inverse_deviation * (*grad - mean_grad - x * mean_grad_x);
            }
        }
        (gamma_sum, beta_sum)
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Param;
    use burn::nn::LayerNormConfig;
    use burn::tensor::{Device, Int};

    use super::*;
    use crate::fused::simd::SimdLevel;
    use crate::fused::{wide, widen};

    /// Two blocks of rows (the parameter gradients' sums cross them), and a width that is no
    /// multiple of a vector register.
    const ROWS: usize = ROWS_PER_TASK + 6;
    const WIDTH: usize = 9;
    const EPSILON: f64 = 1e-5;

    fn norm_and_input(device: &Device) -> (LayerNorm, Tensor<2>) {
        let wave = |count: usize| Tensor::<1, Int>::arange(0..count as i64, device).float();
        let mut norm = LayerNormConfig::new(WIDTH)
            .with_epsilon(EPSILON)
            .init(device);
        norm.gamma = Param::from_tensor(wave(WIDTH).cos() + 0.5);
        norm.beta = Some(Param::from_tensor(wave(WIDTH).sin()));
        // Rows of different means and spreads.
        let input = (wave(ROWS * WIDTH) * 0.37).sin().reshape([ROWS, WIDTH]) * 3.0
            + wave(ROWS).reshape([ROWS, 1]) * 0.1;
        (norm, input)
    }

    #[test]
    fn normalises_as_burns_layer_norm() {
        let device = Device::flex();
        let (norm, input) = norm_and_input(&device);
        let expected = wide(norm.forward(input.clone()));
        let actual = wide(layer_norm(input, &norm, EPSILON));
        test_support::assert_close(&actual, &expected, 1e-6, 1e-6, "layer norm");
    }

    #[test]
    fn gradients_are_burns() {
        let device = Device::flex().autodiff();
        let run = |fused: bool| {
            let (norm, input) = norm_and_input(&device);
            let input = input.require_grad();
            let output = if fused {
                layer_norm(input.clone(), &norm, EPSILON)
            } else {
                norm.forward(input.clone())
            };
            let weights = (Tensor::<1, Int>::arange(0..(ROWS * WIDTH) as i64, &device).float()
                * 0.11)
                .cos()
                .reshape([ROWS, WIDTH]);
            let gradients = (output * weights).sum().backward();
            let beta = norm.beta.as_ref().expect("a shift");
            [
                input.grad(&gradients).map(wide),
                norm.gamma.val().grad(&gradients).map(wide),
                beta.val().grad(&gradients).map(wide),
            ]
            .map(|grad| grad.expect("takes part"))
        };
        let expected = run(false);
        for (actual, (expected, what)) in run(true)
            .iter()
            .zip(expected.iter().zip(["input", "γ", "β"]))
        {
            test_support::assert_close(actual, expected, 1e-5, 1e-5, what);
        }
    }

    #[test]
    fn every_simd_level_computes_the_portable_layer_norm_and_gradients() {
        // Rows wider than a vector register and no multiple of one.
        let (rows, width) = (10, 45);
        let input: Vec<f32> = (0..rows * width)
            .map(|i| 3.0 * (i as f32 * 0.37).sin() + (i / width) as f32 * 0.1)
            .collect();
        let gamma: Vec<f32> = (0..width).map(|i| (i as f32).cos() + 0.5).collect();
        let beta: Vec<f32> = (0..width).map(|i| (i as f32).sin()).collect();
        let upstream: Vec<f32> = (0..rows * width).map(|i| (i as f32 * 0.11).cos()).collect();
        let run = |level| {
            let mut normalized = input.clone();
            let mut inverse_deviations = vec![0.0f32; rows];
            normalize_rows(level, &mut normalized, &mut inverse_deviations, width, 1e-5);
            let mut output = normalized.clone();
            scale_and_shift_rows(level, &mut output, &gamma, &beta);
            let mut grads = upstream.clone();
            let (gamma_grad, beta_grad) =
                backward_rows(level, &mut grads, &normalized, &inverse_deviations, &gamma);
            [output, grads, gamma_grad, beta_grad].map(|values| widen(&values))
        };
        let portable = run(SimdLevel::Portable);
        for level in SimdLevel::supported() {
            let outputs = run(level);
            // Today's tolerances against Burn: 10⁻⁶ forward, 10⁻⁵ backward.
            let checks = [
                ("output", 1e-6),
                ("input gradient", 1e-5),
                ("γ gradient", 1e-5),
                ("β gradient", 1e-5),
            ];
            for ((actual, expected), (name, tolerance)) in outputs.iter().zip(&portable).zip(checks)
            {
                let what = format!("{name}, {level:?}");
                test_support::assert_close(actual, expected, tolerance, tolerance, &what);
            }
        }
    }
}
