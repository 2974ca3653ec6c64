//! Scoring a classifier on a set of examples.

use std::ops::ControlFlow;

use burn::tensor::{Device, Int, Tensor};

use crate::parallel::for_each_task;
use crate::tensors::{
    by_length, check_examples, cross_entropy, device_of, labels_tensor, read_floats,
};
use crate::{Classifier, MamlError, Metrics};

/// Scores `model` on `examples` without dropout or gradients, in batches of `batch_size` cut
/// from the examples sorted by length (each batched with [`Classifier::scoring_options`] of
/// `training`, the options the run's training batches use, and filled to `batch_size` rows as
/// [`scoring_logits`] says), up to `threads` batches at once (each row's result is the same
/// whatever the thread count). Predictions and losses are read back once, at the end.
pub fn evaluate<M: Classifier>(
    model: &M,
    examples: &[&M::Example],
    training: &M::BatchOptions,
    batch_size: usize,
    threads: usize,
) -> Result<Metrics, MamlError> {
    if batch_size == 0 {
        return Err(MamlError::InvalidSetting {
            setting: "batch_size",
            value: "0".into(),
            expected: "at least 1",
        });
    }
    if examples.is_empty() {
        return Err(MamlError::Empty {
            what: "the set to score".into(),
            fix: "score a set with at least one review",
        });
    }
    let num_labels = model.num_labels();
    let options = model.scoring_options(training);
    check_examples(examples, model, &options)?;
    let model = model.valid();
    let device = device_of(&model);
    let order = by_length::<M>(examples);
    let chunks: Vec<&[usize]> = order.chunks(batch_size).collect();
    let mut scored = vec![None; chunks.len()];
    for_each_task(
        threads,
        chunks.len(),
        |index| {
            let items: Vec<&M::Example> = chunks[index]
                .iter()
                .map(|&position| examples[position])
                .collect();
            let logits = scoring_logits(&model, &items, batch_size, &options, &device);
            let loss = cross_entropy(logits.clone(), labels_tensor::<M>(&items, &device));
            (
                loss * items.len() as f64,
                logits.argmax(1).reshape([items.len()]),
            )
        },
        |index, result| {
            scored[index] = Some(result);
            ControlFlow::Continue(())
        },
    );
    let (loss_sums, predictions): (Vec<Tensor<1>>, Vec<Tensor<1, Int>>) = scored
        .into_iter()
        .map(|batch| batch.expect("every batch is scored"))
        .unzip();
    let loss_sum: f64 = read_floats(Tensor::cat(loss_sums, 0)).iter().sum();
    let predicted = read_labels(Tensor::cat(predictions, 0));
    let labels: Vec<usize> = order
        .iter()
        .map(|&position| M::label(examples[position]))
        .collect();
    Ok(Metrics::from_predictions(
        &labels, &predicted, loss_sum, num_labels,
    ))
}

/// Logits `[items.len(), num_labels]` of `items` (at most `rows` of them) without gradient. When
/// [`Classifier::fixed_rows`] holds for `options`, a batch shorter than `rows` is filled up to
/// `rows` with copies of its last example, whose logits are dropped: examples of a batch do not
/// interact in a forward pass without dropout, so the kept logits are those of the short batch,
/// and every batch of a scored set has `rows` rows.
///
/// # Panics
/// If `items` is empty.
pub fn scoring_logits<M: Classifier>(
    model: &M,
    items: &[&M::Example],
    rows: usize,
    options: &M::BatchOptions,
    device: &Device,
) -> Tensor<2> {
    let last = *items
        .last()
        .expect("a scoring batch has at least one example");
    if !M::fixed_rows(options) || items.len() >= rows {
        return model.forward(items, options, device).logits;
    }
    let mut filled = items.to_vec();
    filled.resize(rows, last);
    model
        .forward(&filled, options, device)
        .logits
        .narrow(0, 0, items.len())
}

fn read_labels(tensor: Tensor<1, Int>) -> Vec<usize> {
    tensor
        .into_data()
        .try_into_vec_as::<i64>()
        .expect("converted to i64 just above")
        .into_iter()
        .map(|label| usize::try_from(label).expect("argmax is a non-negative index"))
        .collect()
}
