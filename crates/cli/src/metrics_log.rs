//! metrics.jsonl: one JSON object per line, each appended and flushed on its own, so a crash
//! tears at most the last line.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::Value;

/// An open metrics.jsonl.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
}

impl MetricsLog {
    /// Opens `path`, keeping only the complete lines for which `keep` holds: a resumed run
    /// drops what was logged after its checkpoint (it will be computed again) and a torn last
    /// line. The file is rewritten atomically if anything is dropped.
    pub fn open(path: &Path, keep: impl Fn(&Value) -> bool) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        let lines = complete_lines(path, &text)?;
        let kept: Vec<&str> = lines
            .iter()
            .filter(|(_, value)| keep(value))
            .map(|(line, _)| *line)
            .collect();
        let dropped = text.lines().count() - kept.len();
        if dropped > 0 {
            tracing::info!(
                "{}: dropping {dropped} line(s) logged after the checkpoint being resumed",
                path.display()
            );
            let mut contents = kept.join("\n");
            if !contents.is_empty() {
                contents.push('\n');
            }
            atomic_io::write_file(path, contents.as_bytes())?;
        }
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    /// Appends one record.
    pub fn append(&self, record: &Value) -> anyhow::Result<()> {
        atomic_io::append_line(&self.path, &record.to_string())?;
        Ok(())
    }
}

/// The parsed lines of `text`, without a torn last line (no newline, or not JSON). A line
/// before the last that is not JSON means the file was damaged otherwise: an error.
fn complete_lines<'a>(path: &Path, text: &'a str) -> anyhow::Result<Vec<(&'a str, Value)>> {
    let mut lines: Vec<&str> = text.split('\n').collect();
    // After the last newline: empty when the file ends cleanly, else a torn line.
    lines.pop();
    let mut parsed = Vec::with_capacity(lines.len());
    let last = lines.len().saturating_sub(1);
    for (index, line) in lines.into_iter().enumerate() {
        match serde_json::from_str::<Value>(line) {
            Ok(value) => parsed.push((line, value)),
            Err(_) if index == last => {}
            Err(error) => bail!(
                "{} line {} is not JSON ({error}): the file was damaged; move it aside to resume",
                path.display(),
                index + 1
            ),
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_and_lines_after_the_checkpoint_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(&path, "{\"step\":1}\n{\"step\":2}\n{\"step\":3}\n{\"st").unwrap();
        let log = MetricsLog::open(&path, |line| line["step"].as_u64() <= Some(2)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"step\":1}\n{\"step\":2}\n"
        );
        log.append(&serde_json::json!({"step": 3})).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"step\":1}\n{\"step\":2}\n{\"step\":3}\n"
        );
    }

    #[test]
    fn a_damaged_middle_line_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(&path, "{\"step\":1}\ngarbage\n{\"step\":3}\n").unwrap();
        let error = MetricsLog::open(&path, |_| true).unwrap_err().to_string();
        assert!(error.contains("line 2"), "{error}");
    }
}
