//! Review files for Meta-BERT: loading, validation, the label map and the reference's splits.
//!
//! A review file holds records with three string fields, `text`, `label` and `domain`, as a
//! JSON list (the reference's `dataset.json`), as JSON Lines, or as CSV with a header row.
//! [`ReviewSet::load`] validates every record and maps labels to ids through one [`LabelSet`]
//! (`negative` = 0, `positive` = 1; other label names are read from the file, sorted). Errors
//! name the file, the record and what would fix it. [`SplitConfig`] reproduces the reference's
//! splits: test domains held out, the D smallest training domains, and [`finetune_split`]'s
//! seeded 80/20 train/validation split.
//!
//! # Example
//!
//! ```
//! use dataset::{LabelSet, NumDomain, ReviewSet, SplitConfig};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("reviews.jsonl");
//! std::fs::write(
//!     &path,
//!     concat!(
//!         r#"{"text": "Great blender", "label": "positive", "domain": "kitchen"}"#, "\n",
//!         r#"{"text": "Fell apart", "label": "negative", "domain": "kitchen"}"#, "\n",
//!         r#"{"text": "Dull plot", "label": "negative", "domain": "books"}"#, "\n",
//!         r#"{"text": "Fits well", "label": "positive", "domain": "apparel"}"#, "\n",
//!     ),
//! )
//! .unwrap();
//!
//! let set = ReviewSet::load(&path).unwrap();
//! assert_eq!(set.labels, LabelSet::sentiment());
//! assert_eq!(set.reviews[1].label, set.labels.id("negative").unwrap());
//! assert_eq!(set.domain_indices("kitchen").unwrap(), [0, 1]);
//!
//! let split = SplitConfig {
//!     test_domains: vec!["apparel".to_owned()],
//!     num_domain: NumDomain::Count(1),
//! };
//! // The smallest training domain (ties broken by name) is "books".
//! assert_eq!(split.training_domains(&set).unwrap(), ["books"]);
//! assert_eq!(split.training_indices(&set).unwrap(), [2]);
//! assert_eq!(split.test_indices(&set).unwrap(), [3]);
//! ```

mod error;
mod labels;
mod parse;
mod path;
mod reviews;
mod split;

pub use error::{DatasetError, RecordRef};
pub use labels::LabelSet;
pub use parse::ReviewFormat;
pub use path::{DATA_ENV, DEFAULT_DATA_PATH, resolve_data_path};
pub use reviews::{DomainStats, Review, ReviewSet};
pub use split::{NumDomain, REFERENCE_TEST_DOMAINS, SplitConfig, finetune_split};
