//! Adam with decoupled weight decay (AdamW; none: Adam) as one pass over each parameter.
//!
//! Burn's `AdamW` updates a parameter through about ten tensor operations (moments, bias
//! corrections, square root, division, decay, step), each a pass over memory into a freshly
//! allocated tensor; for MiniLM's 11.7 M-parameter word embedding, updated in full at every
//! inner step, that was ≈ 7 % of a meta-step on Flex. Here each parameter is read once and its
//! moments updated in place. Every element goes through exactly Burn's `f32` operations in
//! Burn's order (no fused multiply-add), so the result is bit for bit Burn's: seeded runs do not
//! change. Tensors that are not Flex `f32` take Burn's `AdamW` itself.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::optim::{
    AdamConfig, AdamState, AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState, LearningRate,
    Optimizer,
};
use std::mem::MaybeUninit;

use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use super::simd::{self, multiversion};
use super::{CHUNK, Unwrapped, contiguous_f32, into_unique_contiguous, unwrap};

const BETA_1: f32 = 0.9;
const BETA_2: f32 = 0.999;

/// Burn's `Adam` (`weight_decay` `None`) or `AdamW` (decoupled `weight_decay`) with
/// β = (0.9, 0.999) and `epsilon`, computed in one pass per parameter on Flex. Burn's two
/// optimizers round the same update differently; each is reproduced as it is. The state is
/// `AdamW`'s for both (the same record as `Adam`'s: one `momentum` field).
#[derive(Debug, Clone, Copy)]
pub struct FusedAdam {
    epsilon: f32,
    weight_decay: Option<f32>,
}

impl FusedAdam {
    /// Burn's `Adam` with `epsilon`.
    pub fn adam(epsilon: f32) -> Self {
        Self {
            epsilon,
            weight_decay: None,
        }
    }

    /// Burn's `AdamW` with `epsilon` and decoupled `weight_decay`.
    pub fn adam_w(epsilon: f32, weight_decay: f32) -> Self {
        Self {
            epsilon,
            weight_decay: Some(weight_decay),
        }
    }

    /// Burn's own optimizer, for tensors off Flex.
    fn burn_step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        momentum: Option<AdaptiveMomentumState<D>>,
    ) -> (Tensor<D>, Option<AdamWState<D>>) {
        match self.weight_decay {
            None => {
                let adam = AdamConfig::new()
                    .with_beta_1(BETA_1)
                    .with_beta_2(BETA_2)
                    .with_epsilon(self.epsilon)
                    .build();
                let (tensor, state) = adam.step(lr, tensor, grad, momentum.map(AdamState::new));
                (tensor, state.map(|state| AdamWState::new(state.momentum)))
            }
            Some(weight_decay) => {
                let adam_w = AdamWConfig::new()
                    .with_beta_1(BETA_1)
                    .with_beta_2(BETA_2)
                    .with_epsilon(self.epsilon)
                    .with_weight_decay(weight_decay)
                    .build();
                adam_w.step(lr, tensor, grad, momentum.map(AdamWState::new))
            }
        }
    }

    /// The scalars of step `time` (1-based), rounded as Burn rounds them.
    fn scalars(&self, lr: LearningRate, time: usize) -> Step {
        let t = time as i32;
        let rule = match self.weight_decay {
            None => {
                let bias_correction_2 = (1.0 - BETA_2.powi(t)).sqrt();
                Rule::Adam {
                    moment_factor: bias_correction_2 / (1.0 - BETA_1.powi(t)),
                    epsilon: self.epsilon * bias_correction_2,
                }
            }
            Some(weight_decay) => {
                // In f64, rounded to f32 once, as Burn's `mul_scalar` does.
                let decay_rate = lr * f64::from(weight_decay);
                Rule::AdamW {
                    correction_1: 1.0 - BETA_1.powi(t),
                    correction_2: 1.0 - BETA_2.powi(t),
                    epsilon: self.epsilon,
                    keep: (decay_rate != 0.0).then_some((1.0 - decay_rate) as f32),
                }
            }
        };
        Step {
            rule,
            lr: lr as f32,
        }
    }
}

/// What one update computes besides the moments.
#[derive(Debug, Clone, Copy)]
struct Step {
    rule: Rule,
    lr: f32,
}

#[derive(Debug, Clone, Copy)]
enum Rule {
    /// `Δ = m · moment_factor / (√v + epsilon)`; `p ← p − lr · Δ`.
    Adam { moment_factor: f32, epsilon: f32 },
    /// `Δ = (m / correction_1) / (√(v / correction_2) + epsilon)`; `p ← p · keep − lr · Δ`.
    AdamW {
        correction_1: f32,
        correction_2: f32,
        epsilon: f32,
        keep: Option<f32>,
    },
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        // Moved out of the state, not cloned: a moment held twice would be copied to be written.
        let moments = state.map(|state| {
            let momentum = state.momentum;
            let amsgrad = momentum.max_moment_2;
            let moments = (unwrap(momentum.moment_1), unwrap(momentum.moment_2));
            (momentum.time, moments, amsgrad)
        });
        use Unwrapped::Plain;
        match (unwrap(tensor), unwrap(grad), moments) {
            (Plain(param), Plain(grad), None) => self.fused(lr, 1, param, grad, None),
            (Plain(param), Plain(grad), Some((time, (Plain(m), Plain(v)), None))) => {
                self.fused(lr, time + 1, param, grad, Some((m, v)))
            }
            (param, grad, moments) => {
                let momentum = moments.map(|(time, (m, v), amsgrad)| AdaptiveMomentumState {
                    time,
                    moment_1: m.into_tensor(),
                    moment_2: v.into_tensor(),
                    max_moment_2: amsgrad,
                });
                self.burn_step(lr, param.into_tensor(), grad.into_tensor(), momentum)
            }
        }
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <AdamW as Optimizer>::to_device(state, device)
    }
}

impl FusedAdam {
    /// Step `time` (1-based) on Flex tensors.
    fn fused<const D: usize>(
        &self,
        lr: LearningRate,
        time: usize,
        param: FlexTensor,
        grad: FlexTensor,
        moments: Option<(FlexTensor, FlexTensor)>,
    ) -> (Tensor<D>, Option<AdamWState<D>>) {
        let (param, moment_1, moment_2) = update(param, grad, moments, self.scalars(lr, time));
        let momentum = AdaptiveMomentumState::new(
            time,
            Tensor::from_primitive::<Flex>(moment_1),
            Tensor::from_primitive::<Flex>(moment_2),
        );
        (
            Tensor::from_primitive::<Flex>(param),
            Some(AdamWState::new(momentum)),
        )
    }
}

/// The new parameter and moments. After the first step each is updated in its own buffer
/// (copied first only if someone else holds it). The first step reads the parameter where it
/// lies (in the inner loop, the meta-model's) and writes the new parameter and both moments
/// into fresh buffers, in the same pass. The gradient is only read, and freed after.
fn update(
    param: FlexTensor,
    grad: FlexTensor,
    moments: Option<(FlexTensor, FlexTensor)>,
    step: Step,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let grad = contiguous_f32(&grad);
    let level = simd::active();
    let Some((moment_1, moment_2)) = moments else {
        let shape = param.layout().shape().clone();
        let old = contiguous_f32(&param);
        let len = old.len();
        let [mut new, mut moment_1, mut moment_2] = [(); 3].map(|()| Vec::with_capacity(len));
        new.spare_capacity_mut()[..len]
            .par_chunks_mut(CHUNK)
            .zip(moment_1.spare_capacity_mut()[..len].par_chunks_mut(CHUNK))
            .zip(moment_2.spare_capacity_mut()[..len].par_chunks_mut(CHUNK))
            .zip(old.par_chunks(CHUNK).zip(grad.par_chunks(CHUNK)))
            .for_each(|(((new, m), v), (old, grads))| {
                first_update_chunk(level, old, new, m, v, grads, step)
            });
        // SAFETY: the chunks above cover all `len` elements of each, and every one was written.
        unsafe {
            new.set_len(len);
            moment_1.set_len(len);
            moment_2.set_len(len);
        }
        return [new, moment_1, moment_2]
            .map(|values| FlexTensor::from_data(TensorData::new(values, shape.clone())))
            .into();
    };
    let mut out = into_unique_contiguous(param);
    let (mut moment_1, mut moment_2) = (
        into_unique_contiguous(moment_1),
        into_unique_contiguous(moment_2),
    );
    out.try_storage_mut::<f32>()
        .expect("a unique buffer")
        .par_chunks_mut(CHUNK)
        .zip(
            moment_1
                .try_storage_mut::<f32>()
                .expect("a unique buffer")
                .par_chunks_mut(CHUNK),
        )
        .zip(
            moment_2
                .try_storage_mut::<f32>()
                .expect("a unique buffer")
                .par_chunks_mut(CHUNK),
        )
        .zip(grad.par_chunks(CHUNK))
        .for_each(|(((params, m), v), grads)| update_chunk(level, params, m, v, grads, step));
    (out, moment_1, moment_2)
}

multiversion! {
    /// The first step: new parameters and moments written from the old parameters and the
    /// gradients alone.
    fn first_update_chunk<A>(
        old: &[f32],
        params: &mut [MaybeUninit<f32>],
        m: &mut [MaybeUninit<f32>],
        v: &mut [MaybeUninit<f32>],
        grads: &[f32],
        step: Step,
    ) {
        let elements = params.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(old.iter().zip(grads));
        for (((param, m), v), (&p, &grad)) in elements {
            let (new_m, new_v) = (grad * (1.0 - BETA_1), grad * grad * (1.0 - BETA_2));
            param.write(adam_update(p, new_m, new_v, step));
            m.write(new_m);
            v.write(new_v);
        }
    }
}

multiversion! {
    /// Every later step: parameters and moments updated in place.
    fn update_chunk<A>(params: &mut [f32], m: &mut [f32], v: &mut [f32], grads: &[f32], step: Step) {
        let elements = params.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(grads);
        for (((param, m), v), &grad) in elements {
            *m = *m * BETA_1 + grad * (1.0 - BETA_1);
            *v = *v * BETA_2 + grad * grad * (1.0 - BETA_2);
            *param = adam_update(*param, *m, *v, step);
        }
    }
}

/// The parameter `p` after a step with the moments `m` and `v`, through exactly Burn's `f32`
/// operations in Burn's order.
#[inline(always)]
fn adam_update(p: f32, m: f32, v: f32, step: Step) -> f32 {
    match step.rule {
        Rule::Adam {
            moment_factor,
            epsilon,
        } => p - ((m * moment_factor) / (v.sqrt() + epsilon)) * step.lr,
        Rule::AdamW {
            correction_1,
            correction_2,
            epsilon,
            keep,
        } => {
            let delta = (m / correction_1) / ((v / correction_2).sqrt() + epsilon);
            let kept = match keep {
                Some(keep) => p * keep,
                None => p,
            };
            kept - delta * step.lr
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;
    use crate::fused::simd::SimdLevel;

    /// One optimizer step of Burn's, with its state as `AdamW`'s.
    type BurnStep = Box<
        dyn FnMut(
            LearningRate,
            Tensor<2>,
            Tensor<2>,
            Option<AdamWState<2>>,
        ) -> (Tensor<2>, Option<AdamWState<2>>),
    >;

    fn burn_adam(epsilon: f32) -> BurnStep {
        let adam = AdamConfig::new().with_epsilon(epsilon).build();
        Box::new(move |lr, tensor, grad, state| {
            let state = state.map(|state| AdamState::new(state.momentum));
            let (tensor, state) = adam.step(lr, tensor, grad, state);
            (tensor, state.map(|state| AdamWState::new(state.momentum)))
        })
    }

    fn burn_adam_w(epsilon: f32, weight_decay: f32) -> BurnStep {
        let adam_w = AdamWConfig::new()
            .with_epsilon(epsilon)
            .with_weight_decay(weight_decay)
            .build();
        Box::new(move |lr, tensor, grad, state| adam_w.step(lr, tensor, grad, state))
    }

    fn bits<const D: usize>(tensor: Tensor<D>) -> Vec<u32> {
        let values: Vec<f32> = tensor.into_data().try_to_vec().expect("f32 values");
        values.into_iter().map(f32::to_bits).collect()
    }

    /// Three steps of `fused` and of `burn` from the same parameter with the same gradients:
    /// parameters and moments equal to the bit, and the parameter passed in left as it was.
    fn assert_same_steps(fused: FusedAdam, mut burn: BurnStep, device: &Device) {
        // 33 000 elements: three parallel chunks, the last one short.
        let shape = [33, 1000];
        let mut ours = Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), device);
        let mut theirs = ours.clone();
        let (mut our_state, mut their_state) = (None, None);
        for step in 1..=3 {
            let grad = Tensor::<2>::random(shape, Distribution::Normal(0.0, 0.1), device);
            let before = bits(ours.clone());
            let (next, state) = fused.step(2e-3, ours.clone(), grad.clone(), our_state);
            assert!(
                bits(ours) == before,
                "step {step}: the parameter passed in changed"
            );
            let (their_next, their_next_state) = burn(2e-3, theirs, grad, their_state);
            assert!(
                bits(next.clone()) == bits(their_next.clone()),
                "step {step}: parameters"
            );
            let ours_m = &state.as_ref().expect("a state").momentum;
            let theirs_m = &their_next_state.as_ref().expect("a state").momentum;
            assert_eq!(ours_m.time, theirs_m.time);
            assert!(bits(ours_m.moment_1.clone()) == bits(theirs_m.moment_1.clone()));
            assert!(bits(ours_m.moment_2.clone()) == bits(theirs_m.moment_2.clone()));
            (ours, theirs) = (next, their_next);
            (our_state, their_state) = (state, their_next_state);
        }
    }

    #[test]
    fn adam_on_flex_is_burns_adam_to_the_bit() {
        let flex = Tensor::<2>::zeros([2, 2], &Device::flex());
        assert!(
            matches!(unwrap(flex), Unwrapped::Plain(_)),
            "these tensors take the one-pass update"
        );
        assert_same_steps(FusedAdam::adam(1e-8), burn_adam(1e-8), &Device::flex());
    }

    #[test]
    fn adam_w_on_flex_is_burns_adam_w_to_the_bit() {
        for weight_decay in [0.0, 0.01] {
            assert_same_steps(
                FusedAdam::adam_w(1e-8, weight_decay),
                burn_adam_w(1e-8, weight_decay),
                &Device::flex(),
            );
        }
    }

    #[test]
    fn tensors_off_plain_flex_take_burns_own_optimizer() {
        let tracked = Device::flex().autodiff();
        assert_same_steps(FusedAdam::adam(1e-8), burn_adam(1e-8), &tracked);
        assert_same_steps(
            FusedAdam::adam_w(1e-8, 0.01),
            burn_adam_w(1e-8, 0.01),
            &tracked,
        );
    }

    #[test]
    fn every_simd_level_computes_the_same_bits() {
        let values = || -> Vec<f32> {
            Tensor::<1>::random([1000], Distribution::Normal(0.0, 1.0), &Device::flex())
                .into_data()
                .try_to_vec()
                .expect("f32 values")
        };
        let (params, grads, m) = (values(), values(), values());
        let v: Vec<f32> = values().iter().map(|x| x * x).collect();
        let steps = [
            FusedAdam::adam(1e-8).scalars(1e-3, 2),
            FusedAdam::adam_w(1e-8, 0.01).scalars(1e-3, 3),
        ];
        for step in steps {
            let run = |level| {
                let (mut out, mut m, mut v) = (params.clone(), m.clone(), v.clone());
                update_chunk(level, &mut out, &mut m, &mut v, &grads, step);
                [out, m, v].map(|values| values.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
            };
            let first = |level| {
                let len = params.len();
                let [mut out, mut m, mut v] = [(); 3].map(|()| Vec::with_capacity(len));
                first_update_chunk(
                    level,
                    &params,
                    &mut out.spare_capacity_mut()[..len],
                    &mut m.spare_capacity_mut()[..len],
                    &mut v.spare_capacity_mut()[..len],
                    &grads,
                    step,
                );
                // SAFETY: the kernel wrote every element.
                for values in [&mut out, &mut m, &mut v] {
                    unsafe { values.set_len(len) };
                }
                [out, m, v].map(|values| values.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
            };
            let (portable, portable_first) = (run(SimdLevel::Portable), first(SimdLevel::Portable));
            for level in SimdLevel::supported() {
                assert!(run(level) == portable, "{level:?}, {step:?}");
                assert!(
                    first(level) == portable_first,
                    "first step, {level:?}, {step:?}"
                );
            }
        }
    }
}
