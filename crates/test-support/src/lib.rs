//! Test helpers shared by every crate of the workspace (a dev-dependency only).
//!
//! Tests read real assets from `../shared` beside the repository (or from the directory named by
//! `METABERT_SHARED`): the review file, the MiniLM model and the PyTorch goldens. This crate is
//! the one place that knows where they are and how close "equal to PyTorch" has to be.
//!
//! # Example
//!
//! ```
//! let golden = test_support::minilm_golden();
//! assert!(golden["forward"]["logits"].is_array());
//! test_support::assert_close(&[1.0, 2.0], &[1.0, 2.00001], 1e-4, 0.0, "logits");
//! ```

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;

/// The read-only assets directory: `$METABERT_SHARED`, else `../shared` beside the workspace.
pub fn shared_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("METABERT_SHARED") {
        return PathBuf::from(dir);
    }
    // Cargo sets the tested package's directory at run time too. The compile-time value can name
    // another clone: cargo reuses this crate's build across checkouts sharing a target directory.
    let package = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let workspace = package
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .unwrap_or(&package);
    let dir = workspace.join("../shared");
    assert!(
        dir.is_dir(),
        "test assets not found at {}: clone the repository beside `shared/` or set METABERT_SHARED",
        dir.display()
    );
    dir.canonicalize().expect("shared dir exists")
}

/// The reference-format review file with 10 domains.
pub fn reviews_path() -> PathBuf {
    shared_dir().join("data/amazon-reviews/dataset.json")
}

/// all-MiniLM-L6-v2: a base `BertModel` without `bert.` prefix, pooler or classifier head.
pub fn minilm_dir() -> PathBuf {
    shared_dir().join("models/all-MiniLM-L6-v2")
}

/// bert-base-uncased's config and tokenizer, without weights.
pub fn bert_base_config_dir() -> PathBuf {
    shared_dir().join("models/bert-base-uncased-config")
}

/// `["negative", "positive"]`: the label names of the MiniLM goldens and the review file.
pub fn sentiment_labels() -> Vec<String> {
    vec!["negative".into(), "positive".into()]
}

/// The three label names the tiny fixture checkpoint was made for.
pub fn tiny_labels() -> Vec<String> {
    vec!["negative".into(), "neutral".into(), "positive".into()]
}

/// A golden file's `batch` as row-major arrays (what `model::BertInput::new` takes).
#[derive(Debug, Clone, PartialEq)]
pub struct GoldenBatch {
    /// Token ids, `rows * seq_len`.
    pub input_ids: Vec<i64>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<i64>,
    /// Segment ids.
    pub token_type_ids: Vec<i64>,
    /// One label id per row.
    pub labels: Vec<i64>,
    /// `[rows, seq_len]`.
    pub shape: [usize; 2],
}

/// A batch of a golden file, e.g. `minilm_golden()["batch"]`.
pub fn golden_batch(batch: &serde_json::Value) -> GoldenBatch {
    let input_ids = flatten_i64(&batch["input_ids"]);
    let rows = batch["input_ids"]
        .as_array()
        .expect("the golden batch's input_ids are rows")
        .len();
    GoldenBatch {
        shape: [rows, input_ids.len() / rows],
        input_ids,
        attention_mask: flatten_i64(&batch["attention_mask"]),
        token_type_ids: flatten_i64(&batch["token_type_ids"]),
        labels: flatten_i64(&batch["labels"]),
    }
}

/// The 2-label `BertForSequenceClassification` checkpoint that the goldens were computed on.
pub fn golden_checkpoint_dir() -> PathBuf {
    shared_dir().join("fixtures/minilm-l6-golden/checkpoint")
}

/// The tiny random 3-label BERT saved as `pytorch_model.bin`.
pub fn tiny_bert_dir() -> PathBuf {
    shared_dir().join("fixtures/tiny-bert-bin")
}

fn read_json(path: PathBuf) -> serde_json::Value {
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Copies the tiny fixture's config and tokenizer, without its weights, into `dir`: a bare
/// config, which only `meta-bert bench` accepts (with random weights).
pub fn write_bare_tiny_config(dir: &std::path::Path) {
    for file in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
    ] {
        std::fs::copy(tiny_bert_dir().join(file), dir.join(file))
            .unwrap_or_else(|e| panic!("cannot copy {file} into {}: {e}", dir.display()));
    }
}

/// `fixtures/minilm-l6-golden/golden.json`, computed by PyTorch + transformers.
pub fn minilm_golden() -> serde_json::Value {
    read_json(shared_dir().join("fixtures/minilm-l6-golden/golden.json"))
}

/// `fixtures/tiny-bert-bin/golden.json`, computed by PyTorch + transformers.
pub fn tiny_bert_golden() -> serde_json::Value {
    read_json(tiny_bert_dir().join("golden.json"))
}

/// Flattens a (nested) JSON array of numbers, row-major.
pub fn flatten_f64(value: &serde_json::Value) -> Vec<f64> {
    match value {
        serde_json::Value::Array(items) => items.iter().flat_map(flatten_f64).collect(),
        serde_json::Value::Number(n) => vec![n.as_f64().expect("finite number")],
        other => panic!("expected numbers, found {other}"),
    }
}

/// Flattens a (nested) JSON array of integers, row-major.
pub fn flatten_i64(value: &serde_json::Value) -> Vec<i64> {
    flatten_f64(value).into_iter().map(|x| x as i64).collect()
}

/// Asserts `|actual - expected| <= abs + rel * |expected|` element-wise. A failure names how many
/// values are out of tolerance and the worst of them, the one furthest past its tolerance (NaN
/// first): its index, both values, the deviation and the tolerance.
pub fn assert_close(actual: &[f64], expected: &[f64], abs: f64, rel: f64, what: &str) {
    assert_eq!(
        actual.len(),
        expected.len(),
        "{what}: {} values, expected {}",
        actual.len(),
        expected.len()
    );
    let mut outside = 0usize;
    // ((times past its tolerance, deviation), index, deviation, tolerance) of the worst value
    // outside it; the deviation breaks ties between values with no tolerance at all.
    let mut worst: Option<((f64, f64), usize, f64, f64)> = None;
    for (index, (a, e)) in actual.iter().zip(expected).enumerate() {
        let deviation = (a - e).abs();
        let tolerance = abs + rel * e.abs();
        // Written so that a NaN on either side fails.
        if deviation <= tolerance {
            continue;
        }
        outside += 1;
        let rank = if deviation.is_nan() {
            (f64::INFINITY, f64::INFINITY)
        } else {
            (deviation / tolerance, deviation)
        };
        if worst.is_none_or(|(worst_rank, ..)| rank > worst_rank) {
            worst = Some((rank, index, deviation, tolerance));
        }
    }
    if let Some((_, index, deviation, tolerance)) = worst {
        panic!(
            "{what}: {outside} of {} values out of tolerance; worst at [{index}]: got {}, \
             expected {}, |diff| {deviation:e} > {tolerance:e} (abs {abs:e} + rel {rel:e} \
             * |expected|)",
            actual.len(),
            actual[index],
            expected[index],
        );
    }
}

/// The device for a wgpu test, as `open` returns it (e.g. `|| BackendKind::Wgpu.device()`), or
/// `None` when the test is to return at once. Where `open` fails, the test fails, naming the
/// driver to install, unless `METABERT_SKIP_WGPU=1`: then it is skipped, saying why on stderr.
pub fn wgpu_device_or_skip<Device, Error: std::fmt::Display>(
    open: impl FnOnce() -> Result<Device, Error>,
) -> Option<Device> {
    let skip = std::env::var("METABERT_SKIP_WGPU").is_ok_and(|value| value == "1");
    device_or_skip(open(), skip)
}

fn device_or_skip<Device, Error: std::fmt::Display>(
    opened: Result<Device, Error>,
    skip: bool,
) -> Option<Device> {
    match opened {
        Ok(device) => Some(device),
        Err(error) if skip => {
            eprintln!("skipping this wgpu test (METABERT_SKIP_WGPU=1): no wgpu device: {error}");
            None
        }
        Err(error) => panic!(
            "no wgpu device: {error}. Install a Vulkan driver (e.g. mesa-vulkan-drivers) or set \
             METABERT_SKIP_WGPU=1 to skip this test"
        ),
    }
}

/// The environment variable naming the backend that backend-parametrised tests run on.
pub const TEST_BACKEND_VAR: &str = "METABERT_TEST_BACKEND";

/// The device for a test that can run on any backend: `$METABERT_TEST_BACKEND` (default
/// `flex`) parsed as `Kind` and opened by `open`, e.g.
/// `test_support::test_device(model::BackendKind::device)`. A name `Kind` rejects, or a backend
/// that does not open (not compiled in, no library), fails the test: a test asked to run on tch
/// must never pass on flex instead.
///
/// Generic because this crate cannot name `model::BackendKind`: `model`'s own tests depend on
/// this crate, and a dependency back on `model` would also put Burn into every crate's tests.
pub fn test_device<Kind, Device, Error>(open: impl FnOnce(Kind) -> Result<Device, Error>) -> Device
where
    Kind: std::str::FromStr,
    Kind::Err: std::fmt::Display,
    Error: std::fmt::Display,
{
    let name = std::env::var(TEST_BACKEND_VAR).ok();
    device_named(name.as_deref(), open)
}

fn device_named<Kind, Device, Error>(
    name: Option<&str>,
    open: impl FnOnce(Kind) -> Result<Device, Error>,
) -> Device
where
    Kind: std::str::FromStr,
    Kind::Err: std::fmt::Display,
    Error: std::fmt::Display,
{
    let name = name.unwrap_or("flex");
    let kind = name
        .parse::<Kind>()
        .unwrap_or_else(|error| panic!("{TEST_BACKEND_VAR}={name}: {error}"));
    open(kind).unwrap_or_else(|error| panic!("{TEST_BACKEND_VAR}={name}: {error}"))
}

/// Relative error `|a - e| / |e|`, for scalars such as losses and gradient norms.
pub fn assert_rel(actual: f64, expected: f64, rel: f64, what: &str) {
    let err = (actual - expected).abs() / expected.abs().max(f64::MIN_POSITIVE);
    assert!(
        err <= rel,
        "{what}: got {actual}, expected {expected} (relative error {err:.3e} > {rel:e})"
    );
}

/// Writes a small synthetic review file (a JSON list, the reference's format) to `path`:
/// `count` reviews for each `(domain, count)`, labels alternating positive/negative, texts of
/// varied length with words that give the label away. For fast end-to-end tests.
pub fn write_review_file(path: &std::path::Path, domains: &[(&str, usize)]) {
    const POSITIVE: [&str; 4] = ["great", "wonderful", "excellent", "love"];
    const NEGATIVE: [&str; 4] = ["terrible", "broken", "awful", "waste"];
    let mut reviews = Vec::new();
    for (domain, count) in domains {
        for index in 0..*count {
            let positive = index % 2 == 0;
            let words = if positive { POSITIVE } else { NEGATIVE };
            let mut text = format!("this {domain} item number {index} is");
            for repeat in 0..(index % 5 + 1) {
                text.push(' ');
                text.push_str(words[(index + repeat) % words.len()]);
            }
            reviews.push(serde_json::json!({
                "text": text,
                "label": if positive { "positive" } else { "negative" },
                "domain": domain,
            }));
        }
    }
    let json = serde_json::to_string_pretty(&reviews).expect("JSON serialises");
    std::fs::write(path, json).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// A minimal stand-in for huggingface.co's `resolve` endpoint, serving `files_from` for any
/// repository: the metadata request (`Range: bytes=0-0`) and the download (`Range: bytes=N-`),
/// 404 for files it does not have. Returns the endpoint URL.
pub fn serve_hub(files_from: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut range_start = 0usize;
            let mut range_end = None;
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                if header.trim().is_empty() {
                    break;
                }
                if let Some(range) = header.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    let (start, end) = range.trim().split_once('-').unwrap();
                    range_start = start.parse().unwrap();
                    range_end = end.parse::<usize>().ok();
                }
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("");
            let file = path.rsplit('/').next().unwrap_or("");
            let response = match std::fs::read(files_from.join(file)) {
                Ok(body) => {
                    let end = range_end.unwrap_or(body.len() - 1).min(body.len() - 1);
                    let part = &body[range_start..=end];
                    let mut head = format!(
                        "HTTP/1.1 206 Partial Content\r\ncontent-length: {}\r\ncontent-range: bytes {range_start}-{end}/{}\r\n\
                         etag: \"{file}-{}\"\r\nx-repo-commit: 0123456789abcdef0123456789abcdef01234567\r\nconnection: close\r\n\r\n",
                        part.len(),
                        body.len(),
                        body.len()
                    )
                    .into_bytes();
                    head.extend_from_slice(part);
                    head
                }
                Err(_) => {
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .to_vec()
                }
            };
            let _ = stream.write_all(&response);
        }
    });
    endpoint
}

#[cfg(test)]
mod tests {
    use super::{assert_close, device_named, device_or_skip};

    /// The message `assert_close` panics with.
    fn failure(actual: &[f64], expected: &[f64], abs: f64, rel: f64) -> String {
        let panic = std::panic::catch_unwind(|| assert_close(actual, expected, abs, rel, "x"))
            .expect_err("the values are out of tolerance");
        panic
            .downcast::<String>()
            .map(|message| *message)
            .expect("a formatted message")
    }

    #[test]
    fn values_within_tolerance_pass() {
        assert_close(&[1.0, 2.05, -3.05], &[1.0, 2.0, -3.1], 0.1, 0.0, "x");
        assert_close(&[1010.0], &[1000.0], 0.0, 1e-2, "x");
    }

    #[test]
    fn the_worst_value_is_reported_not_the_first() {
        let message = failure(&[1.0, 2.1, 3.0, 4.5], &[1.0, 2.0, 3.0, 4.0], 0.05, 0.0);
        assert!(
            message.starts_with("x: 2 of 4 values out of tolerance; worst at [3]: got 4.5, expected 4, |diff| 5e-1 > 5e-2"),
            "{message}"
        );
    }

    #[test]
    fn the_worst_is_the_furthest_past_its_own_tolerance() {
        // [0] is 30 off with 10 allowed; [1] only 0.5 off, but with 0.01 allowed.
        let message = failure(&[1030.0, 1.5], &[1000.0, 1.0], 0.0, 1e-2);
        assert!(
            message.contains("2 of 2 values out of tolerance; worst at [1]: got 1.5, expected 1,"),
            "{message}"
        );
    }

    #[test]
    fn nan_fails_and_counts_as_worst() {
        let message = failure(&[2.0, f64::NAN], &[1.0, 1.0], 0.1, 0.0);
        assert!(
            message.contains("2 of 2 values out of tolerance; worst at [1]: got NaN, expected 1,"),
            "{message}"
        );
    }

    #[test]
    fn without_tolerance_the_largest_deviation_is_worst() {
        let message = failure(&[1.5, 3.0, 2.5], &[1.0, 1.0, 1.0], 0.0, 0.0);
        assert!(
            message.contains("worst at [1]: got 3, expected 1,"),
            "{message}"
        );
    }

    #[test]
    fn an_opened_device_is_used_whether_or_not_skipping_is_allowed() {
        assert_eq!(device_or_skip(Ok::<_, String>(7), false), Some(7));
        assert_eq!(device_or_skip(Ok::<_, String>(7), true), Some(7));
    }

    #[test]
    fn no_device_skips_only_when_asked_to() {
        assert_eq!(device_or_skip::<u8, _>(Err("no adapter"), true), None);
        let panic = std::panic::catch_unwind(|| device_or_skip::<u8, _>(Err("no adapter"), false))
            .expect_err("without METABERT_SKIP_WGPU=1 a missing device fails the test");
        let message = panic.downcast::<String>().expect("a formatted message");
        assert!(
            message.contains("no adapter") && message.contains("METABERT_SKIP_WGPU=1"),
            "{message}"
        );
    }

    /// A stand-in for `model::BackendKind`: two backends, one of them not compiled in.
    #[derive(Debug, PartialEq)]
    enum Kind {
        Flex,
        Tch,
    }

    impl std::str::FromStr for Kind {
        type Err = String;
        fn from_str(name: &str) -> Result<Self, String> {
            match name {
                "flex" => Ok(Kind::Flex),
                "tch" => Ok(Kind::Tch),
                other => Err(format!("unknown backend `{other}`")),
            }
        }
    }

    fn open(kind: Kind) -> Result<Kind, String> {
        match kind {
            Kind::Flex => Ok(kind),
            Kind::Tch => Err("not compiled in".into()),
        }
    }

    fn device_panic(name: &str) -> String {
        let panic = std::panic::catch_unwind(|| device_named(Some(name), open))
            .expect_err("the backend is refused");
        *panic.downcast::<String>().expect("a formatted message")
    }

    #[test]
    fn the_test_backend_defaults_to_flex() {
        assert_eq!(device_named(None, open), Kind::Flex);
        assert_eq!(device_named(Some("flex"), open), Kind::Flex);
    }

    #[test]
    fn an_unknown_or_unavailable_test_backend_fails_naming_the_variable() {
        assert_eq!(
            device_panic("metal"),
            "METABERT_TEST_BACKEND=metal: unknown backend `metal`"
        );
        assert_eq!(
            device_panic("tch"),
            "METABERT_TEST_BACKEND=tch: not compiled in"
        );
    }
}
