//! An output directory on a full or a read-only file system: an error naming the path and the
//! system's reason, the last complete checkpoint kept, and an earlier run on the same file
//! system left byte for byte as it was.
//!
//! Root writes through any file mode, so `chmod` cannot make a read-only directory here. These
//! tests mount a small tmpfs in a private mount namespace instead (`unshare --user
//! --map-root-user --mount`, which needs no privileges where the kernel allows unprivileged user
//! namespaces; the mount vanishes with the namespace). Where no such namespace can be made they
//! say so on stderr and return.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{
    assert_clear_failure, assert_unchanged, earlier_checkpoint, earlier_finetune,
    evaluate_test_split, isolate, run, run_ok, tiny_finetune, tiny_reviews,
};

/// Mounts a 64 MiB tmpfs on `$1` and copies the earlier run `$2` into it as `earlier`. Mode
/// `$4 = full` then fills it until `$5` KiB are left; mode `ro` remounts it read-only. Runs
/// the command that follows, copies `earlier` and `new` from the tmpfs into `$3`, and exits
/// with the command's status.
const SCRIPT: &str = r#"
set -e
mnt=$1 earlier=$2 after=$3 mode=$4 free_kib=$5
shift 5
mount -t tmpfs -o size=64m tmpfs "$mnt"
cp -R "$earlier" "$mnt/earlier"
if [ "$mode" = full ]; then
    dd if=/dev/zero of="$mnt/reserve" bs=1024 count="$free_kib" 2>/dev/null
    dd if=/dev/zero of="$mnt/filler" bs=1048576 2>/dev/null || true
    rm "$mnt/reserve"
else
    mount -o remount,ro "$mnt"
fi
set +e
"$@"
status=$?
set -e
for run in earlier new; do
    if [ -d "$mnt/$run" ]; then cp -R "$mnt/$run" "$after/$run"; fi
done
exit $status
"#;

/// How the tmpfs is spoilt before the command runs.
enum Spoil {
    /// Full but for this many bytes.
    FullBut(u64),
    ReadOnly,
}

/// A tmpfs mount point under `dir`, or `None` (said on stderr) where no mount namespace can be
/// made.
fn mount_point(dir: &Path) -> Option<PathBuf> {
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let probe = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o size=1m tmpfs "$1""#)
        .arg("sh")
        .arg(&mnt)
        .output();
    match probe {
        Ok(output) if output.status.success() => Some(mnt),
        Ok(output) => {
            eprintln!(
                "skipped: cannot mount a tmpfs in a private mount namespace: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            None
        }
        Err(error) => {
            eprintln!("skipped: cannot run unshare: {error}");
            None
        }
    }
}

/// Runs `command` with a spoilt tmpfs on `mnt` that holds a copy of the run `earlier`; the
/// tmpfs's `earlier` and `new` are copied to `after` afterwards.
fn run_on_tmpfs(
    mnt: &Path,
    earlier: &Path,
    after: &Path,
    spoil: Spoil,
    command: &Command,
) -> Output {
    std::fs::create_dir(after).unwrap();
    let (mode, free_kib) = match spoil {
        Spoil::FullBut(bytes) => ("full", bytes.div_ceil(1024)),
        Spoil::ReadOnly => ("ro", 0),
    };
    let mut unshare = Command::new("unshare");
    isolate(&mut unshare)
        .args([
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            SCRIPT,
            "sh",
        ])
        .args([mnt, earlier, after])
        .args([mode, &free_kib.to_string()])
        .arg(command.get_program())
        .args(command.get_args());
    run(&mut unshare)
}

/// Bytes `dir` takes on a file system of 4 KiB pages.
fn pages_of(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len().div_ceil(4096) * 4096)
        .sum()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_full_file_system_keeps_the_last_checkpoint_and_earlier_runs() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mnt) = mount_point(dir.path()) else {
        return;
    };
    let data = tiny_reviews(dir.path());
    let (earlier, files) = earlier_finetune(dir.path(), &data);
    let checkpoint = earlier_checkpoint(&earlier);
    // Room for the run's small files and one checkpoint, not two.
    let checkpoint_bytes = pages_of(&checkpoint);
    let after = dir.path().join("after");
    let output = run_on_tmpfs(
        &mnt,
        &earlier,
        &after,
        Spoil::FullBut(checkpoint_bytes + checkpoint_bytes / 2),
        &tiny_finetune(&data, &mnt.join("new"), 2),
    );

    let message = assert_clear_failure(&output, &["No space left on device"]);
    let failed = mnt.join("new/ckpt/transfer.epoch-2");
    assert!(
        message.contains(&format!("cannot save checkpoint {}", failed.display())),
        "{message}"
    );
    assert_unchanged(&after.join("earlier"), &files);
    let new = after.join("new");
    assert!(!new.join("results.json").exists());
    assert_eq!(
        names_in(&new.join("ckpt")),
        ["transfer.epoch-1"],
        "the last complete checkpoint, and no half-written one"
    );
    let kept = new.join("ckpt/transfer.epoch-1");
    assert_eq!(names_in(&kept), names_in(&checkpoint));
    run_ok(&mut evaluate_test_split(&kept, &data));
}

#[test]
fn a_read_only_file_system_is_a_clear_error_that_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mnt) = mount_point(dir.path()) else {
        return;
    };
    let data = tiny_reviews(dir.path());
    let (earlier, files) = earlier_finetune(dir.path(), &data);
    let cases = [
        ("new", tiny_finetune(&data, &mnt.join("new"), 1)),
        ("earlier", {
            let mut command = tiny_finetune(&data, &mnt.join("earlier"), 1);
            command.arg("--overwrite");
            command
        }),
    ];
    for (index, (output_dir, command)) in cases.into_iter().enumerate() {
        let after = dir.path().join(format!("after-{index}"));
        let output = run_on_tmpfs(&mnt, &earlier, &after, Spoil::ReadOnly, &command);
        let output_dir = mnt.join(output_dir);
        assert_clear_failure(
            &output,
            &[output_dir.to_str().unwrap(), "Read-only file system"],
        );
        assert_unchanged(&after.join("earlier"), &files);
        assert!(!after.join("new").exists());
    }
}
