//! The inner loop: a copy of the meta-model adapted to one support set.

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use model::{BertClassifier, BertInput, cross_entropy, labels_tensor};
use rand::Rng;
use tasks::{EncodedReview, plan_batches};

use crate::config::{AdaptScope, Batching, InnerLoopConfig};
use crate::tensors::{by_length, collate_for};

/// PyTorch's Adam epsilon (Burn's default is 1e-5).
pub(crate) const TORCH_ADAM_EPSILON: f32 = 1e-8;

/// A copy of the meta-model after the inner loop, and the loss of each inner batch (before its
/// update) as device tensors, not yet read back.
pub(crate) struct Adapted {
    pub(crate) model: BertClassifier,
    pub(crate) inner_losses: Vec<Tensor<1>>,
    /// Positions (padding included) of the support batches the whole model ran forward and
    /// backward on; 0 for ANIL's head-only loop, which trains on pooled features.
    pub(crate) padded_tokens: usize,
}

/// Adapts a clone of `meta` (Burn clones share their tensors; updates allocate new ones, so
/// `meta` is never modified) with a fresh Adam over `config.epochs` passes of `support`.
/// `device` is the meta-model's autodiff device.
pub(crate) fn adapt(
    meta: &BertClassifier,
    support: &[&EncodedReview],
    config: &InnerLoopConfig,
    device: &Device,
    rng: &mut impl Rng,
) -> Adapted {
    let optimizer = AdamConfig::new().with_epsilon(TORCH_ADAM_EPSILON).init();
    let copy = task_copy(meta);
    match config.scope {
        AdaptScope::Full => adapt_all(copy, support, config, device, optimizer, rng),
        AdaptScope::HeadOnly => adapt_head(copy, support, config, device, optimizer, rng),
    }
}

/// `meta` with every parameter a new leaf of the autodiff graph (the same tensors, not copied).
/// Burn puts operations on shared leaves into one graph behind one lock, so tasks on different
/// threads starting from the meta-model's own leaves would wait on each other's backward pass.
pub(crate) fn task_copy(meta: &BertClassifier) -> BertClassifier {
    struct Detach;
    impl ModuleMapper for Detach {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            param.map(Tensor::detach)
        }
    }
    meta.clone().map(&mut Detach)
}

fn adapt_all(
    mut model: BertClassifier,
    support: &[&EncodedReview],
    config: &InnerLoopConfig,
    device: &Device,
    mut optimizer: burn::optim::ModuleOptimizer,
    rng: &mut impl Rng,
) -> Adapted {
    let batching = &config.batching;
    let mut inner_losses = Vec::new();
    let mut padded_tokens = 0;
    for _ in 0..config.epochs {
        for positions in plan_batches(support, batching.batch_size, batching.order, rng) {
            let items: Vec<&EncodedReview> = positions.iter().map(|&p| support[p]).collect();
            let batch = collate_for(&model, &items, batching.padding, batching.max_seq_len);
            padded_tokens += batch.padded_tokens();
            let logits = model.forward(&BertInput::from_batch(&batch, device));
            let loss = cross_entropy(logits, labels_tensor(&batch, device));
            inner_losses.push(loss.clone().inner());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(config.lr, model, grads);
        }
    }
    Adapted {
        model,
        inner_losses,
        padded_tokens,
    }
}

/// ANIL's inner loop: only the head learns, on pooled features computed once.
fn adapt_head(
    mut model: BertClassifier,
    support: &[&EncodedReview],
    config: &InnerLoopConfig,
    device: &Device,
    mut optimizer: burn::optim::ModuleOptimizer,
    rng: &mut impl Rng,
) -> Adapted {
    let batching = &config.batching;
    let features = pooled_features(&model, support, batching, device);
    let labels: Vec<i64> = support.iter().map(|example| example.label as i64).collect();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [support.len()]), device);
    let mut inner_losses = Vec::new();
    for _ in 0..config.epochs {
        for positions in plan_batches(support, batching.batch_size, batching.order, rng) {
            let rows = positions_tensor(&positions, device);
            let logits = model.classify(features.clone().select(0, rows.clone()));
            let loss = cross_entropy(logits, labels.clone().select(0, rows));
            inner_losses.push(loss.clone().inner());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(config.lr, model, grads);
        }
    }
    Adapted {
        model,
        inner_losses,
        padded_tokens: 0,
    }
}

/// The pooled representation of every support example, `[support, hidden]` in support order,
/// computed without dropout or gradient in length-sorted batches, as a constant on `device`.
fn pooled_features(
    model: &BertClassifier,
    support: &[&EncodedReview],
    batching: &Batching,
    device: &Device,
) -> Tensor<2> {
    let encoder = model.valid();
    let plain = device.clone().inner();
    let order = by_length(support);
    let chunks: Vec<Tensor<2>> = order
        .chunks(batching.batch_size)
        .map(|chunk| {
            let items: Vec<&EncodedReview> = chunk.iter().map(|&p| support[p]).collect();
            let batch = collate_for(model, &items, batching.padding, batching.max_seq_len);
            encoder.pooled(&BertInput::from_batch(&batch, &plain))
        })
        .collect();
    let mut row_of = vec![0usize; support.len()];
    for (row, &position) in order.iter().enumerate() {
        row_of[position] = row;
    }
    Tensor::cat(chunks, 0)
        .select(0, positions_tensor(&row_of, &plain))
        .autodiff()
}

fn positions_tensor(positions: &[usize], device: &Device) -> Tensor<1, Int> {
    let values: Vec<i64> = positions.iter().map(|&p| p as i64).collect();
    Tensor::from_data(TensorData::new(values, [positions.len()]), device)
}
