//! The inner loop: a copy of the meta-model adapted to one support set.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::Rng;

use crate::config::{AdaptScope, Batching, InnerLoopConfig};
use crate::gradients::global_norm;
use crate::loss_scaling::{Scaling, gradients, overflowed};
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
    /// The loss scaling after the loop (shrunk by each overflow in it), `None` without.
    pub(crate) scaling: Option<Scaling>,
    /// Inner updates skipped because their gradient overflowed.
    pub(crate) skipped_updates: usize,
}

/// Adapts a clone of `meta` (Burn clones share their tensors; updates allocate new ones, so
/// `meta` is never modified) with a fresh Adam over `config.epochs` passes of `support`.
/// `device` is the meta-model's autodiff device. With `scaling`, each backward pass is loss
/// scaled, and an update whose gradient overflows is skipped and shrinks the scale for the rest
/// of the loop.
pub(crate) fn adapt<M: Classifier>(
    meta: &M,
    support: &[&M::Example],
    config: &InnerLoopConfig<M::BatchOptions>,
    scaling: Option<Scaling>,
    device: &Device,
    rng: &mut impl Rng,
) -> Result<Adapted<M>, MamlError> {
    let mut inner = InnerLoop {
        model: task_copy(meta),
        optimizer: M::adam(None),
        lr: config.lr,
        scaling,
        skipped_updates: 0,
        inner_losses: Vec::new(),
        support_batches: Vec::new(),
    };
    let work = match config.scope {
        AdaptScope::Full => adapt_all(&mut inner, support, config, device, rng),
        AdaptScope::HeadOnly => adapt_head(&mut inner, support, config, device, rng)?,
    };
    Ok(Adapted {
        model: inner.model,
        inner_losses: inner.inner_losses,
        work,
        support_batches: inner.support_batches,
        scaling: inner.scaling,
        skipped_updates: inner.skipped_updates,
    })
}

/// The adapting copy and what its loop has recorded so far.
struct InnerLoop<M> {
    model: M,
    optimizer: burn::optim::ModuleOptimizer,
    lr: f64,
    scaling: Option<Scaling>,
    skipped_updates: usize,
    inner_losses: Vec<Tensor<1>>,
    support_batches: Vec<Vec<usize>>,
}

impl<M: Classifier> InnerLoop<M> {
    /// One inner update from the batch at `positions` with loss `loss` (skipped if its scaled
    /// gradient overflows).
    fn step(&mut self, loss: Tensor<1>, positions: Vec<usize>) {
        self.inner_losses.push(loss.clone().inner());
        let grads = gradients(loss, &self.model, self.scaling.as_ref());
        match &mut self.scaling {
            Some(scaling) if global_norm(&self.model, &grads).is_some_and(overflowed) => {
                self.skipped_updates += 1;
                scaling.update(true);
            }
            _ => self.model = self.optimizer.step(self.lr, self.model.clone(), grads),
        }
        self.support_batches.push(positions);
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

/// The whole model's inner loop; returns the work of its batches.
fn adapt_all<M: Classifier>(
    inner: &mut InnerLoop<M>,
    support: &[&M::Example],
    config: &InnerLoopConfig<M::BatchOptions>,
    device: &Device,
    rng: &mut impl Rng,
) -> usize {
    let batching = &config.batching;
    let support_lengths = lengths::<M>(support);
    let mut work = 0;
    for _ in 0..config.epochs {
        for positions in plan_batches(&support_lengths, batching.batch_size, batching.order, rng) {
            let items: Vec<&M::Example> = positions.iter().map(|&p| support[p]).collect();
            let forward = inner.model.forward(&items, &batching.options, device);
            work += forward.work;
            let loss = cross_entropy(forward.logits, labels_tensor::<M>(&items, device));
            inner.step(loss, positions);
        }
    }
    work
}

/// ANIL's inner loop: only the head learns, on pooled features computed once. Its work counts
/// nothing (no batch goes through the whole model).
fn adapt_head<M: Classifier>(
    inner: &mut InnerLoop<M>,
    support: &[&M::Example],
    config: &InnerLoopConfig<M::BatchOptions>,
    device: &Device,
    rng: &mut impl Rng,
) -> Result<usize, MamlError> {
    let batching = &config.batching;
    let features = head_features(&inner.model, support, batching, device)?;
    let labels = labels_tensor::<M>(support, device);
    let support_lengths = lengths::<M>(support);
    for _ in 0..config.epochs {
        for positions in plan_batches(&support_lengths, batching.batch_size, batching.order, rng) {
            let rows = positions_tensor(&positions, device);
            let logits = inner
                .model
                .head_logits(features.clone().select(0, rows.clone()))
                .ok_or(MamlError::NoHead)?;
            let loss = cross_entropy(logits, labels.clone().select(0, rows));
            inner.step(loss, positions);
        }
    }
    Ok(0)
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
