//! `meta-bert meta-train`: the reference's run_meta_training.py, with validation tasks from the
//! training domains choosing the best checkpoint, and `--resume`.

use std::time::Instant;

use anyhow::{Context, bail};
use dataset::NumDomain;
use indicatif::ProgressBar;
use maml::{
    AdaptScope, Event, MetaAlgorithm, MetaConfig, MetaLearner, Metrics, Task, TaskEvaluation,
};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tasks::{DomainSampling, EncodedReview, Episode, EpisodeConfig, EpisodeSampler, SamplerState};

use crate::checkpoints::{self, Checkpoints, Resumed, RngState, Saver, Stream};
use crate::common::{
    self, BatchingArgs, DataArgs, ModelArgs, TaskThreadsArgs, choice, display, parse_learning_rate,
    parse_num_domain,
};
use crate::metrics_log::MetricsLog;
use crate::run_dir::{CHECKPOINTS, METRICS, OutputArgs};
use crate::{Outcome, interrupt, progress};

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

    fn meta_config(&self) -> anyhow::Result<MetaConfig> {
        let mut config = MetaConfig {
            algorithm: match self.algorithm {
                Algorithm::Fomaml => MetaAlgorithm::Fomaml,
                Algorithm::Reptile => MetaAlgorithm::Reptile {
                    step_size: self.reptile_step_size,
                },
            },
            outer_lr: self.outer_update_lr,
            max_grad_norm: self.max_grad_norm,
            ..MetaConfig::default()
        };
        config.inner.lr = self.inner_update_lr;
        config.inner.epochs = self.inner_update_step;
        config.inner.batching = self
            .batching
            .batching(self.inner_batch_size, self.model.max_seq_len)?;
        config.inner.scope = match self.adapt_scope {
            Scope::Full => AdaptScope::Full,
            Scope::HeadOnly => AdaptScope::HeadOnly,
        };
        Ok(config)
    }

    fn steps_per_epoch(&self) -> usize {
        self.num_train_task.div_ceil(self.outer_batch_size)
    }
}

/// One task set's scores at one checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Scores {
    /// Mean of the tasks' query accuracies (the reference's figure).
    mean_accuracy: f64,
    /// All query sets together.
    pooled: Metrics,
    /// Each task.
    tasks: Vec<TaskScore>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TaskScore {
    domain: String,
    metrics: Metrics,
}

impl From<TaskEvaluation> for Scores {
    fn from(evaluation: TaskEvaluation) -> Self {
        Self {
            mean_accuracy: evaluation.mean_accuracy,
            pooled: evaluation.pooled,
            tasks: evaluation
                .tasks
                .into_iter()
                .map(|(domain, metrics)| TaskScore { domain, metrics })
                .collect(),
        }
    }
}

/// An evaluation of the meta-model after `step` outer steps.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Evaluation {
    step: usize,
    epoch: usize,
    /// The checkpoint directory's name under ckpt/.
    checkpoint: String,
    validation: Scores,
    test: Scores,
}

/// What a checkpoint holds besides weights and optimizer state.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainingState {
    /// Outer steps applied.
    step: usize,
    sampler: SamplerState,
    rng: RngState,
    evaluations: Vec<Evaluation>,
    /// Index into `evaluations` of the best by validation.
    best: Option<usize>,
}

/// Runs `meta-bert meta-train`.
pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let Some(run_dir) = args.output.run_dir()? else {
        return Ok(Outcome::Completed);
    };
    args.check()?;
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
    let holdout = maml::hold_out_validation(
        &set,
        &training,
        args.num_validation_task,
        args.num_support,
        args.num_query,
        &mut checkpoints::rng(args.seed, Stream::Holdout),
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
    let encoder = args.model.encoder(&source, args.batching.padding)?;
    let saver = Saver {
        checkpoints: Checkpoints::new(run_dir.root().join(CHECKPOINTS), "meta"),
        source: &source,
        labels: &set.labels,
        seed: args.seed,
        bert_model: &args.model.bert_model,
    };
    let total_steps = args.epochs * args.steps_per_epoch();
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
            "steps_per_epoch": args.steps_per_epoch(),
            "total_steps": total_steps,
            "meta_config": meta_config,
        }),
    );
    run_dir.check_same_settings(&hyparams)?;
    let (model, resumed) = saver.starting_point::<TrainingState>(run_dir.is_resume(), &device)?;
    let encoded = common::encode(&encoder, &set)?;
    let task_threads = args.task_threads.resolve(args.model.backend);
    let mut learner = MetaLearner::new(model, meta_config)?.with_task_threads(task_threads);

    run_dir.open(&hyparams)?;
    let resumed_step = resumed.as_ref().map_or(0, |resumed| resumed.state.step);
    let metrics = MetricsLog::open(&run_dir.root().join(METRICS), |line| {
        line["step"]
            .as_u64()
            .is_some_and(|step| step as usize <= resumed_step)
    })?;
    if let Some(resumed) = &resumed {
        resumed.restore_optimizer(|path| learner.resume(path, resumed_step))?;
        tracing::info!(
            "resuming from {} after outer step {resumed_step}",
            resumed.dir.display()
        );
    }
    let mut trainer = Trainer {
        args: &args,
        learner,
        sampler,
        rng: checkpoints::rng(args.seed, Stream::Training),
        encoded: &encoded,
        validation: &holdout.episodes,
        test: &test_episodes,
        saver,
        metrics,
        evaluations: Vec::new(),
        best: None,
        last_saved: resumed_step,
        total_steps,
    };
    if let Some(Resumed { state, .. }) = resumed {
        trainer.sampler.restore(&state.sampler);
        trainer.rng = state.rng.restore()?;
        trainer.evaluations = state.evaluations;
        trainer.best = state.best;
    }
    interrupt::install("outer step")?;
    if trainer.train()? == Outcome::Interrupted {
        return Ok(Outcome::Interrupted);
    }
    let results = trainer.results()?;
    run_dir.write_results(&results)?;
    tracing::info!(
        "done: best checkpoint {} (written to {})",
        results["best_checkpoint"],
        run_dir.root().join(crate::run_dir::RESULTS).display()
    );
    Ok(Outcome::Completed)
}

struct Trainer<'a> {
    args: &'a Args,
    learner: MetaLearner,
    sampler: EpisodeSampler,
    rng: ChaCha8Rng,
    encoded: &'a [EncodedReview],
    validation: &'a [Episode],
    test: &'a [Episode],
    saver: Saver<'a>,
    metrics: MetricsLog,
    evaluations: Vec<Evaluation>,
    best: Option<usize>,
    /// The outer step the newest checkpoint holds.
    last_saved: usize,
    total_steps: usize,
}

impl Trainer<'_> {
    /// Outer steps until the end, evaluating and saving every --eval-every steps.
    fn train(&mut self) -> anyhow::Result<Outcome> {
        let bar = progress::bar(self.total_steps as u64, "meta-train");
        bar.set_position(self.learner.completed_steps() as u64);
        while self.learner.completed_steps() < self.total_steps {
            let step = self.learner.completed_steps() + 1;
            if interrupt::requested() {
                bar.abandon();
                let done = step - 1;
                if done > self.last_saved {
                    self.save(done)?;
                }
                tracing::warn!(
                    "stopped after outer step {done} of {}; continue with --resume",
                    self.total_steps
                );
                return Ok(Outcome::Interrupted);
            }
            self.outer_step(step, &bar)?;
            bar.inc(1);
            if step.is_multiple_of(self.args.eval_every) || step == self.total_steps {
                let evaluation = self.evaluate(step)?;
                self.metrics.append(&json!({
                    "kind": "evaluation",
                    "step": evaluation.step,
                    "epoch": evaluation.epoch,
                    "checkpoint": evaluation.checkpoint,
                    "validation": evaluation.validation,
                    "test": evaluation.test,
                }))?;
                self.evaluations.push(evaluation);
                self.best = maml::best_by_validation(
                    self.evaluations
                        .iter()
                        .enumerate()
                        .map(|(index, evaluation)| (index, &evaluation.validation.pooled)),
                );
                self.save(step)?;
            }
        }
        bar.finish_and_clear();
        Ok(Outcome::Completed)
    }

    /// The 1-based epoch outer step `step` belongs to.
    fn epoch_of(&self, step: usize) -> usize {
        (step - 1) / self.args.steps_per_epoch() + 1
    }

    fn checkpoint_name(&self, step: usize) -> String {
        self.saver
            .checkpoints
            .name(&format!("epoch-{}.step-{step}", self.epoch_of(step)))
    }

    fn outer_step(&mut self, step: usize, bar: &ProgressBar) -> anyhow::Result<()> {
        let started = Instant::now();
        let position_in_epoch = (step - 1) % self.args.steps_per_epoch();
        let task_count = self
            .args
            .outer_batch_size
            .min(self.args.num_train_task - position_in_epoch * self.args.outer_batch_size);
        let episodes: Vec<Episode> = (0..task_count).map(|_| self.sampler.sample()).collect();
        let tasks = to_tasks(&episodes, self.encoded)?;
        let report = self
            .learner
            .outer_step(&tasks, &mut self.rng, &mut |event| {
                if let Event::TaskAdapted {
                    task,
                    tasks,
                    domain,
                    query_loss,
                    ..
                } = event
                {
                    bar.set_message(format!(
                        "task {}/{tasks} ({domain}) query loss {query_loss:.4}",
                        task + 1
                    ));
                }
            })
            .with_context(|| self.intact_checkpoint_note())?;
        tracing::info!(
            "step {step}/{}: query loss {:.4}, query accuracy {:.4}, meta-gradient norm {:.4}",
            self.total_steps,
            report.mean_query_loss,
            report.mean_query_accuracy,
            report.grad_norm
        );
        self.metrics.append(&json!({
            "kind": "outer_step",
            "step": step,
            "epoch": self.epoch_of(step),
            "tasks": task_count,
            "domains": episodes.iter().map(|episode| episode.domain.as_str()).collect::<Vec<_>>(),
            "mean_query_loss": report.mean_query_loss,
            "mean_query_accuracy": report.mean_query_accuracy,
            "grad_norm": report.grad_norm,
            "seconds": started.elapsed().as_secs_f64(),
        }))
    }

    fn intact_checkpoint_note(&self) -> String {
        match self.last_saved {
            0 => "meta-training failed before its first checkpoint".to_string(),
            step => format!(
                "meta-training failed; the last checkpoint, {}, is intact",
                self.saver
                    .checkpoints
                    .path(&self.checkpoint_name(step))
                    .display()
            ),
        }
    }

    /// Adapts copies of the meta-model to the validation and test tasks (with
    /// --inner-update-step-eval epochs); the meta-model is untouched.
    fn evaluate(&self, step: usize) -> anyhow::Result<Evaluation> {
        let mut config = self.learner.config().clone();
        config.inner.epochs = self.args.inner_update_step_eval;
        let evaluator = MetaLearner::new(self.learner.model().clone(), config)?
            .with_task_threads(self.args.task_threads.resolve(self.args.model.backend));
        let score = |episodes: &[Episode], what: &str| -> anyhow::Result<Scores> {
            let tasks = to_tasks(episodes, self.encoded)?;
            let bar = progress::bar(tasks.len() as u64, what);
            let mut rng = checkpoints::rng(self.args.seed, Stream::Evaluation);
            let evaluation = evaluator
                .evaluate_tasks(&tasks, &mut rng, &mut |event| {
                    if let Event::TaskEvaluated { .. } = event {
                        bar.inc(1);
                    }
                })
                .with_context(|| {
                    format!("cannot evaluate the {what} tasks after outer step {step}")
                })
                .with_context(|| self.intact_checkpoint_note())?;
            bar.finish_and_clear();
            Ok(evaluation.into())
        };
        let validation = score(self.validation, "validation")?;
        let test = score(self.test, "test")?;
        tracing::info!(
            "evaluation at step {step}: validation accuracy {:.4}, test accuracy {:.4} (mean over tasks)",
            validation.mean_accuracy,
            test.mean_accuracy
        );
        Ok(Evaluation {
            step,
            epoch: self.epoch_of(step),
            checkpoint: self.checkpoint_name(step),
            validation,
            test,
        })
    }

    /// Saves the meta-model after `step` outer steps with everything --resume needs, then
    /// removes checkpoints that are neither the best nor this one.
    fn save(&mut self, step: usize) -> anyhow::Result<()> {
        let state = TrainingState {
            step,
            sampler: self.sampler.state(),
            rng: RngState::of(&self.rng, self.args.seed),
            evaluations: self.evaluations.clone(),
            best: self.best,
        };
        let mut meta = self.saver.meta(step, step / self.args.steps_per_epoch());
        if let Some(evaluation) = self.evaluations.last().filter(|e| e.step == step) {
            meta.metrics.insert(
                "validation_accuracy".to_string(),
                evaluation.validation.pooled.accuracy,
            );
            meta.metrics
                .insert("test_accuracy".to_string(), evaluation.test.pooled.accuracy);
        }
        let learner = &self.learner;
        self.saver.save(
            &self.checkpoint_name(step),
            learner.model(),
            |path| learner.save_optimizer(path),
            &meta,
            &state,
            self.best
                .map(|index| self.evaluations[index].checkpoint.as_str()),
        )?;
        self.last_saved = step;
        Ok(())
    }

    /// results.json: the best checkpoint (by validation) and every evaluation.
    fn results(&self) -> anyhow::Result<Value> {
        let best = self
            .best
            .map(|index| &self.evaluations[index])
            .context("meta-training ended without an evaluation")?;
        let last = self.evaluations.last().expect("best is one of them");
        let checkpoints = &self.saver.checkpoints;
        Ok(json!({
            "best_checkpoint": checkpoints.absolute_path(&best.checkpoint)?,
            "best": best,
            "latest_checkpoint": checkpoints.absolute_path(&last.checkpoint)?,
            "final": last,
            "evaluations": self.evaluations,
        }))
    }
}

fn to_tasks<'a>(
    episodes: &'a [Episode],
    encoded: &'a [EncodedReview],
) -> anyhow::Result<Vec<Task<'a>>> {
    episodes
        .iter()
        .map(|episode| Task::from_episode(episode, encoded).map_err(anyhow::Error::from))
        .collect()
}
