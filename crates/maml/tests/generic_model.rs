//! The algorithms on a model that is not BERT: the perceptron of `examples/keyword_tasks.rs`,
//! which implements `maml::Classifier` with nothing but `maml` and Burn.

#[allow(dead_code)] // its `main` is the example's, not this test's
#[path = "../examples/keyword_tasks.rs"]
mod keyword_tasks;

#[test]
fn fomaml_lowers_post_adaptation_query_loss_of_a_perceptron() {
    // As for BERT (tests/meta_learning.rs), one run's end point is noisy; the mean of four runs,
    // each with its own tasks and draws, measures the learning.
    let runs: Vec<(f64, f64)> = (1..=4)
        .map(keyword_tasks::held_out_loss_before_and_after)
        .collect();
    let mean = |pick: fn(&(f64, f64)) -> f64| runs.iter().map(pick).sum::<f64>() / 4.0;
    let (before, after) = (mean(|run| run.0), mean(|run| run.1));
    assert!(
        after < 0.8 * before,
        "mean post-adaptation query loss {after} after meta-training, {before} before: {runs:?}"
    );
}
