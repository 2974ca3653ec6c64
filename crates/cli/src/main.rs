//! `meta-bert`: meta-train BERT with first-order MAML, fine-tune it, score it and classify with
//! it. One module per command; the numeric work lives in the library crates.

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
mod run_dir;
mod table;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

/// How a command that ran without error ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It did everything it was asked to.
    Completed,
    /// Ctrl-C stopped it after it wrote what it had finished.
    Interrupted,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    progress::init(cli.quiet);
    logging::init(cli.quiet);
    let result = match cli.command {
        Command::MetaTrain(args) => meta_train::run(args),
        Command::Finetune(args) => finetune::run(args),
        Command::Evaluate(args) => evaluate::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Data(command) => data::run(command),
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
