//! Dynamic loss scaling for half-precision training, as `torch.amp.GradScaler` does it.
//!
//! A model whose backward pass runs in f16 loses every gradient below f16's smallest number
//! (6·10⁻⁸) to zero. Scaling the loss by `S` before the backward pass scales every gradient by
//! `S` too, into f16's range; the gradients are divided by `S` again before the optimizer sees
//! them. `S` is a power of two, so both multiplications are exact. When `S` is too large some
//! gradient overflows: that update is skipped and `S` halves. After `growth_interval`
//! updates in a row without overflow, `S` doubles.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::gradients::scale;
use crate::tensors::read_floats;

/// `torch.amp.GradScaler`'s settings (its defaults are [`LossScaling::default`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossScaling {
    /// The first scale (2¹⁶).
    pub init_scale: f32,
    /// What the scale is multiplied by after `growth_interval` clean updates (2).
    pub growth_factor: f32,
    /// What the scale is multiplied by after an overflow (0.5).
    pub backoff_factor: f32,
    /// Clean updates in a row before the scale grows (2000).
    pub growth_interval: usize,
}

impl Default for LossScaling {
    fn default() -> Self {
        Self {
            init_scale: 65536.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
        }
    }
}

/// The scale in use and the count towards its next growth: what a resumed run needs to go on
/// exactly (saved in checkpoints).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    /// The factor the loss is multiplied by before the backward pass.
    pub scale: f32,
    /// Clean updates since the scale last changed (GradScaler's growth tracker).
    pub clean_updates: usize,
}

impl LossScaler {
    /// A scaler at `config`'s first scale.
    pub fn new(config: &LossScaling) -> Self {
        Self {
            scale: config.init_scale,
            clean_updates: 0,
        }
    }

    /// The gradients of `loss` for `model`'s parameters, computed from `loss · scale` and
    /// divided by the scale again (exact: the scale is a power of two). They may have
    /// overflowed: check the update they make up with [`overflowed`] before applying it.
    pub fn gradients<M: Module>(&self, loss: Tensor<1>, model: &M) -> GradientsParams {
        let scaled = GradientsParams::from_grads((loss * self.scale).backward(), model);
        scale(model, scaled, 1.0 / self.scale)
    }

    /// GradScaler's `update`: after an overflow the scale shrinks by `backoff_factor`; after
    /// `growth_interval` clean updates in a row it grows by `growth_factor` (unless that would
    /// overflow f32).
    pub fn update(&mut self, config: &LossScaling, overflowed: bool) {
        if overflowed {
            self.scale *= config.backoff_factor;
            self.clean_updates = 0;
            return;
        }
        self.clean_updates += 1;
        if self.clean_updates >= config.growth_interval {
            let grown = self.scale * config.growth_factor;
            if grown.is_finite() {
                self.scale = grown;
            }
            self.clean_updates = 0;
        }
    }
}

/// A scaler with its settings: what a loop of backward passes carries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scaling {
    pub(crate) config: LossScaling,
    pub(crate) scaler: LossScaler,
}

impl Scaling {
    /// At `config`'s first scale, or `None` without loss scaling.
    pub(crate) fn start(config: Option<LossScaling>) -> Option<Self> {
        config.map(|config| Self {
            scaler: LossScaler::new(&config),
            config,
        })
    }

    /// [`LossScaler::update`].
    pub(crate) fn update(&mut self, overflowed: bool) {
        self.scaler.update(&self.config, overflowed);
    }

    /// What to report after `skipped_updates` skips.
    pub(crate) fn report(&self, skipped_updates: usize) -> ScalingReport {
        ScalingReport {
            scale: self.scaler.scale,
            skipped_updates,
        }
    }
}

/// The gradients of `loss` for `model`: plain backward without scaling (full precision), else
/// [`LossScaler::gradients`].
pub(crate) fn gradients<M: Module>(
    loss: Tensor<1>,
    model: &M,
    scaling: Option<&Scaling>,
) -> GradientsParams {
    match scaling {
        None => GradientsParams::from_grads(loss.backward(), model),
        Some(scaling) => scaling.scaler.gradients(loss, model),
    }
}

/// Whether an update whose gradients have global L2 norm `norm` (from
/// [`crate::gradients::global_norm`]) overflowed and is to be skipped. A NaN or infinity in any
/// gradient makes the norm non-finite, and so does a norm beyond f32's range, which no update
/// should follow either. Reads the norm back.
pub(crate) fn overflowed(norm: Tensor<1>) -> bool {
    !read_floats(norm)[0].is_finite()
}

/// What loss scaling did in one outer step or fine-tuning epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScalingReport {
    /// The scale after the step or epoch.
    pub scale: f32,
    /// Updates skipped because a gradient overflowed (inner-loop and outer updates, or
    /// fine-tuning batches).
    pub skipped_updates: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradients::global_norm;
    use burn::module::Param;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::{Device, TensorData};

    fn config() -> LossScaling {
        LossScaling {
            growth_interval: 3,
            ..LossScaling::default()
        }
    }

    #[test]
    fn the_scale_halves_on_overflow_and_doubles_after_the_growth_interval() {
        let config = config();
        let mut scaler = LossScaler::new(&config);
        assert_eq!(scaler.scale, 65536.0);
        scaler.update(&config, true);
        assert_eq!((scaler.scale, scaler.clean_updates), (32768.0, 0));
        scaler.update(&config, false);
        scaler.update(&config, false);
        assert_eq!((scaler.scale, scaler.clean_updates), (32768.0, 2));
        // An overflow restarts the count.
        scaler.update(&config, true);
        assert_eq!((scaler.scale, scaler.clean_updates), (16384.0, 0));
        for _ in 0..3 {
            scaler.update(&config, false);
        }
        assert_eq!((scaler.scale, scaler.clean_updates), (32768.0, 0));
    }

    #[test]
    fn the_scale_never_grows_to_infinity() {
        let config = LossScaling {
            growth_interval: 1,
            ..LossScaling::default()
        };
        let mut scaler = LossScaler {
            scale: f32::MAX / 1.5,
            clean_updates: 0,
        };
        scaler.update(&config, false);
        assert_eq!(scaler.scale, f32::MAX / 1.5);
    }

    fn layer(device: &Device) -> Linear {
        let layer = LinearConfig::new(2, 1).init(device);
        Linear {
            weight: Param::from_data(TensorData::new(vec![0.5f32, -0.25], [2, 1]), device),
            ..layer
        }
    }

    #[test]
    fn scaled_gradients_are_the_plain_ones_exactly() {
        let device = Device::flex().autodiff();
        let layer = layer(&device);
        let input = Tensor::<2>::from_data(TensorData::new(vec![3.0f32, 5.0], [1, 2]), &device);
        let loss = || layer.forward(input.clone()).sum().powi_scalar(2);
        let weight = |grads: GradientsParams| {
            grads
                .get::<2>(layer.weight.id)
                .expect("the weight has a gradient")
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        let plain = weight(gradients(loss(), &layer, None));
        let scaling = Scaling::start(Some(LossScaling::default()));
        let scaled = weight(gradients(loss(), &layer, scaling.as_ref()));
        assert_eq!(scaled, plain);
        // By hand: y = 3·0.5 − 5·0.25 + b, d(y²)/dw = 2y·x.
        let bias = layer
            .bias
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()[0];
        let y = 0.25 + bias;
        assert_eq!(plain, vec![2.0 * y * 3.0, 2.0 * y * 5.0]);
    }

    #[test]
    fn a_gradient_that_overflows_f16_once_scaled_is_refused() {
        let device = Device::flex().autodiff();
        let layer = layer(&device);
        let input = Tensor::<2>::from_data(TensorData::new(vec![3.0f32, 5.0], [1, 2]), &device);
        // A product in f16, as a half-precision model computes it: the gradient reaching it,
        // 2 · 2¹⁶ once scaled, is beyond f16's largest number (65504); unscaled it is 2.
        let loss = || {
            let half = burn::tensor::FloatDType::F16;
            let product = input
                .clone()
                .cast(half)
                .matmul(layer.weight.val().cast(half));
            product.cast(burn::tensor::FloatDType::F32).sum() * 2.0
        };
        let norm = |grads| global_norm(&layer, &grads).unwrap();
        assert!(!overflowed(norm(gradients(loss(), &layer, None))));
        let scaling = Scaling::start(Some(LossScaling::default()));
        assert!(overflowed(norm(gradients(
            loss(),
            &layer,
            scaling.as_ref()
        ))));
    }
}
