//! Where the review file is when the user does not say.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The environment variable naming the review file when `--data` is absent.
pub const DATA_ENV: &str = "METABERT_DATA";

/// The review file used when neither `--data` nor `METABERT_DATA` names one.
pub const DEFAULT_DATA_PATH: &str = "data/dataset.json";

/// The review file to load: the `--data` flag if given, else `$METABERT_DATA` if set and
/// non-empty, else `data/dataset.json` (relative to the working directory).
pub fn resolve_data_path(flag: Option<&Path>) -> PathBuf {
    resolve_data_path_with(flag, std::env::var_os(DATA_ENV))
}

fn resolve_data_path_with(flag: Option<&Path>, env: Option<OsString>) -> PathBuf {
    if let Some(flag) = flag {
        return flag.to_path_buf();
    }
    match env {
        Some(value) if !value.is_empty() => PathBuf::from(value),
        _ => PathBuf::from(DEFAULT_DATA_PATH),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_wins_over_environment() {
        let path = resolve_data_path_with(Some(Path::new("a.json")), Some("b.json".into()));
        assert_eq!(path, Path::new("a.json"));
    }

    #[test]
    fn environment_wins_over_default() {
        let path = resolve_data_path_with(None, Some("b.json".into()));
        assert_eq!(path, Path::new("b.json"));
    }

    #[test]
    fn default_when_nothing_or_empty_is_given() {
        assert_eq!(
            resolve_data_path_with(None, None),
            Path::new(DEFAULT_DATA_PATH)
        );
        assert_eq!(
            resolve_data_path_with(None, Some(OsString::new())),
            Path::new(DEFAULT_DATA_PATH)
        );
    }
}
