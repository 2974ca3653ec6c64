//! Every kind of bad review file gives its own error, naming the file and the record.

use std::path::{Path, PathBuf};

use dataset::{
    DatasetError, LabelSet, NumDomain, RecordRef, ReviewSet, SplitConfig, finetune_split,
};

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn load_error(name: &str, contents: &str) -> (PathBuf, DatasetError) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), name, contents);
    let error = ReviewSet::load(&path).expect_err("the file is bad");
    let message = error.to_string();
    assert!(message.contains(name), "{message:?} names the file");
    (path, error)
}

const GOOD: &str = r#"{"text": "fine", "label": "positive", "domain": "books"}"#;

#[test]
fn truncated_json_names_file_line_and_column() {
    let (_, error) = load_error("reviews.json", &format!("[\n{GOOD},\n{{\"text\": \"cut of"));
    match error {
        DatasetError::Json { line, column, .. } => assert_eq!((line, column), (3, 16)),
        other => panic!("expected a JSON error, got {other:?}"),
    }
}

#[test]
fn truncated_shared_file_is_an_error_not_a_panic() {
    let bytes = std::fs::read(test_support::reviews_path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dataset.json");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        ReviewSet::load(&path),
        Err(DatasetError::Json { .. })
    ));
}

#[test]
fn corrupt_bytes_are_a_json_error() {
    let (_, error) = load_error("reviews.json", "[{\"text\": \"\u{0}\u{1}\" \u{ff}]");
    assert!(matches!(error, DatasetError::Json { .. }), "{error:?}");
}

#[test]
fn json_that_is_not_a_list() {
    let (_, error) = load_error("reviews.json", GOOD);
    assert!(
        matches!(
            error,
            DatasetError::NotAList {
                found: "an object",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn record_that_is_not_an_object() {
    let (_, error) = load_error("reviews.json", &format!("[{GOOD}, 3]"));
    assert!(
        matches!(
            error,
            DatasetError::RecordNotObject {
                record: RecordRef {
                    index: 1,
                    line: None
                },
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn missing_field() {
    let (_, error) = load_error("reviews.json", r#"[{"text": "fine", "label": "positive"}]"#);
    assert!(
        matches!(
            error,
            DatasetError::MissingField {
                field: "domain",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn text_that_is_not_a_string() {
    let (_, error) = load_error(
        "reviews.jsonl",
        &format!("{GOOD}\n\n{{\"text\": 5, \"label\": \"positive\", \"domain\": \"books\"}}\n"),
    );
    match error {
        DatasetError::FieldNotString {
            field,
            found,
            record,
            ..
        } => {
            assert_eq!((field, found), ("text", "a number"));
            assert_eq!(
                record,
                RecordRef {
                    index: 1,
                    line: Some(3)
                }
            );
        }
        other => panic!("expected a non-string field, got {other:?}"),
    }
}

#[test]
fn empty_text() {
    let (_, error) = load_error(
        "reviews.csv",
        "text,label,domain\nfine,positive,books\n  ,negative,books\n",
    );
    match error {
        DatasetError::EmptyField { field, record, .. } => {
            assert_eq!(field, "text");
            assert_eq!(
                record,
                RecordRef {
                    index: 1,
                    line: Some(3)
                }
            );
        }
        other => panic!("expected an empty field, got {other:?}"),
    }
}

#[test]
fn csv_without_a_column_and_with_ragged_rows() {
    let (_, error) = load_error("reviews.csv", "text,domain\nfine,books\n");
    assert!(
        matches!(
            error,
            DatasetError::MissingColumn {
                column: "label",
                ..
            }
        ),
        "{error:?}"
    );
    let (_, error) = load_error("reviews.csv", "text,label,domain\nfine,positive\n");
    assert!(
        matches!(error, DatasetError::Csv { line: 2, .. }),
        "{error:?}"
    );
}

#[test]
fn label_outside_a_fixed_label_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "reviews.json",
        &format!(r#"[{GOOD}, {{"text": "meh", "label": "neutral", "domain": "books"}}]"#),
    );
    let error = ReviewSet::load_with_labels(&path, &LabelSet::sentiment()).unwrap_err();
    match &error {
        DatasetError::UnknownLabel { label, record, .. } => {
            assert_eq!(label, "neutral");
            assert_eq!(record.index, 1);
        }
        other => panic!("expected an unknown label, got {other:?}"),
    }
    assert!(error.to_string().contains("negative, positive"));
}

#[test]
fn other_label_names_are_read_from_the_file_sorted() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "reviews.csv",
        "text,label,domain,stars\ngood,pos,books,5\nok,neu,books,3\nbad,neg,books,1\n",
    );
    let set = ReviewSet::load(&path).unwrap();
    assert_eq!(set.labels.names(), ["neg", "neu", "pos"]);
    assert_eq!(
        set.reviews.iter().map(|r| r.label).collect::<Vec<_>>(),
        [2, 1, 0]
    );
}

#[test]
fn empty_file_and_unknown_extension() {
    let (_, error) = load_error("reviews.json", "[]");
    assert!(matches!(error, DatasetError::NoReviews { .. }), "{error:?}");
    let (_, error) = load_error("reviews.txt", "[]");
    assert!(
        matches!(error, DatasetError::UnknownFormat { .. }),
        "{error:?}"
    );
    let missing = Path::new("/nonexistent/reviews.json");
    assert!(matches!(
        ReviewSet::load(missing),
        Err(DatasetError::Io { .. })
    ));
}

fn small_set() -> (tempfile::TempDir, ReviewSet) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "reviews.jsonl",
        concat!(
            r#"{"text": "a", "label": "positive", "domain": "books"}"#,
            "\n",
            r#"{"text": "b", "label": "negative", "domain": "books"}"#,
            "\n",
            r#"{"text": "c", "label": "negative", "domain": "automotive"}"#,
            "\n",
        ),
    );
    let set = ReviewSet::load(&path).unwrap();
    (dir, set)
}

#[test]
fn missing_test_domain_is_named() {
    let (_, set) = small_set();
    let error = SplitConfig::default().test_indices(&set).unwrap_err();
    match &error {
        DatasetError::UnknownDomain {
            domain, available, ..
        } => {
            assert_eq!(domain, "office_products");
            assert_eq!(available, "automotive, books");
        }
        other => panic!("expected an unknown domain, got {other:?}"),
    }
    assert!(SplitConfig::default().training_indices(&set).is_err());
    assert!(matches!(
        set.domain_indices("toys"),
        Err(DatasetError::UnknownDomain { .. })
    ));
}

#[test]
fn nothing_left_to_train_on() {
    let (_, set) = small_set();
    let config = SplitConfig {
        test_domains: vec!["books".into(), "automotive".into()],
        num_domain: NumDomain::All,
    };
    assert!(matches!(
        config.training_domains(&set),
        Err(DatasetError::NoTrainingDomains { .. })
    ));
}

#[test]
fn invalid_num_domain_and_validation_share() {
    assert_eq!("all".parse::<NumDomain>().unwrap(), NumDomain::All);
    assert_eq!("3".parse::<NumDomain>().unwrap(), NumDomain::Count(3));
    for bad in ["0", "-1", "three", ""] {
        assert!(
            matches!(
                bad.parse::<NumDomain>(),
                Err(DatasetError::InvalidNumDomain { .. })
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        finetune_split(&[1, 2, 3], 100, 0),
        Err(DatasetError::InvalidValidationPercent { value: 100 })
    ));
}
