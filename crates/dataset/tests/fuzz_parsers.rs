//! Property tests: the three parsers never panic, whatever bytes they are given.
//!
//! Run with `PROPTEST_CASES=100000 cargo test -p dataset --test fuzz_parsers` for a long fuzz
//! (proptest's default is 256 cases per property).

use std::path::Path;

use dataset::{LabelSet, ReviewFormat, ReviewSet};
use proptest::prelude::*;

const FORMATS: [ReviewFormat; 3] = [
    ReviewFormat::JsonList,
    ReviewFormat::JsonLines,
    ReviewFormat::Csv,
];

fn parse_all(bytes: &[u8]) {
    let sentiment = LabelSet::sentiment();
    for format in FORMATS {
        for labels in [None, Some(&sentiment)] {
            // Either outcome is fine; a panic fails the test.
            if let Ok(set) = ReviewSet::from_bytes(Path::new("fuzz"), bytes, format, labels) {
                assert!(set.reviews.iter().all(|r| r.label < set.labels.len()));
                let _ = set.domain_stats();
            }
        }
    }
}

/// Text that looks like a review file, so mutations reach past the first syntax check.
fn review_like() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        Just("\"text\"".to_owned()),
        Just("\"label\"".to_owned()),
        Just("\"domain\"".to_owned()),
        Just("\"positive\"".to_owned()),
        Just("\"negative\"".to_owned()),
        "\"[^\"\\\\]{0,8}\"",
        "-?[0-9]{1,3}",
        Just("null".to_owned()),
    ];
    let token = prop_oneof![
        field,
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(":".to_owned()),
        Just(",".to_owned()),
        Just("\n".to_owned()),
        Just("text,label,domain\n".to_owned()),
    ];
    proptest::collection::vec(token, 0..40).prop_map(|tokens| tokens.concat())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        parse_all(&bytes);
    }

    #[test]
    fn arbitrary_strings_never_panic(text in "\\PC{0,128}") {
        parse_all(text.as_bytes());
    }

    #[test]
    fn review_like_text_never_panics(text in review_like()) {
        parse_all(text.as_bytes());
    }

    #[test]
    fn valid_records_round_trip_through_every_format(
        records in proptest::collection::vec(("[a-z ]{0,3}[a-z]", prop_oneof![Just("negative"), Just("positive")], "[a-z_]{1,6}"), 1..8)
    ) {
        let json: Vec<serde_json::Value> = records
            .iter()
            .map(|(text, label, domain)| serde_json::json!({"text": text, "label": label, "domain": domain}))
            .collect();
        let list = serde_json::to_vec(&json).unwrap();
        let lines: String = json.iter().map(|r| format!("{r}\n")).collect();
        let mut csv = String::from("text,label,domain\n");
        for (text, label, domain) in &records {
            csv.push_str(&format!("{text},{label},{domain}\n"));
        }
        for (format, bytes) in [
            (ReviewFormat::JsonList, list.as_slice()),
            (ReviewFormat::JsonLines, lines.as_bytes()),
            (ReviewFormat::Csv, csv.as_bytes()),
        ] {
            let set = ReviewSet::from_bytes(Path::new("fuzz"), bytes, format, None).unwrap();
            prop_assert_eq!(set.len(), records.len());
            for (review, (text, label, domain)) in set.reviews.iter().zip(&records) {
                prop_assert_eq!(&review.text, text);
                prop_assert_eq!(set.labels.name(review.label), *label);
                prop_assert_eq!(&review.domain, domain);
            }
        }
    }
}
