//! The commands end to end, through the built binary, on the tiny setup.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use crate::common::{
    TEST_DOMAIN, evaluate_test_split, meta_bert, read_json, run, run_ok, stderr, tiny_finetune,
    tiny_meta_train, tiny_reviews,
};

#[test]
fn a_non_empty_output_dir_is_refused_without_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let out = dir.path().join("run");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("results.json"), "{\"accuracy\": 1}").unwrap();
    let output = run(&mut tiny_meta_train(&data, &out));
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("--overwrite"), "{message}");
    assert!(message.contains(out.to_str().unwrap()), "{message}");
    assert_eq!(
        std::fs::read_to_string(out.join("results.json")).unwrap(),
        "{\"accuracy\": 1}"
    );
}

#[test]
fn an_output_dir_that_is_a_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let out = dir.path().join("run");
    std::fs::write(&out, "not a directory").unwrap();
    let output = run(&mut tiny_finetune(&data, &out, 1));
    assert!(!output.status.success());
    assert!(stderr(&output).contains("is a file"), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "not a directory");
}

#[test]
fn an_unknown_backend_lists_the_valid_ones() {
    let output = run(meta_bert().args(["predict", "--backend", "metal", "great"]));
    assert_eq!(output.status.code(), Some(2), "a usage error");
    let message = stderr(&output);
    assert!(message.contains("metal"), "{message}");
    assert!(
        message.contains("flex, wgpu, vulkan, cuda, tch"),
        "{message}"
    );
}

#[test]
fn a_bad_review_file_leaves_earlier_results_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let out = dir.path().join("run");
    run_ok(&mut tiny_finetune(&data, &out, 1));
    let results = std::fs::read(out.join("results.json")).unwrap();
    let checkpoint = out.join("ckpt/transfer.epoch-1");
    assert!(checkpoint.join("model.safetensors").is_file());

    let truncated = dir.path().join("truncated.json");
    let whole = std::fs::read(&data).unwrap();
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    let output = run(tiny_finetune(&truncated, &out, 1).arg("--overwrite"));
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("truncated.json"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read(out.join("results.json")).unwrap(), results);
    assert!(checkpoint.join("model.safetensors").is_file());
}

#[test]
fn finetune_writes_the_agreed_files_and_its_checkpoint_evaluates_and_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let out = dir.path().join("run");
    run_ok(&mut tiny_finetune(&data, &out, 2));

    let hyparams = read_json(&out.join("hyparams.json"));
    assert_eq!(hyparams["command"], "finetune");
    assert_eq!(hyparams["settings"]["seed"], 7);
    assert_eq!(hyparams["settings"]["backend"], "flex");
    // `--padding auto` is recorded as what it stood for on flex.
    assert_eq!(hyparams["settings"]["padding"], "longest");
    assert!(hyparams["versions"]["meta-bert"].is_string());
    assert!(out.join("train.log").is_file());

    let results = read_json(&out.join("results.json"));
    let epochs = results["epochs"].as_array().expect("epochs is a list");
    assert_eq!(epochs.len(), 2);
    for (index, epoch) in epochs.iter().enumerate() {
        assert_eq!(epoch["epoch"], index + 1);
        for split in ["validation", "test"] {
            for key in [
                "accuracy",
                "macro_f1",
                "majority_baseline",
                "mean_loss",
                "n",
                "confusion",
            ] {
                assert!(
                    !epoch[split][key].is_null(),
                    "epochs[{index}].{split}.{key} missing"
                );
            }
        }
        assert_eq!(epoch["test"]["n"], 12);
    }
    assert_eq!(results["zero_shot"]["test"]["n"], 12);
    let best = results["best_checkpoint"]
        .as_str()
        .expect("a best checkpoint");
    assert!(
        best.ends_with(&format!("transfer.epoch-{}", results["best_epoch"])),
        "{best}"
    );

    let evaluated = run_ok(evaluate_test_split(Path::new(best), &data).arg("--json"));
    let report: serde_json::Value = serde_json::from_slice(&evaluated.stdout).unwrap();
    let best_epoch = results["best_epoch"].as_u64().unwrap() as usize - 1;
    assert_eq!(report["metrics"]["n"], 12);
    assert_eq!(
        report["metrics"]["confusion"],
        epochs[best_epoch]["test"]["confusion"]
    );

    let predicted = run_ok(meta_bert().args([
        "predict",
        "--bert-model",
        best,
        "--json",
        "a great wonderful thing",
        "awful, broken",
    ]));
    let lines: Vec<serde_json::Value> = String::from_utf8(predicted.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["text"], "awful, broken");
    for line in &lines {
        let probabilities = line["probabilities"]
            .as_object()
            .expect("probabilities by name");
        let mut names: Vec<&str> = probabilities.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(names, ["negative", "positive"]);
        let total: f64 = probabilities.values().map(|p| p.as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-5, "{total}");
        let label = line["label"].as_str().unwrap();
        let top = probabilities
            .values()
            .map(|p| p.as_f64().unwrap())
            .fold(0.0, f64::max);
        assert_eq!(probabilities[label].as_f64().unwrap(), top);
    }
}

#[test]
fn predict_reads_texts_from_stdin() {
    let model = test_support::tiny_bert_dir();
    let mut child = meta_bert()
        .args(["predict", "--json", "--bert-model", model.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"first text\n\nsecond text\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let texts: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["text"].to_string())
        .collect();
    assert_eq!(texts, ["\"first text\"", "\"second text\""]);
}

#[test]
fn data_splits_match_the_reference_on_the_shared_reviews() {
    let output = run_ok(meta_bert().args([
        "data",
        "splits",
        "--json",
        "--data",
        test_support::reviews_path().to_str().unwrap(),
    ]));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let sizes: Vec<u64> = report["splits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|split| split["reviews"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [893, 2807, 5191, 8298]);
    assert_eq!(report["test"]["reviews"], 300);
}

#[test]
fn data_stats_counts_every_domain() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let output = run_ok(meta_bert().args([
        "data",
        "stats",
        "--json",
        "--test-domains",
        TEST_DOMAIN,
        "--data",
        data.to_str().unwrap(),
    ]));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let domains = report["domains"].as_array().unwrap();
    let kitchen = domains.iter().find(|d| d["domain"] == TEST_DOMAIN).unwrap();
    assert_eq!(kitchen["count"], 12);
    assert_eq!(kitchen["role"], "test");
    assert_eq!(kitchen["labels"]["positive"], 6);
    assert_eq!(report["reviews"], 92);
}

#[cfg(not(feature = "tch"))]
#[test]
fn a_backend_left_out_of_the_build_names_the_feature_to_rebuild_with() {
    let model = test_support::tiny_bert_dir();
    let output = run(meta_bert().args([
        "predict",
        "--backend",
        "tch",
        "--bert-model",
        model.to_str().unwrap(),
        "great",
    ]));
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("--features tch") && message.contains("libtorch"),
        "{message}"
    );
}
