#![allow(dead_code)] // each test binary compiles this module and uses a part of it
//! A tiny random BERT and a synthetic family of tasks where adaptation matters: in each task
//! the label is given by which of the task's two keywords a review contains, and which keyword
//! means which label is drawn per task, so no fixed classifier does better than chance.

use burn::tensor::Device;
use maml::{Batching, InnerLoopConfig, MetaConfig, Task};
use model::{BertClassifier, BertConfig};
use rand::Rng;
use rand::seq::index::sample;
use tasks::{Collation, EncodedReview};

const CLS: u32 = 1;
const SEP: u32 = 2;
const FILLERS: std::ops::Range<u32> = 3..10;
const KEYWORDS: std::ops::Range<u32> = 10..32;

/// A 2-layer BERT with hidden size 16 and a 2-label head.
pub fn tiny_model(seed: u64, device: &Device) -> BertClassifier {
    let config = BertConfig::from_json(
        r#"{"vocab_size": 32, "hidden_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 16}"#,
    )
    .expect("valid tiny config");
    config.init(2, seed, device)
}

/// Settings small enough for tests: 2 inner epochs over support batches of 4.
pub fn tiny_config() -> MetaConfig<Collation> {
    MetaConfig::default().with_outer_lr(3e-3).with_inner(
        InnerLoopConfig::default()
            .with_lr(1e-2)
            .with_epochs(2)
            .with_batching(Batching::shuffled(4))
            .with_dropout(false),
    )
}

/// The reviews of one keyword task.
pub struct KeywordTask {
    pub support: Vec<EncodedReview>,
    pub query: Vec<EncodedReview>,
}

impl KeywordTask {
    /// `support` and `query` reviews (alternating labels) for a freshly drawn keyword mapping.
    pub fn draw(rng: &mut impl Rng, support: usize, query: usize) -> Self {
        let picked = sample(rng, KEYWORDS.len(), 2);
        let keywords = [picked.index(0), picked.index(1)].map(|k| KEYWORDS.start + k as u32);
        let mut reviews: Vec<EncodedReview> = (0..support + query)
            .map(|i| {
                let label = i % 2;
                let ids = vec![
                    CLS,
                    rng.random_range(FILLERS),
                    keywords[label],
                    rng.random_range(FILLERS),
                    SEP,
                ];
                EncodedReview {
                    type_ids: vec![0; ids.len()],
                    ids,
                    label,
                    source_index: i,
                }
            })
            .collect();
        let query = reviews.split_off(support);
        Self {
            support: reviews,
            query,
        }
    }

    pub fn task(&self) -> Task<'_, EncodedReview> {
        Task {
            domain: "keywords",
            support: self.support.iter().collect(),
            query: self.query.iter().collect(),
        }
    }
}

/// Every weight of the model, in transformers order, as exact f32 values.
pub fn weights(model: &BertClassifier) -> Vec<(String, Vec<f32>)> {
    model
        .state_dict()
        .into_iter()
        .map(|tensor| (tensor.name, tensor.values))
        .collect()
}
