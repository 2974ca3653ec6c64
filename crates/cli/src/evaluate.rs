//! `meta-bert evaluate`: scores a model (usually a checkpoint) on a split of the review file, or
//! on every review of a file, without adapting it.

use std::collections::BTreeMap;

use anyhow::Context;
use dataset::{NumDomain, ReviewSet};
use maml::Metrics;
use serde_json::json;
use tasks::EncodedReview;

use crate::common::{self, DataArgs, ModelArgs, parse_num_domain};
use crate::finetune::VALIDATION_PERCENT;
use crate::{Outcome, progress};

/// `evaluate` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Which reviews to score [default: `test`; `all` when --data is given].
    #[arg(long, value_enum)]
    pub split: Option<Split>,
    /// Training domains for `validation` and `train-domains`: the D smallest, or `all`.
    #[arg(long, default_value = "all", value_parser = parse_num_domain)]
    pub num_domain: NumDomain,
    /// Seed of the 80/20 split that `validation` comes from (as given to `finetune`).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Scoring batch size.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `--split`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Split {
    /// The test domains (--test-domains).
    Test,
    /// The 20 % of the D training domains that fine-tuning validates on.
    Validation,
    /// Every review of the D training domains.
    TrainDomains,
    /// Every review of the file.
    All,
}

impl Split {
    fn name(self) -> &'static str {
        match self {
            Self::Test => "test",
            Self::Validation => "validation",
            Self::TrainDomains => "train-domains",
            Self::All => "all",
        }
    }
}

/// Runs `meta-bert evaluate`.
pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let split = args.split.unwrap_or(match args.data.data {
        Some(_) => Split::All,
        None => Split::Test,
    });
    let source = args.model.resolve()?;
    let labels = common::model_labels(&source)?;
    if source.checkpoint.is_none() {
        tracing::warn!(
            "{} is not a meta-bert checkpoint: its classifier head may be untrained",
            source.root.display()
        );
    }
    let set = args.data.load(Some(&labels))?;
    let indices = select(&set, &args, split)?;
    let device = args.model.device()?;
    let collation = args.model.scoring_collation();
    let encoder = args.model.encoder(&source, collation.padding)?;
    let model = args.model.for_backend(common::load_classifier(
        &source, &labels, args.seed, &device,
    )?);
    let encoded = common::encode(&encoder, &set)?;

    let mut by_domain: BTreeMap<&str, Vec<&EncodedReview>> = BTreeMap::new();
    for &index in &indices {
        by_domain
            .entry(set.reviews[index].domain.as_str())
            .or_default()
            .push(&encoded[index]);
    }
    let bar = progress::bar(by_domain.len() as u64, "evaluate");
    let mut scores = Vec::with_capacity(by_domain.len());
    for (domain, examples) in &by_domain {
        bar.set_message(domain.to_string());
        let threads = common::step_threads(args.model.backend);
        let metrics = maml::evaluate(&model, examples, &collation, args.batch_size, threads)
            .with_context(|| format!("cannot score domain `{domain}`"))?;
        scores.push((*domain, metrics));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let all: Vec<Metrics> = scores.iter().map(|(_, metrics)| metrics.clone()).collect();
    let pooled = Metrics::pooled(&all);

    if args.json {
        let domains: BTreeMap<&str, &Metrics> = scores.iter().map(|(d, m)| (*d, m)).collect();
        let report = json!({
            "model": source.root,
            "data": set.path,
            "split": split.name(),
            "labels": labels.names(),
            "metrics": pooled,
            "domains": domains,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("JSON serialises")
        );
    } else {
        let mut rows: Vec<(&str, &Metrics)> = scores.iter().map(|(d, m)| (*d, m)).collect();
        let total = format!("{} (all)", split.name());
        rows.push((&total, &pooled));
        print!("{}", common::metrics_table(&rows, &labels));
    }
    Ok(Outcome::Completed)
}

/// The indices of `split`'s reviews.
fn select(set: &ReviewSet, args: &Args, split: Split) -> anyhow::Result<Vec<usize>> {
    let config = args.data.split(args.num_domain);
    let indices = match split {
        Split::Test => config.test_indices(set)?,
        Split::TrainDomains => config.training_indices(set)?,
        Split::Validation => {
            let training = config.training_indices(set)?;
            dataset::finetune_split(&training, VALIDATION_PERCENT, args.seed)?.1
        }
        Split::All => (0..set.len()).collect(),
    };
    anyhow::ensure!(
        !indices.is_empty(),
        "the {} split of {} is empty",
        split.name(),
        set.path.display()
    );
    Ok(indices)
}
