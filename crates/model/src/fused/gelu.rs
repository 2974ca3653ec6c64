//! Exact GELU, `x · Φ(x)`, with a normal CDF that the compiler can vectorise.
//!
//! Flex computes GELU and its derivative in one pass already, but element by element through
//! libm's `erff`, a branchy scalar routine that was the largest cost of a training step after
//! the matrix products. Here `Φ` comes from Abramowitz and Stegun's formula 7.1.26
//! (`erfc(z) ≈ t·(a₁ + a₂t + … + a₅t⁴)·e^{−z²}` with `t = 1/(1 + p·z)`, absolute error at
//! most 1.5·10⁻⁷) and `e^{−z²}` from a branch-free exponential, so both passes are straight-line
//! arithmetic; `e^{−z²} = e^{−x²/2}` also gives the derivative's normal density.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::Tensor;

use super::{
    Unwrapped, contiguous_f32, exp_non_positive, record, unwrap, update_chunks, zip_update_chunks,
};

/// `gelu(x) = x · Φ(x)`, as `burn::tensor::activation::gelu` computes it, up to 2·10⁻⁷ · |x|.
pub(crate) fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    match unwrap(x) {
        Unwrapped::Tracked(x) => {
            let (x, node) = x.into_parts();
            let output = forward(x.clone());
            Tensor::from_primitive::<Autodiff<Flex>>(record(GeluBackward, [node], x, output))
        }
        Unwrapped::Plain(x) => Tensor::from_primitive::<Flex>(forward(x)),
        Unwrapped::Other(x) => burn::tensor::activation::gelu(x),
    }
}

#[derive(Debug)]
struct GeluBackward;

impl Backward<Flex, 1> for GeluBackward {
    /// The input.
    type State = FlexTensor;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let x = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            zip_update_chunks(grad, &contiguous_f32(&x), |_, grads, xs| {
                for (grad, &x) in grads.iter_mut().zip(xs) {
                    let (cdf, pdf) = standard_normal(x);
                    *grad *= cdf + x * pdf;
                }
            })
        });
    }
}

/// In `x`'s own buffer when no one else holds it.
fn forward(x: FlexTensor) -> FlexTensor {
    update_chunks(x, |_, xs| {
        for x in xs {
            *x *= standard_normal(*x).0;
        }
    })
}

/// The standard normal distribution's CDF `Φ(x)` and density `φ(x)`.
#[inline(always)]
fn standard_normal(x: f32) -> (f32, f32) {
    const P: f32 = 0.327_591_1;
    // As published, rounded to f32 by the compiler.
    #[allow(clippy::excessive_precision)]
    const A: [f32; 5] = [
        0.254_829_592,
        -0.284_496_736,
        1.421_413_741,
        -1.453_152_027,
        1.061_405_429,
    ];
    const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
    // Φ(x) = erfc(−x/√2)/2; with z = |x|/√2, the tail erfc(z)/2 is Φ(−|x|).
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + P * z);
    let gauss = exp_non_positive(-0.5 * x * x);
    let poly = A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4])));
    let tail = 0.5 * t * poly * gauss;
    let cdf = if x >= 0.0 { 1.0 - tail } else { tail };
    (cdf, FRAC_1_SQRT_2PI * gauss)
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, TensorData};

    use super::*;
    use crate::fused::wide;

    /// −10 to 10 in steps of 1/400, and values far out and near zero.
    fn inputs(device: &Device) -> Tensor<1> {
        let values: Vec<f32> = (-4_000..=4_000)
            .map(|i| i as f32 / 400.0)
            .chain([-100.0, -30.0, -1e-30, 1e-30, 30.0, 100.0])
            .collect();
        let len = values.len();
        Tensor::from_data(TensorData::new(values, [len]), device)
    }

    /// Within A&S 7.1.26's 1.5·10⁻⁷ on erf, plus rounding, relative to max(1, |x|).
    fn assert_within(actual: &[f64], expected: &[f64], inputs: &[f64], what: &str) {
        for ((&actual, &expected), &x) in actual.iter().zip(expected).zip(inputs) {
            let bound = 4e-7 * x.abs().max(1.0);
            assert!(
                (actual - expected).abs() <= bound,
                "{what} at x = {x}: {actual}, expected {expected}"
            );
        }
    }

    #[test]
    fn gelu_is_burns_exact_gelu() {
        let device = Device::flex();
        let x = inputs(&device);
        let expected = wide(burn::tensor::activation::gelu(x.clone()));
        assert_within(&wide(gelu(x.clone())), &expected, &wide(x), "gelu");
    }

    #[test]
    fn gelus_gradient_is_burns() {
        let device = Device::flex().autodiff();
        let gradient = |activation: fn(Tensor<1>) -> Tensor<1>| {
            let x = inputs(&device).require_grad();
            let gradients = activation(x.clone()).sum().backward();
            wide(x.grad(&gradients).expect("x takes part"))
        };
        let expected = gradient(burn::tensor::activation::gelu);
        let x = wide(inputs(&device));
        assert_within(&gradient(gelu), &expected, &x, "gelu'");
    }
}
