//! Bad inputs through the binary. Each stops the command with an error, not a panic, that
//! names the file, record, tensor or flag at fault, before anything in --output-dir is touched:
//! an earlier run there survives byte for byte, even under --overwrite.

use std::path::Path;

use crate::common::{
    TEST_DOMAIN, assert_clear_failure, assert_unchanged, copy_model_dir, earlier_checkpoint,
    earlier_finetune, edited_reviews, meta_bert, run, run_ok, stderr, tiny_finetune,
    tiny_finetune_with, tiny_meta_train_with, tiny_reviews,
};
use serde_json::json;

fn text(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[test]
fn corrupt_review_files_name_the_file_and_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let (earlier, files) = earlier_finetune(dir.path(), &data);

    let corrupt = dir.path().join("corrupt.json");
    let mut bytes = std::fs::read(&data).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + 4].copy_from_slice(&[0xff, 0xfe, 0x00, 0x01]);
    std::fs::write(&corrupt, bytes).unwrap();
    let number_text = edited_reviews(dir.path(), "number-text.json", |reviews| {
        reviews[5]["text"] = json!(12345);
    });
    let cases = [
        (&corrupt, vec!["corrupt.json", "not valid JSON at line"]),
        (
            &number_text,
            vec![
                "number-text.json",
                "record 5",
                "\"text\"",
                "must be a string",
            ],
        ),
    ];
    for (file, names) in cases {
        for mut command in [
            tiny_finetune_with(file, &earlier, 1, &[]),
            tiny_meta_train_with(file, &earlier, &[]),
        ] {
            assert_clear_failure(&run(command.arg("--overwrite")), &names);
            assert_unchanged(&earlier, &files);
        }
    }
}

#[test]
fn labels_outside_a_checkpoints_label_set_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let (earlier, files) = earlier_finetune(dir.path(), &data);
    let checkpoint = earlier_checkpoint(&earlier);
    let neutral = edited_reviews(dir.path(), "neutral.json", |reviews| {
        reviews[7]["label"] = json!("neutral");
    });
    let names = [
        "neutral.json",
        "record 7",
        "\"neutral\"",
        "[negative, positive]",
    ];

    // A checkpoint's labels are fixed: scoring or fine-tuning it on other labels is refused.
    let output = run(meta_bert().args([
        "evaluate",
        "--bert-model",
        text(&checkpoint),
        "--data",
        text(&neutral),
        "--backend",
        "flex",
    ]));
    assert_clear_failure(&output, &names);
    let mut finetune = tiny_finetune_with(
        &neutral,
        &earlier,
        1,
        &[("--bert-model", text(&checkpoint))],
    );
    assert_clear_failure(&run(finetune.arg("--overwrite")), &names);
    assert_unchanged(&earlier, &files);

    // Meta-training takes the file's labels, which must be as many as --num-labels.
    let mut meta_train = tiny_meta_train_with(&neutral, &earlier, &[]);
    assert_clear_failure(
        &run(meta_train.arg("--overwrite")),
        &[
            "--num-labels 2",
            "neutral.json",
            "3 labels",
            "--num-labels 3",
        ],
    );
    assert_unchanged(&earlier, &files);
}

#[test]
fn a_checkpoint_for_other_labels_is_refused_while_a_base_models_head_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let (earlier, files) = earlier_finetune(dir.path(), &data);
    let checkpoint = earlier_checkpoint(&earlier);
    let three_labels = edited_reviews(dir.path(), "three-labels.json", |reviews| {
        for review in reviews.iter_mut().step_by(3) {
            review["label"] = json!("neutral");
        }
    });
    let mut meta_train = tiny_meta_train_with(
        &three_labels,
        &earlier,
        &[("--bert-model", text(&checkpoint)), ("--num-labels", "3")],
    );
    assert_clear_failure(
        &run(meta_train.arg("--overwrite")),
        &[
            text(&checkpoint),
            r#"classifies ["negative", "positive"]"#,
            r#"["negative", "neutral", "positive"]"#,
        ],
    );
    assert_unchanged(&earlier, &files);

    // The tiny fixture is a transformers directory, not our checkpoint, with a 3-label head: for
    // the 2 labels of the data it gets a new head, with a warning (issue 3).
    let output = run_ok(&mut tiny_finetune(&data, &dir.path().join("new"), 1));
    let message = stderr(&output);
    assert!(
        message.contains("another number of labels; initialising a new head"),
        "{message}"
    );
}

#[test]
fn a_test_domain_missing_from_the_data_is_named_with_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let (earlier, files) = earlier_finetune(dir.path(), &data);
    let missing = [("--test-domains", "garden")];
    for mut command in [
        tiny_finetune_with(&data, &earlier, 1, &missing),
        tiny_meta_train_with(&data, &earlier, &missing),
    ] {
        assert_clear_failure(
            &run(command.arg("--overwrite")),
            &[
                "--test-domains garden",
                "\"garden\" is not in",
                "reviews.json",
                "books, dvd, kitchen",
            ],
        );
        assert_unchanged(&earlier, &files);
    }
}

#[test]
fn tasks_larger_than_a_domain_name_the_domain_and_the_flags() {
    // The test domain has 12 reviews, each training domain 40.
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let (earlier, files) = earlier_finetune(dir.path(), &data);
    let mut too_big_for_the_test_domain = tiny_meta_train_with(
        &data,
        &earlier,
        &[("--num-support", "10"), ("--num-query", "5")],
    );
    assert_clear_failure(
        &run(too_big_for_the_test_domain.arg("--overwrite")),
        &[
            "--num-support 10 + --num-query 5",
            &format!("domain \"{TEST_DOMAIN}\""),
            "has 12 reviews",
            "needs 15",
        ],
    );
    assert_unchanged(&earlier, &files);

    let mut too_big_for_the_training_domains = tiny_meta_train_with(
        &data,
        &earlier,
        &[
            ("--num-support", "30"),
            ("--num-query", "8"),
            ("--test-domains", "books"),
        ],
    );
    assert_clear_failure(
        &run(too_big_for_the_training_domains.arg("--overwrite")),
        &["--num-validation-task", "38 an episode needs"],
    );
    assert_unchanged(&earlier, &files);
}

#[test]
fn a_truncated_or_corrupt_model_safetensors_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let (earlier, files) = earlier_finetune(dir.path(), &data);
    let truncated = copy_model_dir(&earlier_checkpoint(&earlier), &dir.path().join("truncated"));
    let weights = std::fs::read(truncated.join("model.safetensors")).unwrap();
    std::fs::write(
        truncated.join("model.safetensors"),
        &weights[..weights.len() / 2],
    )
    .unwrap();
    let mut finetune =
        tiny_finetune_with(&data, &earlier, 1, &[("--bert-model", text(&truncated))]);
    assert_clear_failure(
        &run(finetune.arg("--overwrite")),
        &[
            &format!("{}", truncated.join("model.safetensors").display()),
            "corrupt or truncated",
        ],
    );
    assert_unchanged(&earlier, &files);

    let garbled = copy_model_dir(&earlier_checkpoint(&earlier), &dir.path().join("garbled"));
    let mut bytes = weights.clone();
    bytes[8..40].fill(b'#');
    std::fs::write(garbled.join("model.safetensors"), bytes).unwrap();
    let output = run(meta_bert().args([
        "predict",
        "--bert-model",
        text(&garbled),
        "--backend",
        "flex",
        "a fine thing",
    ]));
    assert_clear_failure(
        &output,
        &[
            &format!("{}", garbled.join("model.safetensors").display()),
            "corrupt or truncated",
        ],
    );
}

#[test]
fn a_config_json_that_disagrees_with_the_weights_names_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let (earlier, files) = earlier_finetune(dir.path(), &data);
    let model = copy_model_dir(&earlier_checkpoint(&earlier), &dir.path().join("wider"));
    let config = std::fs::read_to_string(model.join("config.json")).unwrap();
    assert!(config.contains("\"hidden_size\": 32"), "{config}");
    std::fs::write(
        model.join("config.json"),
        config.replace("\"hidden_size\": 32", "\"hidden_size\": 64"),
    )
    .unwrap();
    let mut meta_train = tiny_meta_train_with(&data, &earlier, &[("--bert-model", text(&model))]);
    assert_clear_failure(
        &run(meta_train.arg("--overwrite")),
        &[
            "word_embeddings.weight",
            "[30522, 32]",
            "[30522, 64]",
            "config.json and the weights disagree",
        ],
    );
    assert_unchanged(&earlier, &files);
}

#[test]
fn a_learning_rate_that_is_not_finite_is_refused_by_its_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let out = dir.path().join("run");
    for mut command in [
        tiny_finetune_with(&data, &out, 1, &[("--learning-rate", "inf")]),
        tiny_meta_train_with(&data, &out, &[("--inner-update-lr", "NaN")]),
        tiny_meta_train_with(&data, &out, &[("--outer-update-lr", "1e400")]),
    ] {
        let output = run(&mut command);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "a usage error:\n{message}");
        assert!(
            message.contains("a learning rate must be a finite number, zero or more"),
            "{message}"
        );
        assert!(!out.exists(), "nothing is written");
    }
}

#[cfg(not(feature = "tch"))]
#[test]
fn a_backend_left_out_of_the_build_costs_no_earlier_results() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_reviews(dir.path());
    let (earlier, files) = earlier_finetune(dir.path(), &data);
    for mut command in [
        tiny_finetune_with(&data, &earlier, 1, &[("--backend", "tch")]),
        tiny_meta_train_with(&data, &earlier, &[("--backend", "tch")]),
    ] {
        assert_clear_failure(
            &run(command.arg("--overwrite")),
            &["--backend tch", "--features tch", "libtorch"],
        );
        assert_unchanged(&earlier, &files);
    }
}
