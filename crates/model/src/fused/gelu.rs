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

use super::simd::{self, Arithmetic, multiversion};
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
        let level = simd::active();
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            zip_update_chunks(grad, &contiguous_f32(&x), |_, grads, xs| {
                backward_chunk(level, grads, xs)
            })
        });
    }
}

/// In `x`'s own buffer when no one else holds it.
fn forward(x: FlexTensor) -> FlexTensor {
    let level = simd::active();
    update_chunks(x, |_, xs| forward_chunk(level, xs))
}

multiversion! {
    /// `x ← gelu(x)`.
    fn forward_chunk<A>(xs: &mut [f32]) {
        for x in xs {
            *x *= standard_normal::<A>(*x).0;
        }
    }
}

multiversion! {
    /// `grad ← grad · gelu'(x)`.
    fn backward_chunk<A>(grads: &mut [f32], xs: &[f32]) {
        for (grad, &x) in grads.iter_mut().zip(xs) {
            let (cdf, pdf) = standard_normal::<A>(x);
            *grad *= A::mul_add(x, pdf, cdf);
        }
    }
}

/// The standard normal distribution's CDF `Φ(x)` and density `φ(x)`.
#[inline(always)]
fn standard_normal<A: Arithmetic>(x: f32) -> (f32, f32) {
    const P: f32 = 0.327_591_1;
    // As published, rounded to f32 by the compiler.
    #[allow(clippy::excessive_precision)]
    const ERFC: [f32; 5] = [
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
    let gauss = exp_non_positive::<A>(-0.5 * x * x);
    let horner = |inner: f32, coefficient: f32| A::mul_add(t, inner, coefficient);
    let poly = horner(
        horner(horner(horner(ERFC[4], ERFC[3]), ERFC[2]), ERFC[1]),
        ERFC[0],
    );
    let tail = 0.5 * t * poly * gauss;
    let cdf = if x >= 0.0 { 1.0 - tail } else { tail };
    (cdf, FRAC_1_SQRT_2PI * gauss)
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, TensorData};

    use super::*;
    use crate::fused::simd::SimdLevel;
    use crate::fused::{wide, widen};

    /// −10 to 10 in steps of 1/400, and values far out and near zero.
    fn input_values() -> Vec<f32> {
        (-4_000..=4_000)
            .map(|i| i as f32 / 400.0)
            .chain([-100.0, -30.0, -1e-30, 1e-30, 30.0, 100.0])
            .collect()
    }

    fn inputs(device: &Device) -> Tensor<1> {
        let values = input_values();
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

    #[test]
    fn every_simd_level_computes_the_portable_gelu_and_gradient() {
        let xs = input_values();
        let run = |level| {
            let mut gelu = xs.clone();
            forward_chunk(level, &mut gelu);
            let mut derivative = vec![1.0f32; xs.len()];
            backward_chunk(level, &mut derivative, &xs);
            (widen(&gelu), widen(&derivative))
        };
        let (gelu, derivative) = run(SimdLevel::Portable);
        let xs = widen(&xs);
        for level in SimdLevel::supported() {
            let (level_gelu, level_derivative) = run(level);
            assert_within(&level_gelu, &gelu, &xs, &format!("gelu, {level:?}"));
            assert_within(
                &level_derivative,
                &derivative,
                &xs,
                &format!("gelu', {level:?}"),
            );
        }
    }
}
