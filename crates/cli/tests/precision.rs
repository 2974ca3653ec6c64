//! `--precision` end to end on the tiny setup (flex computes f16 and bf16): what a run records,
//! the loss scale in metrics.jsonl and checkpoints, and `backends`.

use std::path::Path;

use crate::common::{
    meta_bert, read_json, run, run_ok, stderr, tiny_finetune_with, tiny_meta_train_with,
    tiny_reviews,
};

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn training_states(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_dir(run.join("ckpt"))
        .unwrap()
        .map(|entry| read_json(&entry.unwrap().path().join("training_state.json")))
        .collect()
}

#[test]
fn meta_train_in_f16_records_its_precision_and_loss_scale() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let out = dir.path().join("run");
    run_ok(&mut tiny_meta_train_with(
        &data,
        &out,
        &[("--precision", "f16")],
    ));
    let hyparams = read_json(&out.join("hyparams.json"));
    assert_eq!(hyparams["settings"]["precision"], "f16", "{hyparams:#}");
    let scaling = &hyparams["resolved"]["meta_config"]["loss_scaling"];
    assert_eq!(scaling["init_scale"], 65536.0, "{hyparams:#}");
    assert_eq!(scaling["growth_interval"], 2000, "{hyparams:#}");
    let steps: Vec<_> = lines(&out.join("metrics.jsonl"))
        .into_iter()
        .filter(|line| line["kind"] == "outer_step")
        .collect();
    assert!(!steps.is_empty());
    for step in &steps {
        let scale = step["loss_scale"].as_f64().expect("a loss scale");
        let skipped = step["skipped_updates"].as_u64().expect("a skip count");
        // Every skip halves the scale once per step at most; it never grows within 2000 steps.
        assert!(scale <= 65536.0 && scale >= 65536.0 / 2f64.powi(steps.len() as i32));
        assert!(skipped <= 2 * 2 + 1, "{step}");
    }
    for state in training_states(&out) {
        assert!(state["loss_scaler"]["scale"].is_number(), "{state:#}");
    }
}

#[test]
fn a_full_precision_run_records_no_loss_scale() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let out = dir.path().join("run");
    run_ok(&mut tiny_meta_train_with(&data, &out, &[]));
    let hyparams = read_json(&out.join("hyparams.json"));
    assert_eq!(hyparams["settings"]["precision"], "f32");
    assert!(hyparams["resolved"]["meta_config"]["loss_scaling"].is_null());
    for line in lines(&out.join("metrics.jsonl")) {
        assert!(line.get("loss_scale").is_none(), "{line}");
    }
    for state in training_states(&out) {
        assert!(state.get("loss_scaler").is_none(), "{state:#}");
    }
}

#[test]
fn finetune_in_f16_reports_the_loss_scale_per_epoch_and_bf16_needs_none() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let f16 = dir.path().join("f16");
    run_ok(&mut tiny_finetune_with(
        &data,
        &f16,
        2,
        &[("--precision", "f16")],
    ));
    let epochs: Vec<_> = lines(&f16.join("metrics.jsonl"))
        .into_iter()
        .filter(|line| line["kind"] == "epoch")
        .collect();
    assert_eq!(epochs.len(), 2);
    for epoch in &epochs {
        assert!(epoch["loss_scale"].as_f64().is_some(), "{epoch}");
        assert!(epoch["skipped_updates"].as_u64().is_some(), "{epoch}");
    }
    let bf16 = dir.path().join("bf16");
    run_ok(&mut tiny_finetune_with(
        &data,
        &bf16,
        1,
        &[("--precision", "bf16")],
    ));
    let hyparams = read_json(&bf16.join("hyparams.json"));
    assert_eq!(hyparams["settings"]["precision"], "bf16");
    assert!(hyparams["resolved"]["finetune_config"]["loss_scaling"].is_null());
    let results = read_json(&bf16.join("results.json"));
    assert!(
        results["epochs"][0]["validation"]["accuracy"].is_number(),
        "{results:#}"
    );
}

#[test]
fn an_unknown_precision_lists_the_valid_ones() {
    let output = run(meta_bert().args(["predict", "--precision", "fp8", "great"]));
    assert_eq!(output.status.code(), Some(2), "a usage error");
    let message = stderr(&output);
    assert!(message.contains("fp8"), "{message}");
    assert!(message.contains("f32, f16, bf16"), "{message}");
}

#[test]
fn backends_lists_this_build_and_probes_flex() {
    let output = run_ok(meta_bert().args(["backends", "--probe", "--json"]));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let answer: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a line")).unwrap();
    let backends = answer["backends"].as_array().unwrap();
    let names: Vec<&str> = backends
        .iter()
        .map(|b| b["backend"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["flex", "wgpu", "vulkan", "cuda", "tch"]);
    let flex = &backends[0];
    assert_eq!(flex["compiled"], true);
    assert_eq!(flex["starts"], true);
    assert_eq!(
        flex["precisions"],
        serde_json::json!(["f32", "f16", "bf16"])
    );
    // SPIR-V (feature vulkan) beside WGSL in the GPU build, WGSL alone in the default one.
    let spirv = cfg!(feature = "vulkan");
    assert_eq!(backends[2]["compiled"], spirv, "{}", backends[2]);
    let wgpu_compilers = backends[1]["compilers"].to_string();
    assert!(wgpu_compilers.contains("WGSL"), "{wgpu_compilers}");
    assert_eq!(wgpu_compilers.contains("SPIR-V"), spirv, "{wgpu_compilers}");
    // Not compiled in: no probe, and `--backend vulkan` names the feature.
    if !spirv {
        assert!(backends[2].get("starts").is_none(), "{}", backends[2]);
        let model = test_support::tiny_bert_dir();
        let output = run(meta_bert()
            .args(["predict", "--backend", "vulkan", "--bert-model"])
            .arg(&model)
            .arg("great"));
        assert!(
            stderr(&output).contains("--features vulkan"),
            "{}",
            stderr(&output)
        );
    }
}
