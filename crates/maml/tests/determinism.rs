//! With dropout on, a seeded run repeats exactly on flex. Alone in its test binary because
//! dropout draws from the device's random generator, which the process shares.

mod common;

use burn::tensor::Device;
use common::{KeywordTask, tiny_config, tiny_model, weights};
use maml::{Batching, Event, FinetuneConfig, FinetuneData, MetaLearner, Task, finetune};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Two outer steps, a test-task evaluation and one fine-tuning epoch; everything observable.
fn run(seed: u64) -> (Vec<Event>, Vec<(String, Vec<f32>)>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let sets: Vec<KeywordTask> = (0..6).map(|_| KeywordTask::draw(&mut rng, 8, 8)).collect();
    let tasks: Vec<Task> = sets.iter().map(KeywordTask::task).collect();
    let mut config = tiny_config();
    config.inner.dropout = true;
    let mut learner = MetaLearner::new(tiny_model(seed, &Device::flex()), config).expect("valid");
    let mut events = Vec::new();
    let mut record = |event: Event| events.push(event);
    for step in tasks.chunks(2).take(2) {
        learner
            .outer_step(step, &mut rng, &mut record)
            .expect("outer step");
    }
    learner
        .evaluate_tasks(&tasks[4..], &mut rng, &mut record)
        .expect("evaluation");
    let train: Vec<_> = sets[5].support.iter().collect();
    let held_out: Vec<_> = sets[5].query.iter().collect();
    let data = FinetuneData {
        train: &train,
        validation: &held_out,
        test: &[],
    };
    let finetune_config = FinetuneConfig {
        batching: Batching::shuffled(4),
        epochs: 1,
        ..FinetuneConfig::default()
    };
    let (model, _) = finetune(
        learner.into_model(),
        &data,
        finetune_config,
        &mut rng,
        &mut record,
    )
    .expect("fine-tuning");
    // Wall-clock times are the one thing allowed to differ.
    let events = events.into_iter().map(without_time).collect();
    (events, weights(&model))
}

fn without_time(mut event: Event) -> Event {
    match &mut event {
        Event::TaskAdapted { elapsed, .. }
        | Event::OuterStep { elapsed, .. }
        | Event::TaskEvaluated { elapsed, .. }
        | Event::EpochFinished { elapsed, .. }
        | Event::Scored { elapsed, .. } => *elapsed = Default::default(),
        Event::FinetuneBatch { .. } => {}
    }
    event
}

#[test]
fn seeded_runs_with_dropout_repeat_exactly_on_flex() {
    let (events_a, weights_a) = run(21);
    let (events_b, weights_b) = run(21);
    assert!(events_a.len() > 10);
    assert_eq!(events_a, events_b);
    assert_eq!(weights_a, weights_b);
    let (events_c, _) = run(22);
    assert_ne!(events_a, events_c, "the seed matters");
}
