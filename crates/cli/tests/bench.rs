//! `meta-bert bench` on the tiny fixture: one JSON line whose work counts are the ones the
//! reference benchmark would report, clear errors for impossible sizes, and random weights for
//! a bare config (which every other command refuses).

use std::path::Path;

use crate::common::{meta_bert, run, run_ok, tiny_flags, tiny_reviews};
use serde_json::Value;

const MAX_SEQ_LEN: usize = 24;

/// `bench` on the tiny setup with small sizes, plus `extra` flags; the JSON it printed last.
fn bench(data: &Path, extra: &[&str]) -> Value {
    bench_with(tiny_flags(data), extra)
}

/// `bench` with `setup` flags (model, data, ...), small sizes and `extra` flags.
fn bench_with(setup: Vec<String>, extra: &[&str]) -> Value {
    let mut command = meta_bert();
    command.args(["--quiet", "bench"]).args(setup).args([
        "--tasks",
        "2",
        "--num-support",
        "5",
        "--num-query",
        "3",
        "--inner-batch-size",
        "2",
        "--inner-update-step",
        "2",
        "--batch-size",
        "4",
        "--steps",
        "2",
    ]);
    command.args(extra);
    let output = run_ok(&mut command);
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    let last = stdout.lines().last().expect("bench prints a line");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {last}"))
}

fn count(result: &Value, key: &str) -> u64 {
    result[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {result}"))
}

#[test]
fn each_mode_reports_the_reference_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_reviews(tmp.path());
    // Meta: tasks × (num_support × inner_update_step + num_query) × steps; finetune and
    // predict: batch_size × steps.
    for (mode, examples) in [
        ("meta", 2 * (5 * 2 + 3) * 2),
        ("finetune", 4 * 2),
        ("predict", 4 * 2),
    ] {
        let result = bench(&data, &["--mode", mode, "--padding", "max"]);
        for key in [
            "examples_per_s",
            "padded_tokens_per_s",
            "seconds_per_step",
            "peak_rss_mib",
            "seconds",
        ] {
            let value = result[key].as_f64().unwrap_or(-1.0);
            assert!(value > 0.0, "{mode}: {key} = {value} in {result}");
        }
        assert_eq!(result["implementation"], "meta-bert");
        assert_eq!(result["mode"], mode);
        assert_eq!(result["padding"], "max");
        assert_eq!(result["batch_order"], "length-bucketed");
        assert_eq!(result["backend"], "flex");
        assert_eq!(count(&result, "steps"), 2);
        assert!(result["config"].is_object(), "{result}");
        assert_eq!(count(&result, "examples"), examples, "{mode}: {result}");
        assert_eq!(
            count(&result, "padded_tokens"),
            examples * MAX_SEQ_LEN as u64,
            "{mode}: --padding max pads every example to --max-seq-len"
        );
    }
}

#[test]
fn padding_to_the_longest_computes_on_fewer_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_reviews(tmp.path());
    for order in ["length-bucketed", "shuffled"] {
        let result = bench(&data, &["--padding", "longest", "--batch-order", order]);
        let examples = count(&result, "examples");
        assert_eq!(examples, 2 * (5 * 2 + 3) * 2);
        let padded = count(&result, "padded_tokens");
        // The synthetic reviews are 9 to about 14 wordpieces long with [CLS] and [SEP].
        assert!(
            (examples * 9..=examples * 16).contains(&padded),
            "{order}: {padded} padded tokens for {examples} examples"
        );
        assert_eq!(result["batch_order"], order);
    }
}

#[test]
fn warm_up_is_timed_apart_from_the_timed_steps() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_reviews(tmp.path());
    for (extra, warmup_steps) in [(&[][..], 1), (&["--warmup-steps", "3"][..], 3)] {
        let result = bench(&data, extra);
        assert_eq!(count(&result, "warmup_steps"), warmup_steps, "{result}");
        let warmups = result["warmup_step_seconds"].as_array().expect("a list");
        assert_eq!(warmups.len() as u64, warmup_steps, "{result}");
        let total: f64 = warmups.iter().map(|s| s.as_f64().unwrap()).sum();
        let warmup_seconds = result["warmup_seconds"].as_f64().unwrap_or(-1.0);
        assert!(warmup_seconds > 0.0, "{result}");
        test_support::assert_rel(warmup_seconds, total, 0.01, "warmup_seconds");
        let timed = result["step_seconds"].as_array().expect("a list");
        assert_eq!(timed.len(), 2, "{result}");
        // Warm-up steps count no work: the timed steps' examples alone.
        assert_eq!(count(&result, "examples"), 2 * (5 * 2 + 3) * 2);
    }
}

#[test]
fn flex_pads_to_the_longest_and_skips_padding_unless_told_otherwise() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_reviews(tmp.path());
    let result = bench(&data, &[]);
    assert_eq!(result["padding"], "longest", "{result}");
    assert_eq!(result["compute_padding"], false, "{result}");
    let result = bench(&data, &["--compute-padding"]);
    assert_eq!(result["compute_padding"], true, "{result}");
    // Buckets of 16: the reviews, at most 16 wordpieces, fill one bucket per batch.
    let result = bench(&data, &["--padding", "buckets:16"]);
    assert_eq!(result["padding"], "buckets:16", "{result}");
    let examples = count(&result, "examples");
    assert_eq!(count(&result, "padded_tokens"), examples * 16, "{result}");
}

#[test]
fn impossible_sizes_are_flag_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_reviews(tmp.path());
    for (flags, expected) in [
        (&["--steps", "0"][..], "--steps must be at least 1"),
        (
            &["--num-support", "30", "--num-query", "20"][..],
            "--num-support 30 + --num-query 20",
        ),
        (
            &["--mode", "finetune", "--batch-size", "0"][..],
            "--batch-size",
        ),
    ] {
        let output = run(meta_bert().arg("bench").args(tiny_flags(&data)).args(flags));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{flags:?}: {stderr}");
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{flags:?}: {stderr}");
    }
}

#[test]
fn a_bare_config_is_benchmarked_with_random_weights_and_refused_elsewhere() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_reviews(tmp.path());
    let bare = tmp.path().join("bare");
    std::fs::create_dir(&bare).unwrap();
    test_support::write_bare_tiny_config(&bare);
    let bare = bare.to_str().unwrap();

    let mut setup = tiny_flags(&data);
    let model = setup
        .iter()
        .position(|flag| flag == "--bert-model")
        .expect("the tiny flags name a model")
        + 1;
    setup[model] = bare.to_string();
    let result = bench_with(setup, &[]);
    assert_eq!(result["model"]["random_weights"], true, "{result}");
    assert_eq!(result["model"]["hidden_size"], 32, "{result}");

    let output = run(meta_bert()
        .args(["predict", "--bert-model", bare, "a text"])
        .arg("--backend")
        .arg("flex"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "predict accepted a bare config");
    assert!(stderr.contains("holds no model weights"), "{stderr}");
}
