//! Fine-tuning a tiny random BERT on one synthetic keyword task (dropout off).

mod common;

use burn::tensor::Device;
use common::{KeywordTask, tiny_model, weights};
use maml::{Batching, Event, FinetuneConfig, FinetuneData, Split, best_by_validation, finetune};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tasks::{Collation, EncodedReview};
use test_support::assert_close;

fn config(epochs: usize) -> FinetuneConfig<Collation> {
    FinetuneConfig::default()
        .with_lr(1e-2)
        .with_batching(Batching::shuffled(8))
        .with_epochs(epochs)
        .with_dropout(false)
}

/// One keyword mapping: 48 training, 16 validation and 16 test reviews.
fn keyword_sets() -> (Vec<EncodedReview>, Vec<EncodedReview>, Vec<EncodedReview>) {
    let KeywordTask { support, mut query } =
        KeywordTask::draw(&mut ChaCha8Rng::seed_from_u64(11), 48, 32);
    let test = query.split_off(16);
    (support, query, test)
}

#[test]
fn finetune_scores_zero_shot_then_every_epoch_and_learns() {
    let (train, validation, test) = keyword_sets();
    let (train, validation, test): (Vec<_>, Vec<_>, Vec<_>) = (
        train.iter().collect(),
        validation.iter().collect(),
        test.iter().collect(),
    );
    let data = FinetuneData {
        train: &train,
        validation: &validation,
        test: &test,
    };
    let mut events = Vec::new();
    let (_, history) = finetune(
        tiny_model(3, &Device::flex()),
        &data,
        config(4),
        &mut ChaCha8Rng::seed_from_u64(12),
        &mut |event| events.push(event),
    )
    .expect("fine-tuning");
    assert_eq!(history.len(), 5);
    assert_eq!(history[0].epoch, 0);
    assert_eq!(history[0].train_loss, None, "epoch 0 is zero-shot");
    assert!(
        history
            .iter()
            .all(|record| record.test.as_ref().is_some_and(|t| t.n == 16))
    );
    let last = history.last().expect("epochs");
    assert!(
        last.validation.mean_loss < 0.8 * history[0].validation.mean_loss,
        "validation loss {} after training, {} zero-shot",
        last.validation.mean_loss,
        history[0].validation.mean_loss
    );
    let batches = events
        .iter()
        .filter(|event| matches!(event, Event::FinetuneBatch { batches: 6, .. }))
        .count();
    assert_eq!(batches, 4 * 6, "48 examples in batches of 8, 4 epochs");
    let test_scores = events
        .iter()
        .filter(|event| {
            matches!(
                event,
                Event::Scored {
                    split: Split::Test,
                    ..
                }
            )
        })
        .count();
    assert_eq!(test_scores, 5);
    let best = best_by_validation(
        history
            .iter()
            .map(|record| (record.epoch, &record.validation)),
    );
    assert!(
        best.is_some_and(|epoch| epoch > 0),
        "training beats zero-shot on validation"
    );
}

#[test]
fn resumed_adamw_continues_exactly() {
    let (train, _, _) = keyword_sets();
    let train: Vec<&EncodedReview> = train.iter().collect();
    let new_tuner = |model| config(2).init(model).expect("valid config");
    let mut rng_a = ChaCha8Rng::seed_from_u64(13);
    let mut rng_b = rng_a.clone();
    let mut uninterrupted = new_tuner(tiny_model(3, &Device::flex()));
    for _ in 0..2 {
        uninterrupted
            .train_epoch(&train, &mut rng_a, &mut |_| {})
            .expect("epoch");
    }
    let mut first = new_tuner(tiny_model(3, &Device::flex()));
    first
        .train_epoch(&train, &mut rng_b, &mut |_| {})
        .expect("epoch");
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("adamw.bpk");
    first.save_optimizer(&state).expect("saved");
    let mut resumed = new_tuner(first.into_model());
    resumed.resume(&state, 1).expect("loaded");
    resumed
        .train_epoch(&train, &mut rng_b, &mut |_| {})
        .expect("epoch");
    assert_eq!(resumed.completed_epochs(), 2);
    assert_eq!(weights(resumed.model()), weights(uninterrupted.model()));
}

#[test]
fn a_learning_rate_that_is_not_finite_is_refused() {
    for lr in [f64::INFINITY, f64::NAN, -1.0] {
        let config = FinetuneConfig { lr, ..config(1) };
        let error = config
            .init(tiny_model(3, &Device::flex()))
            .err()
            .expect("refused");
        assert!(error.to_string().contains("`lr`"), "{error}");
    }
}

#[test]
fn micro_batches_give_the_whole_batch_loss_and_update() {
    let (train, _, _) = keyword_sets();
    let train: Vec<&EncodedReview> = train.iter().collect();
    let epoch = |micro_batches, threads| {
        let config = FinetuneConfig {
            micro_batches,
            ..config(1)
        };
        let mut tuner = config
            .init(tiny_model(3, &Device::flex()))
            .expect("valid")
            .with_threads(threads);
        let mut losses = Vec::new();
        tuner
            .train_epoch(&train, &mut ChaCha8Rng::seed_from_u64(5), &mut |event| {
                if let Event::FinetuneBatch { loss, .. } = event {
                    losses.push(loss);
                }
            })
            .expect("an epoch");
        (losses, weights(tuner.model()))
    };
    let (whole_losses, whole_weights) = epoch(1, 1);
    // 3 slices of batches of 8 rows: 3, 3 and 2 rows, weighted by their share.
    let (sliced_losses, sliced_weights) = epoch(3, 2);
    assert_eq!(whole_losses.len(), 6);
    assert_close(&sliced_losses, &whole_losses, 1e-6, 1e-6, "batch losses");
    for ((name, whole), (_, sliced)) in whole_weights.iter().zip(&sliced_weights) {
        let as_f64 = |values: &[f32]| values.iter().map(|&v| f64::from(v)).collect::<Vec<_>>();
        // Adam moves each weight by at most about lr = 1e-2 a step; rounding may not move it
        // by a thousandth of that.
        assert_close(&as_f64(sliced), &as_f64(whole), 1e-5, 0.0, name);
    }
}
