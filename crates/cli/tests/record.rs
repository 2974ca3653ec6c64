//! `--record --no-dropout`: the record names exactly the reviews each step consumed, in the
//! batches it trained on, with the losses the run logged elsewhere (FIDELITY.md's format).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::common::{
    TEST_DOMAIN, read_json, run, run_ok, tiny_finetune_with, tiny_meta_train_with, tiny_reviews,
};

fn record_lines(run_dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(run_dir.join("record/record.jsonl"))
        .expect("record.jsonl exists")
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is JSON"))
        .collect()
}

fn of_kind<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|line| line["kind"] == kind).collect()
}

fn numbers(value: &Value) -> Vec<usize> {
    value
        .as_array()
        .expect("a list")
        .iter()
        .map(|number| number.as_u64().expect("a review number") as usize)
        .collect()
}

/// The domain of every review of `data`, by review number.
fn domains(data: &Path) -> Vec<String> {
    read_json(data)
        .as_array()
        .expect("a review list")
        .iter()
        .map(|review| review["domain"].as_str().expect("a domain").to_string())
        .collect()
}

fn sorted(reviews: Vec<usize>) -> Vec<usize> {
    let mut reviews = reviews;
    reviews.sort_unstable();
    reviews
}

#[test]
fn meta_train_records_every_task_its_batches_and_losses() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let out = dir.path().join("meta");
    run_ok(
        tiny_meta_train_with(
            &data,
            &out,
            &[
                ("--num-train-task", "4"),
                ("--epochs", "1"),
                ("--eval-every", "1"),
            ],
        )
        .args(["--record", "--no-dropout"]),
    );
    assert!(out.join("record/initial/model.safetensors").is_file());
    assert!(out.join("record/initial/config.json").is_file());
    let lines = record_lines(&out);
    let domain_of = domains(&data);
    assert_eq!(lines[0]["kind"], "run");
    assert_eq!(lines[0]["command"], "meta-train");
    assert_eq!(lines[0]["dropout"], false);
    assert_eq!(
        lines[0]["labels"],
        serde_json::json!(["negative", "positive"])
    );

    let tasks = of_kind(&lines, "task");
    assert_eq!(tasks.len(), 4, "2 outer steps of 2 tasks");
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let outer_steps: Vec<Value> = metrics
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|line| line["kind"] == "outer_step")
        .collect();
    for step in [1, 2] {
        let of_step: Vec<&&Value> = tasks.iter().filter(|task| task["step"] == step).collect();
        assert_eq!(of_step.len(), 2, "step {step}");
        let mean = of_step
            .iter()
            .map(|task| task["query_loss"].as_f64().unwrap())
            .sum::<f64>()
            / 2.0;
        let logged = outer_steps[step - 1]["mean_query_loss"].as_f64().unwrap();
        assert!(
            (mean - logged).abs() <= 1e-9,
            "step {step}: {mean} vs {logged}"
        );
    }
    for task in &tasks {
        let support = numbers(&task["support"]);
        let query = numbers(&task["query"]);
        assert_eq!((support.len(), query.len()), (4, 2), "{task}");
        let batches: Vec<Vec<usize>> = task["inner_batches"]
            .as_array()
            .unwrap()
            .iter()
            .map(numbers)
            .collect();
        assert_eq!(
            batches.len(),
            2,
            "4 support reviews in batches of 2: {task}"
        );
        assert_eq!(
            sorted(batches.concat()),
            sorted(support.clone()),
            "one inner epoch uses every support review once: {task}"
        );
        assert_eq!(task["inner_losses"].as_array().unwrap().len(), 2);
        for review in support.iter().chain(&query) {
            assert_eq!(domain_of[*review], task["domain"], "{task}");
            assert_ne!(domain_of[*review], TEST_DOMAIN);
        }
    }

    let evaluations = of_kind(&lines, "evaluation_task");
    for step in [1, 2] {
        let test: Vec<&&Value> = evaluations
            .iter()
            .filter(|task| task["step"] == step && task["split"] == "test")
            .collect();
        assert_eq!(test.len(), 1, "one test task per evaluation");
        for review in numbers(&test[0]["support"]) {
            assert_eq!(domain_of[review], TEST_DOMAIN);
        }
        assert!(
            evaluations
                .iter()
                .any(|task| task["step"] == step && task["split"] == "validation")
        );
    }
    assert_eq!(of_kind(&lines, "outer_step").len(), 2);
}

#[test]
fn finetune_records_every_batch_and_its_loss() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let out = dir.path().join("ft");
    run_ok(tiny_finetune_with(&data, &out, 1, &[]).args(["--record", "--no-dropout"]));
    let lines = record_lines(&out);
    assert_eq!(lines[0]["command"], "finetune");
    assert_eq!(lines[0]["dropout"], false);
    let batches = of_kind(&lines, "batch");
    let rows: Vec<usize> = batches.iter().flat_map(|b| numbers(&b["rows"])).collect();
    let results = read_json(&out.join("results.json"));
    let hyparams = read_json(&out.join("hyparams.json"));
    let train_reviews = hyparams["resolved"]["train_reviews"].as_u64().unwrap() as usize;
    assert_eq!(
        rows.len(),
        train_reviews,
        "one epoch trains on each review once"
    );
    assert_eq!(
        rows.iter().collect::<BTreeSet<_>>().len(),
        train_reviews,
        "no review twice"
    );
    let domain_of = domains(&data);
    assert!(rows.iter().all(|&review| domain_of[review] != TEST_DOMAIN));
    let weighted: f64 = batches
        .iter()
        .map(|b| b["loss"].as_f64().unwrap() * b["rows"].as_array().unwrap().len() as f64)
        .sum();
    let train_loss = results["epochs"][0]["train_loss"].as_f64().unwrap();
    assert!(
        (weighted / train_reviews as f64 - train_loss).abs() <= 1e-9,
        "the batch losses make up the epoch's training loss"
    );
}

#[test]
fn record_with_resume_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let output =
        run(tiny_finetune_with(&data, &dir.path().join("ft"), 1, &[])
            .args(["--record", "--resume"]));
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("--record") && message.contains("--resume"),
        "{message}"
    );
}
