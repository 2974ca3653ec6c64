//! `meta-bert predict`: classifies texts and prints each one's label and probability.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context, bail};
use burn::module::Module;
use burn::tensor::Device;
use burn::tensor::activation::softmax;
use model::BertClassifier;
use serde_json::{Value, json};
use tasks::{Collation, EncodedReview, TextEncoder};

use crate::common::{self, ModelArgs};
use crate::{Outcome, progress, table};

/// `predict` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Texts to classify. Without any (and without --file), texts are read from stdin, one per
    /// line.
    pub texts: Vec<String>,
    /// Read texts from this file, one per line (blank lines are skipped).
    #[arg(long, conflicts_with = "texts")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Print one JSON object per text: {"text", "label", "probabilities": {label: p}}.
    #[arg(long)]
    pub json: bool,
}

/// Runs `meta-bert predict`.
pub fn run(args: Args) -> anyhow::Result<Outcome> {
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let texts = read_texts(&args)?;
    if texts.is_empty() {
        bail!("no texts to classify: give them as arguments, with --file, or on stdin");
    }
    let source = args.model.resolve()?;
    let labels = common::model_labels(&source)?;
    if source.checkpoint.is_none() {
        tracing::warn!(
            "{} is not a meta-bert checkpoint: its classifier head may be untrained",
            source.root.display()
        );
    }
    let device = args.model.device()?;
    let encoder = args
        .model
        .encoder(&source, args.model.scoring_collation().padding)?;
    let model = args
        .model
        .for_backend(common::load_classifier(&source, &labels, 0, &device)?)
        .valid();
    let probabilities = classify(&model, &encoder, &texts, args.batch_size, &device)?;

    let mut rows = Vec::with_capacity(texts.len());
    for (text, probabilities) in texts.iter().zip(&probabilities) {
        let (best, p) = probabilities
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .expect("a classifier has at least one label");
        let label = labels.name(best);
        if args.json {
            let by_name: serde_json::Map<String, serde_json::Value> = labels
                .names()
                .iter()
                .zip(probabilities)
                .map(|(name, &p)| (name.clone(), json!(p)))
                .collect();
            println!(
                "{}",
                json!({"text": text, "label": label, "probabilities": by_name})
            );
        } else {
            rows.push(vec![label.to_string(), format!("{p:.4}"), text.clone()]);
        }
    }
    if !args.json {
        print!(
            "{}",
            table::render(&["label", "probability", "text"], &rows)
        );
    }
    Ok(Outcome::Completed)
}

fn read_texts(args: &Args) -> anyhow::Result<Vec<String>> {
    if !args.texts.is_empty() {
        return Ok(args.texts.clone());
    }
    let lines: Vec<String> = match &args.file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --file {}", path.display()))?
            .lines()
            .map(str::to_string)
            .collect(),
        None => std::io::stdin()
            .lock()
            .lines()
            .collect::<Result<_, _>>()
            .context("cannot read texts from stdin")?,
    };
    Ok(lines
        .into_iter()
        .filter(|line| !line.trim().is_empty())
        .collect())
}

/// The probability of every label for every text, in order.
pub(crate) fn classify(
    model: &BertClassifier,
    encoder: &TextEncoder,
    texts: &[String],
    batch_size: usize,
    device: &Device,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let encoded: Vec<EncodedReview> = texts
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let text = encoder.encode(text)?;
            Ok(EncodedReview {
                ids: text.ids,
                type_ids: text.type_ids,
                label: 0,
                source_index: index,
            })
        })
        .collect::<Result<_, tasks::TaskError>>()
        .context("cannot tokenise the texts")?;
    let bar = progress::bar(texts.len() as u64, "predict");
    let mut probabilities = Vec::with_capacity(texts.len());
    let collation = Collation {
        padding: encoder.padding(),
        max_seq_len: encoder.max_seq_len(),
    };
    for chunk in encoded.chunks(batch_size) {
        let rows: Vec<&EncodedReview> = chunk.iter().collect();
        let logits = maml::scoring_logits(model, &rows, batch_size, &collation, device);
        let values = softmax(logits, 1)
            .into_data()
            .try_into_vec_as::<f32>()
            .map_err(|error| anyhow::anyhow!("cannot read the probabilities back: {error:?}"))?;
        probabilities.extend(values.chunks(model.num_labels()).map(<[f32]>::to_vec));
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(probabilities)
}

/// `model`'s label probabilities for every test review, in review-file order, for
/// per-review statistics (the bootstrap of `cargo xtask reproduce`) and replays.
pub(crate) fn test_predictions(
    model: &BertClassifier,
    encoder: &TextEncoder,
    set: &dataset::ReviewSet,
    test_indices: &[usize],
    batch_size: usize,
    device: &Device,
) -> anyhow::Result<Value> {
    let texts: Vec<String> = test_indices
        .iter()
        .map(|&index| set.reviews[index].text.clone())
        .collect();
    let probabilities = classify(model, encoder, &texts, batch_size, device)?;
    let predicted: Vec<usize> = probabilities
        .iter()
        .map(|row| {
            (0..row.len())
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .expect("at least one label")
        })
        .collect();
    let labels: Vec<usize> = test_indices
        .iter()
        .map(|&index| set.reviews[index].label)
        .collect();
    Ok(json!({
        "review_index": test_indices,
        "label": labels,
        "predicted": predicted,
        "probabilities": probabilities,
    }))
}
