//! Meta-training (FOMAML, Reptile; optionally ANIL's head-only inner loop) and test-task
//! evaluation.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::adapt::adapt;
use crate::config::{MetaAlgorithm, MetaConfig};
use crate::gradients::{MetaGradient, clip_to_norm, global_norm, weight_difference};
use crate::loss_scaling::{Scaling, gradients};
use crate::parallel::for_each_task;
use crate::tensors::{check_examples, cross_entropy, device_of, labels_tensor, read_floats};
use crate::{
    Classifier, Event, LossScaler, MamlError, Metrics, ScalingReport, evaluate, optimizer_state,
};

/// One few-shot task: a support set to adapt on and a query set to score.
#[derive(Debug)]
pub struct Task<'a, E> {
    /// The domain (or any name) the examples come from.
    pub domain: &'a str,
    /// Examples the copy adapts on.
    pub support: Vec<&'a E>,
    /// Examples scored at the adapted weights.
    pub query: Vec<&'a E>,
}

impl<E> Clone for Task<'_, E> {
    fn clone(&self) -> Self {
        Self {
            domain: self.domain,
            support: self.support.clone(),
            query: self.query.clone(),
        }
    }
}

impl<'a, E> Task<'a, E> {
    /// The task of domain `domain` whose support and query sets are the examples at `support`
    /// and `query` in `examples` (e.g. the indices of an episode into the set it was drawn from).
    pub fn pick(
        domain: &'a str,
        support: &[usize],
        query: &[usize],
        examples: &'a [E],
    ) -> Result<Self, MamlError> {
        let pick = |indices: &[usize]| -> Result<Vec<&'a E>, MamlError> {
            indices
                .iter()
                .map(|&index| {
                    examples
                        .get(index)
                        .ok_or_else(|| MamlError::ExampleOutOfRange {
                            domain: domain.to_string(),
                            index,
                            len: examples.len(),
                        })
                })
                .collect()
        };
        Ok(Self {
            domain,
            support: pick(support)?,
            query: pick(query)?,
        })
    }

    fn check<M: Classifier<Example = E>>(
        &self,
        model: &M,
        options: &M::BatchOptions,
    ) -> Result<(), MamlError> {
        for (set, examples) in [("support", &self.support), ("query", &self.query)] {
            if examples.is_empty() {
                return Err(MamlError::Empty {
                    what: format!("the {set} set of a task of domain `{}`", self.domain),
                    fix: "draw episodes with at least one support and one query example",
                });
            }
            check_examples(examples, model, options)?;
        }
        Ok(())
    }
}

/// What one task contributes to an outer step: computed independently of every other task, so
/// units can be computed anywhere and summed ([`MetaGradient::add`]).
#[derive(Debug)]
pub struct TaskUpdate {
    /// FOMAML: the query-loss gradient at the adapted weights. Reptile: meta − adapted weights.
    /// Keyed by the meta-model's parameter ids.
    pub gradient: GradientsParams,
    /// Loss of each inner batch before its update.
    pub inner_losses: Vec<f64>,
    /// Each inner batch as positions in the task's support set, in the order trained on.
    pub support_batches: Vec<Vec<usize>>,
    /// Query loss at the adapted weights.
    pub query_loss: f64,
    /// Query accuracy at the adapted weights.
    pub query_accuracy: f64,
    /// [`crate::Forward::work`] of the support and query batches that went through the whole
    /// model forward and backward (BERT: token positions, padding included). ANIL's head-only
    /// inner loop and Reptile's query scoring count nothing.
    pub work: usize,
    /// Under loss scaling: inner updates skipped because their gradient overflowed.
    pub skipped_inner_updates: usize,
}

impl TaskUpdate {
    /// Errors if a loss is NaN or infinite, naming the outer step and the task.
    pub fn check_finite(&self, step: usize, task: usize, domain: &str) -> Result<(), MamlError> {
        let non_finite = |phase, value| MamlError::NonFiniteTaskLoss {
            step,
            task,
            domain: domain.to_string(),
            phase,
            value,
        };
        if let Some(&value) = self.inner_losses.iter().find(|loss| !loss.is_finite()) {
            return Err(non_finite("inner", value));
        }
        if !self.query_loss.is_finite() {
            return Err(non_finite("query", self.query_loss));
        }
        Ok(())
    }
}

/// What an outer step did.
#[derive(Debug, Clone, PartialEq)]
pub struct OuterStepReport {
    /// The outer step (1-based).
    pub step: usize,
    /// Mean query loss over the tasks.
    pub mean_query_loss: f64,
    /// Mean query accuracy over the tasks.
    pub mean_query_accuracy: f64,
    /// Global L2 norm of the mean meta-gradient, before clipping (not finite when loss scaling
    /// skipped the step for an overflow).
    pub grad_norm: f64,
    /// Sum of the tasks' [`TaskUpdate::work`].
    pub work: usize,
    /// What loss scaling did, when it is on ([`crate::MetaConfig::loss_scaling`]).
    pub loss_scaling: Option<ScalingReport>,
}

/// Test- or validation-task results.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskEvaluation {
    /// Each task's domain and query-set metrics, in task order.
    pub tasks: Vec<(String, Metrics)>,
    /// All query sets taken together.
    pub pooled: Metrics,
    /// Mean of the tasks' query accuracies (the reference's figure).
    pub mean_accuracy: f64,
}

/// The meta-model with its outer optimizer.
///
/// Differs from PyTorch's reference in how state lives, not in what it computes: the per-task
/// copy is a Burn clone (copy-on-write, no deep copy), and parameters are replaced, not mutated,
/// by each optimizer step, which is why evaluation cannot disturb the meta-weights.
pub struct MetaLearner<M: Classifier> {
    model: M,
    config: MetaConfig<M::BatchOptions>,
    outer_optimizer: ModuleOptimizer,
    completed_steps: usize,
    device: Device,
    task_threads: usize,
    scaling: Option<Scaling>,
}

impl<M: Classifier> MetaLearner<M> {
    /// [`MetaConfig::init`].
    pub(crate) fn new(model: M, config: MetaConfig<M::BatchOptions>) -> Result<Self, MamlError> {
        validate(&config)?;
        let device = device_of(&model).autodiff();
        // `train()` moves plain tensors onto autodiff (a `fork` alone keeps the source's context).
        let model = model.fork(&device).train();
        let model = if config.inner.dropout {
            model
        } else {
            model.without_dropout()
        };
        Ok(Self {
            outer_optimizer: outer_optimizer::<M>(&config),
            scaling: Scaling::start(config.loss_scaling),
            model,
            config,
            completed_steps: 0,
            device,
            task_threads: 1,
        })
    }

    /// Computes up to `threads` tasks of an outer batch (and of an evaluation) at once, each on
    /// its own thread; 1 (the default) computes them one after the other on the calling thread.
    /// Results do not depend on it: every task's batch order and dropout masks come from seeds
    /// drawn before any task starts, and task updates are summed in task order. Worth it on the
    /// CPU backend (a step there leaves cores idle), where each extra task in flight costs its
    /// activations and adapted copy in memory; GPU backends gain nothing.
    pub fn with_task_threads(mut self, threads: usize) -> Self {
        self.task_threads = threads.max(1);
        self
    }

    /// Tasks computed at once ([`Self::with_task_threads`]).
    pub fn task_threads(&self) -> usize {
        self.task_threads
    }

    /// The meta-model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The meta-model, giving up the learner.
    pub fn into_model(self) -> M {
        self.model
    }

    /// The settings.
    pub fn config(&self) -> &MetaConfig<M::BatchOptions> {
        &self.config
    }

    /// Outer steps applied so far (including those before a resume).
    pub fn completed_steps(&self) -> usize {
        self.completed_steps
    }

    /// The loss scale and its growth count, with [`crate::MetaConfig::loss_scaling`] on: save it
    /// with a checkpoint and give it back to [`Self::restore_loss_scaler`] on resume.
    pub fn loss_scaler(&self) -> Option<LossScaler> {
        self.scaling.map(|scaling| scaling.scaler)
    }

    /// Continues loss scaling from a saved [`Self::loss_scaler`] (ignored without loss scaling).
    pub fn restore_loss_scaler(&mut self, scaler: LossScaler) {
        if let Some(scaling) = &mut self.scaling {
            scaling.scaler = scaler;
        }
    }

    /// Adapts a copy of the meta-model to `task` and returns the task's update. The meta-model
    /// is not modified. `rng` orders the support batches; dropout masks come from the device's
    /// generator (GPU backends) or the calling thread's stream (`model::seed_dropout`, Flex).
    pub fn task_update(
        &self,
        task: &Task<M::Example>,
        rng: &mut impl Rng,
    ) -> Result<TaskUpdate, MamlError> {
        task_update(
            &self.model,
            &self.config,
            self.scaling,
            &self.device,
            task,
            rng,
        )
    }

    /// One outer step: adapts to every task (up to [`Self::with_task_threads`] at once), averages
    /// their updates and applies the mean.
    ///
    /// Draws every seed of the step from `rng` first (the device's generator, then each task's
    /// batch order and Flex dropout stream), so a seeded run is reproducible on a deterministic
    /// device whatever the thread count.
    pub fn outer_step(
        &mut self,
        tasks: &[Task<M::Example>],
        rng: &mut impl Rng,
        events: &mut dyn FnMut(Event),
    ) -> Result<OuterStepReport, MamlError> {
        if tasks.is_empty() {
            return Err(MamlError::Empty {
                what: "the outer batch".into(),
                fix: "give each outer step at least one task",
            });
        }
        let started = Instant::now();
        let step = self.completed_steps + 1;
        let model = &self.model;
        let mut meta_gradient = MetaGradient::new();
        // Finished updates wait here until every earlier task has been added: sums in task order
        // are the same floats whatever order the threads finish in.
        let mut finished = BTreeMap::new();
        let (mut loss_sum, mut accuracy_sum, mut work) = (0.0, 0.0, 0);
        let mut skipped_inner = 0;
        let mut failure = None;
        self.for_each_task(
            tasks,
            rng,
            |task, _, rng| task_update(model, &self.config, self.scaling, &self.device, task, rng),
            |index, update, elapsed| {
                let domain = tasks[index].domain;
                let update = match update
                    .and_then(|update| update.check_finite(step, index, domain).map(|()| update))
                {
                    Ok(update) => update,
                    Err(error) => {
                        failure = Some(error);
                        return ControlFlow::Break(());
                    }
                };
                events(Event::TaskAdapted {
                    step,
                    task: index,
                    tasks: tasks.len(),
                    domain: domain.to_string(),
                    inner_losses: update.inner_losses.clone(),
                    support_batches: update.support_batches.clone(),
                    query_loss: update.query_loss,
                    query_accuracy: update.query_accuracy,
                    elapsed,
                });
                finished.insert(index, update);
                while let Some(update) = finished.remove(&meta_gradient.tasks()) {
                    loss_sum += update.query_loss;
                    accuracy_sum += update.query_accuracy;
                    work += update.work;
                    skipped_inner += update.skipped_inner_updates;
                    meta_gradient.add(model, update.gradient);
                }
                ControlFlow::Continue(())
            },
        );
        if let Some(error) = failure {
            return Err(error);
        }
        let grad_norm = self.apply(meta_gradient)?;
        let overflowed = !grad_norm.is_finite();
        let loss_scaling = self.scaling.as_mut().map(|scaling| {
            scaling.update(overflowed || skipped_inner > 0);
            scaling.report(skipped_inner + usize::from(overflowed))
        });
        let report = OuterStepReport {
            step,
            mean_query_loss: loss_sum / tasks.len() as f64,
            mean_query_accuracy: accuracy_sum / tasks.len() as f64,
            grad_norm,
            work,
            loss_scaling,
        };
        events(Event::OuterStep {
            step,
            tasks: tasks.len(),
            mean_query_loss: report.mean_query_loss,
            mean_query_accuracy: report.mean_query_accuracy,
            grad_norm,
            loss_scaling,
            elapsed: started.elapsed(),
        });
        Ok(report)
    }

    /// Applies the mean of summed task updates with the outer optimizer (clipped to
    /// `max_grad_norm` if set) and counts the step. Returns the norm before clipping. A
    /// non-finite norm is an error, except under loss scaling, where it is an overflow: the
    /// step is counted but not applied, and the norm returned says so.
    pub fn apply(&mut self, meta_gradient: MetaGradient) -> Result<f64, MamlError> {
        let step = self.completed_steps + 1;
        let mean = meta_gradient.mean(&self.model);
        let Some(norm) = global_norm(&self.model, &mean) else {
            return Err(MamlError::Empty {
                what: "the meta-gradient".into(),
                fix: "check that the model's parameters require gradients",
            });
        };
        let norm_value = read_floats(norm.clone())[0];
        if !norm_value.is_finite() {
            if self.scaling.is_none() {
                return Err(MamlError::NonFiniteGradient {
                    step,
                    norm: norm_value,
                });
            }
            // Under loss scaling an overflow, and GradScaler's skipped `step`: the outer
            // optimizer neither moves nor counts it.
            self.completed_steps = step;
            return Ok(norm_value);
        }
        let mean = match self.config.max_grad_norm {
            Some(max_norm) => clip_to_norm(&self.model, mean, norm, max_norm),
            None => mean,
        };
        let lr = match self.config.algorithm {
            MetaAlgorithm::Fomaml => self.config.outer_lr,
            MetaAlgorithm::Reptile { step_size } => step_size,
        };
        self.model = self.outer_optimizer.step(lr, self.model.clone(), mean);
        self.completed_steps = step;
        Ok(norm_value)
    }

    /// Adapts a copy of the meta-model to each task and scores its query set (in batches of the
    /// inner batch size). The meta-model is left exactly as it was.
    pub fn evaluate_tasks(
        &self,
        tasks: &[Task<M::Example>],
        rng: &mut impl Rng,
        events: &mut dyn FnMut(Event),
    ) -> Result<TaskEvaluation, MamlError> {
        if tasks.is_empty() {
            return Err(MamlError::Empty {
                what: "the list of evaluation tasks".into(),
                fix: "evaluate at least one task",
            });
        }
        let mut results = vec![None; tasks.len()];
        let mut failure = None;
        self.for_each_task(
            tasks,
            rng,
            |task, index, rng| {
                evaluate_task(
                    &self.model,
                    &self.config,
                    self.scaling,
                    &self.device,
                    task,
                    index,
                    rng,
                )
            },
            |index, evaluated, elapsed| match evaluated {
                Ok((metrics, support_batches)) => {
                    events(Event::TaskEvaluated {
                        task: index,
                        tasks: tasks.len(),
                        domain: tasks[index].domain.to_string(),
                        metrics: metrics.clone(),
                        support_batches,
                        elapsed,
                    });
                    results[index] = Some((tasks[index].domain.to_string(), metrics));
                    ControlFlow::Continue(())
                }
                Err(error) => {
                    failure = Some(error);
                    ControlFlow::Break(())
                }
            },
        );
        if let Some(error) = failure {
            return Err(error);
        }
        let results: Vec<(String, Metrics)> = results
            .into_iter()
            .map(|result| result.expect("every task finished without error"))
            .collect();
        let scored: Vec<Metrics> = results.iter().map(|(_, metrics)| metrics.clone()).collect();
        Ok(TaskEvaluation {
            mean_accuracy: scored.iter().map(|m| m.accuracy).sum::<f64>() / scored.len() as f64,
            pooled: Metrics::pooled(&scored),
            tasks: results,
        })
    }

    /// Runs `work` for every task on up to `task_threads` threads and hands each result, with
    /// its wall time, to `done` on this thread as it finishes. Seeds come from `rng` before any
    /// task starts: one for the device's generator, then one per task that orders its batches
    /// and (on Flex) draws its dropout masks on whichever thread runs it.
    fn for_each_task<T: Send>(
        &self,
        tasks: &[Task<M::Example>],
        rng: &mut impl Rng,
        work: impl Fn(&Task<M::Example>, usize, &mut ChaCha8Rng) -> T + Sync,
        mut done: impl FnMut(usize, T, Duration) -> ControlFlow<()>,
    ) {
        self.device.seed(rng.random());
        let seeds: Vec<u64> = tasks.iter().map(|_| rng.random()).collect();
        for_each_task(
            self.task_threads,
            tasks.len(),
            |index| {
                let started = Instant::now();
                M::seed_dropout(seeds[index]);
                let mut task_rng = ChaCha8Rng::seed_from_u64(seeds[index]);
                let result = work(&tasks[index], index, &mut task_rng);
                (result, started.elapsed())
            },
            |index, (result, elapsed)| done(index, result, elapsed),
        );
    }

    /// Writes the outer optimizer's state (Adam moments and step count) to `path` (Burn's
    /// burnpack format). Write it into a directory that is renamed into place afterwards.
    pub fn save_optimizer(&self, path: &Path) -> Result<(), MamlError> {
        optimizer_state::save(&self.outer_optimizer, path)
    }

    /// Resumes from a checkpoint: the outer optimizer's state saved by
    /// [`MetaLearner::save_optimizer`] and the number of outer steps already applied. The
    /// learner must hold the checkpoint's weights (parameter ids are derived from names, so the
    /// state finds its parameters in a freshly loaded model).
    ///
    /// Burn creates the loaded state on `Device::default()`: a binary built with wgpu should set
    /// `BURN_DEVICE` to the backend in use, or loading starts wgpu even for a flex run.
    pub fn resume(
        &mut self,
        optimizer_state: &Path,
        completed_steps: usize,
    ) -> Result<(), MamlError> {
        self.outer_optimizer = optimizer_state::load(&self.outer_optimizer, optimizer_state)?;
        self.completed_steps = completed_steps;
        Ok(())
    }
}

fn outer_optimizer<M: Classifier>(config: &MetaConfig<M::BatchOptions>) -> ModuleOptimizer {
    match config.algorithm {
        MetaAlgorithm::Fomaml => M::adam(None),
        MetaAlgorithm::Reptile { .. } => SgdConfig::new().init(),
    }
}

fn validate<O>(config: &MetaConfig<O>) -> Result<(), MamlError> {
    let invalid = |setting, value: String, expected| {
        Err(MamlError::InvalidSetting {
            setting,
            value,
            expected,
        })
    };
    if config.inner.batching.batch_size == 0 {
        return invalid("inner.batching.batch_size", "0".into(), "at least 1");
    }
    if let MetaAlgorithm::Reptile { step_size } = config.algorithm
        && !(step_size > 0.0 && step_size <= 1.0)
    {
        return invalid("algorithm.step_size", step_size.to_string(), "in (0, 1]");
    }
    if let Some(max_norm) = config.max_grad_norm
        && !(max_norm > 0.0 && max_norm.is_finite())
    {
        return invalid("max_grad_norm", max_norm.to_string(), "a positive number");
    }
    for (setting, lr) in [("inner.lr", config.inner.lr), ("outer_lr", config.outer_lr)] {
        if !(lr >= 0.0 && lr.is_finite()) {
            return invalid(setting, lr.to_string(), "a non-negative number");
        }
    }
    Ok(())
}

/// The number of rows whose arg-max equals the label, as a one-element float tensor.
fn correct_count(logits: Tensor<2>, labels: Tensor<1, burn::tensor::Int>) -> Tensor<1> {
    let [rows, _] = logits.dims();
    logits
        .argmax(1)
        .reshape([rows])
        .equal(labels)
        .int()
        .sum()
        .float()
}

/// [`MetaLearner::task_update`] for the meta-model `meta`.
fn task_update<M: Classifier>(
    meta: &M,
    config: &MetaConfig<M::BatchOptions>,
    scaling: Option<Scaling>,
    device: &Device,
    task: &Task<M::Example>,
    rng: &mut impl Rng,
) -> Result<TaskUpdate, MamlError> {
    let options = &config.inner.batching.options;
    task.check(meta, options)?;
    let adapted = adapt(meta, &task.support, &config.inner, scaling, device, rng)?;
    let mut work = adapted.work;
    let (gradient, query_loss, correct) = match config.algorithm {
        MetaAlgorithm::Fomaml => {
            let forward = adapted.model.forward(&task.query, options, device);
            work += forward.work;
            let logits = forward.logits;
            let labels = labels_tensor::<M>(&task.query, device);
            let correct = correct_count(logits.clone().inner(), labels.clone().inner());
            let loss = cross_entropy(logits, labels);
            let query_loss = loss.clone().inner();
            let gradient = gradients(loss, &adapted.model, adapted.scaling.as_ref());
            (gradient, query_loss, correct)
        }
        MetaAlgorithm::Reptile { .. } => {
            let scorer = adapted.model.valid();
            let plain = device.clone().inner();
            let logits = scorer.forward(&task.query, options, &plain).logits;
            let labels = labels_tensor::<M>(&task.query, &plain);
            let correct = correct_count(logits.clone(), labels.clone());
            let query_loss = cross_entropy(logits, labels);
            let gradient = weight_difference(meta, &adapted.model);
            (gradient, query_loss, correct)
        }
    };
    // Everything the host needs from this task, in one read-back.
    let support_batches = adapted.support_batches;
    let mut values = adapted.inner_losses;
    values.push(query_loss);
    values.push(correct);
    let mut host = read_floats(Tensor::cat(values, 0));
    let correct = host.pop().expect("pushed above");
    let query_loss = host.pop().expect("pushed above");
    Ok(TaskUpdate {
        gradient,
        inner_losses: host,
        support_batches,
        query_loss,
        query_accuracy: correct / task.query.len() as f64,
        work,
        skipped_inner_updates: adapted.skipped_updates,
    })
}

/// Adapts a copy of `meta` to `task` (the `index`-th) and scores its query set; with the inner
/// batches as positions in the support set.
/// Under loss scaling, a copy of the run's scale serves the task: evaluation leaves training's
/// scale as it was.
fn evaluate_task<M: Classifier>(
    meta: &M,
    config: &MetaConfig<M::BatchOptions>,
    scaling: Option<Scaling>,
    device: &Device,
    task: &Task<M::Example>,
    index: usize,
    rng: &mut impl Rng,
) -> Result<(Metrics, Vec<Vec<usize>>), MamlError> {
    task.check(meta, &config.inner.batching.options)?;
    let adapted = adapt(meta, &task.support, &config.inner, scaling, device, rng)?;
    if !adapted.inner_losses.is_empty() {
        let losses = read_floats(Tensor::cat(adapted.inner_losses, 0));
        if let Some(&value) = losses.iter().find(|loss| !loss.is_finite()) {
            return Err(MamlError::NonFiniteTaskLoss {
                step: 0,
                task: index,
                domain: task.domain.to_string(),
                phase: "inner",
                value,
            });
        }
    }
    // One thread: tasks are what runs in parallel here.
    let metrics = evaluate(
        &adapted.model,
        &task.query,
        &config.inner.batching.options,
        config.inner.batching.batch_size,
        1,
    )?;
    Ok((metrics, adapted.support_batches))
}
