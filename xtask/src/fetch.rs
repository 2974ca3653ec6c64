//! `cargo xtask fetch-data`: download the reference review file and verify it before it lands.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sha1::{Digest, Sha1};

/// The reference implementation's review file on GitHub.
pub const REFERENCE_DATA_URL: &str =
    "https://raw.githubusercontent.com/mailong25/meta-learning-bert/master/dataset.json";

/// Git blob id of the reference `dataset.json` (21,855 reviews, 22 domains).
pub const REFERENCE_BLOB_SHA1: &str = "2b635fb4182d7758999ec7a1e15964933087c896";

/// Larger than any review file we expect; stops a misbehaving server from filling memory.
const MAX_DOWNLOAD_BYTES: u64 = 1 << 30;

/// The id git gives a file's content: SHA-1 of `"blob <len>\0"` followed by the content. It is
/// what GitHub shows for a file, so a download can be checked against the repository itself.
pub fn git_blob_sha1(content: &[u8]) -> String {
    let mut hasher = Sha1::new();
    hasher.update(format!("blob {}\0", content.len()).as_bytes());
    hasher.update(content);
    format!("{:x}", hasher.finalize())
}

/// What [`fetch_verified`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum FetchOutcome {
    /// `out` already held content with the expected blob id; nothing was downloaded.
    AlreadyPresent,
    /// The download matched and was written to `out`.
    Downloaded { bytes: usize },
}

/// Downloads `url` and writes it to `out` only if its git blob id is `expected_blob_sha1`.
///
/// A failed request, a truncated body or a hash mismatch leaves `out` exactly as it was: the
/// content is verified in memory and then written with one atomic rename.
pub fn fetch_verified(url: &str, expected_blob_sha1: &str, out: &Path) -> Result<FetchOutcome> {
    let expected = expected_blob_sha1.to_ascii_lowercase();
    if let Ok(existing) = fs::read(out)
        && git_blob_sha1(&existing) == expected
    {
        return Ok(FetchOutcome::AlreadyPresent);
    }

    let content = download(url)?;
    let actual = git_blob_sha1(&content);
    if actual != expected {
        bail!(
            "download from {url} has git blob id {actual}, expected {expected} ({} bytes); \
             the file at that address is not the expected one, so nothing was written to `{}`. \
             Check --url, or pass --sha1 if you mean to fetch a different file",
            content.len(),
            out.display()
        );
    }
    if let Some(parent) = out.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create directory `{}`", parent.display()))?;
    }
    atomic_io::write_file(out, &content)?;
    Ok(FetchOutcome::Downloaded {
        bytes: content.len(),
    })
}

fn download(url: &str) -> Result<Vec<u8>> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(30))
        .timeout_read(Duration::from_secs(120))
        .build();
    let response = match agent.get(url).call() {
        Ok(response) => response,
        Err(ureq::Error::Status(code, response)) => bail!(
            "server answered HTTP {code} {} for {url}; nothing was written",
            response.status_text()
        ),
        Err(ureq::Error::Transport(transport)) => {
            bail!("cannot download {url}: {transport}; nothing was written")
        }
    };
    let mut content = Vec::new();
    response
        .into_reader()
        .take(MAX_DOWNLOAD_BYTES)
        .read_to_end(&mut content)
        .with_context(|| format!("download from {url} broke off; nothing was written"))?;
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::thread;

    /// Serves one HTTP request on 127.0.0.1 with the given status and body; returns its URL.
    fn serve_once(status: &'static str, body: Vec<u8>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
        let address = listener.local_addr().expect("bound socket has an address");
        thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept the test request");
            let mut reader = BufReader::new(stream.try_clone().expect("clone socket"));
            let mut line = String::new();
            while reader.read_line(&mut line).expect("read request") > 0 && line != "\r\n" {
                line.clear();
            }
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).expect("write head");
            stream.write_all(&body).expect("write body");
        });
        format!("http://{address}/dataset.json")
    }

    const GOOD: &[u8] = br#"[{"text": "works well", "label": "positive", "domain": "baby"}]"#;

    #[test]
    fn blob_id_matches_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            git_blob_sha1(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        // `git hash-object /dev/null`: the empty blob every git user has seen.
        assert_eq!(
            git_blob_sha1(b""),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
    }

    #[test]
    fn writes_a_download_whose_blob_id_matches() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("data").join("dataset.json");
        let url = serve_once("200 OK", GOOD.to_vec());
        let outcome = fetch_verified(&url, &git_blob_sha1(GOOD), &out).unwrap();
        assert_eq!(outcome, FetchOutcome::Downloaded { bytes: GOOD.len() });
        assert_eq!(fs::read(&out).unwrap(), GOOD);
    }

    #[test]
    fn skips_the_download_when_the_file_already_matches() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("dataset.json");
        fs::write(&out, GOOD).unwrap();
        // No server listens here: a request would fail the test.
        let outcome = fetch_verified("http://127.0.0.1:9/none", &git_blob_sha1(GOOD), &out);
        assert_eq!(outcome.unwrap(), FetchOutcome::AlreadyPresent);
    }

    #[test]
    fn refuses_a_corrupt_download_and_keeps_the_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("dataset.json");
        fs::write(&out, b"earlier content").unwrap();
        let mut corrupt = GOOD.to_vec();
        corrupt[10] ^= 1;
        let url = serve_once("200 OK", corrupt);
        let error = fetch_verified(&url, &git_blob_sha1(GOOD), &out).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&git_blob_sha1(GOOD)), "{message}");
        assert!(message.contains("nothing was written"), "{message}");
        assert_eq!(fs::read(&out).unwrap(), b"earlier content");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no staging file left"
        );
    }

    #[test]
    fn reports_a_server_error_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("dataset.json");
        let url = serve_once("500 Internal Server Error", b"oops".to_vec());
        let error = fetch_verified(&url, &git_blob_sha1(GOOD), &out).unwrap_err();
        assert!(error.to_string().contains("HTTP 500"), "{error}");
        assert!(!out.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
