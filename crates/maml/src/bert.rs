//! Meta-BERT's model: [`model::BertClassifier`] over tokenised reviews ([`tasks::EncodedReview`]),
//! batched as a [`tasks::Collation`] says. Feature `bert`.

use burn::optim::ModuleOptimizer;
use burn::tensor::{Device, Tensor};
use model::{BertClassifier, BertInput, FusedAdam};
use tasks::{
    Batch, Collation, EncodedReview, Episode, EpisodeSampler, Padding, SamplerState, collate,
};

use crate::adapt::TORCH_ADAM_EPSILON;
use crate::{Classifier, Forward, MamlError, Task, TaskIndices, TaskSampler};

impl Classifier for BertClassifier {
    type Example = EncodedReview;
    type BatchOptions = Collation;

    fn label(example: &EncodedReview) -> usize {
        example.label
    }

    fn length(example: &EncodedReview) -> usize {
        example.len()
    }

    fn num_labels(&self) -> usize {
        BertClassifier::num_labels(self)
    }

    fn check(&self, example: &EncodedReview, options: &Collation) -> Result<(), MamlError> {
        let num_labels = BertClassifier::num_labels(self);
        if example.label >= num_labels {
            return Err(MamlError::LabelOutOfRange {
                source_index: example.source_index,
                label: example.label,
                num_labels,
            });
        }
        let max_seq_len = options.max_seq_len.min(self.max_sequence_length());
        if example.len() > max_seq_len {
            return Err(MamlError::TooLong {
                source_index: example.source_index,
                len: example.len(),
                max_seq_len,
            });
        }
        Ok(())
    }

    fn scoring_options(&self, training: &Collation) -> Collation {
        Collation {
            // Buckets keep scoring to a few shapes as they do training; `max` is for
            // like-for-like training steps and would only slow scoring down.
            padding: match training.padding {
                buckets @ Padding::Buckets(_) => buckets,
                Padding::Longest | Padding::Max => Padding::Longest,
            },
            max_seq_len: self.max_sequence_length(),
        }
    }

    fn fixed_rows(options: &Collation) -> bool {
        matches!(options.padding, Padding::Buckets(_))
    }

    fn forward(
        &self,
        examples: &[&EncodedReview],
        options: &Collation,
        device: &Device,
    ) -> Forward {
        let batch = batch_of(self, examples, options);
        Forward {
            logits: BertClassifier::forward(self, &input(&batch, device)),
            work: batch.padded_tokens(),
        }
    }

    fn without_dropout(self) -> Self {
        BertClassifier::without_dropout(self)
    }

    fn seed_dropout(seed: u64) {
        model::seed_dropout(seed);
    }

    fn adam(weight_decay: Option<f32>) -> ModuleOptimizer {
        match weight_decay {
            None => FusedAdam::adam(TORCH_ADAM_EPSILON),
            Some(weight_decay) => FusedAdam::adam_w(TORCH_ADAM_EPSILON, weight_decay),
        }
        .into()
    }

    fn head_features(
        &self,
        examples: &[&EncodedReview],
        options: &Collation,
        device: &Device,
    ) -> Option<Tensor<2>> {
        let batch = batch_of(self, examples, options);
        Some(self.pooled(&input(&batch, device)))
    }

    fn head_logits(&self, features: Tensor<2>) -> Option<Tensor<2>> {
        Some(self.classify(features))
    }
}

/// `examples` padded into one batch with `model`'s padding token.
fn batch_of(model: &BertClassifier, examples: &[&EncodedReview], options: &Collation) -> Batch {
    let pad_id = model.config().pad_token_id.unwrap_or(0);
    collate(
        examples,
        options.padding,
        options.max_seq_len,
        u32::try_from(pad_id).expect("token ids fit in u32"),
    )
}

/// The tensors of a collated batch, on `device` (the model's device).
fn input(batch: &Batch, device: &Device) -> BertInput {
    BertInput::new(
        batch.input_ids.clone(),
        batch.attention_mask.clone(),
        batch.token_type_ids.clone(),
        [batch.batch_size, batch.seq_len],
        device,
    )
}

/// The task of `episode`, whose indices point into `encoded` (the encoded review set the episode
/// was drawn from).
pub fn task_of<'a>(
    episode: &'a Episode,
    encoded: &'a [EncodedReview],
) -> Result<Task<'a, EncodedReview>, MamlError> {
    Task::pick(&episode.domain, &episode.support, &episode.query, encoded)
}

impl TaskIndices for Episode {
    fn domain(&self) -> &str {
        &self.domain
    }

    fn support(&self) -> &[usize] {
        &self.support
    }

    fn query(&self) -> &[usize] {
        &self.query
    }
}

impl TaskSampler for EpisodeSampler {
    type Drawn = Episode;
    type State = SamplerState;

    fn sample(&mut self) -> Episode {
        EpisodeSampler::sample(self)
    }

    fn state(&self) -> SamplerState {
        EpisodeSampler::state(self)
    }

    fn restore(&mut self, state: &SamplerState) {
        EpisodeSampler::restore(self, state);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use burn::tensor::Device;
    use model::BertConfig;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::{BatchOrder, plan_batches};

    /// The `(rows, seq_len)` of every batch of a meta-training run at the reference's sizes
    /// (80 support reviews in length-bucketed inner batches of 16, 20 query reviews in one
    /// batch, the query sets scored in batches of 16), over reviews of 3 to 256 tokens.
    fn shapes_of_a_run(padding: Padding) -> BTreeSet<(usize, usize)> {
        let config = BertConfig::from_json(
            r#"{"vocab_size": 8, "hidden_size": 4, "num_hidden_layers": 1,
                "num_attention_heads": 1, "intermediate_size": 4,
                "max_position_embeddings": 512}"#,
        )
        .unwrap();
        let model = config.init(2, 0, &Device::flex());
        let training = Collation {
            padding,
            max_seq_len: 256,
        };
        let scoring = Classifier::scoring_options(&model, &training);
        let mut rng = ChaCha8Rng::seed_from_u64(19);
        let mut shapes = BTreeSet::new();
        let mut add = |items: &[&EncodedReview], options: &Collation| {
            let batch = batch_of(&model, items, options);
            shapes.insert((batch.batch_size, batch.seq_len));
        };
        for _ in 0..100 {
            let reviews: Vec<EncodedReview> = (0..100)
                .map(|index| {
                    let len = rng.random_range(3..=256);
                    EncodedReview {
                        ids: vec![1; len],
                        type_ids: vec![0; len],
                        label: index % 2,
                        source_index: index,
                    }
                })
                .collect();
            let (support, query) = reviews.split_at(80);
            let support: Vec<&EncodedReview> = support.iter().collect();
            let query: Vec<&EncodedReview> = query.iter().collect();
            let lengths: Vec<usize> = support.iter().map(|review| review.len()).collect();
            for positions in plan_batches(&lengths, 16, BatchOrder::LengthBucketed, &mut rng) {
                let items: Vec<&EncodedReview> = positions.iter().map(|&p| support[p]).collect();
                add(&items, &training);
            }
            add(&query, &training);
            let mut sorted = query.clone();
            sorted.sort_by_key(|review| review.len());
            for chunk in sorted.chunks(16) {
                let mut items = chunk.to_vec();
                if BertClassifier::fixed_rows(&scoring) {
                    // As `scoring_logits` fills a short batch.
                    items.resize(16, chunk[chunk.len() - 1]);
                }
                add(&items, &scoring);
            }
        }
        shapes
    }

    #[test]
    fn a_run_padded_to_buckets_sees_a_handful_of_batch_shapes() {
        let shapes = shapes_of_a_run(Padding::Buckets(tasks::DEFAULT_BUCKET));
        let rows: BTreeSet<usize> = shapes.iter().map(|&(rows, _)| rows).collect();
        let lengths: BTreeSet<usize> = shapes.iter().map(|&(_, len)| len).collect();
        assert_eq!(rows, BTreeSet::from([16, 20]), "{shapes:?}");
        assert!(
            lengths.is_subset(&BTreeSet::from([64, 128, 192, 256])),
            "{shapes:?}"
        );
        // Padded to the longest review, the same batches take dozens of shapes.
        assert!(shapes_of_a_run(Padding::Longest).len() > 50);
    }

    #[test]
    fn batches_become_row_major_tensors() {
        let batch = Batch {
            input_ids: vec![101, 7, 102, 101, 102, 0],
            attention_mask: vec![1, 1, 1, 1, 1, 0],
            token_type_ids: vec![0; 6],
            labels: vec![1, 0],
            lengths: vec![3, 2],
            source_indices: vec![10, 4],
            batch_size: 2,
            seq_len: 3,
        };
        let input = input(&batch, &Device::flex());
        assert_eq!(input.input_ids.dims(), [2, 3]);
        let mask: Vec<i64> = input
            .attention_mask
            .into_data()
            .convert::<i64>()
            .try_into_vec()
            .unwrap();
        assert_eq!(mask, batch.attention_mask);
    }
}
