//! `meta-bert`: meta-train BERT with first-order MAML, fine-tune it, score it and classify with
//! it. One module per command; the numeric work lives in the library crates.

mod backends;
mod bench;
mod checkpoints;
mod common;
mod data;
mod evaluate;
mod finetune;
mod interrupt;
mod logging;
mod meta_train;
mod metrics_log;
mod predict;
mod progress;
mod record;
mod run_dir;
mod table;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use model::BackendKind;

/// Meta-train, fine-tune, evaluate and serve BERT text classifiers (Meta-BERT).
#[derive(Debug, Parser)]
#[command(name = "meta-bert", version, about, propagate_version = true)]
struct Cli {
    /// Print warnings and errors only, and no progress bars.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Meta-train a classifier with FOMAML (or Reptile) on tasks drawn from the training domains.
    MetaTrain(meta_train::Args),
    /// Fine-tune a model (BERT or a Meta-BERT checkpoint) on the D training domains.
    Finetune(finetune::Args),
    /// Score a checkpoint on a split of the review file, or on a whole review file.
    Evaluate(evaluate::Args),
    /// Classify texts given as arguments, in a file, or on stdin (one per line).
    Predict(predict::Args),
    /// Look at a review file.
    #[command(subcommand)]
    Data(data::Command),
    /// Time meta-training, fine-tuning or inference steps; prints one JSON object.
    Bench(bench::Args),
    /// List the compute backends and kernel compilers this binary has (--probe: start them).
    Backends(backends::Args),
}

/// How a command that ran without error ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It did everything it was asked to.
    Completed,
    /// Ctrl-C stopped it after it wrote what it had finished.
    Interrupted,
}

impl Command {
    /// The backend the command computes on, if it computes.
    fn backend(&self) -> Option<BackendKind> {
        match self {
            Self::MetaTrain(args) => Some(args.model.backend),
            Self::Finetune(args) => Some(args.model.backend),
            Self::Evaluate(args) => Some(args.model.backend),
            Self::Predict(args) => Some(args.model.backend),
            Self::Bench(args) => Some(args.model.backend),
            Self::Data(_) | Self::Backends(_) => None,
        }
    }
}

/// Makes `backend` Burn's default device. Burn creates loaded optimizer state on its default
/// device, which in a build with wgpu is wgpu: without this, `--resume` of a flex run would
/// start a GPU runtime it never uses.
fn make_default_device(backend: BackendKind) {
    if backend.is_compiled() {
        // SAFETY: called first thing in `main`, before this process starts any other thread.
        unsafe { std::env::set_var("BURN_DEVICE", backend.name()) };
    }
}

/// Tunes glibc's allocator for tensor buffers; a setting the user made through its environment
/// variable (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_MAX_`, ...) or `GLIBC_TUNABLES` wins.
///
/// - One arena: glibc gives each allocating thread an arena of its own; tensor buffers freed in
///   one (a task's activations) then sit unused while another thread grows its own and faults
///   in fresh pages. Measured ≈ 400 MiB less peak memory at the reference sizes with two task
///   threads and a 17 % faster default pipeline (BENCHMARKS.md, "One malloc arena").
/// - Every buffer from that arena's heap, none mapped on its own (glibc maps each one above
///   32 MiB anew and unmaps it when freed: page faults, zeroing and, on a VM, TLB-shootdown
///   interrupts on every step), the heap kept instead of trimmed and grown 256 MiB at a time.
///   Measured 16 % faster at equal work with the same peak memory (BENCHMARKS.md, "SIMD chosen
///   at run time").
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    let settings = [
        (libc::M_ARENA_MAX, 1, "MALLOC_ARENA_MAX", "arena_max"),
        (libc::M_MMAP_MAX, 0, "MALLOC_MMAP_MAX_", "mmap_max"),
        (
            libc::M_TRIM_THRESHOLD,
            i32::MAX,
            "MALLOC_TRIM_THRESHOLD_",
            "trim_threshold",
        ),
        (libc::M_TOP_PAD, 256 << 20, "MALLOC_TOP_PAD_", "top_pad"),
    ];
    for (parameter, value, variable, tunable) in settings {
        let user_set = std::env::var_os(variable).is_some()
            || tunables.contains(&format!("glibc.malloc.{tunable}="));
        if !user_set {
            // SAFETY: mallopt only retunes the allocator; called before this process starts
            // any other thread.
            unsafe { libc::mallopt(parameter, value) };
        }
    }
}

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tune_malloc();
    let cli = Cli::parse();
    if let Some(backend) = cli.command.backend() {
        make_default_device(backend);
    }
    progress::init(cli.quiet);
    logging::init(cli.quiet);
    let result = match cli.command {
        Command::MetaTrain(args) => meta_train::run(args),
        Command::Finetune(args) => finetune::run(args),
        Command::Evaluate(args) => evaluate::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Data(command) => data::run(command),
        Command::Bench(args) => bench::run(args),
        Command::Backends(args) => backends::run(args),
    };
    match result {
        Ok(Outcome::Completed) => ExitCode::SUCCESS,
        // The shell's convention for "stopped by SIGINT".
        Ok(Outcome::Interrupted) => ExitCode::from(130),
        Err(error) => {
            logging::report_error(&error);
            ExitCode::FAILURE
        }
    }
}
