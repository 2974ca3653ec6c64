//! Errors of the dataset crate: each names the file and record and says what would fix it.

use std::fmt;
use std::path::PathBuf;

/// Where a record sits in its file: its 0-based index among the reviews (the `source_index` it
/// would have had) and, where the format has lines, its 1-based line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef {
    /// 0-based position among the file's records.
    pub index: usize,
    /// 1-based line where the record starts (JSON Lines and CSV only).
    pub line: Option<usize>,
}

impl fmt::Display for RecordRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "record {} (0-based)", self.index)?;
        if let Some(line) = self.line {
            write!(f, " on line {line}")?;
        }
        Ok(())
    }
}

/// Why a review file could not be loaded or split.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The file could not be read.
    #[error("cannot read review file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The extension says neither JSON, JSON Lines nor CSV.
    #[error(
        "review file {path} has an unknown format: name it *.json (a JSON list), *.jsonl or *.csv"
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The file (or one JSON Lines line) is not valid JSON: truncated, corrupt or not UTF-8.
    #[error(
        "review file {path} is not valid JSON at line {line}, column {column}: {message} (the file may be truncated or corrupt; fetch it again)"
    )]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the parser found.
        message: String,
    },
    /// The CSV could not be parsed (bad quoting, a row with another number of fields, not UTF-8).
    #[error("review file {path} is not valid CSV near line {line}: {message}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// What the parser found.
        message: String,
    },
    /// A `.json` file whose top level is not a list.
    #[error(
        "review file {path} must be a JSON list of {{\"text\", \"label\", \"domain\"}} objects, but its top level is {found}"
    )]
    NotAList {
        /// The file.
        path: PathBuf,
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A record that is not a JSON object.
    #[error(
        "{record} of {path} must be an object with \"text\", \"label\" and \"domain\", but it is {found}"
    )]
    RecordNotObject {
        /// The file.
        path: PathBuf,
        /// The record.
        record: RecordRef,
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A CSV header without one of the three columns.
    #[error(
        "CSV review file {path} has no {column:?} column in its header: the first row must name the columns text, label and domain"
    )]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The missing column.
        column: &'static str,
    },
    /// A record without one of the three fields.
    #[error(
        "{record} of {path} has no {field:?} field: every review needs \"text\", \"label\" and \"domain\""
    )]
    MissingField {
        /// The file.
        path: PathBuf,
        /// The record.
        record: RecordRef,
        /// The missing field.
        field: &'static str,
    },
    /// A field whose JSON value is not a string.
    #[error("{record} of {path}: field {field:?} must be a string, but it is {found}")]
    FieldNotString {
        /// The file.
        path: PathBuf,
        /// The record.
        record: RecordRef,
        /// The field.
        field: &'static str,
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A field that is empty or only whitespace.
    #[error("{record} of {path}: field {field:?} is empty; remove the record or fill it in")]
    EmptyField {
        /// The file.
        path: PathBuf,
        /// The record.
        record: RecordRef,
        /// The field.
        field: &'static str,
    },
    /// A label that is not in the label set the caller fixed (e.g. a checkpoint's).
    #[error(
        "{record} of {path} has label {label:?}, which is not one of the expected labels [{expected}]"
    )]
    UnknownLabel {
        /// The file.
        path: PathBuf,
        /// The record.
        record: RecordRef,
        /// The label found.
        label: String,
        /// The allowed labels, comma-separated.
        expected: String,
    },
    /// A file with no reviews at all.
    #[error("review file {path} holds no reviews")]
    NoReviews {
        /// The file.
        path: PathBuf,
    },
    /// A label set that cannot be used.
    #[error("invalid label set: {reason}")]
    InvalidLabelSet {
        /// What is wrong.
        reason: String,
    },
    /// A domain that an operation asked for is not in the file.
    #[error("domain {domain:?} is not in {path}; its domains are: {available}")]
    UnknownDomain {
        /// The file.
        path: PathBuf,
        /// The domain asked for.
        domain: String,
        /// The file's domains, comma-separated.
        available: String,
    },
    /// A domain with fewer reviews than an operation needs.
    #[error("domain {domain:?} of {path} has {available} reviews, but {purpose} needs {needed}")]
    DomainTooSmall {
        /// The file.
        path: PathBuf,
        /// The domain.
        domain: String,
        /// Its number of reviews.
        available: usize,
        /// How many the operation needs.
        needed: usize,
        /// The operation, e.g. "a task of 80 support + 20 query reviews".
        purpose: String,
    },
    /// Every domain of the file is a test domain.
    #[error(
        "no training domains are left in {path} after holding out the test domains [{test_domains}]"
    )]
    NoTrainingDomains {
        /// The file.
        path: PathBuf,
        /// The held-out domains, comma-separated.
        test_domains: String,
    },
    /// A `--num-domain` value that is neither `all` nor a positive number.
    #[error("invalid number of training domains {value:?}: give a positive number or \"all\"")]
    InvalidNumDomain {
        /// The value given.
        value: String,
    },
    /// A validation share of 100 % or more, which would leave nothing to train on.
    #[error("invalid validation percentage {value}: it must be below 100")]
    InvalidValidationPercent {
        /// The value given.
        value: u32,
    },
}
