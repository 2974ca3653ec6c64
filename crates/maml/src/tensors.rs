//! Small bridges between the model's tensors and the host.

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::{Classifier, MamlError};

/// The device the model's parameters live on.
pub(crate) fn device_of<M: Module>(model: &M) -> Device {
    model
        .devices()
        .into_iter()
        .next()
        .expect("a classifier has parameters")
}

/// The values of a float tensor, read back to the host (one synchronisation).
pub(crate) fn read_floats<const D: usize>(tensor: Tensor<D>) -> Vec<f64> {
    tensor
        .into_data()
        .try_into_vec_as::<f64>()
        .expect("converted to f64 just above")
}

/// Errors unless `model` can take every example batched with `options`.
pub(crate) fn check_examples<M: Classifier>(
    examples: &[&M::Example],
    model: &M,
    options: &M::BatchOptions,
) -> Result<(), MamlError> {
    examples
        .iter()
        .try_for_each(|example| model.check(example, options))
}

/// The labels of `examples` as a `[examples]` tensor for [`cross_entropy`].
pub(crate) fn labels_tensor<M: Classifier>(
    examples: &[&M::Example],
    device: &Device,
) -> Tensor<1, Int> {
    let labels: Vec<i64> = examples
        .iter()
        .map(|example| M::label(example) as i64)
        .collect();
    Tensor::from_data(TensorData::new(labels, [examples.len()]), device)
}

/// Mean cross-entropy over the batch, as `torch.nn.functional.cross_entropy` computes it.
/// Returns a one-element tensor.
pub fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let log_probs = log_softmax(logits, 1);
    log_probs.gather(1, labels.unsqueeze_dim(1)).mean().neg()
}

/// The [`Classifier::length`] of each example.
pub(crate) fn lengths<M: Classifier>(examples: &[&M::Example]) -> Vec<usize> {
    examples.iter().map(|example| M::length(example)).collect()
}

/// Positions of `examples` ordered by length (stable), so batches cut from it need little
/// padding.
pub(crate) fn by_length<M: Classifier>(examples: &[&M::Example]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&position| M::length(examples[position]));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_is_the_mean_negative_log_likelihood() {
        let device = Device::flex();
        let logits = Tensor::<2>::from_data(
            TensorData::new(vec![0.0f32, 0.0, 2.0, 0.0], [2, 2]),
            &device,
        );
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1], [2]), &device);
        let loss: f32 = cross_entropy(logits, labels).into_scalar();
        let expected = (2f32.ln() + (1.0 + 2f32.exp()).ln()) / 2.0;
        assert!((loss - expected).abs() < 1e-6, "{loss} vs {expected}");
    }
}
