//! Running the built `meta-bert` binary on a tiny setup: the 2-layer, hidden-32 BERT fixture
//! and a small synthetic review file.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The test domain of [`tiny_reviews`].
pub const TEST_DOMAIN: &str = "kitchen";

/// The binary, with an environment that cannot reach the network or a stray data file.
pub fn meta_bert() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_meta-bert"));
    command
        .env_remove("METABERT_DATA")
        .env_remove("RUST_LOG")
        .env("HF_HUB_OFFLINE", "1");
    command
}

/// Runs `command` to its end.
pub fn run(command: &mut Command) -> Output {
    command.output().expect("the meta-bert binary starts")
}

/// Runs `command` and asserts that it succeeded, showing its stderr if not.
pub fn run_ok(command: &mut Command) -> Output {
    let output = run(command);
    assert!(
        output.status.success(),
        "{command:?} failed with {}:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Two training domains and one test domain.
pub fn tiny_reviews(dir: &Path) -> PathBuf {
    let path = dir.join("reviews.json");
    test_support::write_review_file(&path, &[("books", 40), ("dvd", 40), (TEST_DOMAIN, 12)]);
    path
}

/// Flags every training command shares on the tiny setup.
pub fn tiny_flags(data: &Path) -> Vec<String> {
    let model = test_support::tiny_bert_dir();
    [
        "--bert-model",
        model.to_str().expect("UTF-8 path"),
        "--data",
        data.to_str().expect("UTF-8 path"),
        "--test-domains",
        TEST_DOMAIN,
        "--max-seq-len",
        "24",
        "--backend",
        "flex",
        "--seed",
        "7",
    ]
    .map(String::from)
    .to_vec()
}

/// meta-train on the tiny setup: 2 epochs × 12 outer steps of 2 tasks, evaluated and
/// checkpointed every 3 steps.
pub fn tiny_meta_train(data: &Path, output_dir: &Path) -> Command {
    let mut command = meta_bert();
    command.arg("meta-train").args(tiny_flags(data)).args([
        "--output-dir",
        output_dir.to_str().expect("UTF-8 path"),
        "--num-test-task",
        "1",
        "--num-support",
        "4",
        "--num-query",
        "2",
        "--num-validation-task",
        "1",
        "--inner-batch-size",
        "2",
        "--inner-update-step",
        "1",
        "--inner-update-step-eval",
        "1",
        "--outer-batch-size",
        "2",
        "--num-train-task",
        "24",
        "--epochs",
        "2",
        "--eval-every",
        "3",
        "--outer-update-lr",
        "1e-3",
        "--inner-update-lr",
        "1e-3",
    ]);
    command
}

/// finetune on the tiny setup.
pub fn tiny_finetune(data: &Path, output_dir: &Path, epochs: usize) -> Command {
    let mut command = meta_bert();
    command.arg("finetune").args(tiny_flags(data)).args([
        "--output-dir",
        output_dir.to_str().expect("UTF-8 path"),
        "--epochs",
        &epochs.to_string(),
        "--batch-size",
        "4",
        "--learning-rate",
        "1e-3",
        "--zero-shot",
    ]);
    command
}

/// A JSON file's contents.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}
