//! Tokenisation: text to BERT input ids, truncated to `max_seq_len`.

use std::path::Path;

use dataset::ReviewSet;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{
    AddedToken, Encoding, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

use crate::{Batch, EncodedReview, Padding, TaskError, collate};

/// The reference's sequence length; longer reviews are truncated.
pub const DEFAULT_MAX_SEQ_LEN: usize = 256;

/// The ids of one text, unpadded: `[CLS] wordpieces [SEP]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedText {
    /// Wordpiece ids.
    pub ids: Vec<u32>,
    /// Token type (segment) ids, as long as `ids`.
    pub type_ids: Vec<u32>,
}

/// Turns text into BERT inputs with a model directory's tokenizer, truncating to `max_seq_len`
/// exactly as Hugging Face does (the first `max_seq_len - 2` wordpieces, then `[SEP]`).
///
/// Padding is left to [`TextEncoder::collate`]: a `tokenizer.json` that switches on its own
/// padding or truncation (the shared MiniLM's pads and truncates to 128) has both overridden.
#[derive(Debug, Clone)]
pub struct TextEncoder {
    tokenizer: Tokenizer,
    max_seq_len: usize,
    padding: Padding,
    pad_id: u32,
}

impl TextEncoder {
    /// The tokenizer of model directory `dir`: its `tokenizer.json`, else a BERT WordPiece
    /// tokenizer over its `vocab.txt` that lower-cases unless `tokenizer_config.json` says
    /// `"do_lower_case": false`.
    ///
    /// # Errors
    /// [`TaskError::NoTokenizer`], [`TaskError::TokenizerLoad`],
    /// [`TaskError::MissingSpecialToken`] (no `[PAD]`), or [`TaskError::InvalidMaxSeqLen`] when
    /// `max_seq_len` is below 3 or above the `max_position_embeddings` of `dir/config.json`.
    pub fn from_model_dir(
        dir: &Path,
        max_seq_len: usize,
        padding: Padding,
    ) -> Result<Self, TaskError> {
        check_max_seq_len(dir, max_seq_len)?;
        let tokenizer_json = dir.join("tokenizer.json");
        let vocab_txt = dir.join("vocab.txt");
        let mut tokenizer = if tokenizer_json.is_file() {
            Tokenizer::from_file(&tokenizer_json).map_err(|e| load_error(&tokenizer_json, e))?
        } else if vocab_txt.is_file() {
            wordpiece_tokenizer(dir, &vocab_txt)?
        } else {
            return Err(TaskError::NoTokenizer {
                dir: dir.to_path_buf(),
            });
        };
        let pad_id =
            match tokenizer.get_padding() {
                Some(params) => params.pad_id,
                None => tokenizer.token_to_id("[PAD]").ok_or_else(|| {
                    TaskError::MissingSpecialToken {
                        dir: dir.to_path_buf(),
                        token: "[PAD]",
                    }
                })?,
            };
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: max_seq_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| TaskError::InvalidMaxSeqLen {
                value: max_seq_len,
                reason: e.to_string(),
            })?;
        Ok(Self {
            tokenizer,
            max_seq_len,
            padding,
            pad_id,
        })
    }

    /// Encodes one text.
    ///
    /// # Errors
    /// [`TaskError::Encode`] if the tokenizer fails (not seen with BERT vocabularies).
    pub fn encode(&self, text: &str) -> Result<EncodedText, TaskError> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| TaskError::Encode {
                what: format!("text {:?}", preview(text)),
                message: e.to_string(),
            })?;
        Ok(encoded_text(&encoding))
    }

    /// Encodes every review of `set`, in parallel; the result is aligned with `set.reviews`.
    ///
    /// # Errors
    /// [`TaskError::Encode`] naming the file if the tokenizer fails.
    pub fn encode_set(&self, set: &ReviewSet) -> Result<Vec<EncodedReview>, TaskError> {
        let texts: Vec<&str> = set.reviews.iter().map(|r| r.text.as_str()).collect();
        let encodings =
            self.tokenizer
                .encode_batch(texts, true)
                .map_err(|e| TaskError::Encode {
                    what: format!("the reviews of {}", set.path.display()),
                    message: e.to_string(),
                })?;
        Ok(set
            .reviews
            .iter()
            .zip(&encodings)
            .map(|(review, encoding)| {
                let text = encoded_text(encoding);
                EncodedReview {
                    ids: text.ids,
                    type_ids: text.type_ids,
                    label: review.label,
                    source_index: review.source_index,
                }
            })
            .collect())
    }

    /// Pads `items` with this encoder's padding, `max_seq_len` and pad id.
    pub fn collate(&self, items: &[&EncodedReview]) -> Batch {
        collate(items, self.padding, self.max_seq_len, self.pad_id)
    }

    /// The longest sequence an encoding can have, `[CLS]` and `[SEP]` included.
    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }

    /// How [`TextEncoder::collate`] pads.
    pub fn padding(&self) -> Padding {
        self.padding
    }

    /// The id of `[PAD]`.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }
}

fn encoded_text(encoding: &Encoding) -> EncodedText {
    EncodedText {
        ids: encoding.get_ids().to_vec(),
        type_ids: encoding.get_type_ids().to_vec(),
    }
}

fn preview(text: &str) -> String {
    const PREVIEW_CHARS: usize = 40;
    let mut preview: String = text.chars().take(PREVIEW_CHARS).collect();
    if text.chars().nth(PREVIEW_CHARS).is_some() {
        preview.push('…');
    }
    preview
}

fn load_error(path: &Path, error: impl std::fmt::Display) -> TaskError {
    TaskError::TokenizerLoad {
        path: path.to_path_buf(),
        message: error.to_string(),
    }
}

fn read_json(path: &Path) -> Result<Option<serde_json::Value>, TaskError> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| load_error(path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| load_error(path, e))
}

fn check_max_seq_len(dir: &Path, max_seq_len: usize) -> Result<(), TaskError> {
    if max_seq_len < 3 {
        return Err(TaskError::InvalidMaxSeqLen {
            value: max_seq_len,
            reason: "it must leave room for [CLS], one wordpiece and [SEP] (3 or more)".to_owned(),
        });
    }
    let config_path = dir.join("config.json");
    let positions =
        read_json(&config_path)?.and_then(|config| config.get("max_position_embeddings")?.as_u64());
    match positions {
        Some(positions) if max_seq_len as u64 > positions => Err(TaskError::InvalidMaxSeqLen {
            value: max_seq_len,
            reason: format!(
                "the model in {} has only {positions} position embeddings",
                dir.display()
            ),
        }),
        _ => Ok(()),
    }
}

/// What Hugging Face's `BertTokenizerFast` builds from a bare `vocab.txt`.
fn wordpiece_tokenizer(dir: &Path, vocab_txt: &Path) -> Result<Tokenizer, TaskError> {
    let config = read_json(&dir.join("tokenizer_config.json"))?;
    let flag = |key: &str| config.as_ref().and_then(|c| c.get(key)?.as_bool());
    let lowercase = flag("do_lower_case").unwrap_or(true);
    let vocab_str = vocab_txt
        .to_str()
        .ok_or_else(|| load_error(vocab_txt, "the path is not valid UTF-8"))?;
    let wordpiece = WordPiece::from_file(vocab_str)
        .unk_token("[UNK]".to_owned())
        .build()
        .map_err(|e| load_error(vocab_txt, e))?;
    let mut tokenizer = Tokenizer::new(wordpiece);
    let special_id = |token: &'static str| {
        tokenizer
            .token_to_id(token)
            .ok_or_else(|| TaskError::MissingSpecialToken {
                dir: dir.to_path_buf(),
                token,
            })
    };
    let cls = special_id("[CLS]")?;
    let sep = special_id("[SEP]")?;
    special_id("[UNK]")?;
    tokenizer
        .with_normalizer(Some(BertNormalizer::new(
            true,
            flag("tokenize_chinese_chars").unwrap_or(true),
            flag("strip_accents"),
            lowercase,
        )))
        .with_pre_tokenizer(Some(BertPreTokenizer))
        .with_post_processor(Some(BertProcessing::new(
            ("[SEP]".to_owned(), sep),
            ("[CLS]".to_owned(), cls),
        )));
    let specials: Vec<AddedToken> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .into_iter()
        .filter(|token| tokenizer.token_to_id(token).is_some())
        .map(|token| AddedToken::from(token, true))
        .collect();
    tokenizer.add_special_tokens(&specials);
    Ok(tokenizer)
}
