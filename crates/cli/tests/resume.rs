//! A run stopped part-way — killed with SIGKILL, or with Ctrl-C — and then resumed with
//! `--resume` ends with exactly the results of an uninterrupted run (flex, same seed).

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::common::{
    read_json, run_ok, tiny_finetune, tiny_meta_train, tiny_meta_train_with, tiny_reviews,
};
use serde_json::Value;

/// results.json without the paths that name the run's own directory.
fn comparable_results(dir: &Path) -> Value {
    let mut results = read_json(&dir.join("results.json"));
    let object = results
        .as_object_mut()
        .expect("results.json holds an object");
    for key in ["best_checkpoint", "latest_checkpoint"] {
        let path = object.remove(key);
        if let Some(Value::String(path)) = path {
            assert!(Path::new(&path).is_dir(), "{key} {path} does not exist");
        }
    }
    results
}

/// metrics.jsonl without timings.
fn comparable_metrics(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .expect("metrics.jsonl exists")
        .lines()
        .map(|line| {
            let mut value: Value = serde_json::from_str(line).expect("every line is JSON");
            value.as_object_mut().expect("an object").remove("seconds");
            value
        })
        .collect()
}

fn has_checkpoint(dir: &Path, prefix: &str) -> bool {
    std::fs::read_dir(dir.join("ckpt")).is_ok_and(|mut entries| {
        entries
            .any(|entry| entry.is_ok_and(|e| e.file_name().to_string_lossy().starts_with(prefix)))
    })
}

/// Starts `command`, and as soon as its first checkpoint exists stops it with `stop`.
fn stop_after_first_checkpoint(
    command: &mut Command,
    dir: &Path,
    prefix: &str,
    stop: impl FnOnce(&mut Child),
) -> ExitStatus {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    loop {
        if has_checkpoint(dir, prefix) {
            stop(&mut child);
            break;
        }
        if let Some(status) = child.try_wait().expect("the child can be polled") {
            panic!("the run ended ({status}) before its first checkpoint was seen");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let status = child.wait().expect("the child can be waited for");
    assert!(
        !dir.join("results.json").exists(),
        "the run finished before it was stopped: lengthen it"
    );
    status
}

/// The uninterrupted meta-training run every test compares with.
fn uninterrupted_meta_train() -> &'static (Value, Vec<Value>) {
    static BASELINE: OnceLock<(Value, Vec<Value>)> = OnceLock::new();
    BASELINE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let data = tiny_reviews(dir.path());
        let out = dir.path().join("run");
        run_ok(&mut tiny_meta_train(&data, &out));
        let checkpoints = std::fs::read_dir(out.join("ckpt")).unwrap().count();
        assert!(
            checkpoints <= 2,
            "only the best and the latest are kept, found {checkpoints}"
        );
        (comparable_results(&out), comparable_metrics(&out))
    })
}

#[test]
fn meta_train_killed_and_resumed_ends_as_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let out = dir.path().join("run");
    let status =
        stop_after_first_checkpoint(&mut tiny_meta_train(&data, &out), &out, "meta.", |child| {
            child.kill().expect("SIGKILL is delivered")
        });
    assert!(!status.success());
    run_ok(tiny_meta_train(&data, &out).arg("--resume"));
    let (results, metrics) = uninterrupted_meta_train();
    assert_eq!(&comparable_results(&out), results);
    assert_eq!(&comparable_metrics(&out), metrics);
}

#[test]
fn meta_train_in_f16_killed_and_resumed_ends_as_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let f16 = [("--precision", "f16")];
    let baseline = dir.path().join("baseline");
    run_ok(&mut tiny_meta_train_with(&data, &baseline, &f16));
    let out = dir.path().join("run");
    let status = stop_after_first_checkpoint(
        &mut tiny_meta_train_with(&data, &out, &f16),
        &out,
        "meta.",
        |child| child.kill().expect("SIGKILL is delivered"),
    );
    assert!(!status.success());
    run_ok(tiny_meta_train_with(&data, &out, &f16).arg("--resume"));
    assert_eq!(comparable_results(&out), comparable_results(&baseline));
    // The loss scale and the skipped updates of every step included.
    let metrics = comparable_metrics(&out);
    assert!(metrics.iter().any(|line| line["loss_scale"].is_number()));
    assert_eq!(metrics, comparable_metrics(&baseline));
}

#[test]
fn meta_train_stopped_with_ctrl_c_saves_its_progress_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let out = dir.path().join("run");
    let status =
        stop_after_first_checkpoint(&mut tiny_meta_train(&data, &out), &out, "meta.", |child| {
            let sent = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .expect("kill runs");
            assert!(sent.success());
        });
    assert_eq!(status.code(), Some(130), "Ctrl-C exits with 130");
    run_ok(tiny_meta_train(&data, &out).arg("--resume"));
    let (results, metrics) = uninterrupted_meta_train();
    assert_eq!(&comparable_results(&out), results);
    assert_eq!(&comparable_metrics(&out), metrics);
    // A second --resume of the finished run changes nothing.
    let before = std::fs::read(out.join("results.json")).unwrap();
    run_ok(tiny_meta_train(&data, &out).arg("--resume"));
    assert_eq!(std::fs::read(out.join("results.json")).unwrap(), before);
}

#[test]
fn finetune_killed_and_resumed_ends_as_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let epochs = 6;
    let baseline = dir.path().join("baseline");
    run_ok(&mut tiny_finetune(&data, &baseline, epochs));

    let out = dir.path().join("run");
    let status = stop_after_first_checkpoint(
        &mut tiny_finetune(&data, &out, epochs),
        &out,
        "transfer.",
        |child| child.kill().expect("SIGKILL is delivered"),
    );
    assert!(!status.success());
    run_ok(tiny_finetune(&data, &out, epochs).arg("--resume"));
    assert_eq!(comparable_results(&out), comparable_results(&baseline));
    assert_eq!(comparable_metrics(&out), comparable_metrics(&baseline));
}

#[test]
fn a_flex_run_resumes_without_starting_a_gpu_runtime() {
    // Burn loads optimizer state onto its default device, which is wgpu in the default build;
    // wgpu announces itself in its logs as soon as it starts.
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let out = dir.path().join("run");
    let epochs = 6;
    stop_after_first_checkpoint(
        &mut tiny_finetune(&data, &out, epochs),
        &out,
        "transfer.",
        |child| child.kill().expect("SIGKILL is delivered"),
    );
    let output = run_ok(tiny_finetune(&data, &out, epochs).arg("--resume").env(
        "RUST_LOG",
        "wgpu_core=trace,wgpu_hal=trace,cubecl_wgpu=trace",
    ));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let gpu_lines: Vec<&str> = stderr
        .lines()
        .filter(|line| {
            line.contains(" TRACE ") || line.contains(" DEBUG ") || line.contains(" INFO ")
        })
        .take(3)
        .collect();
    assert!(
        gpu_lines.is_empty(),
        "wgpu started during a flex resume: {gpu_lines:#?}"
    );
}
