//! Property tests: tokenisation never panics and always yields `[CLS] ... [SEP]` within
//! `max_seq_len`, whatever the text.
//!
//! Run with `PROPTEST_CASES=100000 cargo test -p tasks --test fuzz_tokenization` for a long fuzz
//! (proptest's default is 256 cases per property).

use std::sync::OnceLock;

use proptest::prelude::*;
use tasks::{Padding, TextEncoder};

const MAX_SEQ_LEN: usize = 24;

fn encoder() -> &'static TextEncoder {
    static ENCODER: OnceLock<TextEncoder> = OnceLock::new();
    ENCODER.get_or_init(|| {
        TextEncoder::from_model_dir(&test_support::minilm_dir(), MAX_SEQ_LEN, Padding::Longest)
            .expect("MiniLM's tokenizer loads")
    })
}

fn check(text: &str) -> Result<(), TestCaseError> {
    let encoded = encoder()
        .encode(text)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!((2..=MAX_SEQ_LEN).contains(&encoded.ids.len()));
    prop_assert_eq!(encoded.ids.len(), encoded.type_ids.len());
    prop_assert_eq!(encoded.ids[0], 101);
    prop_assert_eq!(*encoded.ids.last().unwrap(), 102);
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_unicode_never_panics(text in "\\PC{0,200}") {
        check(&text)?;
    }

    #[test]
    fn arbitrary_chars_including_controls_never_panic(chars in proptest::collection::vec(any::<char>(), 0..100)) {
        check(&chars.into_iter().collect::<String>())?;
    }

    #[test]
    fn special_token_soup_never_panics(parts in proptest::collection::vec(
        prop_oneof![Just("[CLS]"), Just("[SEP]"), Just("[PAD]"), Just("[UNK]"), Just("##"), Just(" "), Just("\u{0}"), Just("é"), Just("😀"), Just("這")],
        0..60,
    )) {
        check(&parts.concat())?;
    }
}
