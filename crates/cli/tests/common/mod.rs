//! Running the built `meta-bert` binary on a tiny setup: the 2-layer, hidden-32 BERT fixture
//! and a small synthetic review file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The test domain of [`tiny_reviews`].
pub const TEST_DOMAIN: &str = "kitchen";

/// The binary under test.
pub const META_BERT: &str = env!("CARGO_BIN_EXE_meta-bert");

/// The binary, with an environment that cannot reach the network or a stray data file.
pub fn meta_bert() -> Command {
    let mut command = Command::new(META_BERT);
    isolate(&mut command);
    command
}

/// Gives `command` (the binary, or a program that starts it) an environment that cannot reach
/// the network or a stray data file.
pub fn isolate(command: &mut Command) -> &mut Command {
    command
        .env_remove("METABERT_DATA")
        .env_remove("RUST_LOG")
        .env("HF_HUB_OFFLINE", "1")
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
    tiny_meta_train_with(data, output_dir, &[])
}

/// [`tiny_meta_train`] with some flags' values replaced (or added): `(flag, value)`.
pub fn tiny_meta_train_with(data: &Path, output_dir: &Path, changes: &[(&str, &str)]) -> Command {
    let mut args = tiny_flags(data);
    args.extend(
        [
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
        ]
        .map(String::from),
    );
    let mut command = meta_bert();
    command.arg("meta-train").args(changed(args, changes));
    command
}

/// finetune on the tiny setup.
pub fn tiny_finetune(data: &Path, output_dir: &Path, epochs: usize) -> Command {
    tiny_finetune_with(data, output_dir, epochs, &[])
}

/// [`tiny_finetune`] with some flags' values replaced (or added): `(flag, value)`.
pub fn tiny_finetune_with(
    data: &Path,
    output_dir: &Path,
    epochs: usize,
    changes: &[(&str, &str)],
) -> Command {
    let mut args = tiny_flags(data);
    args.extend(
        [
            "--output-dir",
            output_dir.to_str().expect("UTF-8 path"),
            "--epochs",
            &epochs.to_string(),
            "--batch-size",
            "4",
            "--learning-rate",
            "1e-3",
        ]
        .map(String::from),
    );
    args.push("--zero-shot".to_string());
    let mut command = meta_bert();
    command.arg("finetune").args(changed(args, changes));
    command
}

/// `args` with the value after each flag of `changes` replaced, or the flag and value appended
/// where `args` lacks the flag.
fn changed(mut args: Vec<String>, changes: &[(&str, &str)]) -> Vec<String> {
    for (flag, value) in changes {
        match args.iter().position(|arg| arg == flag) {
            Some(at) => args[at + 1] = value.to_string(),
            None => args.extend([flag.to_string(), value.to_string()]),
        }
    }
    args
}

/// `evaluate` of `model` on the test domain of the review file `data`.
pub fn evaluate_test_split(model: &Path, data: &Path) -> Command {
    let model = model.to_str().expect("UTF-8 path");
    let mut command = meta_bert();
    command
        .arg("evaluate")
        .args(changed(tiny_flags(data), &[("--bert-model", model)]))
        .args(["--split", "test"]);
    command
}

/// A JSON file's contents.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// What the command wrote on stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts that the command failed with an error, not a panic, whose message names each of
/// `names`; returns the message.
pub fn assert_clear_failure(output: &Output, names: &[&str]) -> String {
    let message = stderr(output);
    assert!(
        !output.status.success(),
        "the command succeeded:\n{message}"
    );
    assert_eq!(output.status.code(), Some(1), "an error exit:\n{message}");
    assert!(!message.contains("panicked"), "a panic:\n{message}");
    for name in names {
        assert!(message.contains(name), "{name:?} not named in:\n{message}");
    }
    message
}

/// Every file under `dir` by its path relative to `dir`, with its bytes: compare two
/// snapshots to see that nothing under `dir` changed.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", current.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                let relative = path.strip_prefix(dir).expect("below dir").to_path_buf();
                files.insert(relative, bytes);
            }
        }
    }
    files
}

/// Asserts that `dir` holds exactly the files of `before`, byte for byte.
pub fn assert_unchanged(dir: &Path, before: &BTreeMap<PathBuf, Vec<u8>>) {
    let after = snapshot(dir);
    let names = |files: &BTreeMap<PathBuf, Vec<u8>>| files.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&after), names(before), "files of {}", dir.display());
    for (name, bytes) in before {
        assert!(
            &after[name] == bytes,
            "{} changed",
            dir.join(name).display()
        );
    }
}

/// A finished one-epoch fine-tuning run of the tiny setup in `dir/earlier`, with the files it
/// wrote: the earlier results a failing command must not damage.
pub fn earlier_finetune(dir: &Path, data: &Path) -> (PathBuf, BTreeMap<PathBuf, Vec<u8>>) {
    let out = dir.join("earlier");
    run_ok(&mut tiny_finetune(data, &out, 1));
    assert!(out.join("results.json").is_file());
    let files = snapshot(&out);
    (out, files)
}

/// The one checkpoint of [`earlier_finetune`]'s run.
pub fn earlier_checkpoint(run: &Path) -> PathBuf {
    let checkpoint = run.join("ckpt/transfer.epoch-1");
    assert!(checkpoint.join("model.safetensors").is_file());
    checkpoint
}

/// Copies the files of model directory `from` into a new directory `to`.
pub fn copy_model_dir(from: &Path, to: &Path) -> PathBuf {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("cannot create {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).expect("the model directory lists") {
        let path = entry.expect("a directory entry").path();
        let target = to.join(path.file_name().expect("a file name"));
        std::fs::copy(&path, &target)
            .unwrap_or_else(|e| panic!("cannot copy {}: {e}", path.display()));
    }
    to.to_path_buf()
}

/// [`tiny_reviews`] with `edit` applied to its JSON list, written as `dir/name`.
pub fn edited_reviews(
    dir: &Path,
    name: &str,
    edit: impl FnOnce(&mut Vec<serde_json::Value>),
) -> PathBuf {
    let mut reviews: Vec<serde_json::Value> =
        serde_json::from_value(read_json(&tiny_reviews(dir))).expect("a JSON list");
    edit(&mut reviews);
    let path = dir.join(name);
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&reviews).expect("JSON serialises"),
    )
    .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}
