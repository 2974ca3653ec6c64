//! The inner loop: a copy of the meta-model adapted to one support set.

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::Rng;

use crate::config::{AdaptScope, Batching, InnerLoopConfig};
use crate::tensors::{by_length, cross_entropy, labels_tensor, lengths};
use crate::{Classifier, MamlError, plan_batches};

/// PyTorch's Adam epsilon (Burn's default is 1e-5).
pub(crate) const TORCH_ADAM_EPSILON: f32 = 1e-8;

/// A copy of the meta-model after the inner loop, and the loss of each inner batch (before its
/// update) as device tensors, not yet read back.
pub(crate) struct Adapted<M> {
    pub(crate) model: M,
    pub(crate) inner_losses: Vec<Tensor<1>>,
    /// [`crate::Forward::work`] of the support batches the whole model ran forward and
    /// backward on; 0 for ANIL's head-only loop, which trains on features computed once.
    pub(crate) work: usize,
    /// Each inner batch as positions in the support set, in the order trained on.
    pub(crate) support_batches: Vec<Vec<usize>>,
}

/// Adapts a clone of `meta` (Burn clones share their tensors; updates allocate new ones, so
/// `meta` is never modified) with a fresh Adam over `config.epochs` passes of `support`.
/// `device` is the meta-model's autodiff device.
pub(crate) fn adapt<M: Classifier>(
    meta: &M,
    support: &[&M::Example],
    config: &InnerLoopConfig<M::BatchOptions>,
    device: &Device,
    rng: &mut impl Rng,
) -> Result<Adapted<M>, MamlError> {
    let optimizer = M::adam(None);
    let copy = task_copy(meta);
    match config.scope {
        AdaptScope::Full => Ok(adapt_all(copy, support, config, device, optimizer, rng)),
        AdaptScope::HeadOnly => adapt_head(copy, support, config, device, optimizer, rng),
    }
}

/// `meta` with every parameter a new leaf of the autodiff graph (the same tensors, not copied).
/// Burn puts operations on shared leaves into one graph behind one lock, so tasks on different
/// threads starting from the meta-model's own leaves would wait on each other's backward pass.
pub(crate) fn task_copy<M: Module>(meta: &M) -> M {
    struct Detach;
    impl ModuleMapper for Detach {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            param.map(Tensor::detach)
        }
    }
    meta.clone().map(&mut Detach)
}

fn adapt_all<M: Classifier>(
    mut model: M,
    support: &[&M::Example],
    config: &InnerLoopConfig<M::BatchOptions>,
    device: &Device,
    mut optimizer: burn::optim::ModuleOptimizer,
    rng: &mut impl Rng,
) -> Adapted<M> {
    let batching = &config.batching;
    let support_lengths = lengths::<M>(support);
    let mut inner_losses = Vec::new();
    let mut work = 0;
    let mut support_batches = Vec::new();
    for _ in 0..config.epochs {
        for positions in plan_batches(&support_lengths, batching.batch_size, batching.order, rng) {
            let items: Vec<&M::Example> = positions.iter().map(|&p| support[p]).collect();
            let forward = model.forward(&items, &batching.options, device);
            work += forward.work;
            let loss = cross_entropy(forward.logits, labels_tensor::<M>(&items, device));
            inner_losses.push(loss.clone().inner());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(config.lr, model, grads);
            support_batches.push(positions);
        }
    }
    Adapted {
        model,
        inner_losses,
        work,
        support_batches,
    }
}

/// ANIL's inner loop: only the head learns, on pooled features computed once.
fn adapt_head<M: Classifier>(
    mut model: M,
    support: &[&M::Example],
    config: &InnerLoopConfig<M::BatchOptions>,
    device: &Device,
    mut optimizer: burn::optim::ModuleOptimizer,
    rng: &mut impl Rng,
) -> Result<Adapted<M>, MamlError> {
    let batching = &config.batching;
    let features = head_features(&model, support, batching, device)?;
    let labels = labels_tensor::<M>(support, device);
    let support_lengths = lengths::<M>(support);
    let mut inner_losses = Vec::new();
    let mut support_batches = Vec::new();
    for _ in 0..config.epochs {
        for positions in plan_batches(&support_lengths, batching.batch_size, batching.order, rng) {
            let rows = positions_tensor(&positions, device);
            let logits = model
                .head_logits(features.clone().select(0, rows.clone()))
                .ok_or(MamlError::NoHead)?;
            let loss = cross_entropy(logits, labels.clone().select(0, rows));
            inner_losses.push(loss.clone().inner());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(config.lr, model, grads);
            support_batches.push(positions);
        }
    }
    Ok(Adapted {
        model,
        inner_losses,
        work: 0,
        support_batches,
    })
}

/// What the head reads for every support example, `[support, features]` in support order,
/// computed without dropout or gradient in length-sorted batches, as a constant on `device`.
fn head_features<M: Classifier>(
    model: &M,
    support: &[&M::Example],
    batching: &Batching<M::BatchOptions>,
    device: &Device,
) -> Result<Tensor<2>, MamlError> {
    let encoder = model.valid();
    let plain = device.clone().inner();
    let order = by_length::<M>(support);
    let chunks: Vec<Tensor<2>> = order
        .chunks(batching.batch_size)
        .map(|chunk| {
            let items: Vec<&M::Example> = chunk.iter().map(|&p| support[p]).collect();
            encoder
                .head_features(&items, &batching.options, &plain)
                .ok_or(MamlError::NoHead)
        })
        .collect::<Result<_, _>>()?;
    let mut row_of = vec![0usize; support.len()];
    for (row, &position) in order.iter().enumerate() {
        row_of[position] = row;
    }
    Ok(Tensor::cat(chunks, 0)
        .select(0, positions_tensor(&row_of, &plain))
        .autodiff())
}

fn positions_tensor(positions: &[usize], device: &Device) -> Tensor<1, Int> {
    let values: Vec<i64> = positions.iter().map(|&p| p as i64).collect();
    Tensor::from_data(TensorData::new(values, [positions.len()]), device)
}
