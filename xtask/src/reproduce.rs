//! `cargo xtask reproduce`: runs a preset's grid through `meta-bert` child processes, one output
//! directory per run, skipping runs already complete, then writes the summary.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use crate::contract::{MetaTrainResults, RESULTS_FILE, read_results};
use crate::plan::{Run, RunKind, plan};
use crate::plot::{accuracy_by_epoch, accuracy_vs_domains};
use crate::preset::{DomainCount, Preset};
use crate::summary::{RunDescription, collect};

/// Everything one reproduce needs, resolved: paths are absolute.
#[derive(Debug, Clone)]
pub struct ReproduceConfig {
    pub preset: Preset,
    pub seeds: Vec<u64>,
    /// The `meta-bert` executable.
    pub bin: PathBuf,
    /// `--bert-model` of meta-training and of the BERT baseline runs.
    pub bert_model: String,
    pub data: PathBuf,
    /// Passed through as `--backend` when given; the CLI's default otherwise.
    pub backend: Option<String>,
    /// Passed through as `--precision` when given; the CLI's default (f32) otherwise.
    pub precision: Option<String>,
    /// Where each run gets its own directory, e.g. `runs/quick`.
    pub runs_dir: PathBuf,
    /// Where summary.md, summary.csv and the plot go.
    pub out_dir: PathBuf,
    /// Go on with the other runs after a failure instead of stopping.
    pub keep_going: bool,
    /// Every run records what it consumed (`--record`) with dropout off (`--no-dropout`), for
    /// fidelity/replay.py.
    pub record: bool,
    /// Working directory of the child processes.
    pub work_dir: PathBuf,
}

/// A run that did not produce results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFailure {
    pub run: String,
    pub reason: String,
    pub log: PathBuf,
}

/// What a reproduce did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReproduceReport {
    pub completed: usize,
    pub skipped: usize,
    pub failures: Vec<RunFailure>,
}

/// Summary file names under `out_dir`.
pub const SUMMARY_MARKDOWN: &str = "summary.md";
pub const SUMMARY_CSV: &str = "summary.csv";
/// Written only for presets with several D.
pub const DOMAINS_PLOT_SVG: &str = "accuracy-vs-domains.svg";

/// The plot of test accuracy by fine-tuning epoch on `num_domain` domains.
pub fn epoch_plot_svg(num_domain: DomainCount) -> String {
    format!("accuracy-by-epoch-d{num_domain}.svg")
}

/// Runs every run of the grid not yet complete, then writes the summary of all finished runs.
/// Returns an error after the summary if a run failed.
pub fn reproduce(config: &ReproduceConfig) -> Result<ReproduceReport> {
    let runs = plan(&config.preset, &config.seeds);
    let logs_dir = config.runs_dir.join("logs");
    fs::create_dir_all(&logs_dir)
        .with_context(|| format!("cannot create `{}`", logs_dir.display()))?;
    let started = Instant::now();
    let total = runs.len();
    let mut report = ReproduceReport::default();
    let mut failed: HashSet<Run> = HashSet::new();

    for (position, run) in runs.iter().enumerate() {
        let name = run.name();
        let run_dir = config.runs_dir.join(&name);
        let log = logs_dir.join(format!("{name}.log"));
        let counter = format!(
            "[{:>width$}/{total}]",
            position + 1,
            width = total.to_string().len()
        );
        if run_dir.join(RESULTS_FILE).is_file() {
            report.skipped += 1;
            println!("{counter} {name}: already complete, skipped");
            continue;
        }
        println!(
            "{counter} {name}: starting · {} done ({} skipped), {} failed, {} left · elapsed {}",
            report.completed + report.skipped,
            report.skipped,
            report.failures.len(),
            total - position,
            format_duration(started.elapsed())
        );
        let run_started = Instant::now();
        let outcome = match run.depends_on() {
            Some(dependency) if failed.contains(&dependency) => Err(anyhow::anyhow!(
                "not started: meta-training run {} failed",
                dependency.name()
            )),
            _ => execute(config, run, &run_dir, &log),
        };
        match outcome {
            Ok(()) => {
                report.completed += 1;
                println!(
                    "{counter} {name}: finished in {}",
                    format_duration(run_started.elapsed())
                );
            }
            Err(error) => {
                let failure = RunFailure {
                    run: name,
                    reason: format!("{error:#}"),
                    log,
                };
                println!(
                    "{counter} {}: FAILED: {}; log: {}",
                    failure.run,
                    failure.reason,
                    failure.log.display()
                );
                failed.insert(*run);
                report.failures.push(failure);
                if !config.keep_going {
                    break;
                }
            }
        }
    }

    write_summary(config, &runs)?;
    println!(
        "{} runs: {} completed, {} skipped, {} failed · elapsed {} · summary in {}",
        total,
        report.completed,
        report.skipped,
        report.failures.len(),
        format_duration(started.elapsed()),
        config.out_dir.join(SUMMARY_MARKDOWN).display()
    );
    if let Some(first) = report.failures.first() {
        let hint = if config.keep_going {
            ""
        } else {
            " (stopped there; --keep-going runs the rest)"
        };
        bail!(
            "{} run(s) failed, first {}: {}{hint}; log: {}",
            report.failures.len(),
            first.run,
            first.reason,
            first.log.display()
        );
    }
    Ok(report)
}

/// Writes summary.md, summary.csv and the plots from whatever runs have finished.
pub fn write_summary(config: &ReproduceConfig, runs: &[Run]) -> Result<()> {
    let summary = collect(runs, &config.runs_dir)?;
    // Paths inside the workspace are shown relative to it: the quick preset's summary is
    // committed, and should not carry this machine's directory layout.
    let shown = |path: &Path| {
        path.strip_prefix(&config.work_dir)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    let preset = &config.preset;
    let description = RunDescription {
        preset: preset.name.to_owned(),
        bert_model: shown(Path::new(&config.bert_model)),
        data: shown(&config.data),
        data_note: data_note(preset, &config.data, &config.work_dir),
        seeds: config.seeds.clone(),
        runs_dir: shown(&config.runs_dir),
    };
    fs::create_dir_all(&config.out_dir)
        .with_context(|| format!("cannot create `{}`", config.out_dir.display()))?;
    let mut files = vec![
        (
            SUMMARY_MARKDOWN.to_owned(),
            summary.to_markdown(&description),
        ),
        (SUMMARY_CSV.to_owned(), summary.to_csv()),
    ];
    for &num_domain in preset.num_domains {
        if let Some(svg) = accuracy_by_epoch(&summary, num_domain, preset.num_train_tasks) {
            files.push((epoch_plot_svg(num_domain), svg));
        }
    }
    if preset.num_domains.len() > 1 {
        let svg = accuracy_vs_domains(&summary, preset.num_domains, preset.num_train_tasks);
        files.push((DOMAINS_PLOT_SVG.to_owned(), svg));
    }
    for (file, content) in files {
        atomic_io::write_file(&config.out_dir.join(file), content.as_bytes())?;
    }
    Ok(())
}

/// The preset's note on its local review file, when that is the file used.
fn data_note(preset: &Preset, data: &Path, work_dir: &Path) -> Option<String> {
    let (local, note) = preset.local_data.zip(preset.local_data_note)?;
    let same = |a: &Path, b: &Path| match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    same(data, &work_dir.join(local)).then(|| note.to_owned())
}

/// The child's arguments for `run`, writing into `run_dir`.
fn arguments(config: &ReproduceConfig, run: &Run, run_dir: &Path) -> Result<Vec<OsString>> {
    let preset = &config.preset;
    let mut args: Vec<OsString> = Vec::new();
    let mut flag = |name: &str, value: &dyn ToString| {
        args.push(format!("--{name}").into());
        args.push(value.to_string().into());
    };
    // BERT runs start from --bert-model, Meta-BERT runs from their meta-training's checkpoint.
    let model = || -> Result<String> {
        let Some(meta_training) = run.depends_on() else {
            return Ok(config.bert_model.clone());
        };
        let meta_training_dir = config.runs_dir.join(meta_training.name());
        let results: MetaTrainResults = read_results(&meta_training_dir)?;
        Ok(results
            .checkpoint_dir(&meta_training_dir)?
            .display()
            .to_string())
    };
    let command = match run.kind {
        RunKind::MetaTrain {
            num_domain,
            num_train_task,
        } => {
            let sizes = &preset.meta_train;
            flag("bert-model", &config.bert_model);
            flag("epochs", &sizes.epochs);
            flag("outer-batch-size", &sizes.outer_batch_size);
            flag("inner-batch-size", &sizes.inner_batch_size);
            flag("inner-update-step", &sizes.inner_update_step);
            flag("inner-update-step-eval", &sizes.inner_update_step_eval);
            flag("num-domain", &num_domain);
            flag("num-support", &sizes.num_support);
            flag("num-query", &sizes.num_query);
            flag("num-train-task", &num_train_task);
            flag("num-test-task", &sizes.num_test_task);
            flag("outer-update-lr", &sizes.outer_update_lr);
            flag("inner-update-lr", &sizes.inner_update_lr);
            flag("eval-every", &sizes.eval_every);
            "meta-train"
        }
        RunKind::Finetune { num_domain, .. } => {
            let sizes = &preset.finetune;
            flag("bert-model", &model()?);
            flag("epochs", &sizes.epochs);
            flag("batch-size", &sizes.batch_size);
            flag("num-domain", &num_domain);
            flag("learning-rate", &sizes.learning_rate);
            "finetune"
        }
        RunKind::ZeroShot { .. } => {
            flag("bert-model", &model()?);
            // Score only. The summary reads the test domains' scores; the validation split is
            // scored too, so the smallest D keeps that short.
            flag("epochs", &0);
            flag(
                "num-domain",
                &preset
                    .num_domains
                    .iter()
                    .min()
                    .copied()
                    .unwrap_or(DomainCount::All),
            );
            flag("batch-size", &preset.finetune.batch_size);
            "finetune"
        }
    };
    flag("output-dir", &run_dir.display());
    flag("data", &config.data.display());
    flag("seed", &run.seed);
    flag("max-seq-len", &preset.max_seq_len);
    if let Some(backend) = &config.backend {
        flag("backend", backend);
    }
    if let Some(precision) = &config.precision {
        flag("precision", precision);
    }
    if matches!(run.kind, RunKind::ZeroShot { .. }) {
        args.push("--zero-shot".into());
    }
    if config.record {
        args.push("--record".into());
        args.push("--no-dropout".into());
    }
    args.push("--quiet".into());
    if let Some(restart) = restart_flag(config, run, run_dir) {
        args.push(restart.into());
    }
    args.insert(0, command.into());
    Ok(args)
}

/// How to treat a directory left by an interrupted attempt: continue from its checkpoints when
/// it has some (training runs only, and not when recording: a record covers a whole run), else
/// start over in it.
fn restart_flag(config: &ReproduceConfig, run: &Run, run_dir: &Path) -> Option<&'static str> {
    if !run_dir.exists() {
        return None;
    }
    if config.record {
        return Some("--overwrite");
    }
    let has_checkpoint = fs::read_dir(run_dir.join("ckpt"))
        .map(|mut entries| entries.next().is_some())
        .unwrap_or(false);
    let trains = !matches!(run.kind, RunKind::ZeroShot { .. });
    Some(if trains && has_checkpoint {
        "--resume"
    } else {
        "--overwrite"
    })
}

/// Runs one child to completion, streaming its output to our stderr and appending it to `log`.
fn execute(config: &ReproduceConfig, run: &Run, run_dir: &Path, log: &Path) -> Result<()> {
    let args = arguments(config, run, run_dir)?;
    let mut log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open log `{}`", log.display()))?;
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let command_line: Vec<String> = std::iter::once(config.bin.as_os_str())
        .chain(args.iter().map(OsString::as_os_str))
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    writeln!(
        log_file,
        "== started at unix time {since_epoch}: {}",
        command_line.join(" ")
    )
    .with_context(|| format!("cannot write log `{}`", log.display()))?;

    let mut child = Command::new(&config.bin)
        .args(&args)
        .current_dir(&config.work_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{}`", config.bin.display()))?;
    let log_file = Arc::new(Mutex::new(log_file));
    let streams = [
        tee(child.stdout.take().expect("stdout is piped"), &log_file),
        tee(child.stderr.take().expect("stderr is piped"), &log_file),
    ];
    let status = child.wait().context("cannot wait for meta-bert")?;
    for stream in streams {
        stream
            .join()
            .expect("output copier does not panic")
            .with_context(|| format!("cannot copy output to `{}`", log.display()))?;
    }
    check_outcome(status, run_dir)
}

fn check_outcome(status: ExitStatus, run_dir: &Path) -> Result<()> {
    if !status.success() {
        bail!("meta-bert {status}");
    }
    if !run_dir.join(RESULTS_FILE).is_file() {
        bail!(
            "meta-bert exited successfully but wrote no `{}`",
            run_dir.join(RESULTS_FILE).display()
        );
    }
    Ok(())
}

/// Copies a child's output line by line to our stderr (indented) and to the shared log.
fn tee(
    source: impl Read + Send + 'static,
    log: &Arc<Mutex<File>>,
) -> thread::JoinHandle<io::Result<()>> {
    let log = Arc::clone(log);
    thread::spawn(move || {
        let mut reader = BufReader::new(source);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line)? > 0 {
            log.lock()
                .expect("log writers do not panic")
                .write_all(&line)?;
            let mut stderr = io::stderr().lock();
            stderr.write_all(b"    | ")?;
            stderr.write_all(&line)?;
            line.clear();
        }
        Ok(())
    })
}

/// `42s`, `3m05s`, `1h02m03s`.
pub fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if hours > 0 {
        format!("{hours}h{minutes:02}m{seconds:02}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds:02}s")
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Init;
    use crate::preset::{DomainCount, PAPER};
    use std::os::unix::fs::PermissionsExt;

    /// One D, one task count: meta-training, then BERT and Meta-BERT zero-shot and fine-tuned.
    const ONE_CELL: Preset = Preset {
        name: "one-cell",
        num_domains: &[DomainCount::Count(1)],
        num_train_tasks: &[10],
        ..PAPER
    };

    /// A stand-in for `meta-bert`: records its arguments, fails for output directories matching
    /// `fail_pattern` (a shell glob), and otherwise writes results.json as the CLI would.
    fn fake_meta_bert(dir: &Path, fail_pattern: &str) -> PathBuf {
        let calls = dir.join("calls.txt");
        let script = format!(
            r#"#!/bin/sh
echo "$*" >> '{calls}'
command=$1
out=""; model=""; zero=0; prev=""
for arg in "$@"; do
  case "$prev" in
    --output-dir) out=$arg ;;
    --bert-model) model=$arg ;;
  esac
  [ "$arg" = "--zero-shot" ] && zero=1
  prev=$arg
done
case "$out" in
  {fail_pattern}) echo "boom in $out" >&2; exit 3 ;;
esac
mkdir -p "$out"
echo "progress of $command" >&2
if [ "$command" = meta-train ]; then
  mkdir -p "$out/ckpt/meta.epoch-1.step-1"
  echo '{{"best_checkpoint": "ckpt/meta.epoch-1.step-1"}}' > "$out/results.json"
  exit 0
fi
case "$model" in
  */ckpt/*) accuracy=0.8 ;;
  *) accuracy=0.7 ;;
esac
metrics="{{\"accuracy\": $accuracy, \"macro_f1\": 0.5, \"majority_baseline\": 0.83}}"
if [ $zero = 1 ]; then
  echo "{{\"epochs\": [], \"zero_shot\": {{\"test\": $metrics}}}}" > "$out/results.json"
else
  echo "{{\"epochs\": [{{\"epoch\": 1, \"validation\": $metrics, \"test\": $metrics}}]}}" > "$out/results.json"
fi
"#,
            calls = calls.display()
        );
        let bin = dir.join("fake-meta-bert");
        fs::write(&bin, script).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        bin
    }

    fn config(dir: &Path, fail_pattern: &str, keep_going: bool) -> ReproduceConfig {
        ReproduceConfig {
            preset: ONE_CELL,
            seeds: vec![1],
            bin: fake_meta_bert(dir, fail_pattern),
            bert_model: "base-model".to_owned(),
            data: dir.join("reviews.json"),
            backend: Some("flex".to_owned()),
            precision: Some("f16".to_owned()),
            runs_dir: dir.join("runs").join(ONE_CELL.name),
            out_dir: dir.join("results"),
            keep_going,
            record: false,
            work_dir: dir.to_path_buf(),
        }
    }

    fn calls(dir: &Path) -> Vec<String> {
        fs::read_to_string(dir.join("calls.txt"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn runs_the_grid_then_skips_completed_runs_on_a_second_pass() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), "no-match", false);
        let report = reproduce(&config).unwrap();
        assert_eq!((report.completed, report.skipped), (5, 0));

        let calls = calls(dir.path());
        assert_eq!(calls.len(), 5, "{calls:#?}");
        let runs = &config.runs_dir;
        assert!(
            calls[0].starts_with("meta-train --bert-model base-model --epochs 3 "),
            "{}",
            calls[0]
        );
        assert!(
            calls[0].contains("--num-domain 1 --num-support 80 --num-query 20 --num-train-task 10"),
            "{}",
            calls[0]
        );
        assert!(
            calls[0].ends_with("--seed 1 --max-seq-len 256 --backend flex --precision f16 --quiet"),
            "{}",
            calls[0]
        );
        let checkpoint = runs.join("meta-d1-t10-s1/ckpt/meta.epoch-1.step-1");
        let meta_finetune = calls
            .iter()
            .find(|call| call.contains("finetune-d1-meta-d1-t10-s1"))
            .unwrap();
        assert!(
            meta_finetune.starts_with(&format!("finetune --bert-model {} ", checkpoint.display())),
            "{meta_finetune}"
        );
        assert!(
            meta_finetune
                .contains("--epochs 10 --batch-size 32 --num-domain 1 --learning-rate 0.00005"),
            "{meta_finetune}"
        );
        let zero_shot = calls
            .iter()
            .find(|call| call.contains("zeroshot-bert-s1"))
            .unwrap();
        assert!(zero_shot.contains("--zero-shot"), "{zero_shot}");
        assert!(zero_shot.contains("--epochs 0"), "{zero_shot}");

        let markdown = fs::read_to_string(config.out_dir.join(SUMMARY_MARKDOWN)).unwrap();
        assert!(
            markdown.contains("| Meta-BERT | 1 | 10 | 1 | 0.800 | – | 0.500 | – | 0.830 |"),
            "{markdown}"
        );
        assert!(!markdown.contains("without results"), "{markdown}");
        assert!(markdown.contains("data `reviews.json`"), "{markdown}");
        assert!(markdown.contains("runs in `runs/one-cell`"), "{markdown}");
        assert!(config.out_dir.join(SUMMARY_CSV).is_file());
        assert!(markdown.contains("| Δ | 1 | 10 | 1 | +0.100 | – | – | cannot tell (1 seed) |"));
        assert!(
            !markdown.contains("**Data:**"),
            "not the preset's local file"
        );
        assert!(
            config
                .out_dir
                .join(epoch_plot_svg(DomainCount::Count(1)))
                .is_file()
        );
        assert!(!config.out_dir.join(DOMAINS_PLOT_SVG).exists(), "one D");
        let log = fs::read_to_string(runs.join("logs/meta-d1-t10-s1.log")).unwrap();
        assert!(log.contains("progress of meta-train"), "{log}");

        let again = reproduce(&config).unwrap();
        assert_eq!((again.completed, again.skipped), (0, 5));
        assert_eq!(self::calls(dir.path()).len(), 5, "no run started twice");
    }

    #[test]
    fn record_asks_every_run_to_record_without_dropout() {
        let dir = tempfile::tempdir().unwrap();
        let config = ReproduceConfig {
            record: true,
            ..config(dir.path(), "no-match", false)
        };
        reproduce(&config).unwrap();
        let calls = calls(dir.path());
        assert_eq!(calls.len(), 5, "{calls:#?}");
        for call in calls {
            assert!(call.contains(" --record --no-dropout"), "{call}");
        }
    }

    #[test]
    fn stops_at_the_first_failure_naming_the_run_and_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), "*/zeroshot-bert-s1", false);
        let error = reproduce(&config).unwrap_err().to_string();
        let log = config.runs_dir.join("logs/zeroshot-bert-s1.log");
        assert!(error.contains("zeroshot-bert-s1"), "{error}");
        assert!(error.contains(&log.display().to_string()), "{error}");
        assert!(error.contains("--keep-going"), "{error}");
        assert!(fs::read_to_string(&log).unwrap().contains("boom in"));
        assert_eq!(calls(dir.path()).len(), 2, "stopped after the failure");
        let markdown = fs::read_to_string(config.out_dir.join(SUMMARY_MARKDOWN)).unwrap();
        assert!(markdown.contains("Runs without results (4)"), "{markdown}");
    }

    #[test]
    fn keep_going_runs_the_rest_but_not_what_needs_a_failed_meta_training() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), "*/meta-d1-t10-s1", true);
        let error = reproduce(&config).unwrap_err().to_string();
        assert!(
            error.starts_with("3 run(s) failed, first meta-d1-t10-s1"),
            "{error}"
        );
        let calls = calls(dir.path());
        assert_eq!(
            calls.len(),
            3,
            "meta-training and the two BERT runs: {calls:#?}"
        );
        assert!(calls.iter().all(|call| !call.contains("finetune-d1-meta")));
        assert!(
            config
                .runs_dir
                .join("finetune-d1-bert-s1/results.json")
                .is_file()
        );
    }

    #[test]
    fn an_interrupted_run_resumes_from_its_checkpoints_or_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let train = Run {
            kind: RunKind::Finetune {
                init: Init::Bert,
                num_domain: DomainCount::All,
            },
            seed: 1,
        };
        let zero_shot = Run {
            kind: RunKind::ZeroShot { init: Init::Bert },
            seed: 1,
        };
        let config = config(dir.path(), "no-match", false);
        let recording = ReproduceConfig {
            record: true,
            ..config.clone()
        };
        let run_dir = dir.path().join("run");
        assert_eq!(restart_flag(&config, &train, &run_dir), None);
        fs::create_dir_all(&run_dir).unwrap();
        assert_eq!(restart_flag(&config, &train, &run_dir), Some("--overwrite"));
        fs::create_dir_all(run_dir.join("ckpt/transfer.epoch-1")).unwrap();
        assert_eq!(restart_flag(&config, &train, &run_dir), Some("--resume"));
        assert_eq!(
            restart_flag(&config, &zero_shot, &run_dir),
            Some("--overwrite")
        );
        assert_eq!(
            restart_flag(&recording, &train, &run_dir),
            Some("--overwrite"),
            "a record covers a whole run"
        );
    }

    #[test]
    fn durations_read_as_hours_minutes_seconds() {
        assert_eq!(format_duration(Duration::from_secs(42)), "42s");
        assert_eq!(format_duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(format_duration(Duration::from_secs(3723)), "1h02m03s");
    }
}
