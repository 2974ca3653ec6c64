//! Seeded support/query episodes, tokenisation and batching for Meta-BERT.
//!
//! [`EpisodeSampler`] draws meta-training tasks as the reference does (a domain, then
//! `num_support + num_query` distinct reviews of it) from an explicit seed, through ChaCha8, so
//! the same seed gives the same tasks on any machine; its [`SamplerState`] saves and restores the
//! stream for resumed runs. [`test_episodes`] builds the fixed test tasks. [`TextEncoder`]
//! tokenises with a model directory's tokenizer, truncating instead of failing on long reviews;
//! [`collate`] pads encoded reviews into a [`Batch`] as a [`Collation`] says.
//! [`hold_out_validation`] sets validation episodes aside from the training reviews.
//!
//! # Example
//!
//! ```
//! use dataset::ReviewSet;
//! use tasks::{DomainSampling, EpisodeConfig, EpisodeSampler, Padding, TextEncoder};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("reviews.csv");
//! let mut csv = String::from("text,label,domain\n");
//! for i in 0..6 {
//!     let label = if i % 2 == 0 { "positive" } else { "negative" };
//!     csv.push_str(&format!("review number {i} of books,{label},books\n"));
//! }
//! std::fs::write(&path, csv).unwrap();
//! let set = ReviewSet::load(&path).unwrap();
//!
//! let config = EpisodeConfig { num_support: 3, num_query: 2, sampling: DomainSampling::ByReview };
//! let pool: Vec<usize> = (0..set.len()).collect();
//! let mut sampler = EpisodeSampler::new(&set, &pool, config, 42).unwrap();
//! let saved = sampler.state();
//! let episode = sampler.sample();
//! assert_eq!((episode.support.len(), episode.query.len()), (3, 2));
//! sampler.restore(&saved);
//! assert_eq!(sampler.sample(), episode);
//!
//! // A model directory with only a vocabulary: a lower-casing BERT WordPiece tokenizer over it.
//! let model = dir.path().join("model");
//! std::fs::create_dir(&model).unwrap();
//! let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "review", "number", "of", "books"];
//! std::fs::write(model.join("vocab.txt"), vocab.join("\n")).unwrap();
//! let encoder = TextEncoder::from_model_dir(&model, 8, Padding::Longest).unwrap();
//! // [CLS] review number [UNK] of books [SEP]
//! assert_eq!(encoder.encode("Review number 7 of books").unwrap().ids, [2, 4, 5, 1, 6, 7, 3]);
//! let encoded = encoder.encode_set(&set).unwrap();
//! let support: Vec<_> = episode.support.iter().map(|&i| &encoded[i]).collect();
//! let batch = encoder.collate(&support);
//! assert_eq!(batch.input_ids.len(), batch.batch_size * batch.seq_len);
//! assert!(batch.seq_len <= 8);
//! ```

mod batch;
mod encode;
mod episodes;
mod error;
mod validation;

pub use batch::{Batch, Collation, DEFAULT_BUCKET, EncodedReview, Padding, collate};
pub use encode::{DEFAULT_MAX_SEQ_LEN, EncodedText, TextEncoder};
pub use episodes::{
    DomainSampling, Episode, EpisodeConfig, EpisodeSampler, SamplerState, test_episodes,
};
pub use error::TaskError;
pub use validation::{ValidationHoldout, hold_out_validation};
