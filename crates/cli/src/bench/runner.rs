//! The steps `meta-bert bench` times: an outer step, a fine-tuning batch or a prediction batch,
//! each through the code the other commands run.

use anyhow::Context;
use burn::module::Module;
use burn::tensor::Device;
use dataset::ReviewSet;
use maml::{FineTuner, FinetuneConfig, InnerLoopConfig, MetaConfig, MetaLearner};
use model::BertClassifier;
use rand_chacha::ChaCha8Rng;
use tasks::{DomainSampling, EncodedReview, EpisodeConfig, EpisodeSampler, TextEncoder};

use super::{Args, Mode};
use crate::common;

/// Work done by timed steps, counted as the reference counts it.
#[derive(Debug, Default)]
pub(super) struct Work {
    /// Examples through a forward (and, when training, backward) pass.
    pub(super) examples: usize,
    /// Their batches' rows × padded lengths.
    pub(super) padded_tokens: usize,
}

/// The model under test, with what a step needs besides it.
pub(super) enum Runner {
    /// Boxed: the sampler carries its random generator's state, a few hundred bytes.
    Meta {
        learner: MetaLearner<BertClassifier>,
        sampler: Box<EpisodeSampler>,
    },
    Finetune(FineTuner<BertClassifier>),
    Predict(BertClassifier),
}

/// What every step reads.
pub(super) struct Inputs<'a> {
    pub(super) args: &'a Args,
    pub(super) set: &'a ReviewSet,
    pub(super) training: &'a [usize],
    pub(super) encoded: &'a [EncodedReview],
    pub(super) encoder: &'a TextEncoder,
    pub(super) device: &'a Device,
}

impl Runner {
    /// The runner of `args.mode`; meta-training draws its tasks from `sampler`.
    pub(super) fn new(
        args: &Args,
        model: BertClassifier,
        sampler: Option<EpisodeSampler>,
    ) -> anyhow::Result<Self> {
        Ok(match args.mode {
            Mode::Meta => {
                let config = MetaConfig::default()
                    .with_outer_lr(args.lr)
                    .with_inner(
                        InnerLoopConfig::default()
                            .with_lr(args.lr)
                            .with_epochs(args.inner_update_step)
                            .with_batching(args.batching.batching(
                                args.inner_batch_size,
                                args.model.max_seq_len,
                                args.model.backend,
                            )?),
                    )
                    .with_loss_scaling(args.model.loss_scaling());
                Self::Meta {
                    learner: config
                        .init(model)?
                        .with_task_threads(args.task_threads.resolve(args.model.backend)),
                    sampler: Box::new(sampler.expect("run() draws tasks for --mode meta")),
                }
            }
            Mode::Finetune => {
                let config = FinetuneConfig::default()
                    .with_lr(args.lr)
                    .with_batching(args.batching.batching(
                        args.batch_size,
                        args.model.max_seq_len,
                        args.model.backend,
                    )?)
                    .with_eval_batch_size(args.batch_size)
                    .with_epochs(1)
                    .with_micro_batches(args.micro_batches.resolve(args.model.backend))
                    .with_loss_scaling(args.model.loss_scaling());
                Self::Finetune(
                    config
                        .init(model)?
                        .with_threads(common::step_threads(args.model.backend)),
                )
            }
            Mode::Predict => Self::Predict(model.valid()),
        })
    }

    /// One step, adding what it computed to `work`.
    pub(super) fn step(
        &mut self,
        inputs: &Inputs,
        rng: &mut ChaCha8Rng,
        work: &mut Work,
    ) -> anyhow::Result<()> {
        let args = inputs.args;
        match self {
            Self::Meta { learner, sampler } => {
                let episodes: Vec<_> = (0..args.tasks).map(|_| sampler.sample()).collect();
                let tasks = episodes
                    .iter()
                    .map(|episode| maml::bert::task_of(episode, inputs.encoded))
                    .collect::<Result<Vec<_>, _>>()?;
                let report = learner.outer_step(&tasks, rng, &mut |_| {})?;
                work.examples += tasks
                    .iter()
                    .map(|task| task.support.len() * args.inner_update_step + task.query.len())
                    .sum::<usize>();
                work.padded_tokens += report.work;
            }
            Self::Finetune(tuner) => {
                let batch = sample_batch(inputs, rng);
                tuner.train_epoch(&batch, rng, &mut |_| {})?;
                work.examples += batch.len();
                work.padded_tokens += inputs.encoder.collate(&batch).padded_tokens();
            }
            Self::Predict(model) => {
                let batch = sample_batch(inputs, rng);
                let texts: Vec<String> = batch
                    .iter()
                    .map(|review| inputs.set.reviews[review.source_index].text.clone())
                    .collect();
                crate::predict::classify(
                    model,
                    inputs.encoder,
                    &texts,
                    texts.len(),
                    inputs.device,
                )?;
                work.examples += batch.len();
                work.padded_tokens += inputs.encoder.collate(&batch).padded_tokens();
            }
        }
        Ok(())
    }
}

/// Tasks as the reference draws them: the domain of a random training review, then
/// `--num-support + --num-query` distinct reviews of that domain.
pub(super) fn episode_sampler(
    args: &Args,
    set: &ReviewSet,
    training: &[usize],
) -> anyhow::Result<EpisodeSampler> {
    let episodes = EpisodeConfig {
        num_support: args.num_support,
        num_query: args.num_query,
        sampling: DomainSampling::ByReview,
    };
    EpisodeSampler::new(set, training, episodes, args.seed).with_context(|| {
        format!(
            "cannot draw tasks of --num-support {} + --num-query {} reviews from one training \
             domain: lower them",
            args.num_support, args.num_query
        )
    })
}

/// `--batch-size` distinct training reviews, drawn uniformly (the reference's `random.sample`).
fn sample_batch<'a>(inputs: &Inputs<'a>, rng: &mut ChaCha8Rng) -> Vec<&'a EncodedReview> {
    rand::seq::index::sample(rng, inputs.training.len(), inputs.args.batch_size)
        .into_iter()
        .map(|position| &inputs.encoded[inputs.training[position]])
        .collect()
}
