//! A loss that becomes NaN or infinite stops meta-training with an error naming the outer step
//! and the task, and the last checkpoint written before it stays complete and usable.

use crate::common::{
    assert_clear_failure, evaluate_test_split, run, run_ok, tiny_meta_train_with, tiny_reviews,
};

#[test]
fn diverging_meta_training_names_step_and_task_and_keeps_its_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let out = dir.path().join("run");
    // Adam moves every weight by about the learning rate per outer step: at 2e8 the first steps
    // stay finite, then the attention scores overflow (on flex, at outer step 11 of 24).
    let output = run(&mut tiny_meta_train_with(
        &data,
        &out,
        &[("--outer-update-lr", "2e8")],
    ));
    let message = assert_clear_failure(&output, &["outer step", "loss of task", "(domain `"]);
    assert!(
        ["is NaN", "is inf", "is -inf"]
            .iter()
            .any(|value| message.contains(value)),
        "{message}"
    );
    assert!(!out.join("results.json").exists());

    let latest = std::fs::read_dir(out.join("ckpt"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .max_by_key(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let step = name.rsplit("step-").next().unwrap().to_string();
            step.parse::<u32>()
                .unwrap_or_else(|_| panic!("{name} is not a checkpoint"))
        })
        .unwrap_or_else(|| panic!("diverged before the first checkpoint: {message}"));
    assert!(
        message.contains(&format!(
            "the last checkpoint, {}, is intact",
            latest.display()
        )),
        "{message}"
    );
    run_ok(&mut evaluate_test_split(&latest, &data));
}
