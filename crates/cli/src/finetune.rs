//! `meta-bert finetune`: the reference's run_finetuning.py — AdamW on the D training domains
//! (80 % train, 20 % validation), scored on validation and the test domains after every epoch —
//! with `--resume`.

use anyhow::{Context, bail};
use burn::module::Module;
use dataset::NumDomain;
use maml::{EpochRecord, Event, FineTuner, FinetuneConfig, FinetuneData, RngState, Stream};
use model::BertClassifier;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tasks::EncodedReview;

use crate::checkpoints::Saver;
use crate::common::{
    self, BatchingArgs, DataArgs, MicroBatchArgs, ModelArgs, display, parse_learning_rate,
    parse_num_domain,
};
use crate::metrics_log::MetricsLog;
use crate::record::{RecordArgs, Recorder, RunHeader};
use crate::run_dir::{METRICS, OutputArgs, RESULTS};
use crate::{Outcome, interrupt, progress};

/// Share of the training domains' reviews held out for validation, as in the reference.
pub const VALIDATION_PERCENT: u32 = 20;

/// Fine-tuning flags: the reference's, in kebab case, and ours.
#[derive(Debug, clap::Args, Serialize)]
#[command(
    after_help = "Writes into --output-dir: hyparams.json, train.log, metrics.jsonl (one \
    line per scoring), ckpt/transfer.epoch-N/ (Hugging Face–loadable, with optimizer and \
    training state for --resume) and, at the end, results.json ({\"epochs\": [{\"epoch\", \
    \"train_loss\", \"validation\", \"test\"}], \"zero_shot\": {\"validation\", \"test\"}, \
    \"best_epoch\", \"best_checkpoint\", \"test_predictions\": {\"review_index\", \"label\", \
    \"predicted\", \"probabilities\"}}; the predictions are the final model's, one per test \
    review in review-file order). To save disk only two checkpoints are kept: the best by \
    validation accuracy and the latest."
)]
pub struct Args {
    #[command(flatten)]
    #[serde(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub data: DataArgs,
    /// Passes over the training reviews (0 with --zero-shot: score only).
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Training and scoring batch size.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Training domains: the D smallest by review count, or `all`.
    #[arg(long, default_value = "all", value_parser = parse_num_domain)]
    #[serde(serialize_with = "display")]
    pub num_domain: NumDomain,
    /// AdamW learning rate.
    #[arg(long, default_value_t = 5e-5, value_parser = parse_learning_rate)]
    pub learning_rate: f64,
    /// Also score the model before any training (results.json `zero_shot`).
    #[arg(long)]
    pub zero_shot: bool,
    /// Seed of the train/validation split, batch order, dropout and new weights.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[command(flatten)]
    #[serde(flatten)]
    pub batching: BatchingArgs,
    /// Clip each batch's gradient to this global L2 norm.
    #[arg(long)]
    pub max_grad_norm: Option<f64>,
    #[command(flatten)]
    #[serde(flatten)]
    pub micro_batches: MicroBatchArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub record: RecordArgs,
}

/// What a checkpoint holds besides weights and optimizer state.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainingState {
    /// Epochs trained.
    epoch: usize,
    rng: RngState,
    /// Scores before training (with --zero-shot).
    zero_shot: Option<EpochRecord>,
    /// One record per trained epoch.
    history: Vec<EpochRecord>,
    /// The loss scale (with --precision f16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    loss_scaler: Option<maml::LossScaler>,
}

/// Runs `meta-bert finetune`.
pub fn run(mut args: Args) -> anyhow::Result<Outcome> {
    let Some(run_dir) = args.output.run_dir()? else {
        return Ok(Outcome::Completed);
    };
    args.batching.resolve(args.model.backend);
    if args.epochs == 0 && !args.zero_shot {
        bail!("--epochs 0 trains nothing: give at least 1, or --zero-shot to score only");
    }
    let config = FinetuneConfig::default()
        .with_lr(args.learning_rate)
        .with_batching(args.batching.batching(
            args.batch_size,
            args.model.max_seq_len,
            args.model.backend,
        )?)
        .with_eval_batch_size(args.batch_size)
        .with_epochs(args.epochs)
        .with_max_grad_norm(args.max_grad_norm)
        .with_micro_batches(args.micro_batches.resolve(args.model.backend))
        .with_dropout(!args.record.no_dropout)
        .with_loss_scaling(args.model.loss_scaling());

    let source = args.model.resolve()?;
    // A checkpoint's label set is fixed; other models take the review file's.
    let set = match source.checkpoint {
        Some(_) => args.data.load(Some(&common::model_labels(&source)?))?,
        None => args.data.load(None)?,
    };
    let (split, training_domains) = args.data.split_of(&set, args.num_domain)?;
    let (train, validation) = dataset::finetune_split(
        &split.training_indices(&set)?,
        VALIDATION_PERCENT,
        args.seed,
    )?;
    let test_indices = split.test_indices(&set)?;
    if train.is_empty() || validation.is_empty() {
        bail!(
            "the training domains ({}) have too few reviews for an 80/20 train/validation split",
            training_domains.join(", ")
        );
    }
    let device = args.model.device()?;
    let encoder = args
        .model
        .encoder(&source, args.batching.padding(args.model.backend))?;
    let saver = Saver::new(
        run_dir.root(),
        "transfer",
        &source,
        &set.labels,
        args.seed,
        &args.model.bert_model,
    );
    let hyparams = crate::run_dir::hyparams(
        "finetune",
        serde_json::to_value(&args).expect("flags serialise"),
        json!({
            "data": set.path,
            "labels": set.labels.names(),
            "model_dir": source.root,
            "training_domains": training_domains,
            "train_reviews": train.len(),
            "validation_reviews": validation.len(),
            "test_reviews": test_indices.len(),
            "finetune_config": config,
        }),
    );
    run_dir.check_same_settings(&hyparams)?;
    let (model, resumed) = saver.starting_point::<TrainingState>(run_dir.is_resume(), &device)?;
    let model = args.model.for_backend(model);
    let encoded = common::encode(&encoder, &set)?;
    let pick = |indices: &[usize]| -> Vec<&EncodedReview> {
        indices.iter().map(|&index| &encoded[index]).collect()
    };
    let (train, validation, test) = (pick(&train), pick(&validation), pick(&test_indices));
    let data = FinetuneData {
        train: &train,
        validation: &validation,
        test: &test,
    };
    let weight_decay = config.weight_decay;
    let mut tuner = config
        .init(model)?
        .with_threads(common::step_threads(args.model.backend));

    run_dir.open(&hyparams)?;
    let recorder = match args.record.record {
        true => Some(Recorder::start(
            run_dir.root(),
            &saver,
            tuner.model(),
            RunHeader {
                command: "finetune",
                data: &set.path,
                max_seq_len: args.model.max_seq_len,
                dropout: !args.record.no_dropout,
            },
            json!({
                "lr": args.learning_rate,
                "weight_decay": weight_decay,
                "batch_size": args.batch_size,
                "epochs": args.epochs,
            }),
        )?),
        false => None,
    };
    let state = resumed.as_ref().map(|resumed| &resumed.state);
    let resumed_epoch = state.map_or(0, |state| state.epoch);
    let had_zero_shot = state.is_some_and(|state| state.zero_shot.is_some());
    let metrics = MetricsLog::open(&run_dir.root().join(METRICS), |line| {
        let kept_epoch = line["epoch"]
            .as_u64()
            .is_some_and(|epoch| (1..=resumed_epoch as u64).contains(&epoch));
        kept_epoch || (had_zero_shot && line["kind"] == "zero_shot")
    })?;
    let mut run = Run {
        args: &args,
        recorder,
        rng: Stream::Training.rng(args.seed),
        saver,
        metrics,
        zero_shot: None,
        history: Vec::new(),
    };
    if let Some(resumed) = resumed {
        resumed.restore_optimizer(|path| tuner.resume(path, resumed.state.epoch))?;
        let state = resumed.state;
        run.rng = state.rng.restore()?;
        run.zero_shot = state.zero_shot;
        run.history = state.history;
        if let Some(scaler) = state.loss_scaler {
            tuner.restore_loss_scaler(scaler);
        }
        tracing::info!(
            "resuming from {} after epoch {}",
            resumed.dir.display(),
            state.epoch
        );
    }
    interrupt::install("epoch")?;
    if run.train(&mut tuner, &data)? == Outcome::Interrupted {
        return Ok(Outcome::Interrupted);
    }
    let mut results = run.results()?;
    results["test_predictions"] = crate::predict::test_predictions(
        &tuner.model().valid(),
        &encoder,
        &set,
        &test_indices,
        args.batch_size,
        &device,
    )?;
    run_dir.write_results(&results)?;
    tracing::info!(
        "done: results in {}",
        run_dir.root().join(RESULTS).display()
    );
    Ok(Outcome::Completed)
}

struct Run<'a> {
    args: &'a Args,
    /// With --record.
    recorder: Option<Recorder>,
    rng: rand_chacha::ChaCha8Rng,
    saver: Saver<'a>,
    metrics: MetricsLog,
    zero_shot: Option<EpochRecord>,
    history: Vec<EpochRecord>,
}

impl Run<'_> {
    fn train(
        &mut self,
        tuner: &mut FineTuner<BertClassifier>,
        data: &FinetuneData<EncodedReview>,
    ) -> anyhow::Result<Outcome> {
        if self.args.zero_shot && self.zero_shot.is_none() {
            let record = tuner.score(data, None, &mut |_| {})?;
            log_scores("zero-shot", &record);
            self.metrics.append(
                &json!({"kind": "zero_shot", "validation": record.validation, "test": record.test}),
            )?;
            self.zero_shot = Some(record);
        }
        while tuner.completed_epochs() < self.args.epochs {
            if interrupt::requested() {
                tracing::warn!(
                    "stopped after epoch {} of {}; continue with --resume",
                    tuner.completed_epochs(),
                    self.args.epochs
                );
                return Ok(Outcome::Interrupted);
            }
            let epoch = tuner.completed_epochs() + 1;
            let batches = data.train.len().div_ceil(self.args.batch_size) as u64;
            let bar = progress::bar(batches, &format!("epoch {epoch}"));
            let mut recorded = Vec::new();
            let mut loss_scaling = None;
            let record = tuner
                .epoch(data, &mut self.rng, &mut |event| {
                    if let Event::EpochFinished {
                        loss_scaling: report,
                        ..
                    } = event
                    {
                        loss_scaling = report;
                    } else if let Event::FinetuneBatch {
                        batch, loss, rows, ..
                    } = event
                    {
                        bar.inc(1);
                        bar.set_message(format!("loss {loss:.4}"));
                        if self.recorder.is_some() {
                            let reviews: Vec<usize> = rows
                                .iter()
                                .map(|&row| data.train[row].source_index)
                                .collect();
                            recorded.push(json!({
                                "kind": "batch", "epoch": epoch, "batch": batch,
                                "rows": reviews, "loss": loss,
                            }));
                        }
                    }
                })
                .with_context(|| match self.history.last() {
                    Some(last) => format!(
                        "fine-tuning failed; the last checkpoint, {}, is intact",
                        self.saver
                            .checkpoints
                            .path(&self.checkpoint_name(last.epoch))
                            .display()
                    ),
                    None => "fine-tuning failed in its first epoch".to_string(),
                })?;
            bar.finish_and_clear();
            if let Some(recorder) = &self.recorder {
                recorded.iter().try_for_each(|line| recorder.line(line))?;
            }
            log_scores(&format!("epoch {epoch}"), &record);
            let line = json!({
                "kind": "epoch",
                "epoch": record.epoch,
                "train_loss": record.train_loss,
                "validation": record.validation,
                "test": record.test,
            });
            self.metrics
                .append(&common::with_loss_scaling(line, loss_scaling))?;
            self.history.push(record);
            self.save(tuner)?;
        }
        Ok(Outcome::Completed)
    }

    fn checkpoint_name(&self, epoch: usize) -> String {
        self.saver.checkpoints.name(&format!("epoch-{epoch}"))
    }

    fn best_epoch(&self) -> Option<usize> {
        maml::best_by_validation(
            self.history
                .iter()
                .map(|record| (record.epoch, &record.validation)),
        )
    }

    /// Saves the model after its latest epoch with everything --resume needs, then removes
    /// checkpoints that are neither the best nor this one.
    fn save(&self, tuner: &FineTuner<BertClassifier>) -> anyhow::Result<()> {
        let epoch = tuner.completed_epochs();
        let state = TrainingState {
            epoch,
            rng: RngState::of(&self.rng, self.args.seed),
            zero_shot: self.zero_shot.clone(),
            history: self.history.clone(),
            loss_scaler: tuner.loss_scaler(),
        };
        let record = self.history.last().expect("saved after an epoch");
        let mut meta = self.saver.meta(0, epoch);
        meta.metrics.insert(
            "validation_accuracy".to_string(),
            record.validation.accuracy,
        );
        if let Some(test) = &record.test {
            meta.metrics
                .insert("test_accuracy".to_string(), test.accuracy);
        }
        let best = self.best_epoch().map(|best| self.checkpoint_name(best));
        self.saver.save(
            &self.checkpoint_name(epoch),
            tuner.model(),
            |path| tuner.save_optimizer(path),
            &meta,
            &state,
            best.as_deref(),
        )
    }

    fn results(&self) -> anyhow::Result<Value> {
        let best_epoch = self.best_epoch();
        let epochs: Vec<Value> = self
            .history
            .iter()
            .map(|record| {
                json!({
                    "epoch": record.epoch,
                    "train_loss": record.train_loss,
                    "validation": record.validation,
                    "test": record.test,
                })
            })
            .collect();
        let best_checkpoint = best_epoch
            .map(|epoch| {
                self.saver
                    .checkpoints
                    .absolute_path(&self.checkpoint_name(epoch))
            })
            .transpose()?;
        let mut results = json!({
            "epochs": epochs,
            "best_epoch": best_epoch,
            "best_checkpoint": best_checkpoint,
        });
        if let Some(zero_shot) = &self.zero_shot {
            results["zero_shot"] =
                json!({"validation": zero_shot.validation, "test": zero_shot.test});
        }
        Ok(results)
    }
}

fn log_scores(when: &str, record: &EpochRecord) {
    let test = record
        .test
        .as_ref()
        .map_or("-".to_string(), |test| format!("{:.4}", test.accuracy));
    tracing::info!(
        "{when}: validation accuracy {:.4}, test accuracy {test}",
        record.validation.accuracy
    );
}
