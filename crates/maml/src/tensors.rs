//! Small bridges between the model's tensors and the host.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use model::BertClassifier;
use tasks::{Batch, EncodedReview, Padding, collate};

use crate::MamlError;

/// The device the model's parameters live on.
pub(crate) fn device_of(model: &BertClassifier) -> Device {
    model
        .devices()
        .into_iter()
        .next()
        .expect("a BERT classifier has parameters")
}

/// The values of a float tensor, read back to the host (one synchronisation).
pub(crate) fn read_floats<const D: usize>(tensor: Tensor<D>) -> Vec<f64> {
    tensor
        .into_data()
        .try_into_vec_as::<f64>()
        .expect("converted to f64 just above")
}

/// Errors unless every label is one `model` predicts and every review fits `max_seq_len`.
pub(crate) fn check_examples(
    examples: &[&EncodedReview],
    model: &BertClassifier,
    max_seq_len: usize,
) -> Result<(), MamlError> {
    let num_labels = model.num_labels();
    let max_seq_len = max_seq_len.min(model.max_sequence_length());
    for example in examples {
        if example.label >= num_labels {
            return Err(MamlError::LabelOutOfRange {
                source_index: example.source_index,
                label: example.label,
                num_labels,
            });
        }
        if example.ids.len() > max_seq_len {
            return Err(MamlError::TooLong {
                source_index: example.source_index,
                len: example.ids.len(),
                max_seq_len,
            });
        }
    }
    Ok(())
}

/// `items` padded into one batch with the model's padding token.
pub(crate) fn collate_for(
    model: &BertClassifier,
    items: &[&EncodedReview],
    padding: Padding,
    max_seq_len: usize,
) -> Batch {
    let pad_id = model.config().pad_token_id.unwrap_or(0);
    collate(
        items,
        padding,
        max_seq_len,
        u32::try_from(pad_id).expect("token ids fit in u32"),
    )
}

/// Positions of `examples` ordered by token count (stable), so batches cut from it need little
/// padding.
pub(crate) fn by_length(examples: &[&EncodedReview]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&position| examples[position].ids.len());
    order
}
