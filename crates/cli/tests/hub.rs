//! `--bert-model` given as a Hugging Face id: fetched from `HF_ENDPOINT` (here a local server
//! standing in for the hub) into `$HF_HOME/hub`, then used from there with `HF_HUB_OFFLINE=1`.

use std::path::Path;
use std::process::Command;

use crate::common::{meta_bert, run_ok};

fn predict_with_hub(home: &Path, endpoint: &str) -> Command {
    let mut command = meta_bert();
    command
        .args([
            "predict",
            "--bert-model",
            "meta-bert/tiny-bert",
            "--json",
            "--quiet",
        ])
        .args(["a great little gadget", "broke on the second day"])
        .env("HF_HOME", home)
        .env("HF_ENDPOINT", endpoint);
    command
}

#[test]
fn a_hub_id_is_downloaded_into_hf_home_and_then_used_offline() {
    let home = tempfile::tempdir().unwrap();
    let endpoint = test_support::serve_hub(test_support::tiny_bert_dir());
    let online = run_ok(predict_with_hub(home.path(), &endpoint).env_remove("HF_HUB_OFFLINE"));
    let snapshots = home
        .path()
        .join("hub/models--meta-bert--tiny-bert/snapshots");
    assert!(
        snapshots.is_dir(),
        "nothing was cached under {}",
        snapshots.display()
    );

    // Offline, with a hub that refuses connections: only the cache can answer.
    let offline = run_ok(&mut predict_with_hub(home.path(), "http://127.0.0.1:9"));
    assert_eq!(
        String::from_utf8_lossy(&offline.stdout),
        String::from_utf8_lossy(&online.stdout)
    );
    assert_eq!(String::from_utf8_lossy(&online.stdout).lines().count(), 2);
}
