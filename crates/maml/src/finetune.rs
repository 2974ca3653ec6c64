//! Plain fine-tuning with AdamW, scored on validation and test sets after every epoch.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::adapt::task_copy;
use crate::config::FinetuneConfig;
use crate::event::Split;
use crate::gradients::{add, clip_to_norm, global_norm};
use crate::loss_scaling::{Scaling, gradients, overflowed};
use crate::parallel::for_each_task;
use crate::tensors::{
    check_examples, cross_entropy, device_of, labels_tensor, lengths, read_floats,
};
use crate::{
    Classifier, Event, LossScaler, MamlError, Metrics, evaluate, optimizer_state, plan_batches,
};

/// The examples of a fine-tuning run.
#[derive(Debug)]
pub struct FinetuneData<'a, E> {
    /// Trained on.
    pub train: &'a [&'a E],
    /// Scored each epoch; picks the best epoch.
    pub validation: &'a [&'a E],
    /// Scored each epoch, reported only. May be empty.
    pub test: &'a [&'a E],
}

impl<E> Clone for FinetuneData<'_, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for FinetuneData<'_, E> {}

/// The scores after one epoch (epoch 0: zero-shot, before any training).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epochs trained.
    pub epoch: usize,
    /// Mean training loss of this epoch (`None` for epoch 0).
    pub train_loss: Option<f64>,
    /// Validation metrics.
    pub validation: Metrics,
    /// Test metrics (`None` when there is no test set).
    pub test: Option<Metrics>,
}

/// A model being fine-tuned, with its AdamW state.
pub struct FineTuner<M: Classifier> {
    model: M,
    config: FinetuneConfig<M::BatchOptions>,
    optimizer: ModuleOptimizer,
    completed_epochs: usize,
    device: Device,
    threads: usize,
    scaling: Option<Scaling>,
}

impl<M: Classifier> FineTuner<M> {
    /// [`FinetuneConfig::init`].
    pub(crate) fn new(
        model: M,
        config: FinetuneConfig<M::BatchOptions>,
    ) -> Result<Self, MamlError> {
        if config.batching.batch_size == 0 || config.eval_batch_size == 0 {
            return Err(MamlError::InvalidSetting {
                setting: "batch_size",
                value: "0".into(),
                expected: "at least 1",
            });
        }
        if let Some(max_norm) = config.max_grad_norm
            && !(max_norm > 0.0 && max_norm.is_finite())
        {
            return Err(MamlError::InvalidSetting {
                setting: "max_grad_norm",
                value: max_norm.to_string(),
                expected: "a positive number",
            });
        }
        if !(config.lr >= 0.0 && config.lr.is_finite()) {
            return Err(MamlError::InvalidSetting {
                setting: "lr",
                value: config.lr.to_string(),
                expected: "a non-negative number",
            });
        }
        let device = device_of(&model).autodiff();
        // `train()` moves plain tensors onto autodiff (a `fork` alone keeps the source's context).
        let model = model.fork(&device).train();
        let model = if config.dropout {
            model
        } else {
            model.without_dropout()
        };
        let optimizer = M::adam(Some(config.weight_decay as f32));
        Ok(Self {
            scaling: Scaling::start(config.loss_scaling),
            model,
            config,
            optimizer,
            completed_epochs: 0,
            device,
            threads: 1,
        })
    }

    /// Computes up to `threads` micro-batches of a training batch (see
    /// [`FinetuneConfig::micro_batches`]) and up to `threads` scoring batches at once, each on
    /// its own thread; 1 (the default) computes them in turn on the calling thread. Results do
    /// not depend on it: micro-batch gradients are summed in slice order. Worth it on the CPU
    /// backend, where a step leaves cores idle.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The model as trained so far.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The model, giving up the tuner.
    pub fn into_model(self) -> M {
        self.model
    }

    /// Epochs trained so far (including those before a resume).
    pub fn completed_epochs(&self) -> usize {
        self.completed_epochs
    }

    /// One pass over `train` in batches planned from `rng`; returns the mean training loss.
    /// Each batch's loss is read back once (for the event and the finiteness check).
    pub fn train_epoch(
        &mut self,
        train: &[&M::Example],
        rng: &mut impl Rng,
        events: &mut dyn FnMut(Event),
    ) -> Result<f64, MamlError> {
        if train.is_empty() {
            return Err(MamlError::Empty {
                what: "the fine-tuning training set".into(),
                fix: "train on at least one example",
            });
        }
        check_examples(train, &self.model, &self.config.batching.options)?;
        let started = Instant::now();
        let epoch = self.completed_epochs + 1;
        self.device.seed(rng.random());
        let batching = &self.config.batching;
        let plan = plan_batches(
            &lengths::<M>(train),
            batching.batch_size,
            batching.order,
            rng,
        );
        let mut loss_sum = 0.0;
        let mut skipped_updates = 0;
        for (index, positions) in plan.iter().enumerate() {
            let items: Vec<&M::Example> = positions.iter().map(|&p| train[p]).collect();
            let (grads, loss_value) = self.batch_gradient(&items, rng.random());
            let loss = read_floats(loss_value)[0];
            if !loss.is_finite() {
                return Err(MamlError::NonFiniteFinetuneLoss {
                    epoch,
                    batch: index + 1,
                    value: loss,
                });
            }
            // One norm serves the overflow check and the clipping.
            let norm = match (&self.scaling, self.config.max_grad_norm) {
                (None, None) => None,
                _ => global_norm(&self.model, &grads),
            };
            let skip = self.scaling.is_some() && norm.clone().is_some_and(overflowed);
            if let Some(scaling) = &mut self.scaling {
                scaling.update(skip);
            }
            if skip {
                // GradScaler's skipped `step`: AdamW neither moves nor counts it.
                skipped_updates += 1;
            } else {
                let grads = match (self.config.max_grad_norm, norm) {
                    (Some(max_norm), Some(norm)) => {
                        clip_to_norm(&self.model, grads, norm, max_norm)
                    }
                    _ => grads,
                };
                self.model = self
                    .optimizer
                    .step(self.config.lr, self.model.clone(), grads);
            }
            loss_sum += loss * items.len() as f64;
            events(Event::FinetuneBatch {
                epoch,
                batch: index + 1,
                batches: plan.len(),
                loss,
                rows: positions.clone(),
            });
        }
        let train_loss = loss_sum / train.len() as f64;
        self.completed_epochs = epoch;
        events(Event::EpochFinished {
            epoch,
            train_loss,
            loss_scaling: self.scaling.map(|scaling| scaling.report(skipped_updates)),
            elapsed: started.elapsed(),
        });
        Ok(train_loss)
    }

    /// The mean-loss gradient of the batch `items` and its loss (not read back): the sum over
    /// [`FinetuneConfig::micro_batches`] slices of its rows, each padded on its own and with
    /// dropout masks from its own seed, drawn from `seed`.
    fn batch_gradient(&self, items: &[&M::Example], seed: u64) -> (GradientsParams, Tensor<1>) {
        let rows = items.len();
        let slices = self.config.micro_batches.clamp(1, rows);
        let mut seeds = ChaCha8Rng::seed_from_u64(seed);
        let seeds: Vec<u64> = (0..slices).map(|_| seeds.random()).collect();
        let batching = &self.config.batching;
        let mut gradient = GradientsParams::new();
        let mut loss = None;
        // Slices wait here until every earlier slice has been added: sums in slice order are the
        // same floats whatever order the threads finish in.
        let mut finished = BTreeMap::new();
        let mut added = 0;
        for_each_task(
            self.threads.min(slices),
            slices,
            |slice| {
                // Rows split as evenly as possible.
                let slice_items = &items[slice * rows / slices..(slice + 1) * rows / slices];
                M::seed_dropout(seeds[slice]);
                // Its own graph leaves, so that slices on other threads do not share a graph.
                let model = task_copy(&self.model);
                let logits = model
                    .forward(slice_items, &batching.options, &self.device)
                    .logits;
                // Weighted by the slice's share of rows: the sum is the batch's mean loss.
                let share = slice_items.len() as f64 / rows as f64;
                let labels = labels_tensor::<M>(slice_items, &self.device);
                let slice_loss = cross_entropy(logits, labels) * share;
                let value = slice_loss.clone().inner();
                let slice_gradient = gradients(slice_loss, &model, self.scaling.as_ref());
                (slice_gradient, value)
            },
            |slice, result| {
                finished.insert(slice, result);
                while let Some((slice_gradient, value)) = finished.remove(&added) {
                    gradient = add(&self.model, std::mem::take(&mut gradient), slice_gradient);
                    loss = Some(match loss.take() {
                        Some(total) => total + value,
                        None => value,
                    });
                    added += 1;
                }
                ControlFlow::Continue(())
            },
        );
        (gradient, loss.expect("a batch has at least one row"))
    }

    /// Scores the validation set and (if not empty) the test set at the current weights.
    pub fn score(
        &self,
        data: &FinetuneData<M::Example>,
        train_loss: Option<f64>,
        events: &mut dyn FnMut(Event),
    ) -> Result<EpochRecord, MamlError> {
        let mut score = |split, examples: &[&M::Example]| -> Result<Metrics, MamlError> {
            let started = Instant::now();
            let metrics = evaluate(
                &self.model,
                examples,
                &self.config.batching.options,
                self.config.eval_batch_size,
                self.threads,
            )?;
            events(Event::Scored {
                epoch: self.completed_epochs,
                split,
                metrics: metrics.clone(),
                elapsed: started.elapsed(),
            });
            Ok(metrics)
        };
        let validation = score(Split::Validation, data.validation)?;
        let test = match data.test.is_empty() {
            true => None,
            false => Some(score(Split::Test, data.test)?),
        };
        Ok(EpochRecord {
            epoch: self.completed_epochs,
            train_loss,
            validation,
            test,
        })
    }

    /// Trains one epoch, then scores: one entry of the history.
    pub fn epoch(
        &mut self,
        data: &FinetuneData<M::Example>,
        rng: &mut impl Rng,
        events: &mut dyn FnMut(Event),
    ) -> Result<EpochRecord, MamlError> {
        let train_loss = self.train_epoch(data.train, rng, events)?;
        self.score(data, Some(train_loss), events)
    }

    /// Writes AdamW's state (moments and step count) to `path` (Burn's burnpack format).
    pub fn save_optimizer(&self, path: &Path) -> Result<(), MamlError> {
        optimizer_state::save(&self.optimizer, path)
    }

    /// Resumes from a checkpoint: AdamW's state saved by [`FineTuner::save_optimizer`] and the
    /// number of epochs already trained. The tuner must hold the checkpoint's weights.
    ///
    /// Burn creates the loaded state on `Device::default()`: a binary built with wgpu should set
    /// `BURN_DEVICE` to the backend in use, or loading starts wgpu even for a flex run.
    pub fn resume(
        &mut self,
        optimizer_state: &Path,
        completed_epochs: usize,
    ) -> Result<(), MamlError> {
        self.optimizer = optimizer_state::load(&self.optimizer, optimizer_state)?;
        self.completed_epochs = completed_epochs;
        Ok(())
    }

    /// The loss scale and its growth count, with [`FinetuneConfig::loss_scaling`] on: save it
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
}

/// Fine-tunes for `config.epochs` epochs: scores zero-shot first (epoch 0), then trains and
/// scores each epoch. Returns the final model and one record per epoch (pick the best with
/// [`crate::best_by_validation`]).
pub fn finetune<M: Classifier>(
    model: M,
    data: &FinetuneData<M::Example>,
    config: FinetuneConfig<M::BatchOptions>,
    rng: &mut impl Rng,
    events: &mut dyn FnMut(Event),
) -> Result<(M, Vec<EpochRecord>), MamlError> {
    let epochs = config.epochs;
    let mut tuner = FineTuner::new(model, config)?;
    let mut history = vec![tuner.score(data, None, events)?];
    while tuner.completed_epochs() < epochs {
        history.push(tuner.epoch(data, rng, events)?);
    }
    Ok((tuner.into_model(), history))
}
