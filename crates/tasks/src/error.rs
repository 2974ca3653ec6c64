//! Errors of the tasks crate.

use std::path::PathBuf;

/// Why episodes could not be drawn or text could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// A problem with the reviews themselves (unknown or too small domain, ...).
    #[error(transparent)]
    Dataset(#[from] dataset::DatasetError),
    /// A task size of zero support or zero query reviews.
    #[error(
        "a task needs at least one support and one query review, but got {num_support} support and {num_query} query"
    )]
    InvalidTaskSize {
        /// Support reviews asked for.
        num_support: usize,
        /// Query reviews asked for.
        num_query: usize,
    },
    /// An empty pool of reviews to draw meta-training tasks from.
    #[error("no reviews to draw meta-training tasks from: the training split is empty")]
    EmptyPool,
    /// A model directory with neither `tokenizer.json` nor `vocab.txt`.
    #[error(
        "model directory {dir} has neither tokenizer.json nor vocab.txt: a BERT model directory has one of them"
    )]
    NoTokenizer {
        /// The directory.
        dir: PathBuf,
    },
    /// A tokenizer file, vocabulary or config that could not be read.
    #[error("cannot load the tokenizer from {path}: {message}")]
    TokenizerLoad {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A vocabulary without a token that encoding needs.
    #[error("the tokenizer in {dir} has no {token} token, which BERT inputs need")]
    MissingSpecialToken {
        /// The model directory.
        dir: PathBuf,
        /// The token, e.g. `[PAD]`.
        token: &'static str,
    },
    /// A longest-sequence setting that cannot be used.
    #[error("invalid maximum sequence length {value}: {reason}")]
    InvalidMaxSeqLen {
        /// The value given.
        value: usize,
        /// Why it cannot be used.
        reason: String,
    },
    /// The tokenizer failed on a text.
    #[error("cannot tokenise {what}: {message}")]
    Encode {
        /// Which text, e.g. "review 12 of data/dataset.json".
        what: String,
        /// The tokenizer's message.
        message: String,
    },
    /// A training index that the review set does not have.
    #[error("training index {index} is out of range: the review set has {len} reviews")]
    IndexOutOfRange {
        /// The offending index.
        index: usize,
        /// How many reviews there are.
        len: usize,
    },
    /// A training domain is too small to hold out validation episodes and still meta-train.
    #[error(
        "training domain `{domain}` has {available} reviews, but holding out {held_out} for \
         validation leaves fewer than the {needed} an episode needs: hold out fewer validation \
         tasks or use smaller episodes"
    )]
    ValidationDomainTooSmall {
        /// The domain.
        domain: String,
        /// Its reviews among the training indices.
        available: usize,
        /// Reviews the validation episodes take.
        held_out: usize,
        /// Reviews one episode needs (support + query).
        needed: usize,
    },
}
