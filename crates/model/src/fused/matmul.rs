//! Matrix products on Flex, written by gemm straight into the tensor's own buffer.
//!
//! Flex's matmul allocates its output with `FlexTensor::empty`, which zeroes a `Vec<u8>` and
//! then, because a byte vector promises only byte alignment, copies it into a fresh 16-byte
//! aligned buffer: two passes through memory, and both buffers alive at once, before gemm
//! overwrites every element. On a training step that is three products per linear layer and
//! four per attention (forward, and both operands' gradients), i.e. a tenth of a step on the
//! CPU. Here gemm writes into an uninitialised `Vec<f32>`, which becomes the tensor as it is.
//! Everything else is Flex's: the same gemm calls (operands, strides, parallelism), so every
//! product is bit for bit Flex's, and the backward pass is autodiff's (`∂lhs = g · rhsᵀ`,
//! `∂rhs = lhsᵀ · g`, each operand kept only if the other needs a gradient).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, binary};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::nn::Linear;
use burn::tensor::{Tensor, TensorData};
use gemm::Parallelism;
use rayon::prelude::*;

use super::{Unwrapped, record, unwrap};

/// Flex's thresholds (multiply-adds) for splitting one product over threads, and a batch of
/// products over threads, one product each.
const PARALLEL_PRODUCT: usize = 192 * 192 * 192;
const PARALLEL_BATCH: usize = 128 * 128 * 128;

/// `lhs · rhs` for `[…, m, k]` and `[…, k, n]` tensors with the same leading dims, as
/// `Tensor::matmul` computes it.
pub(crate) fn matmul<const D: usize>(lhs: Tensor<D>, rhs: Tensor<D>) -> Tensor<D> {
    if lhs.dims()[..D - 2] != rhs.dims()[..D - 2] {
        // Broadcast leading dims: no product of ours has them.
        return lhs.matmul(rhs);
    }
    match (unwrap(lhs), unwrap(rhs)) {
        (Unwrapped::Tracked(lhs), Unwrapped::Tracked(rhs)) => {
            let (lhs_tracked, rhs_tracked) = (lhs.is_tracked(), rhs.is_tracked());
            let (lhs, lhs_node) = lhs.into_parts();
            let (rhs, rhs_node) = rhs.into_parts();
            let output = product(Matrices::of(&lhs), Matrices::of(&rhs));
            let state = Operands {
                lhs: rhs_tracked.then_some(lhs),
                rhs: lhs_tracked.then_some(rhs),
            };
            Tensor::from_primitive::<Autodiff<Flex>>(record(
                MatmulBackward,
                [lhs_node, rhs_node],
                state,
                output,
            ))
        }
        (Unwrapped::Plain(lhs), Unwrapped::Plain(rhs)) => {
            Tensor::from_primitive::<Flex>(product(Matrices::of(&lhs), Matrices::of(&rhs)))
        }
        (lhs, rhs) => lhs.into_tensor().matmul(rhs.into_tensor()),
    }
}

/// `linear` applied to `input`: on Flex, what Burn's `Linear::forward` does for a matrix of
/// rows (the product, then the bias added, its gradient summed over the rows) with the product
/// above; elsewhere Burn's own.
pub(crate) fn linear(linear: &Linear, input: Tensor<2>) -> Tensor<2> {
    let input = match unwrap(input) {
        Unwrapped::Other(input) => return linear.forward(input),
        flex => flex.into_tensor(),
    };
    let product = matmul(input, linear.weight.val());
    match &linear.bias {
        Some(bias) => product + bias.val().unsqueeze_dim(0),
        None => product,
    }
}

#[derive(Debug)]
struct MatmulBackward;

/// The operands the gradients need: `lhs` for `rhs`'s, `rhs` for `lhs`'s.
#[derive(Debug, Clone)]
struct Operands {
    lhs: Option<FlexTensor>,
    rhs: Option<FlexTensor>,
}

impl Backward<Flex, 2> for MatmulBackward {
    type State = Operands;

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let Operands { lhs, rhs } = ops.state;
        binary::<Flex, _, _>(
            ops.parents,
            ops.node,
            grads,
            |grad| {
                let rhs = rhs.expect("kept when lhs needs a gradient");
                product(Matrices::of(&grad), Matrices::of(&rhs).transposed())
            },
            |grad| {
                let lhs = lhs.expect("kept when rhs needs a gradient");
                product(Matrices::of(&lhs).transposed(), Matrices::of(&grad))
            },
        );
    }
}

/// A tensor seen as a batch of matrices: where each lies in the buffer, and its strides.
struct Matrices<'a> {
    values: &'a [f32],
    batch: &'a [usize],
    batch_strides: &'a [isize],
    offset: usize,
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
}

impl<'a> Matrices<'a> {
    fn of(tensor: &'a FlexTensor) -> Self {
        let layout = tensor.layout();
        let (dims, strides) = (&layout.shape()[..], layout.strides());
        let rank = dims.len();
        Self {
            values: tensor.storage::<f32>(),
            batch: &dims[..rank - 2],
            batch_strides: &strides[..rank - 2],
            offset: layout.start_offset(),
            rows: dims[rank - 2],
            cols: dims[rank - 1],
            row_stride: strides[rank - 2],
            col_stride: strides[rank - 1],
        }
    }

    /// The same matrices transposed, as a view (Flex's `transpose`).
    fn transposed(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// The first element of matrix `index` of the batch (row-major over the batch dims).
    fn start(&self, index: usize) -> *const f32 {
        let mut rest = index;
        let mut offset = self.offset as isize;
        for (&dim, &stride) in self.batch.iter().zip(self.batch_strides).rev() {
            offset += (rest % dim) as isize * stride;
            rest /= dim;
        }
        // In bounds: Flex's layout keeps every element of the view inside its buffer.
        self.values[offset as usize..].as_ptr()
    }
}

/// `lhs · rhs`, matrix by matrix, into a new contiguous `[…batch, m, n]` tensor, split over
/// threads as Flex splits it.
fn product(lhs: Matrices, rhs: Matrices) -> FlexTensor {
    assert_eq!(lhs.cols, rhs.rows, "matmul: inner dimensions differ");
    assert_eq!(lhs.batch, rhs.batch, "matmul: leading dimensions differ");
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    let matrices: usize = lhs.batch.iter().product();
    let size = m * n;
    let shape: Vec<usize> = lhs.batch.iter().copied().chain([m, n]).collect();
    if k == 0 || size * matrices == 0 {
        return FlexTensor::from_data(TensorData::new(vec![0.0f32; size * matrices], shape));
    }
    let multiply = |index: usize, out: *mut f32, parallelism: Parallelism| {
        // SAFETY: `out` has room for the m × n row-major matrix gemm writes in full (it reads
        // nothing there: `read_dst` is false); the operands' pointers and strides describe
        // matrices inside their tensors' buffers.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                out,
                1,
                n as isize,
                false,
                lhs.start(index),
                lhs.col_stride,
                lhs.row_stride,
                rhs.start(index),
                rhs.col_stride,
                rhs.row_stride,
                0.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
    };
    let mut values = Vec::<f32>::with_capacity(size * matrices);
    let out = &mut values.spare_capacity_mut()[..size * matrices];
    let per_product = m.saturating_mul(n).saturating_mul(k);
    let total = per_product.saturating_mul(matrices);
    let split_products = per_product >= PARALLEL_PRODUCT;
    if lhs.batch.is_empty() {
        let parallelism = if split_products {
            Parallelism::Rayon(0)
        } else {
            Parallelism::None
        };
        multiply(0, out.as_mut_ptr().cast(), parallelism);
    } else if split_products && !(matrices >= 4 && total >= PARALLEL_BATCH) {
        for (index, out) in out.chunks_mut(size).enumerate() {
            multiply(index, out.as_mut_ptr().cast(), Parallelism::Rayon(0));
        }
    } else if total >= PARALLEL_BATCH && matrices > 1 {
        out.par_chunks_mut(size)
            .enumerate()
            .for_each(|(index, out)| multiply(index, out.as_mut_ptr().cast(), Parallelism::None));
    } else {
        for (index, out) in out.chunks_mut(size).enumerate() {
            multiply(index, out.as_mut_ptr().cast(), Parallelism::None);
        }
    }
    // SAFETY: gemm wrote every element of every matrix above.
    unsafe { values.set_len(size * matrices) };
    FlexTensor::from_data(TensorData::new(values, shape))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution};

    use super::*;

    fn random<const D: usize>(dims: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::random(dims, Distribution::Uniform(-1.0, 1.0), device)
    }

    fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
        tensor.into_data().try_to_vec().expect("an f32 tensor")
    }

    /// `Σ out ⊙ sin(0, 1, 2, …)`: a loss whose upstream gradient differs element by element.
    fn weighted_sum<const D: usize>(out: Tensor<D>) -> Tensor<1> {
        let weights = Tensor::<1, burn::tensor::Int>::arange(
            0..out.shape().num_elements() as i64,
            &out.device(),
        )
        .float()
        .sin()
        .reshape(out.shape());
        (out * weights).sum()
    }

    /// The product of `view(lhs)` and `view(rhs)` and the leaves' gradients equal Burn's bit
    /// for bit.
    fn assert_as_burn<const D: usize>(
        lhs: Tensor<D>,
        rhs: Tensor<D>,
        lhs_view: fn(Tensor<D>) -> Tensor<D>,
        rhs_view: fn(Tensor<D>) -> Tensor<D>,
    ) {
        let run = |multiply: fn(Tensor<D>, Tensor<D>) -> Tensor<D>| {
            let (lhs, rhs) = (lhs.clone().require_grad(), rhs.clone().require_grad());
            let out = multiply(lhs_view(lhs.clone()), rhs_view(rhs.clone()));
            let gradients = weighted_sum(out.clone()).backward();
            (
                values(out),
                values(lhs.grad(&gradients).expect("lhs takes part")),
                values(rhs.grad(&gradients).expect("rhs takes part")),
            )
        };
        let ours = run(matmul);
        let burns = run(Tensor::matmul);
        assert_eq!(ours.0, burns.0, "product");
        assert_eq!(ours.1, burns.1, "lhs gradient");
        assert_eq!(ours.2, burns.2, "rhs gradient");
    }

    #[test]
    fn matrices_and_their_gradients_are_burns() {
        let device = Device::flex().autodiff();
        let same = |tensor| tensor;
        // Small (one thread) and large enough for gemm to split the product over threads.
        assert_as_burn(random([5, 7], &device), random([7, 3], &device), same, same);
        let (lhs, rhs) = (random([300, 200], &device), random([200, 250], &device));
        assert_as_burn(lhs, rhs, same, same);
        // Transposed views, as the backward passes take them.
        let (lhs, rhs) = (random([40, 30], &device), random([20, 40], &device));
        assert_as_burn(lhs, rhs, Tensor::transpose, Tensor::transpose);
    }

    #[test]
    fn batches_of_strided_matrices_are_burns() {
        let device = Device::flex().autodiff();
        // Attention's: [sequences, queries, heads, head] rows seen as [sequences, heads,
        // queries, head], times the keys seen as [sequences, heads, head, keys].
        let (queries, keys) = (random([3, 4, 9, 8], &device), random([3, 4, 9, 8], &device));
        assert_as_burn(
            queries,
            keys,
            |queries| queries.swap_dims(1, 2),
            |keys| keys.swap_dims(1, 2).swap_dims(2, 3),
        );
        let same = |tensor| tensor;
        assert_as_burn(
            random([2, 3, 4], &device),
            random([2, 4, 5], &device),
            same,
            same,
        );
        // Products of a batch large enough for Flex to split each over threads.
        let (lhs, rhs) = (
            random([2, 200, 200], &device),
            random([2, 200, 200], &device),
        );
        assert_as_burn(lhs, rhs, same, same);
        // Many small products, split over threads one product each.
        let (lhs, rhs) = (random([64, 40, 40], &device), random([64, 40, 40], &device));
        assert_as_burn(lhs, rhs, same, same);
    }

    #[test]
    fn without_autodiff_and_for_empty_products() {
        let device = Device::flex();
        let (lhs, rhs) = (random([6, 5], &device), random([5, 4], &device));
        assert_eq!(
            values(matmul(lhs.clone(), rhs.clone())),
            values(lhs.matmul(rhs))
        );
        let empty = matmul(random([3, 0], &device), random([0, 2], &device));
        assert_eq!(values(empty), vec![0.0; 6]);
    }

    #[test]
    fn a_linear_layer_is_burns() {
        let device = Device::flex().autodiff();
        let layer = burn::nn::LinearConfig::new(16, 24).init(&device);
        let bias = layer.bias.as_ref().expect("a bias").val();
        let input = random([10, 16], &device).require_grad();
        let ours = linear(&layer, input.clone());
        let burns = layer.forward(input.clone());
        assert_eq!(values(ours.clone()), values(burns.clone()));
        let (ours, burns) = (
            weighted_sum(ours).backward(),
            weighted_sum(burns).backward(),
        );
        let grad = |tensor: Tensor<2>, gradients| values(tensor.grad(gradients).expect("in"));
        assert_eq!(grad(input.clone(), &ours), grad(input, &burns), "input");
        let weight = layer.weight.val();
        assert_eq!(grad(weight.clone(), &ours), grad(weight, &burns), "weight");
        let bias_grad = |gradients| values(bias.grad(gradients).expect("in"));
        assert_eq!(bias_grad(&ours), bias_grad(&burns), "bias");
    }
}
