//! `meta-bert bench`: times outer steps of meta-training (or fine-tuning or inference steps) and
//! prints one JSON object, to compare with `../shared/bench/pytorch_fomaml_bench.py`, whose
//! flags, defaults, task sampling and counting it follows (see BENCHMARKS.md).
//!
//! Each step goes through the code the other commands run: [`MetaLearner::outer_step`] (with
//! `--task-threads` tasks at once, as `meta-train`); [`FineTuner::train_epoch`] over one batch;
//! `predict`'s classification.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use burn::module::Module;
use burn::tensor::Device;
use dataset::{LabelSet, NumDomain};
use model::{BertClassifier, ConfigDir, HubOptions, ModelError, SimdLevel};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{Value, json};
use tasks::TextEncoder;

use crate::common::{self, BatchingArgs, DataArgs, MicroBatchArgs, ModelArgs, TaskThreadsArgs};
use crate::{Outcome, progress};

mod runner;

use runner::{Inputs, Runner, Work, episode_sampler};

/// `bench` flags: the reference benchmark's, plus --backend, --batch-order and --test-domains.
#[derive(Debug, clap::Args, Serialize)]
#[command(
    after_help = "Prints one JSON object on stdout's last line: examples_per_s \
    (examples through forward and backward; forward only with --mode predict), \
    padded_tokens_per_s (batch × padded length), seconds_per_step and peak_rss_mib over the \
    timed steps, and warmup_seconds, the untimed warm-up steps before them (on GPU backends \
    they compile and autotune kernels for each new batch shape). --bert-model may also be a \
    directory with config.json and tokenizer but no weights (e.g. a bert-base-sized config): the model then gets random weights from \
    --seed, as transformers initialises a new one. Training reviews only (the test domains are \
    left out); each task's support and query come from one domain."
)]
pub struct Args {
    /// What to time: outer steps of FOMAML, fine-tuning steps (AdamW, --batch-size) or
    /// inference (--batch-size).
    #[arg(long, value_enum, default_value_t = Mode::Meta)]
    pub mode: Mode,
    #[command(flatten)]
    #[serde(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub data: DataArgs,
    /// Tasks per outer step.
    #[arg(long, default_value_t = 2)]
    pub tasks: usize,
    /// Support reviews per task.
    #[arg(long, default_value_t = 16)]
    pub num_support: usize,
    /// Query reviews per task.
    #[arg(long, default_value_t = 8)]
    pub num_query: usize,
    /// Inner-loop epochs over the support set.
    #[arg(long, default_value_t = 1)]
    pub inner_update_step: usize,
    /// Support-set batch size in the inner loop.
    #[arg(long, default_value_t = 16)]
    pub inner_batch_size: usize,
    /// Batch size of --mode finetune and --mode predict.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[command(flatten)]
    #[serde(flatten)]
    pub batching: BatchingArgs,
    #[command(flatten)]
    #[serde(skip)]
    pub task_threads: TaskThreadsArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub micro_batches: MicroBatchArgs,
    /// Compute padded positions too, as transformers does: the equal-work comparison with the
    /// reference. By default, as in every other command, only positions that carry a token
    /// go through the layers on flex and tch (padding is masked out of attention either way),
    /// and every position on wgpu and cuda, where fewer shapes beat less work.
    #[arg(long)]
    pub compute_padding: bool,
    /// Untimed steps before the timed ones. On wgpu and cuda they compile and autotune the
    /// kernels of the shapes they meet (kept on disk for later runs: README, "On a GPU").
    #[arg(long, default_value_t = 1)]
    pub warmup_steps: usize,
    /// Timed steps, after the warm-up steps.
    #[arg(long, default_value_t = 2)]
    pub steps: usize,
    /// Learning rate of every optimizer (inner and outer Adam, AdamW).
    #[arg(long, default_value_t = 5e-5)]
    pub lr: f64,
    /// Seed of the tasks, batches, dropout and (for a bare config) the weights.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Outer steps of first-order MAML.
    Meta,
    /// Fine-tuning steps.
    Finetune,
    /// Inference only.
    Predict,
}

impl Args {
    fn check(&self) -> anyhow::Result<()> {
        let mut positive = vec![("--steps", self.steps)];
        match self.mode {
            Mode::Meta => positive.extend([
                ("--tasks", self.tasks),
                ("--num-support", self.num_support),
                ("--num-query", self.num_query),
                ("--inner-batch-size", self.inner_batch_size),
            ]),
            Mode::Finetune | Mode::Predict => positive.push(("--batch-size", self.batch_size)),
        }
        for (flag, value) in positive {
            if value == 0 {
                bail!("{flag} must be at least 1");
            }
        }
        Ok(())
    }
}

/// Runs `meta-bert bench`.
pub fn run(mut args: Args) -> anyhow::Result<Outcome> {
    args.check()?;
    args.batching.resolve(args.model.backend);
    let simd_level = model::simd_level()?;
    let set = args.data.load(None)?;
    let training = args
        .data
        .split(NumDomain::All)
        .training_indices(&set)
        .context("cannot choose the training reviews (see --test-domains)")?;
    if matches!(args.mode, Mode::Finetune | Mode::Predict) && args.batch_size > training.len() {
        bail!(
            "--batch-size {} but the training domains of {} hold {} reviews: lower --batch-size",
            args.batch_size,
            set.path.display(),
            training.len()
        );
    }
    // Before the model loads: a task size no domain can fill is a flag error, found at once.
    let sampler = match args.mode {
        Mode::Meta => Some(episode_sampler(&args, &set, &training)?),
        Mode::Finetune | Mode::Predict => None,
    };
    let device = args.model.device()?;
    let (model, model_root, random_weights) = load_model(&args, &set.labels, &device)?;
    let skip_padding = !args.compute_padding && common::skips_padding(args.model.backend);
    let model = model
        .with_skip_padding(skip_padding)
        .with_precision(args.model.precision);
    let encoder = TextEncoder::from_model_dir(
        &model_root,
        args.model.max_seq_len,
        args.batching.padding(args.model.backend),
    )
    .with_context(|| {
        format!(
            "--bert-model {} / --max-seq-len {}",
            args.model.bert_model, args.model.max_seq_len
        )
    })?;
    let encoded = common::encode(&encoder, &set)?;
    let model_info = json!({
        "path": model_root,
        "hidden_size": model.config().hidden_size,
        "num_hidden_layers": model.config().num_hidden_layers,
        "parameters": model.num_params(),
        "random_weights": random_weights,
    });
    let inputs = Inputs {
        args: &args,
        set: &set,
        training: &training,
        encoded: &encoded,
        encoder: &encoder,
        device: &device,
    };
    let mut runner = Runner::new(&args, model, sampler)?;
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);

    let bar = progress::bar((args.warmup_steps + args.steps) as u64, "bench");
    let mut run_steps = |name: &str, count: usize, work: &mut Work| {
        (1..=count)
            .map(|step| {
                let started = Instant::now();
                runner.step(&inputs, &mut rng, work)?;
                let seconds = started.elapsed().as_secs_f64();
                bar.inc(1);
                tracing::info!("{name} {step}/{count}: {seconds:.2} s");
                Ok(seconds)
            })
            .collect::<anyhow::Result<Vec<f64>>>()
    };
    let warmup = run_steps("warm-up step", args.warmup_steps, &mut Work::default())?;
    let mut work = Work::default();
    let timed = run_steps("step", args.steps, &mut work)?;
    bar.finish_and_clear();

    let times = Times { warmup, timed };
    let result = report(&args, &work, &times, skip_padding, simd_level, model_info);
    println!(
        "{}",
        serde_json::to_string(&result).expect("JSON values serialise")
    );
    Ok(Outcome::Completed)
}

/// The classifier `--bert-model` names (its root directory, and whether its weights are random):
/// a model or checkpoint directory or hub id as for every command, or a directory holding only
/// config.json and a tokenizer, which gets random weights.
fn load_model(
    args: &Args,
    labels: &LabelSet,
    device: &Device,
) -> anyhow::Result<(BertClassifier, PathBuf, bool)> {
    let spec = &args.model.bert_model;
    match model::resolve_model(spec, &HubOptions::from_env()) {
        Ok(dir) => {
            let model = common::load_classifier(&dir, labels, args.seed, device)?;
            Ok((model, dir.root, false))
        }
        Err(ModelError::NoWeights { dir }) => {
            let config_dir =
                ConfigDir::open(&dir).with_context(|| format!("--bert-model {spec}"))?;
            tracing::warn!(
                "{} has no weights: benchmarking random weights drawn from seed {}",
                dir.display(),
                args.seed
            );
            let model = model::random_classifier(&config_dir, labels.names(), args.seed, device);
            Ok((model, config_dir.root, true))
        }
        Err(error) => Err(error).with_context(|| format!("--bert-model {spec}")),
    }
}

/// Seconds of each warm-up and each timed step.
struct Times {
    warmup: Vec<f64>,
    timed: Vec<f64>,
}

/// The JSON result, with the reference's keys and rounding, and ours beside them.
fn report(
    args: &Args,
    work: &Work,
    times: &Times,
    skip_padding: bool,
    simd_level: SimdLevel,
    model: Value,
) -> Value {
    let seconds: f64 = times.timed.iter().sum();
    let rounded = |steps: &[f64]| steps.iter().map(|&s| round_time(s)).collect::<Vec<_>>();
    let mut config = serde_json::to_value(args).expect("flags serialise");
    if let Some(config) = config.as_object_mut() {
        config.remove("data");
        config.remove("bert_model");
    }
    json!({
        "implementation": "meta-bert",
        "mode": args.mode,
        "padding": args.batching.padding(args.model.backend).to_string(),
        "compute_padding": !skip_padding,
        "batch_order": args.batching.batch_order.to_string(),
        "backend": args.model.backend.name(),
        "precision": args.model.precision.name(),
        "threads": threads(),
        "cpu": cpu_model(),
        "simd_level": simd_level.name(),
        "simd_detected": SimdLevel::detected().name(),
        "task_threads": match args.mode {
            Mode::Meta => Some(args.task_threads.resolve(args.model.backend)),
            Mode::Finetune | Mode::Predict => None,
        },
        "warmup_steps": args.warmup_steps,
        "warmup_seconds": round_time(times.warmup.iter().sum()),
        "warmup_step_seconds": rounded(&times.warmup),
        "steps": args.steps,
        "step_seconds": rounded(&times.timed),
        "examples": work.examples,
        "padded_tokens": work.padded_tokens,
        "seconds": round_time(seconds),
        "examples_per_s": round(work.examples as f64 / seconds, 3),
        "padded_tokens_per_s": round(work.padded_tokens as f64 / seconds, 1),
        "seconds_per_step": round_time(seconds / args.steps as f64),
        "peak_rss_mib": peak_rss_mib().map(|mib| round(mib, 1)),
        "model": model,
        "config": config,
    })
}

/// `value` rounded to `decimals` places, as Python's `round`.
fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// Seconds rounded as the reference does (3 places), but to no fewer than three significant
/// digits: a sub-millisecond step of a tiny model must not read as 0 s.
fn round_time(seconds: f64) -> f64 {
    let magnitude = if seconds > 0.0 {
        seconds.log10().floor() as i32
    } else {
        0
    };
    round(seconds, 3.max(2 - magnitude))
}

/// Worker threads of the CPU backend: `RAYON_NUM_THREADS`, else one per core.
fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|value| value.parse().ok())
        .filter(|&threads| threads > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The CPU's model name (as `lscpu` gives it, from /proc/cpuinfo), or `None` where the kernel
/// does not say.
fn cpu_model() -> Option<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))?;
    let (_, name) = line.split_once(':')?;
    Some(name.trim().to_owned())
}

/// The process's peak resident memory (VmHWM of /proc/self/status, as the reference's
/// `ru_maxrss`), or `None` where the kernel does not report it.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_keep_three_places_and_three_significant_digits() {
        assert_eq!(round_time(12.345_67), 12.346);
        assert_eq!(round_time(0.5), 0.5);
        assert_eq!(round_time(0.012_345), 0.0123);
        assert_eq!(round_time(0.000_412_345), 0.000_412);
        assert!(round_time(0.000_04) > 0.0);
    }
}
