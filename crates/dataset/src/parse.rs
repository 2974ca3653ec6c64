//! The three review-file formats, each turned into the same unvalidated records.
//!
//! Parsers never panic on any input (a property test feeds them arbitrary bytes): every problem
//! becomes a [`DatasetError`] naming the file and, where there is one, the record and line.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{DatasetError, RecordRef};

/// The file formats a review file may have; all hold the columns `text`, `label`, `domain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewFormat {
    /// A JSON list of objects (the reference's `dataset.json`).
    JsonList,
    /// One JSON object per line; blank lines are skipped.
    JsonLines,
    /// Comma-separated values with a header row naming the columns (extra columns are ignored).
    Csv,
}

impl ReviewFormat {
    /// The format that a file's extension names: `.json`, `.jsonl`/`.ndjson` or `.csv`
    /// (case-insensitive).
    ///
    /// # Errors
    /// [`DatasetError::UnknownFormat`] for any other extension.
    pub fn from_path(path: &Path) -> Result<Self, DatasetError> {
        let extension = path
            .extension()
            .and_then(|ext| ext.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("json") => Ok(Self::JsonList),
            Some("jsonl" | "ndjson") => Ok(Self::JsonLines),
            Some("csv") => Ok(Self::Csv),
            _ => Err(DatasetError::UnknownFormat {
                path: path.to_path_buf(),
            }),
        }
    }
}

/// A record as read, before labels are mapped to ids.
pub(crate) struct RawRecord {
    pub text: String,
    pub label: String,
    pub domain: String,
    pub at: RecordRef,
}

pub(crate) fn parse(
    path: &Path,
    bytes: &[u8],
    format: ReviewFormat,
) -> Result<Vec<RawRecord>, DatasetError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match format {
        ReviewFormat::JsonList => parse_json_list(path, bytes),
        ReviewFormat::JsonLines => parse_json_lines(path, bytes),
        ReviewFormat::Csv => parse_csv(path, bytes),
    }
}

fn json_error(path: &Path, error: &serde_json::Error, line_offset: usize) -> DatasetError {
    DatasetError::Json {
        path: path.to_path_buf(),
        line: error.line() + line_offset,
        column: error.column(),
        message: error.to_string(),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn parse_json_list(path: &Path, bytes: &[u8]) -> Result<Vec<RawRecord>, DatasetError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| json_error(path, &e, 0))?;
    let Value::Array(items) = value else {
        return Err(DatasetError::NotAList {
            path: path.to_path_buf(),
            found: json_type(&value),
        });
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| record_from_json(path, item, RecordRef { index, line: None }))
        .collect()
}

fn parse_json_lines(path: &Path, bytes: &[u8]) -> Result<Vec<RawRecord>, DatasetError> {
    let mut records = Vec::new();
    for (line_index, line) in bytes.split(|&byte| byte == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let at = RecordRef {
            index: records.len(),
            line: Some(line_index + 1),
        };
        let value: Value =
            serde_json::from_slice(line).map_err(|e| json_error(path, &e, line_index))?;
        records.push(record_from_json(path, value, at)?);
    }
    Ok(records)
}

fn record_from_json(path: &Path, value: Value, at: RecordRef) -> Result<RawRecord, DatasetError> {
    let Value::Object(mut object) = value else {
        return Err(DatasetError::RecordNotObject {
            path: path.to_path_buf(),
            record: at,
            found: json_type(&value),
        });
    };
    let mut field = |name: &'static str| match object.remove(name) {
        None => Err(DatasetError::MissingField {
            path: path.to_path_buf(),
            record: at,
            field: name,
        }),
        Some(Value::String(text)) => non_empty(path, text, name, at),
        Some(other) => Err(DatasetError::FieldNotString {
            path: path.to_path_buf(),
            record: at,
            field: name,
            found: json_type(&other),
        }),
    };
    Ok(RawRecord {
        text: field("text")?,
        label: field("label")?,
        domain: field("domain")?,
        at,
    })
}

fn non_empty(
    path: &Path,
    value: String,
    field: &'static str,
    at: RecordRef,
) -> Result<String, DatasetError> {
    if value.trim().is_empty() {
        return Err(DatasetError::EmptyField {
            path: path.to_path_buf(),
            record: at,
            field,
        });
    }
    Ok(value)
}

fn parse_csv(path: &Path, bytes: &[u8]) -> Result<Vec<RawRecord>, DatasetError> {
    let csv_error = |error: csv::Error, fallback_line: usize| DatasetError::Csv {
        path: PathBuf::from(path),
        line: error
            .position()
            .map_or(fallback_line, |position| position.line() as usize),
        message: error.to_string(),
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes);
    let header = reader.headers().map_err(|e| csv_error(e, 1))?.clone();
    let column = |name: &'static str| {
        header
            .iter()
            .position(|cell| cell.trim() == name)
            .ok_or_else(|| DatasetError::MissingColumn {
                path: path.to_path_buf(),
                column: name,
            })
    };
    let (text_column, label_column, domain_column) =
        (column("text")?, column("label")?, column("domain")?);

    let mut records = Vec::new();
    let mut row = csv::StringRecord::new();
    loop {
        let next_line = reader.position().line() as usize;
        match reader.read_record(&mut row) {
            Ok(false) => break,
            Ok(true) => {}
            Err(error) => return Err(csv_error(error, next_line)),
        }
        let at = RecordRef {
            index: records.len(),
            line: row.position().map(|position| position.line() as usize),
        };
        // The reader rejects rows with another number of fields than the header, so every
        // header column exists in every row.
        let cell = |column: usize, name: &'static str| {
            non_empty(
                path,
                row.get(column).unwrap_or_default().to_owned(),
                name,
                at,
            )
        };
        records.push(RawRecord {
            text: cell(text_column, "text")?,
            label: cell(label_column, "label")?,
            domain: cell(domain_column, "domain")?,
            at,
        });
    }
    Ok(records)
}
