//! `meta-bert data`: what a review file holds and how the reference splits it.

use dataset::{NumDomain, ReviewSet};
use serde_json::json;

use crate::common::DataArgs;
use crate::finetune::VALIDATION_PERCENT;
use crate::{Outcome, table};

/// `data` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Per-domain table: reviews, reviews per label, mean length, test or training domain.
    Stats(StatsArgs),
    /// The size of each training split D ∈ {1, 3, 5, all} and of the test domains.
    Splits(SplitsArgs),
}

/// `data stats` flags.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `data splits` flags.
#[derive(Debug, clap::Args)]
pub struct SplitsArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Seed of fine-tuning's 80/20 train/validation split (its sizes do not depend on it).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `meta-bert data …`.
pub fn run(command: Command) -> anyhow::Result<Outcome> {
    match command {
        Command::Stats(args) => stats(&args),
        Command::Splits(args) => splits(&args),
    }?;
    Ok(Outcome::Completed)
}

fn stats(args: &StatsArgs) -> anyhow::Result<()> {
    let set = args.data.load(None)?;
    let role = |domain: &str| match args.data.test_domains.iter().any(|test| test == domain) {
        true => "test",
        false => "train",
    };
    let stats = set.domain_stats();
    if args.json {
        let domains: Vec<_> = stats
            .iter()
            .map(|domain| {
                let by_label: serde_json::Map<String, serde_json::Value> = set
                    .labels
                    .names()
                    .iter()
                    .zip(&domain.label_counts)
                    .map(|(name, &count)| (name.clone(), json!(count)))
                    .collect();
                json!({
                    "domain": domain.domain,
                    "role": role(&domain.domain),
                    "count": domain.count,
                    "labels": by_label,
                    "mean_words": domain.mean_words,
                    "mean_chars": domain.mean_chars,
                })
            })
            .collect();
        let report = json!({"data": set.path, "reviews": set.len(), "domains": domains});
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("JSON serialises")
        );
        return Ok(());
    }
    let mut headers = vec!["domain", "role", "count"];
    headers.extend(set.labels.names().iter().map(String::as_str));
    headers.extend(["mean words", "mean chars"]);
    let rows: Vec<Vec<String>> = stats
        .iter()
        .map(|domain| {
            let mut row = vec![
                domain.domain.clone(),
                role(&domain.domain).to_string(),
                domain.count.to_string(),
            ];
            row.extend(domain.label_counts.iter().map(usize::to_string));
            row.push(format!("{:.1}", domain.mean_words));
            row.push(format!("{:.1}", domain.mean_chars));
            row
        })
        .collect();
    print!("{}", table::render(&headers, &rows));
    Ok(())
}

/// The reference's grid of training-domain counts.
const GRID: [NumDomain; 4] = [
    NumDomain::Count(1),
    NumDomain::Count(3),
    NumDomain::Count(5),
    NumDomain::All,
];

fn splits(args: &SplitsArgs) -> anyhow::Result<()> {
    let set: ReviewSet = args.data.load(None)?;
    let mut splits = Vec::new();
    for num_domain in GRID {
        let config = args.data.split(num_domain);
        let domains = config.training_domains(&set)?;
        let indices = config.training_indices(&set)?;
        let (train, validation) = dataset::finetune_split(&indices, VALIDATION_PERCENT, args.seed)?;
        splits.push(json!({
            "num_domain": num_domain.to_string(),
            "domains": domains,
            "reviews": indices.len(),
            "finetune_train": train.len(),
            "finetune_validation": validation.len(),
        }));
    }
    let test = args.data.split(NumDomain::All).test_indices(&set)?;
    let report = json!({
        "data": set.path,
        "splits": splits,
        "test": {"domains": args.data.test_domains, "reviews": test.len()},
    });
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("JSON serialises")
        );
        return Ok(());
    }
    let mut rows: Vec<Vec<String>> = splits
        .iter()
        .map(|split| {
            vec![
                format!("D={}", split["num_domain"].as_str().unwrap_or_default()),
                split["reviews"].to_string(),
                split["finetune_train"].to_string(),
                split["finetune_validation"].to_string(),
                join(&split["domains"]),
            ]
        })
        .collect();
    rows.push(vec![
        "test".to_string(),
        test.len().to_string(),
        "-".to_string(),
        "-".to_string(),
        args.data.test_domains.join(", "),
    ]);
    print!(
        "{}",
        table::render(
            &["split", "reviews", "train", "validation", "domains"],
            &rows
        )
    );
    Ok(())
}

fn join(names: &serde_json::Value) -> String {
    names
        .as_array()
        .map(|names| {
            names
                .iter()
                .filter_map(|name| name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}
