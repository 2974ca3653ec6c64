//! `meta-bert meta-train`: the reference's run_meta_training.py, with validation tasks from the
//! training domains choosing the best checkpoint, and `--resume`.

mod host;

use anyhow::{Context, bail};
use dataset::NumDomain;
use maml::{
    AdaptScope, InnerLoopConfig, MetaAlgorithm, MetaConfig, MetaTraining, RunEnd, Stream,
    TrainingError, TrainingHost, TrainingPlan,
};
use model::BertClassifier;
use serde::Serialize;
use serde_json::{Value, json};
use tasks::{Collation, DomainSampling, EpisodeConfig, EpisodeSampler};

use crate::checkpoints::{Checkpoints, Saver};
use crate::common::{
    self, BatchingArgs, DataArgs, ModelArgs, TaskThreadsArgs, choice, display, parse_learning_rate,
    parse_num_domain,
};
use crate::metrics_log::MetricsLog;
use crate::record::{RecordArgs, Recorder, RunHeader};
use crate::run_dir::{METRICS, OutputArgs};
use crate::{Outcome, interrupt, progress};
use host::Host;

/// Meta-training flags: the reference's, in kebab case, and ours.
#[derive(Debug, clap::Args, Serialize)]
#[command(
    after_help = "Writes into --output-dir: hyparams.json, train.log, metrics.jsonl (one \
    line per outer step and per evaluation), ckpt/meta.epoch-E.step-S/ (Hugging Face–loadable, \
    with optimizer and training state for --resume) and, at the end, results.json \
    (best_checkpoint, chosen on validation tasks from the training domains, never on test). \
    To save disk only two checkpoints are kept: the best so far and the latest."
)]
pub struct Args {
    #[command(flatten)]
    #[serde(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub model: ModelArgs,
    /// Labels the classifier predicts; must equal the number of labels in the review file.
    #[arg(long, default_value_t = 2)]
    pub num_labels: usize,
    #[command(flatten)]
    #[serde(flatten)]
    pub data: DataArgs,
    /// Passes; each draws --num-train-task fresh tasks.
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Tasks per outer (meta) step.
    #[arg(long, default_value_t = 5)]
    pub outer_batch_size: usize,
    /// Support-set batch size in the inner loop.
    #[arg(long, default_value_t = 16)]
    pub inner_batch_size: usize,
    /// Inner-loop epochs over the support set while meta-training.
    #[arg(long, default_value_t = 10)]
    pub inner_update_step: usize,
    /// Inner-loop epochs over the support set when adapting to validation and test tasks.
    #[arg(long, default_value_t = 10)]
    pub inner_update_step_eval: usize,
    /// Training domains: the D smallest by review count, or `all`.
    #[arg(long, default_value = "all", value_parser = parse_num_domain)]
    #[serde(serialize_with = "display")]
    pub num_domain: NumDomain,
    /// Support reviews per task.
    #[arg(long, default_value_t = 80)]
    pub num_support: usize,
    /// Query reviews per task.
    #[arg(long, default_value_t = 20)]
    pub num_query: usize,
    /// Tasks drawn per epoch.
    #[arg(long, default_value_t = 50)]
    pub num_train_task: usize,
    /// Test tasks (one per test domain: its first --num-support reviews, then --num-query).
    #[arg(long, default_value_t = 3)]
    pub num_test_task: usize,
    /// Validation tasks held out of each training domain; they choose the best checkpoint.
    #[arg(long, default_value_t = 2)]
    pub num_validation_task: usize,
    /// Learning rate of the outer Adam (FOMAML).
    #[arg(long, default_value_t = 5e-5, value_parser = parse_learning_rate)]
    pub outer_update_lr: f64,
    /// Learning rate of the inner Adam.
    #[arg(long, default_value_t = 5e-5, value_parser = parse_learning_rate)]
    pub inner_update_lr: f64,
    /// Seed of every random choice (tasks, batches, dropout, new weights).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Meta-learning algorithm.
    #[arg(long, value_enum, default_value_t = Algorithm::Fomaml)]
    pub algorithm: Algorithm,
    /// Reptile's interpolation factor in (0, 1] (with --algorithm reptile).
    #[arg(long, default_value_t = 0.1)]
    pub reptile_step_size: f64,
    /// Which weights the inner loop adapts: all (the reference) or the head only (ANIL).
    #[arg(long, value_enum, default_value_t = Scope::Full)]
    pub adapt_scope: Scope,
    /// How a task's domain is drawn: by a random training review (the reference), or uniformly.
    #[arg(long, default_value = "by-review", value_parser = choice::<DomainSampling>(&["by-review", "uniform"]))]
    #[serde(serialize_with = "display")]
    pub domain_sampling: DomainSampling,
    #[command(flatten)]
    #[serde(flatten)]
    pub batching: BatchingArgs,
    #[command(flatten)]
    #[serde(skip)]
    pub task_threads: TaskThreadsArgs,
    /// Clip the meta-gradient to this global L2 norm.
    #[arg(long)]
    pub max_grad_norm: Option<f64>,
    /// Evaluate on validation and test tasks, and save a checkpoint, every this many outer
    /// steps (and after the last).
    #[arg(long, default_value_t = 20)]
    pub eval_every: usize,
    #[command(flatten)]
    #[serde(flatten)]
    pub record: RecordArgs,
}

/// `--algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// First-order MAML (the reference).
    Fomaml,
    /// Reptile.
    Reptile,
}

/// `--adapt-scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Every weight.
    Full,
    /// The classifier head only (ANIL).
    HeadOnly,
}

impl Args {
    fn check(&self) -> anyhow::Result<()> {
        for (flag, value) in [
            ("--epochs", self.epochs),
            ("--outer-batch-size", self.outer_batch_size),
            ("--inner-batch-size", self.inner_batch_size),
            ("--num-train-task", self.num_train_task),
            ("--num-test-task", self.num_test_task),
            ("--num-validation-task", self.num_validation_task),
            ("--eval-every", self.eval_every),
        ] {
            if value == 0 {
                bail!("{flag} must be at least 1");
            }
        }
        if self.num_test_task > self.data.test_domains.len() {
            bail!(
                "--num-test-task {} but there is one test task per test domain and --test-domains \
                 names {}: lower --num-test-task",
                self.num_test_task,
                self.data.test_domains.len()
            );
        }
        Ok(())
    }

    fn meta_config(&self) -> anyhow::Result<MetaConfig<Collation>> {
        let algorithm = match self.algorithm {
            Algorithm::Fomaml => MetaAlgorithm::Fomaml,
            Algorithm::Reptile => MetaAlgorithm::Reptile {
                step_size: self.reptile_step_size,
            },
        };
        let scope = match self.adapt_scope {
            Scope::Full => AdaptScope::Full,
            Scope::HeadOnly => AdaptScope::HeadOnly,
        };
        let inner = InnerLoopConfig::default()
            .with_lr(self.inner_update_lr)
            .with_epochs(self.inner_update_step)
            .with_dropout(!self.record.no_dropout)
            .with_batching(self.batching.batching(
                self.inner_batch_size,
                self.model.max_seq_len,
                self.model.backend,
            )?)
            .with_scope(scope);
        Ok(MetaConfig::default()
            .with_algorithm(algorithm)
            .with_outer_lr(self.outer_update_lr)
            .with_max_grad_norm(self.max_grad_norm)
            .with_inner(inner)
            .with_loss_scaling(self.model.loss_scaling()))
    }

    fn plan(&self) -> TrainingPlan {
        TrainingPlan {
            epochs: self.epochs,
            tasks_per_epoch: self.num_train_task,
            outer_batch_size: self.outer_batch_size,
            eval_every: self.eval_every,
            eval_inner_epochs: self.inner_update_step_eval,
        }
    }
}

/// Runs `meta-bert meta-train`.
pub fn run(mut args: Args) -> anyhow::Result<Outcome> {
    let Some(run_dir) = args.output.run_dir()? else {
        return Ok(Outcome::Completed);
    };
    args.check()?;
    args.batching.resolve(args.model.backend);
    let meta_config = args.meta_config()?;

    let set = args.data.load(None)?;
    if set.labels.len() != args.num_labels {
        bail!(
            "--num-labels {} but {} has {} labels ({}): set --num-labels {}",
            args.num_labels,
            set.path.display(),
            set.labels.len(),
            set.labels.names().join(", "),
            set.labels.len()
        );
    }
    let (split, training_domains) = args.data.split_of(&set, args.num_domain)?;
    let training = split.training_indices(&set)?;
    let mut test_episodes = tasks::test_episodes(
        &set,
        &args.data.test_domains,
        args.num_support,
        args.num_query,
    )
    .with_context(|| {
        format!(
            "cannot build the test tasks (--num-support {} + --num-query {} reviews of each of \
             --test-domains)",
            args.num_support, args.num_query
        )
    })?;
    test_episodes.truncate(args.num_test_task);
    let holdout = tasks::hold_out_validation(
        &set,
        &training,
        args.num_validation_task,
        args.num_support,
        args.num_query,
        &mut Stream::Holdout.rng(args.seed),
    )
    .context("cannot hold out validation tasks (see --num-validation-task)")?;
    let episode_config = EpisodeConfig {
        num_support: args.num_support,
        num_query: args.num_query,
        sampling: args.domain_sampling,
    };
    let sampler = EpisodeSampler::new(&set, &holdout.meta_train, episode_config, args.seed)
        .context("cannot draw meta-training tasks")?;

    let device = args.model.device()?;
    let source = args.model.resolve()?;
    let encoder = args
        .model
        .encoder(&source, args.batching.padding(args.model.backend))?;
    let saver = Saver::new(
        run_dir.root(),
        "meta",
        &source,
        &set.labels,
        args.seed,
        &args.model.bert_model,
    );
    let total_steps = args.plan().total_steps();
    let hyparams = crate::run_dir::hyparams(
        "meta-train",
        serde_json::to_value(&args).expect("flags serialise"),
        json!({
            "data": set.path,
            "labels": set.labels.names(),
            "model_dir": source.root,
            "training_domains": training_domains,
            "meta_train_reviews": holdout.meta_train.len(),
            "validation_tasks": holdout.episodes.len(),
            "test_tasks": test_episodes.len(),
            "steps_per_epoch": args.plan().steps_per_epoch(),
            "total_steps": total_steps,
            "meta_config": meta_config,
        }),
    );
    run_dir.check_same_settings(&hyparams)?;
    let mut host = Host {
        saver,
        metrics: None,
        total_steps,
        bar: progress::bar(total_steps as u64, "meta-train"),
        evaluation_bar: None,
        recorder: None,
    };
    let resumed = match run_dir.is_resume() {
        true => host.latest()?,
        false => None,
    };
    let model = args.model.for_backend(match &resumed {
        Some(resumed) => host.saver.load(&resumed.dir, &device)?,
        None => common::load_classifier(&source, &set.labels, args.seed, &device)?,
    });
    let encoded = common::encode(&encoder, &set)?;
    let task_threads = args.task_threads.resolve(args.model.backend);
    let learner = meta_config.init(model)?.with_task_threads(task_threads);
    let mut training = MetaTraining::new(
        learner,
        args.plan(),
        sampler,
        args.seed,
        &encoded,
        &holdout.episodes,
        &test_episodes,
    )?;

    run_dir.open(&hyparams)?;
    if args.record.record {
        let header = RunHeader {
            command: "meta-train",
            data: &set.path,
            max_seq_len: args.model.max_seq_len,
            dropout: !args.record.no_dropout,
        };
        let settings = json!({
            "outer_lr": args.outer_update_lr,
            "inner_lr": args.inner_update_lr,
            "inner_epochs": args.inner_update_step,
            "eval_inner_epochs": args.inner_update_step_eval,
            "inner_batch_size": args.inner_batch_size,
            "outer_batch_size": args.outer_batch_size,
        });
        let model = training.learner().model();
        host.recorder = Some(Recorder::start(
            run_dir.root(),
            &host.saver,
            model,
            header,
            settings,
        )?);
    }
    let resumed_step = resumed.as_ref().map_or(0, |resumed| resumed.state.step);
    host.metrics = Some(MetricsLog::open(&run_dir.root().join(METRICS), |line| {
        line["step"]
            .as_u64()
            .is_some_and(|step| step as usize <= resumed_step)
    })?);
    if let Some(resumed) = &resumed {
        training
            .resume(resumed)
            .with_context(|| format!("cannot resume from {}", resumed.dir.display()))?;
        tracing::info!(
            "resuming from {} after outer step {resumed_step}",
            resumed.dir.display()
        );
    }
    host.bar.set_position(resumed_step as u64);
    interrupt::install("outer step")?;
    match training.run(&mut host) {
        Ok(RunEnd::Completed) => host.bar.finish_and_clear(),
        Ok(RunEnd::Stopped) => {
            host.bar.abandon();
            tracing::warn!(
                "stopped after outer step {} of {total_steps}; continue with --resume",
                training.learner().completed_steps()
            );
            return Ok(Outcome::Interrupted);
        }
        Err(TrainingError::Host(error)) => return Err(error),
        Err(TrainingError::Algorithm { error, last_saved }) => {
            let note = match last_saved {
                0 => "meta-training failed before its first checkpoint".to_string(),
                step => format!(
                    "meta-training failed; the last checkpoint, {}, is intact",
                    host.saver
                        .checkpoints
                        .path(&host.checkpoint_name(args.plan().epoch_of(step), step))
                        .display()
                ),
            };
            return Err(anyhow::Error::from(error).context(note));
        }
    }
    let results = results(&training, &host.saver.checkpoints)?;
    run_dir.write_results(&results)?;
    tracing::info!(
        "done: best checkpoint {} (written to {})",
        results["best_checkpoint"],
        run_dir.root().join(crate::run_dir::RESULTS).display()
    );
    Ok(Outcome::Completed)
}

/// results.json: the best checkpoint (by validation) and every evaluation.
fn results(
    training: &MetaTraining<BertClassifier, EpisodeSampler>,
    checkpoints: &Checkpoints,
) -> anyhow::Result<Value> {
    let best = training
        .best()
        .context("meta-training ended without an evaluation")?;
    let evaluations = training.evaluations();
    let last = evaluations.last().expect("best is one of them");
    Ok(json!({
        "best_checkpoint": checkpoints.absolute_path(&best.checkpoint)?,
        "best": best,
        "latest_checkpoint": checkpoints.absolute_path(&last.checkpoint)?,
        "final": last,
        "evaluations": evaluations,
    }))
}
