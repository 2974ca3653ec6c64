//! With dropout on, a seeded run repeats exactly on flex, whatever the number of threads that
//! compute tasks, micro-batches and scoring batches.
//! Alone in its test binary because Burn's random generator (which seeds new weights) is
//! shared by the process.

mod common;

use burn::tensor::Device;
use common::{KeywordTask, tiny_config, tiny_model, weights};
use maml::{Batching, Event, FinetuneConfig, FinetuneData, Task};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tasks::{Collation, EncodedReview};

/// Two outer steps, a test-task evaluation and one fine-tuning epoch; everything observable.
fn run(seed: u64, task_threads: usize) -> (Vec<Event>, Vec<(String, Vec<f32>)>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let sets: Vec<KeywordTask> = (0..6).map(|_| KeywordTask::draw(&mut rng, 8, 8)).collect();
    let tasks: Vec<Task<'_, EncodedReview>> = sets.iter().map(KeywordTask::task).collect();
    let mut config = tiny_config();
    config.inner.dropout = true;
    let mut learner = config
        .init(tiny_model(seed, &Device::flex()))
        .expect("valid")
        .with_task_threads(task_threads);
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
    let finetune_config: FinetuneConfig<Collation> = FinetuneConfig::default()
        .with_batching(Batching::shuffled(4))
        .with_epochs(1)
        .with_micro_batches(3);
    let mut tuner = finetune_config
        .init(learner.into_model())
        .expect("valid")
        .with_threads(task_threads);
    tuner
        .epoch(&data, &mut rng, &mut record)
        .expect("fine-tuning");
    let model = tuner.into_model();
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
    let (events_a, weights_a) = run(21, 1);
    let (events_b, weights_b) = run(21, 1);
    assert!(events_a.len() > 10);
    assert_eq!(events_a, events_b);
    assert_eq!(weights_a, weights_b);
    let (events_c, _) = run(22, 1);
    assert_ne!(events_a, events_c, "the seed matters");
}

#[test]
fn task_threads_change_nothing_but_the_order_of_task_events() {
    let (events_one, weights_one) = run(23, 1);
    let (events_three, weights_three) = run(23, 3);
    assert_eq!(weights_one, weights_three);
    // Tasks on threads report as they finish; each step's summary still comes after its tasks.
    let in_any_order = |events: Vec<Event>| {
        let mut lines: Vec<String> = events.iter().map(|event| format!("{event:?}")).collect();
        lines.sort();
        lines
    };
    assert_eq!(in_any_order(events_one), in_any_order(events_three));
}
