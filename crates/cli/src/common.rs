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
    /// Compute backend. wgpu (any graphics API, WGSL kernels) is in the default build; vulkan
    /// (Vulkan only, SPIR-V kernels where the adapter allows), cuda and tch need
    /// `--features vulkan|cuda|tch`. `meta-bert backends` lists what this binary has.
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

    /// The collation of batches that are only scored (`evaluate`, `predict`): `--backend`'s
    /// padding ([`padding_for`]), up to `--max-seq-len`.
    pub fn scoring_collation(&self) -> Collation {
        Collation {
            padding: padding_for(self.backend),
            max_seq_len: self.max_seq_len,
        }
    }

    /// `model` computing padding positions or not as `--backend` wants ([`skips_padding`]), its
    /// matrix products in `--precision`.
    pub fn for_backend(&self, model: BertClassifier) -> BertClassifier {
        model
            .with_skip_padding(skips_padding(self.backend))
            .with_precision(self.precision)
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

/// `--padding`: a padding, or `auto`, the backend's ([`padding_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaddingChoice {
    /// The backend's padding.
    Auto,
    /// This padding on every backend.
    Fixed(Padding),
}

impl FromStr for PaddingChoice {
    type Err = String;

    /// `auto`, or a [`Padding`] (`longest`, `max`, `buckets`, `buckets:N`).
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "auto" => Ok(Self::Auto),
            padding => padding.parse().map(Self::Fixed),
        }
    }
}

impl Display for PaddingChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Fixed(padding) => Display::fmt(padding, f),
        }
    }
}

/// The padding `--padding auto` stands for on `backend`: each batch to its longest review where
/// every shape costs the same (flex, tch); to buckets of [`tasks::DEFAULT_BUCKET`] tokens where
/// every new shape costs kernel compilation and autotuning (wgpu, vulkan, cuda), so that a run sees at
/// most `--max-seq-len / 64` lengths.
pub fn padding_for(backend: BackendKind) -> Padding {
    if backend.compiles_per_shape() {
        Padding::Buckets(tasks::DEFAULT_BUCKET)
    } else {
        Padding::Longest
    }
}

/// Whether the model computes only the positions that carry a token on `backend`, in every
/// command (`bench --compute-padding` aside): yes where every shape costs the same; no where
/// every new shape costs compilation and autotuning, because skipping padding regroups each
/// batch into tensors of new shapes.
pub fn skips_padding(backend: BackendKind) -> bool {
    !backend.compiles_per_shape()
}

/// How training batches are cut and padded.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct BatchingArgs {
    /// How training batches are formed: reviews of similar length together, in random batch
    /// order (less padding), or the reference's plain shuffle.
    #[arg(long, default_value = "length-bucketed", value_parser = choice::<BatchOrder>(BATCH_ORDERS))]
    #[serde(serialize_with = "display")]
    pub batch_order: BatchOrder,
    /// Pad each batch to its longest review (`longest`), every review to --max-seq-len (`max`,
    /// the reference), or each batch to its longest review rounded up to a multiple of N tokens
    /// (`buckets:N`; `buckets` = `buckets:64`): few batch shapes for GPU backends, which compile
    /// and autotune kernels for every new shape. `auto`: `longest` on flex and tch, `buckets`
    /// on wgpu, vulkan and cuda.
    #[arg(long, default_value = "auto", value_parser = PaddingChoice::from_str)]
    #[serde(serialize_with = "display")]
    pub padding: PaddingChoice,
}

impl BatchingArgs {
    /// The padding of `--padding` on `backend`.
    pub fn padding(&self, backend: BackendKind) -> Padding {
        match self.padding {
            PaddingChoice::Auto => padding_for(backend),
            PaddingChoice::Fixed(padding) => padding,
        }
    }

    /// Replaces `--padding auto` by what it stands for on `backend`, so that the flags a run
    /// records (hyparams.json, bench's JSON) say which padding it used.
    pub fn resolve(&mut self, backend: BackendKind) {
        self.padding = PaddingChoice::Fixed(self.padding(backend));
    }

    /// The library's batching settings for batches of `batch_size` on `backend`.
    pub fn batching(
        &self,
        batch_size: usize,
        max_seq_len: usize,
        backend: BackendKind,
    ) -> anyhow::Result<maml::Batching<Collation>> {
        if batch_size == 0 {
            bail!("batch sizes must be at least 1");
        }
        Ok(maml::Batching::shuffled(batch_size)
            .with_order(self.batch_order)
            .with_options(Collation {
                padding: self.padding(backend),
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

/// A metrics.jsonl line with what loss scaling did (`--precision f16`) added to it: the scale in
/// use after the step or epoch, and the updates skipped for an overflow.
pub fn with_loss_scaling(
    mut line: serde_json::Value,
    report: Option<maml::ScalingReport>,
) -> serde_json::Value {
    if let Some(report) = report {
        line["loss_scale"] = serde_json::json!(report.scale);
        line["skipped_updates"] = serde_json::json!(report.skipped_updates);
    }
    line
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use super::*;

    #[test]
    fn auto_padding_is_longest_with_padding_skipped_on_flex_and_buckets_on_gpus() {
        let buckets_of_64 = Padding::Buckets(NonZeroUsize::new(64).unwrap());
        for (backend, padding, skips) in [
            (BackendKind::Flex, Padding::Longest, true),
            (BackendKind::Tch, Padding::Longest, true),
            (BackendKind::Wgpu, buckets_of_64, false),
            (BackendKind::Cuda, buckets_of_64, false),
        ] {
            assert_eq!(padding_for(backend), padding, "{backend}");
            assert_eq!(skips_padding(backend), skips, "{backend}");
        }
    }

    #[test]
    fn resolving_auto_records_the_backends_padding_and_keeps_a_chosen_one() {
        let args = |padding: &str| BatchingArgs {
            batch_order: BatchOrder::LengthBucketed,
            padding: padding.parse().unwrap(),
        };
        for (flag, backend, resolved) in [
            ("auto", BackendKind::Flex, "longest"),
            ("auto", BackendKind::Wgpu, "buckets:64"),
            ("max", BackendKind::Wgpu, "max"),
            ("buckets:32", BackendKind::Flex, "buckets:32"),
        ] {
            let mut batching = args(flag);
            batching.resolve(backend);
            assert_eq!(
                batching.padding.to_string(),
                resolved,
                "{flag} on {backend}"
            );
            let settings = serde_json::to_value(&batching).unwrap();
            assert_eq!(settings["padding"], resolved, "{flag} on {backend}");
            let options = batching.batching(16, 256, backend).unwrap().options;
            assert_eq!(options.padding.to_string(), resolved, "{flag} on {backend}");
        }
    }

    #[test]
    fn padding_flag_names_round_trip() {
        for name in ["auto", "longest", "max", "buckets:64", "buckets:32"] {
            assert_eq!(name.parse::<PaddingChoice>().unwrap().to_string(), name);
        }
        assert_eq!(
            "buckets".parse::<PaddingChoice>(),
            Ok(PaddingChoice::Fixed(Padding::Buckets(
                tasks::DEFAULT_BUCKET
            )))
        );
        assert!("buckets:0".parse::<PaddingChoice>().is_err());
    }
}
