//! Operations that Burn's autodiff would record as chains of element-wise steps, computed on
//! Flex in one pass forward and one hand-written pass backward.
//!
//! Each step Burn records is a pass through memory and often a tensor kept alive until the
//! backward pass; on the CPU, where a training step is as much memory traffic as arithmetic,
//! that is where Flex trailed PyTorch. Each operation here unwraps Flex's tensors (Burn's
//! backend extension API), computes on contiguous `f32` slices, and records itself as one node
//! of Burn's autodiff graph. Tensors on other backends, or that Flex's autodiff cannot unwrap
//! (gradient checkpointing, other float types), take the ordinary tensor-operation path, which
//! computes the same function.

pub(crate) mod adam;
pub(crate) mod attention;
pub(crate) mod gelu;
pub(crate) mod layer_norm;
pub(crate) mod matmul;
pub(crate) mod simd;

use std::borrow::Cow;

use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::ops::{Backward, NodeGuard, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use simd::Arithmetic;

/// Elements per parallel work item of the element-wise kernels.
const CHUNK: usize = 1 << 14;

/// A float tensor as Flex's primitive, when it is one.
enum Unwrapped<const D: usize> {
    /// On Flex's autodiff device.
    Tracked(FloatTensor<Autodiff<Flex>>),
    /// On Flex, without autodiff.
    Plain(FlexTensor),
    /// Anywhere else, or not `f32`.
    Other(Tensor<D>),
}

impl<const D: usize> Unwrapped<D> {
    fn into_tensor(self) -> Tensor<D> {
        match self {
            Self::Tracked(tracked) => Tensor::from_primitive::<Autodiff<Flex>>(tracked),
            Self::Plain(plain) => Tensor::from_primitive::<Flex>(plain),
            Self::Other(tensor) => tensor,
        }
    }
}

fn unwrap<const D: usize>(tensor: Tensor<D>) -> Unwrapped<D> {
    if let Ok(tracked) = tensor.clone().try_into_primitive::<Autodiff<Flex>>()
        && tracked.primitive().dtype() == DType::F32
    {
        return Unwrapped::Tracked(tracked);
    }
    if let Ok(plain) = tensor.clone().try_into_primitive::<Flex>()
        && plain.dtype() == DType::F32
    {
        return Unwrapped::Plain(plain);
    }
    Unwrapped::Other(tensor)
}

/// Records `output`, computed from the tensors behind `inputs`, as one autodiff operation
/// whose backward pass is `backward` with `state` (kept only when gradients are tracked).
fn record<O: Backward<Flex, N>, const N: usize>(
    backward: O,
    inputs: [NodeGuard; N],
    state: O::State,
    output: FlexTensor,
) -> FloatTensor<Autodiff<Flex>> {
    match backward
        .prepare::<NoCheckpointing>(inputs)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

/// The tensor's elements in row-major order, borrowed when they already lie that way.
fn contiguous_f32(tensor: &FlexTensor) -> Cow<'_, [f32]> {
    match tensor.as_slice::<f32>() {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(
            tensor
                .to_contiguous()
                .as_slice::<f32>()
                .expect("a contiguous f32 tensor")
                .to_vec(),
        ),
    }
}

/// A contiguous tensor that alone owns exactly its buffer, so it can be written in place: the
/// tensor itself when it already is one (the usual case: a fresh matrix product or gradient),
/// otherwise a copy.
fn into_unique_contiguous(mut tensor: FlexTensor) -> FlexTensor {
    let shape = tensor.layout().shape().clone();
    let len = shape.num_elements();
    let owns_exactly = tensor.layout().contiguous_offsets() == Some((0, len))
        && tensor.bytes().len() == len * size_of::<f32>();
    if owns_exactly && tensor.try_storage_mut::<f32>().is_some() {
        return tensor;
    }
    let values = contiguous_f32(&tensor).into_owned();
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// `update(first, chunk)` on consecutive chunks of `tensor`'s elements (made unique and
/// contiguous first: a copy when the buffer is shared, e.g. with a tensor kept for backward),
/// in parallel; `first` is the chunk's first flat index. Kernels are plain loops over the
/// chunk, which the compiler vectorises for the level [`simd::multiversion!`] compiles them for.
fn update_chunks(tensor: FlexTensor, update: impl Fn(usize, &mut [f32]) + Sync) -> FlexTensor {
    let mut tensor = into_unique_contiguous(tensor);
    tensor
        .try_storage_mut::<f32>()
        .expect("a unique buffer")
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(chunk, values)| update(chunk * CHUNK, values));
    tensor
}

/// [`update_chunks`] with the matching chunk of `others` beside each chunk.
fn zip_update_chunks(
    tensor: FlexTensor,
    others: &[f32],
    update: impl Fn(usize, &mut [f32], &[f32]) + Sync,
) -> FlexTensor {
    let mut tensor = into_unique_contiguous(tensor);
    tensor
        .try_storage_mut::<f32>()
        .expect("a unique buffer")
        .par_chunks_mut(CHUNK)
        .zip(others.par_chunks(CHUNK))
        .enumerate()
        .for_each(|(chunk, (values, others))| update(chunk * CHUNK, values, others));
    tensor
}

/// `eᵛ` for `v ≤ 0` (and −∞), within a few ulp, as straight-line arithmetic the compiler can
/// vectorise: `v = n·ln 2 + r`, `eʳ` from its Taylor series to `r⁷` (`|r| ≤ ln 2 / 2`,
/// truncation below 10⁻⁸), `2ⁿ` built from its bits. Results below `e⁻⁸⁷`, near the smallest
/// normal `f32`, are flushed to 0, so masked scores get exactly no weight.
#[inline(always)]
fn exp_non_positive<A: Arithmetic>(v: f32) -> f32 {
    // Adding 1.5·2²³ rounds to an integer held in the low bits, without a rounding call or a
    // float-to-int conversion, either of which keeps a loop from vectorising on baseline x86-64.
    const ROUND: f32 = 12_582_912.0;
    // ln 2 split in two: its leading 13 bits (0.693145751953125), so that n · LN_2_HIGH is
    // exact for |n| ≤ 127, and the rest.
    const LN_2_HIGH: f32 = f32::from_bits(0x3F31_7200);
    const LN_2_LOW: f32 = 1.428_606_8e-6;
    const FLUSH_BELOW: f32 = -87.0;
    // Not `max`, which would turn NaN into a number: NaN must reach the result.
    let clamped = if v < FLUSH_BELOW { FLUSH_BELOW } else { v };
    let rounded = A::mul_add(clamped, std::f32::consts::LOG2_E, ROUND);
    let n = rounded - ROUND;
    let r = A::mul_add(-n, LN_2_LOW, A::mul_add(-n, LN_2_HIGH, clamped));
    // Horner's scheme, innermost coefficient 1/7! first.
    let horner = |inner: f32, coefficient: f32| A::mul_add(inner, r, coefficient);
    let taylor = horner(
        horner(
            horner(
                horner(
                    horner(
                        horner(horner(1.0 / 5040.0, 1.0 / 720.0), 1.0 / 120.0),
                        1.0 / 24.0,
                    ),
                    1.0 / 6.0,
                ),
                1.0 / 2.0,
            ),
            1.0,
        ),
        1.0,
    );
    // The low bits of `rounded` hold n + 2²² (n ≥ −126 here): the exponent field of 2ⁿ is n + 127.
    let exponent = rounded
        .to_bits()
        .wrapping_sub(ROUND.to_bits())
        .wrapping_add(127);
    let value = taylor * f32::from_bits(exponent << 23);
    if v < FLUSH_BELOW { 0.0 } else { value }
}

/// Width of the partial sums below: wide enough for the compiler to keep them in one vector
/// register each (two on SSE2).
const LANES: usize = 8;

/// `Σ f(a_i, b_i)` with the terms spread over [`LANES`] partial sums, which the compiler can
/// vectorise (one running sum cannot be, as reordering it changes the rounding).
#[inline(always)]
fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (a_rest, b_rest) = (a_chunks.remainder(), b_chunks.remainder());
    for (a, b) in a_chunks.zip(b_chunks) {
        for lane in 0..LANES {
            lanes[lane] += f(a[lane], b[lane]);
        }
    }
    let rest: f32 = a_rest.iter().zip(b_rest).map(|(&a, &b)| f(a, b)).sum();
    lanes.iter().sum::<f32>() + rest
}

/// The largest of `values` (−∞ when empty), over [`LANES`] partial maxima.
#[inline(always)]
fn lane_max(values: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for lane in 0..LANES {
            lanes[lane] = lanes[lane].max(chunk[lane]);
        }
    }
    lanes
        .into_iter()
        .chain(rest.iter().copied())
        .fold(f32::NEG_INFINITY, f32::max)
}

/// A tensor's values, widened for `test_support::assert_close`.
#[cfg(test)]
fn wide<const D: usize>(tensor: Tensor<D>) -> Vec<f64> {
    let values: Vec<f32> = tensor.into_data().try_to_vec().expect("an f32 tensor");
    widen(&values)
}

/// Values widened for `test_support::assert_close`.
#[cfg(test)]
fn widen(values: &[f32]) -> Vec<f64> {
    values.iter().copied().map(f64::from).collect()
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;

    #[test]
    fn flex_tensors_unwrap_and_others_pass_through() {
        let tensor = |device: &Device| Tensor::<2>::ones([2, 3], device);
        let flex = Device::flex();
        assert!(matches!(
            unwrap(tensor(&flex.clone().autodiff())),
            Unwrapped::Tracked(_)
        ));
        assert!(matches!(unwrap(tensor(&flex)), Unwrapped::Plain(_)));
        let halves = tensor(&flex).cast(DType::F16);
        assert!(matches!(unwrap(halves), Unwrapped::Other(_)));
    }

    #[test]
    fn a_strided_view_becomes_its_own_row_major_buffer() {
        let device = Device::flex();
        let grid = Tensor::<1, burn::tensor::Int>::arange(0..6, &device)
            .float()
            .reshape([2, 3]);
        let Unwrapped::Plain(transposed) = unwrap(grid.clone().transpose()) else {
            panic!("a Flex tensor");
        };
        let mut owned = into_unique_contiguous(transposed);
        assert_eq!(
            owned.try_storage_mut::<f32>().map(|values| values.to_vec()),
            Some(vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0])
        );
        // The grid itself is untouched.
        assert_eq!(wide(grid), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    /// Both ways of rounding `a·b + c`, whichever the CPU (`f32::mul_add` is exact everywhere).
    fn for_both_arithmetics(check: impl Fn(fn(f32) -> f32, &str)) {
        check(exp_non_positive::<simd::Separate>, "separate");
        check(exp_non_positive::<simd::Fused>, "fused");
    }

    #[test]
    fn the_exponential_is_within_a_few_ulp() {
        for_both_arithmetics(|exp, arithmetic| {
            for step in 0..=86_999 {
                let v = -(step as f32) / 1_000.0;
                let exact = f64::from(v).exp();
                let relative = (f64::from(exp(v)) - exact).abs() / exact;
                assert!(
                    relative < 3e-7,
                    "{arithmetic}: exp({v}): relative error {relative:e}"
                );
            }
        });
    }

    #[test]
    fn the_exponential_flushes_below_e_to_the_minus_87_and_keeps_nan() {
        for_both_arithmetics(|exp, arithmetic| {
            assert_eq!(exp(0.0), 1.0, "{arithmetic}");
            assert_eq!(exp(-87.5), 0.0, "{arithmetic}");
            assert_eq!(exp(f32::NEG_INFINITY), 0.0, "{arithmetic}");
            assert!(exp(f32::NAN).is_nan(), "{arithmetic}");
        });
    }

    #[test]
    fn lane_reductions_see_every_element() {
        // 8 lanes and a remainder of 3; the largest value in the remainder, then in a lane.
        let values: Vec<f32> = (1..=19).map(|i| i as f32).collect();
        assert_eq!(lane_sum(&values, &values, |a, _| a), 190.0);
        assert_eq!(lane_sum(&values, &values, |a, b| a * b), 2_470.0);
        assert_eq!(lane_max(&values), 19.0);
        assert_eq!(lane_max(&values[..16]), 16.0);
        assert_eq!(lane_max(&[]), f32::NEG_INFINITY);
    }
}
