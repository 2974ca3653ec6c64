//! Tokenisation against the ids Hugging Face produced (fixtures/minilm-l6-golden/golden.json).

use std::path::Path;

use dataset::ReviewSet;
use serde_json::Value;
use tasks::{DEFAULT_MAX_SEQ_LEN, EncodedReview, Padding, TaskError, TextEncoder};

fn ids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .expect("a list of ids")
        .iter()
        .map(|id| u32::try_from(id.as_u64().expect("an integer id")).expect("a u32 id"))
        .collect()
}

fn rows(value: &Value) -> Vec<i64> {
    test_support::flatten_f64(value)
        .into_iter()
        .map(|x| x as i64)
        .collect()
}

fn check_golden_cases(encoder: &TextEncoder) {
    let golden = test_support::minilm_golden();
    let section = &golden["tokenization"];
    assert_eq!(section["max_seq_len"], DEFAULT_MAX_SEQ_LEN);
    let cases = section["cases"].as_array().unwrap();
    assert!(
        cases
            .iter()
            .any(|case| case["input_ids"].as_array().unwrap().len() == 256)
    );
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let encoded = encoder.encode(text).unwrap();
        assert_eq!(
            encoded.ids,
            ids(&case["input_ids"]),
            "input ids of {text:?}"
        );
        assert_eq!(
            encoded.type_ids,
            ids(&case["token_type_ids"]),
            "type ids of {text:?}"
        );
        assert!(ids(&case["attention_mask"]).iter().all(|&m| m == 1));
    }
}

fn golden_checkpoint_encoder(dir: &Path) -> TextEncoder {
    TextEncoder::from_model_dir(dir, DEFAULT_MAX_SEQ_LEN, Padding::Longest).unwrap()
}

#[test]
fn tokenizer_json_matches_hugging_face_including_truncation() {
    check_golden_cases(&golden_checkpoint_encoder(&test_support::minilm_dir()));
}

#[test]
fn vocab_txt_fallback_matches_hugging_face() {
    let dir = tempfile::tempdir().unwrap();
    let model = test_support::minilm_dir();
    for file in ["vocab.txt", "tokenizer_config.json", "config.json"] {
        std::fs::copy(model.join(file), dir.path().join(file)).unwrap();
    }
    check_golden_cases(&golden_checkpoint_encoder(dir.path()));
}

#[test]
fn batch_matches_hugging_face_padding_to_longest() {
    let golden = test_support::minilm_golden();
    let encoder = golden_checkpoint_encoder(&test_support::golden_checkpoint_dir());
    let labels = ids(&golden["batch"]["labels"]);
    let encoded: Vec<EncodedReview> = golden["batch_texts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&labels)
        .enumerate()
        .map(|(source_index, (text, &label))| {
            let text = encoder.encode(text.as_str().unwrap()).unwrap();
            EncodedReview {
                ids: text.ids,
                type_ids: text.type_ids,
                label: label as usize,
                source_index,
            }
        })
        .collect();
    let batch = encoder.collate(&encoded.iter().collect::<Vec<_>>());
    assert_eq!(batch.input_ids, rows(&golden["batch"]["input_ids"]));
    assert_eq!(
        batch.attention_mask,
        rows(&golden["batch"]["attention_mask"])
    );
    assert_eq!(
        batch.token_type_ids,
        rows(&golden["batch"]["token_type_ids"])
    );
    assert_eq!(
        batch.labels,
        labels.iter().map(|&l| l as usize).collect::<Vec<_>>()
    );
    assert_eq!(batch.source_indices, [0, 1, 2, 3]);
    assert_eq!(batch.batch_size, 4);
}

#[test]
fn long_reviews_are_truncated_not_rejected() {
    let encoder =
        TextEncoder::from_model_dir(&test_support::minilm_dir(), 16, Padding::Max).unwrap();
    let long = "word ".repeat(1000);
    let encoded = encoder.encode(&long).unwrap();
    assert_eq!(encoded.ids.len(), 16);
    assert_eq!(encoded.ids[0], 101, "[CLS] first");
    assert_eq!(encoded.ids[15], 102, "[SEP] last");
    let short = encoder.encode("word").unwrap();
    assert_eq!(encoded.ids[..2], short.ids[..2]);
}

#[test]
fn every_shared_review_encodes_within_max_seq_len() {
    let set = ReviewSet::load(&test_support::reviews_path()).unwrap();
    let encoder = golden_checkpoint_encoder(&test_support::minilm_dir());
    let encoded = encoder.encode_set(&set).unwrap();
    assert_eq!(encoded.len(), set.len());
    for (review, item) in set.reviews.iter().zip(&encoded) {
        assert_eq!(
            (item.label, item.source_index),
            (review.label, review.source_index)
        );
        assert!((3..=DEFAULT_MAX_SEQ_LEN).contains(&item.ids.len()));
        assert_eq!((item.ids[0], *item.ids.last().unwrap()), (101, 102));
    }
    // Spot-check the parallel path against the one-text path.
    for index in [0, 4321, set.len() - 1] {
        assert_eq!(
            encoded[index].ids,
            encoder.encode(&set.reviews[index].text).unwrap().ids
        );
    }
    let max_padded =
        TextEncoder::from_model_dir(&test_support::minilm_dir(), 256, Padding::Max).unwrap();
    let rows: Vec<&EncodedReview> = encoded.iter().take(3).collect();
    assert_eq!(max_padded.collate(&rows).seq_len, 256);
}

#[test]
fn bad_model_directories_are_errors() {
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        TextEncoder::from_model_dir(empty.path(), 256, Padding::Longest),
        Err(TaskError::NoTokenizer { .. })
    ));
    let corrupt = tempfile::tempdir().unwrap();
    std::fs::write(corrupt.path().join("tokenizer.json"), "{\"model\": ").unwrap();
    let error = TextEncoder::from_model_dir(corrupt.path(), 256, Padding::Longest).unwrap_err();
    assert!(
        matches!(error, TaskError::TokenizerLoad { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("tokenizer.json"));
    let model = test_support::minilm_dir();
    for bad in [2, 513] {
        assert!(matches!(
            TextEncoder::from_model_dir(&model, bad, Padding::Longest),
            Err(TaskError::InvalidMaxSeqLen { value, .. }) if value == bad
        ));
    }
}
