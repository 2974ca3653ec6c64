//! Flags and loading steps shared by several commands.

use std::fmt::Display;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, bail};
use burn::tensor::Device;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use dataset::{LabelSet, NumDomain, REFERENCE_TEST_DOMAINS, ReviewSet, SplitConfig};
use maml::BatchOrder;
use maml::Metrics;
use model::{BackendKind, BertClassifier, HubOptions, ModelDir, Precision};
use serde::Serialize;
use tasks::{Collation, EncodedReview, Padding, TextEncoder};

use crate::{progress, table};

/// A clap parser accepting exactly `names` (listed in `--help` and in errors) and converting
/// the choice with `FromStr`.
pub fn choice<T>(names: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: FromStr + Clone + Send + Sync + 'static,
    T::Err: std::fmt::Debug,
{
    PossibleValuesParser::new(names).map(|name| {
        name.parse::<T>()
            .expect("clap accepts only the listed names")
    })
}

/// Serialises a flag by its `Display` form (the form users type).
pub fn display<T: Display, S: serde::Serializer>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// `--num-domain`: a positive number or `all`.
pub fn parse_num_domain(value: &str) -> Result<NumDomain, String> {
    value
        .parse()
        .map_err(|error: dataset::DatasetError| error.to_string())
}

/// A learning rate: a finite number, zero or more (an infinite or NaN one could only diverge).
pub fn parse_learning_rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 0.0 => Ok(rate),
        Ok(_) => Err("a learning rate must be a finite number, zero or more".to_string()),
        Err(error) => Err(error.to_string()),
    }
}

/// The model, how long its inputs may be, and where it runs.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct ModelArgs {
    /// Hugging Face model id (fetched into the hub cache), local model directory (config.json,
    /// tokenizer, model.safetensors or pytorch_model.bin), or a meta-bert checkpoint directory.
    #[arg(long, default_value = model::DEFAULT_MODEL)]
    pub bert_model: String,
    /// Longest token sequence, [CLS] and [SEP] included; longer reviews are truncated.
    #[arg(long, default_value_t = tasks::DEFAULT_MAX_SEQ_LEN)]
    pub max_seq_len: usize,
    /// Compute backend. wgpu (any graphics API) and vulkan (Vulkan only, SPIR-V kernels where
    /// the adapter allows) are in the default build; cuda and tch need `--features cuda|tch`.
    /// `meta-bert backends` lists what this binary has.
    #[arg(long, default_value = "flex", value_parser = choice::<BackendKind>(&["flex", "wgpu", "vulkan", "cuda", "tch"]))]
    #[serde(serialize_with = "display")]
    pub backend: BackendKind,
    /// What matrix products compute in: f32, or f16/bf16 with f32 accumulation while weights,
    /// optimizer moments, LayerNorm, softmax and the loss stay f32 (as torch.autocast). f16
    /// trains with dynamic loss scaling (as torch.amp.GradScaler). Refused where the backend
    /// lacks the dtype.
    #[arg(long, default_value = "f32", value_parser = choice::<Precision>(&["f32", "f16", "bf16"]))]
    #[serde(serialize_with = "display")]
    pub precision: Precision,
}

impl ModelArgs {
    /// The device of `--backend`, checked to compute in `--precision`.
    pub fn device(&self) -> anyhow::Result<Device> {
        let device = self
            .backend
            .device()
            .with_context(|| format!("--backend {}", self.backend))?;
        self.backend
            .check_precision(&device, self.precision)
            .with_context(|| format!("--precision {}", self.precision))?;
        Ok(device)
    }

    /// Loss scaling for training in `--precision`: GradScaler's defaults for f16, none otherwise.
    pub fn loss_scaling(&self) -> Option<maml::LossScaling> {
        self.precision
            .needs_loss_scaling()
            .then(maml::LossScaling::default)
    }

    /// The model directory `--bert-model` names (downloading a hub id if needed).
    pub fn resolve(&self) -> anyhow::Result<ModelDir> {
        let spinner = progress::spinner("model");
        spinner.set_message(format!("resolving {}", self.bert_model));
        let dir = model::resolve_model(&self.bert_model, &HubOptions::from_env())
            .with_context(|| format!("--bert-model {}", self.bert_model));
        spinner.finish_and_clear();
        dir
    }

    /// The tokenizer of `dir`, truncating to `--max-seq-len`.
    pub fn encoder(&self, dir: &ModelDir, padding: Padding) -> anyhow::Result<TextEncoder> {
        TextEncoder::from_model_dir(&dir.root, self.max_seq_len, padding).with_context(|| {
            format!(
                "--bert-model {} / --max-seq-len {}",
                self.bert_model, self.max_seq_len
            )
        })
    }
}

/// How many tasks of an outer batch are computed at once. Not a setting of the run: results
/// are the same whatever it is, so a run may resume with another value.
#[derive(Debug, Clone, clap::Args)]
pub struct TaskThreadsArgs {
    /// Tasks of an outer batch (and of an evaluation) computed at once, each on its own thread;
    /// results do not depend on it. Each task in flight holds its own activations and adapted
    /// copy of the model in memory. Default: one per core on flex (its element-wise kernels
    /// use one core, so a second task fills the other), 1 on GPU backends.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub task_threads: Option<u16>,
}

impl TaskThreadsArgs {
    /// `--task-threads`, or its default for `backend`.
    pub fn resolve(&self, backend: BackendKind) -> usize {
        self.task_threads
            .map_or_else(|| step_threads(backend), usize::from)
    }
}

/// How fine-tuning cuts its training batches.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct MicroBatchArgs {
    /// Cut each training batch into this many micro-batches whose gradients are summed: the
    /// same mean gradient up to rounding, dropout drawn per micro-batch. They run at once, one
    /// per core. Default: 2 on flex (its element-wise kernels use one core, so a second
    /// micro-batch fills the other), 1 on GPU backends.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub micro_batches: Option<u16>,
}

impl MicroBatchArgs {
    /// `--micro-batches`, or its default for `backend`.
    pub fn resolve(&self, backend: BackendKind) -> usize {
        match (self.micro_batches, backend) {
            (Some(count), _) => usize::from(count),
            (None, BackendKind::Flex) => 2,
            (None, _) => 1,
        }
    }
}

/// Threads that compute parts of one step at once (tasks, micro-batches, scoring batches): one
/// per core on flex, 1 on GPU backends, where the device already runs every kernel in parallel.
pub fn step_threads(backend: BackendKind) -> usize {
    match backend {
        BackendKind::Flex => std::thread::available_parallelism().map_or(1, |n| n.get()),
        _ => 1,
    }
}

/// Loads the classifier in `dir` for `labels` on `device`, saying which weights were new.
pub fn load_classifier(
    dir: &ModelDir,
    labels: &LabelSet,
    seed: u64,
    device: &Device,
) -> anyhow::Result<BertClassifier> {
    let (classifier, report) = model::load_classifier(dir, labels.names(), seed, device)
        .with_context(|| format!("cannot load the model in {}", dir.root.display()))?;
    tracing::info!(
        "loaded {} tensors from {}",
        report.loaded,
        report.weights.display()
    );
    if !report.initialized.is_empty() {
        tracing::info!(
            "initialised from seed {seed} (not in the weights): {}",
            report.initialized.join(", ")
        );
    }
    Ok(classifier)
}

/// The labels a model predicts: a checkpoint's (or any config's `id2label`), else sentiment.
pub fn model_labels(dir: &ModelDir) -> anyhow::Result<LabelSet> {
    match dir.config.label_names() {
        Some(names) => LabelSet::new(names)
            .with_context(|| format!("the labels of {}/config.json", dir.root.display())),
        None => Ok(LabelSet::sentiment()),
    }
}

/// Which review file, and which of its domains are held out for testing.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct DataArgs {
    /// Review file: JSON list, JSON Lines or CSV of {text, label, domain}
    /// [default: $METABERT_DATA, else data/dataset.json].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Domains held out as unseen test tasks (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = REFERENCE_TEST_DOMAINS.map(String::from))]
    pub test_domains: Vec<String>,
}

impl DataArgs {
    /// The review file to read.
    pub fn path(&self) -> PathBuf {
        dataset::resolve_data_path(self.data.as_deref())
    }

    /// Loads the review file; with `labels`, every label must be one of them.
    pub fn load(&self, labels: Option<&LabelSet>) -> anyhow::Result<ReviewSet> {
        let path = self.path();
        let spinner = progress::spinner("data");
        spinner.set_message(format!("reading {}", path.display()));
        let set = match labels {
            Some(labels) => ReviewSet::load_with_labels(&path, labels),
            None => ReviewSet::load(&path),
        }
        .with_context(|| {
            format!(
                "cannot load the review file (--data {}; without --data, METABERT_DATA or \
                 data/dataset.json)",
                path.display()
            )
        });
        spinner.finish_and_clear();
        let set = set?;
        tracing::info!(
            "{} reviews in {} domains from {}",
            set.len(),
            set.domains().len(),
            path.display()
        );
        Ok(set)
    }

    /// The split settings for `num_domain` training domains.
    pub fn split(&self, num_domain: NumDomain) -> SplitConfig {
        SplitConfig {
            test_domains: self.test_domains.clone(),
            num_domain,
        }
    }

    /// The split of `set` into `num_domain` training domains and the test domains, with the
    /// training domains it picks. Errors (a test domain not in the file, no domain left to
    /// train on) name the flags to change.
    pub fn split_of(
        &self,
        set: &ReviewSet,
        num_domain: NumDomain,
    ) -> anyhow::Result<(SplitConfig, Vec<String>)> {
        let split = self.split(num_domain);
        let training_domains = split.training_domains(set).with_context(|| {
            format!(
                "--test-domains {} / --num-domain {num_domain}",
                self.test_domains.join(",")
            )
        })?;
        Ok((split, training_domains))
    }
}

/// Tokenises every review of `set` once.
pub fn encode(encoder: &TextEncoder, set: &ReviewSet) -> anyhow::Result<Vec<EncodedReview>> {
    let spinner = progress::spinner("tokenise");
    spinner.set_message(format!("{} reviews", set.len()));
    let encoded = encoder
        .encode_set(set)
        .with_context(|| format!("cannot tokenise {}", set.path.display()));
    spinner.finish_and_clear();
    encoded
}

/// Inner-loop and fine-tuning batch order (`--batch-order`).
pub const BATCH_ORDERS: &[&str] = &["length-bucketed", "shuffled"];
/// Padding choices (`--padding`).
pub const PADDINGS: &[&str] = &["longest", "max"];

/// How training batches are cut and padded.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct BatchingArgs {
    /// How training batches are formed: reviews of similar length together, in random batch
    /// order (less padding), or the reference's plain shuffle.
    #[arg(long, default_value = "length-bucketed", value_parser = choice::<BatchOrder>(BATCH_ORDERS))]
    #[serde(serialize_with = "display")]
    pub batch_order: BatchOrder,
    /// Pad each batch to its longest review, or every review to --max-seq-len (the reference).
    #[arg(long, default_value = "longest", value_parser = choice::<Padding>(PADDINGS))]
    #[serde(serialize_with = "display")]
    pub padding: Padding,
}

impl BatchingArgs {
    /// The library's batching settings for batches of `batch_size`.
    pub fn batching(
        &self,
        batch_size: usize,
        max_seq_len: usize,
    ) -> anyhow::Result<maml::Batching<Collation>> {
        if batch_size == 0 {
            bail!("batch sizes must be at least 1");
        }
        Ok(maml::Batching::shuffled(batch_size)
            .with_order(self.batch_order)
            .with_options(Collation {
                padding: self.padding,
                max_seq_len,
            }))
    }
}

/// The metrics table every scoring command prints.
pub fn metrics_table(rows: &[(&str, &Metrics)], labels: &LabelSet) -> String {
    let confusion_header = format!("confusion (rows true: {})", labels.names().join("/"));
    let headers = [
        "set",
        "n",
        "accuracy",
        "macro-F1",
        "majority",
        "mean loss",
        &confusion_header,
    ];
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(name, metrics)| {
            let confusion: Vec<String> = metrics
                .confusion
                .iter()
                .map(|row| {
                    row.iter()
                        .map(usize::to_string)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            vec![
                name.to_string(),
                metrics.n.to_string(),
                format!("{:.4}", metrics.accuracy),
                format!("{:.4}", metrics.macro_f1),
                format!("{:.4}", metrics.majority_baseline),
                format!("{:.4}", metrics.mean_loss),
                confusion.join(" | "),
            ]
        })
        .collect();
    table::render(&headers, &rows)
}
