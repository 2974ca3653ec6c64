//! A whole meta-training run: outer steps over sampled tasks, evaluation on validation and test
//! tasks every few steps, checkpoint selection on validation, and exact resume.
//!
//! What the run writes and where is the caller's: it implements [`TrainingHost`] (the binary
//! writes checkpoint directories atomically and a JSON-lines log). Everything a resumed run
//! needs to continue bit for bit — outer step, sampler state, random stream position,
//! evaluations so far — is in the [`TrainingState`] handed to [`TrainingHost::save`] with each
//! checkpoint, beside the weights and the outer optimizer's state.

use std::fmt::{Debug, Display};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{
    Classifier, Event, LossScaler, MamlError, MetaLearner, Metrics, OuterStepReport, Task,
    TaskEvaluation, best_by_validation,
};

/// A task as indices into the example set it was drawn from.
pub trait TaskIndices {
    /// The domain (or any name) of the task.
    fn domain(&self) -> &str;
    /// Positions of the support examples.
    fn support(&self) -> &[usize];
    /// Positions of the query examples.
    fn query(&self) -> &[usize];
}

/// Which examples a drawn task consists of, as a host hears it (e.g. to record what a run
/// consumed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrawnTask<'a> {
    /// The task's domain.
    pub domain: &'a str,
    /// Positions of the support examples.
    pub support: &'a [usize],
    /// Positions of the query examples.
    pub query: &'a [usize],
}

impl<'a> DrawnTask<'a> {
    fn of(task: &'a impl TaskIndices) -> Self {
        Self {
            domain: task.domain(),
            support: task.support(),
            query: task.query(),
        }
    }
}

/// A seeded stream of meta-training tasks whose position can be saved and restored.
pub trait TaskSampler {
    /// One drawn task.
    type Drawn: TaskIndices;
    /// Where the stream stands, saved with every checkpoint.
    type State: Clone + Serialize + DeserializeOwned;
    /// The next task.
    fn sample(&mut self) -> Self::Drawn;
    /// Where the stream stands now.
    fn state(&self) -> Self::State;
    /// Continues from a saved position.
    fn restore(&mut self, state: &Self::State);
}

/// How long a run is and how often it is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingPlan {
    /// Passes; each draws `tasks_per_epoch` fresh tasks.
    pub epochs: usize,
    /// Tasks drawn per epoch.
    pub tasks_per_epoch: usize,
    /// Tasks per outer step (the last step of an epoch takes what is left).
    pub outer_batch_size: usize,
    /// Evaluate and save a checkpoint every this many outer steps, and after the last.
    pub eval_every: usize,
    /// Inner-loop epochs when adapting to validation and test tasks.
    pub eval_inner_epochs: usize,
}

impl TrainingPlan {
    /// Errors unless every count is at least 1.
    pub fn validate(&self) -> Result<(), MamlError> {
        for (setting, value) in [
            ("epochs", self.epochs),
            ("tasks_per_epoch", self.tasks_per_epoch),
            ("outer_batch_size", self.outer_batch_size),
            ("eval_every", self.eval_every),
        ] {
            if value == 0 {
                return Err(MamlError::InvalidSetting {
                    setting,
                    value: "0".into(),
                    expected: "at least 1",
                });
            }
        }
        Ok(())
    }

    /// Outer steps per epoch.
    pub fn steps_per_epoch(&self) -> usize {
        self.tasks_per_epoch.div_ceil(self.outer_batch_size)
    }

    /// Outer steps of the whole run.
    pub fn total_steps(&self) -> usize {
        self.epochs * self.steps_per_epoch()
    }

    /// The 1-based epoch outer step `step` belongs to.
    pub fn epoch_of(&self, step: usize) -> usize {
        (step - 1) / self.steps_per_epoch() + 1
    }

    /// Tasks in outer step `step`.
    fn tasks_in(&self, step: usize) -> usize {
        let position_in_epoch = (step - 1) % self.steps_per_epoch();
        self.outer_batch_size
            .min(self.tasks_per_epoch - position_in_epoch * self.outer_batch_size)
    }
}

/// Independent random streams of one run, all derived from its seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    /// Which training examples are held out as validation tasks.
    Holdout = 1,
    /// Inner-loop batch order and dropout while training.
    Training = 2,
    /// Batch order and dropout while adapting to evaluation tasks (started anew at each
    /// evaluation, so every checkpoint is scored alike).
    Evaluation = 3,
}

impl Stream {
    /// A ChaCha8 generator on this stream of `seed`.
    pub fn rng(self, seed: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(self as u64);
        rng
    }
}

/// Where a [`Stream::rng`] generator stands, saved with checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    seed: u64,
    stream: u64,
    /// Position in 32-bit words; a string because JSON numbers lose precision above 2^53.
    word_pos: String,
}

impl RngState {
    /// The state of `rng`, which was made by [`Stream::rng`] from `seed`.
    pub fn of(rng: &ChaCha8Rng, seed: u64) -> Self {
        Self {
            seed,
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    /// A generator continuing exactly where the saved one stood.
    pub fn restore(&self) -> Result<ChaCha8Rng, MamlError> {
        let word_pos: u128 = self
            .word_pos
            .parse()
            .map_err(|_| MamlError::InvalidSetting {
                setting: "rng.word_pos",
                value: self.word_pos.clone(),
                expected: "a non-negative integer",
            })?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(word_pos);
        Ok(rng)
    }
}

/// One task set's scores at one checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Mean of the tasks' query accuracies (the reference's figure).
    pub mean_accuracy: f64,
    /// All query sets together.
    pub pooled: Metrics,
    /// Each task.
    pub tasks: Vec<TaskScore>,
}

/// One task's scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskScore {
    /// The task's domain.
    pub domain: String,
    /// Its query-set metrics.
    pub metrics: Metrics,
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Outer steps applied.
    pub step: usize,
    /// The epoch that step belongs to.
    pub epoch: usize,
    /// The name of the checkpoint saved at this step.
    pub checkpoint: String,
    /// Validation tasks (they choose the best checkpoint).
    pub validation: Scores,
    /// Test tasks (reported only).
    pub test: Scores,
}

/// What a checkpoint holds besides weights and optimizer state: everything a resumed run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingState<S> {
    /// Outer steps applied.
    pub step: usize,
    /// The task sampler's position.
    pub sampler: S,
    /// The training stream's position.
    pub rng: RngState,
    /// Every evaluation so far.
    pub evaluations: Vec<Evaluation>,
    /// Index into `evaluations` of the best by validation.
    pub best: Option<usize>,
    /// The loss scale, when the run scales losses ([`crate::MetaConfig::loss_scaling`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scaler: Option<LossScaler>,
}

/// A checkpoint to write.
pub struct Checkpoint<'a, M, S> {
    /// Its name, unique within the run (`epoch-E.step-S`).
    pub name: String,
    /// Outer steps applied.
    pub step: usize,
    /// Epochs completed.
    pub epoch: usize,
    /// The meta-model.
    pub model: &'a M,
    /// Writes the outer optimizer's state to the path it is given.
    pub optimizer: &'a dyn Fn(&Path) -> Result<(), MamlError>,
    /// Everything else a resumed run needs.
    pub state: &'a TrainingState<S>,
    /// Validation and test accuracy (pooled) when this step was evaluated.
    pub scores: Option<(f64, f64)>,
    /// The best checkpoint so far by validation, to keep; every other older one may go.
    pub best: Option<&'a str>,
}

/// A checkpoint to resume from.
#[derive(Debug, Clone)]
pub struct Saved<S> {
    /// Where the checkpoint is (the host loads the weights from it).
    pub dir: PathBuf,
    /// Where the outer optimizer's state was written.
    pub optimizer_state: PathBuf,
    /// Everything else the run needs.
    pub state: TrainingState<S>,
}

/// What a meta-training run reports while it goes.
#[derive(Debug)]
pub enum Progress<'a> {
    /// From inside an outer step or an evaluation ([`Event::TaskAdapted`],
    /// [`Event::OuterStep`], [`Event::TaskEvaluated`]).
    Event(Event),
    /// The tasks of outer step `step` were drawn; its events follow, in the order tasks
    /// finish, each naming its task by position in `tasks`.
    TasksDrawn {
        /// The outer step (1-based).
        step: usize,
        /// The tasks, in order.
        tasks: Vec<DrawnTask<'a>>,
    },
    /// An evaluation of the meta-model after outer step `step` started on the `what` set
    /// (`validation`, `test`); its events name their task by position in `tasks`.
    EvaluationStarted {
        /// `validation` or `test`.
        what: &'static str,
        /// The outer step the evaluated meta-model has taken.
        step: usize,
        /// The tasks, in order.
        tasks: Vec<DrawnTask<'a>>,
    },
    /// An outer step was applied.
    Step {
        /// Its report.
        report: &'a OuterStepReport,
        /// Its epoch (1-based).
        epoch: usize,
        /// Its tasks' domains, in order.
        domains: Vec<&'a str>,
        /// Wall time of the step, task sampling included.
        seconds: f64,
    },
    /// The meta-model was evaluated.
    Evaluated(&'a Evaluation),
}

/// What a run asks of the program around it: keeping checkpoints and hearing progress.
pub trait TrainingHost<M, S> {
    /// What can go wrong writing (e.g. an I/O error).
    type Error: Display + Debug;

    /// Writes `checkpoint` so that [`TrainingHost::latest`] finds it after a crash, then
    /// removes the run's older checkpoints other than `checkpoint.best`.
    fn save(&mut self, checkpoint: Checkpoint<'_, M, S>) -> Result<(), Self::Error>;

    /// The newest complete checkpoint, if any.
    fn latest(&mut self) -> Result<Option<Saved<S>>, Self::Error>;

    /// The name of the checkpoint after outer step `step` of epoch `epoch`, unique within the
    /// run; evaluations record it.
    fn checkpoint_name(&self, epoch: usize, step: usize) -> String {
        format!("epoch-{epoch}.step-{step}")
    }

    /// Hears what the run did.
    fn progress(&mut self, _progress: Progress<'_>) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Asked before each outer step: `true` stops the run after saving what it has.
    fn stop_requested(&mut self) -> bool {
        false
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// Every outer step of the plan was applied.
    Completed,
    /// [`TrainingHost::stop_requested`] said stop; the last checkpoint holds every applied step.
    Stopped,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainingError<E: Display + Debug> {
    /// The algorithm failed (non-finite loss, invalid data, ...). `last_saved` is the outer
    /// step the newest checkpoint holds (0: none yet).
    #[error("meta-training failed (the newest checkpoint holds outer step {last_saved})")]
    Algorithm {
        /// What failed.
        #[source]
        error: MamlError,
        /// The outer step of the newest intact checkpoint, 0 if none.
        last_saved: usize,
    },
    /// The host failed to save a checkpoint or to take progress.
    #[error("{0}")]
    Host(E),
}

/// A meta-training run over `examples`: tasks from `sampler`, evaluated on `validation` and
/// `test` tasks (indices into the same examples).
pub struct MetaTraining<'a, M: Classifier, S: TaskSampler> {
    learner: MetaLearner<M>,
    plan: TrainingPlan,
    sampler: S,
    seed: u64,
    rng: ChaCha8Rng,
    examples: &'a [M::Example],
    validation: &'a [S::Drawn],
    test: &'a [S::Drawn],
    evaluations: Vec<Evaluation>,
    best: Option<usize>,
    /// The outer step the newest checkpoint holds.
    last_saved: usize,
}

impl<'a, M: Classifier, S: TaskSampler> MetaTraining<'a, M, S> {
    /// A run from the start; `seed` seeds the training and evaluation streams.
    pub fn new(
        learner: MetaLearner<M>,
        plan: TrainingPlan,
        sampler: S,
        seed: u64,
        examples: &'a [M::Example],
        validation: &'a [S::Drawn],
        test: &'a [S::Drawn],
    ) -> Result<Self, MamlError> {
        plan.validate()?;
        Ok(Self {
            learner,
            plan,
            sampler,
            seed,
            rng: Stream::Training.rng(seed),
            examples,
            validation,
            test,
            evaluations: Vec::new(),
            best: None,
            last_saved: 0,
        })
    }

    /// Continues from `saved`, whose weights the learner must already hold: the outer
    /// optimizer, the sampler, the random stream and the evaluations so far are restored, so
    /// the rest of the run is what it would have been without the interruption.
    pub fn resume(&mut self, saved: &Saved<S::State>) -> Result<(), MamlError> {
        let state = &saved.state;
        self.learner.resume(&saved.optimizer_state, state.step)?;
        if let Some(scaler) = state.loss_scaler {
            self.learner.restore_loss_scaler(scaler);
        }
        self.sampler.restore(&state.sampler);
        self.rng = state.rng.restore()?;
        self.evaluations = state.evaluations.clone();
        self.best = state.best;
        self.last_saved = state.step;
        Ok(())
    }

    /// The learner (the meta-model and its settings).
    pub fn learner(&self) -> &MetaLearner<M> {
        &self.learner
    }

    /// The plan.
    pub fn plan(&self) -> &TrainingPlan {
        &self.plan
    }

    /// Every evaluation so far, in step order.
    pub fn evaluations(&self) -> &[Evaluation] {
        &self.evaluations
    }

    /// The best evaluation by validation so far.
    pub fn best(&self) -> Option<&Evaluation> {
        self.best.map(|index| &self.evaluations[index])
    }

    /// The outer step the newest checkpoint holds (0: none yet).
    pub fn last_saved(&self) -> usize {
        self.last_saved
    }

    /// Outer steps until the end of the plan, evaluating and saving every
    /// [`TrainingPlan::eval_every`] steps and after the last. Stops early, after saving, when
    /// the host asks.
    pub fn run<H: TrainingHost<M, S::State>>(
        &mut self,
        host: &mut H,
    ) -> Result<RunEnd, TrainingError<H::Error>> {
        let total = self.plan.total_steps();
        while self.learner.completed_steps() < total {
            let step = self.learner.completed_steps() + 1;
            if host.stop_requested() {
                let done = step - 1;
                if done > self.last_saved {
                    self.save(host, done)?;
                }
                return Ok(RunEnd::Stopped);
            }
            self.outer_step(host, step)?;
            if step.is_multiple_of(self.plan.eval_every) || step == total {
                let evaluation = self.evaluate(host, step)?;
                host.progress(Progress::Evaluated(&evaluation))
                    .map_err(TrainingError::Host)?;
                self.evaluations.push(evaluation);
                self.best = best_by_validation(
                    self.evaluations
                        .iter()
                        .enumerate()
                        .map(|(index, evaluation)| (index, &evaluation.validation.pooled)),
                );
                self.save(host, step)?;
            }
        }
        Ok(RunEnd::Completed)
    }

    fn algorithm_error<E: Display + Debug>(&self, error: MamlError) -> TrainingError<E> {
        TrainingError::Algorithm {
            error,
            last_saved: self.last_saved,
        }
    }

    fn outer_step<H: TrainingHost<M, S::State>>(
        &mut self,
        host: &mut H,
        step: usize,
    ) -> Result<(), TrainingError<H::Error>> {
        let started = Instant::now();
        let drawn: Vec<S::Drawn> = (0..self.plan.tasks_in(step))
            .map(|_| self.sampler.sample())
            .collect();
        let tasks = tasks_of(&drawn, self.examples).map_err(|e| self.algorithm_error(e))?;
        host.progress(Progress::TasksDrawn {
            step,
            tasks: drawn.iter().map(DrawnTask::of).collect(),
        })
        .map_err(TrainingError::Host)?;
        let mut host_failure = None;
        let report = self
            .learner
            .outer_step(&tasks, &mut self.rng, &mut |event| {
                if host_failure.is_none()
                    && let Err(error) = host.progress(Progress::Event(event))
                {
                    host_failure = Some(error);
                }
            });
        if let Some(error) = host_failure {
            return Err(TrainingError::Host(error));
        }
        let report = report.map_err(|e| self.algorithm_error(e))?;
        host.progress(Progress::Step {
            report: &report,
            epoch: self.plan.epoch_of(step),
            domains: drawn.iter().map(TaskIndices::domain).collect(),
            seconds: started.elapsed().as_secs_f64(),
        })
        .map_err(TrainingError::Host)
    }

    /// Adapts copies of the meta-model to the validation and test tasks (with
    /// [`TrainingPlan::eval_inner_epochs`]); the meta-model is untouched.
    fn evaluate<H: TrainingHost<M, S::State>>(
        &self,
        host: &mut H,
        step: usize,
    ) -> Result<Evaluation, TrainingError<H::Error>> {
        let mut config = self.learner.config().clone();
        config.inner.epochs = self.plan.eval_inner_epochs;
        let evaluator = config
            .init(self.learner.model().clone())
            .map_err(|e| self.algorithm_error(e))?
            .with_task_threads(self.learner.task_threads());
        let mut score = |drawn: &[S::Drawn], what| -> Result<Scores, TrainingError<H::Error>> {
            let tasks = tasks_of(drawn, self.examples).map_err(|e| self.algorithm_error(e))?;
            host.progress(Progress::EvaluationStarted {
                what,
                step,
                tasks: drawn.iter().map(DrawnTask::of).collect(),
            })
            .map_err(TrainingError::Host)?;
            let mut host_failure = None;
            let mut rng = Stream::Evaluation.rng(self.seed);
            let evaluation = evaluator.evaluate_tasks(&tasks, &mut rng, &mut |event| {
                if host_failure.is_none()
                    && let Err(error) = host.progress(Progress::Event(event))
                {
                    host_failure = Some(error);
                }
            });
            if let Some(error) = host_failure {
                return Err(TrainingError::Host(error));
            }
            let evaluation = evaluation.map_err(|error| {
                self.algorithm_error(MamlError::Evaluation {
                    what,
                    step,
                    source: Box::new(error),
                })
            })?;
            Ok(evaluation.into())
        };
        let validation = score(self.validation, "validation")?;
        let test = score(self.test, "test")?;
        Ok(Evaluation {
            step,
            epoch: self.plan.epoch_of(step),
            checkpoint: host.checkpoint_name(self.plan.epoch_of(step), step),
            validation,
            test,
        })
    }

    /// Hands the host a checkpoint of the meta-model after `step` outer steps with everything
    /// a resumed run needs.
    fn save<H: TrainingHost<M, S::State>>(
        &mut self,
        host: &mut H,
        step: usize,
    ) -> Result<(), TrainingError<H::Error>> {
        let state = TrainingState {
            step,
            sampler: self.sampler.state(),
            rng: RngState::of(&self.rng, self.seed),
            evaluations: self.evaluations.clone(),
            best: self.best,
            loss_scaler: self.learner.loss_scaler(),
        };
        let learner = &self.learner;
        let scores = self
            .evaluations
            .last()
            .filter(|evaluation| evaluation.step == step)
            .map(|evaluation| {
                (
                    evaluation.validation.pooled.accuracy,
                    evaluation.test.pooled.accuracy,
                )
            });
        host.save(Checkpoint {
            name: host.checkpoint_name(self.plan.epoch_of(step), step),
            step,
            epoch: step / self.plan.steps_per_epoch(),
            model: learner.model(),
            optimizer: &|path| learner.save_optimizer(path),
            state: &state,
            scores,
            best: self
                .best
                .map(|index| self.evaluations[index].checkpoint.as_str()),
        })
        .map_err(TrainingError::Host)?;
        self.last_saved = step;
        Ok(())
    }
}

fn tasks_of<'a, D: TaskIndices, E>(
    drawn: &'a [D],
    examples: &'a [E],
) -> Result<Vec<Task<'a, E>>, MamlError> {
    drawn
        .iter()
        .map(|task| Task::pick(task.domain(), task.support(), task.query(), examples))
        .collect()
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    #[test]
    fn a_restored_generator_continues_the_stream() {
        let mut original = Stream::Training.rng(7);
        let _: [u64; 3] = original.random();
        let mut restored = RngState::of(&original, 7).restore().unwrap();
        assert_eq!(original.random::<u64>(), restored.random::<u64>());
        assert_ne!(
            Stream::Training.rng(7).random::<u64>(),
            Stream::Evaluation.rng(7).random::<u64>()
        );
    }

    #[test]
    fn a_plan_counts_steps_epochs_and_the_short_last_step() {
        let plan = TrainingPlan {
            epochs: 2,
            tasks_per_epoch: 7,
            outer_batch_size: 3,
            eval_every: 2,
            eval_inner_epochs: 1,
        };
        assert_eq!((plan.steps_per_epoch(), plan.total_steps()), (3, 6));
        assert_eq!(
            (1..=6).map(|s| plan.epoch_of(s)).collect::<Vec<_>>(),
            [1, 1, 1, 2, 2, 2]
        );
        assert_eq!(
            (1..=4).map(|s| plan.tasks_in(s)).collect::<Vec<_>>(),
            [3, 3, 1, 3]
        );
        let empty = TrainingPlan { epochs: 0, ..plan };
        assert!(matches!(
            empty.validate(),
            Err(MamlError::InvalidSetting {
                setting: "epochs",
                ..
            })
        ));
    }
}
