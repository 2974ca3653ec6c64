//! Validated reviews, their label set and per-domain views.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::parse::{self, RawRecord, ReviewFormat};
use crate::{DatasetError, LabelSet};

/// One review with its label mapped to an id of the set's [`LabelSet`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Review {
    /// The review text (non-empty).
    pub text: String,
    /// The label id (`labels.name(label)` is the file's label).
    pub label: usize,
    /// The domain, e.g. `"books"`.
    pub domain: String,
    /// Position of the review in the source file, which is also its index in
    /// [`ReviewSet::reviews`].
    pub source_index: usize,
}

/// Statistics of one domain, as [`ReviewSet::domain_stats`] reports them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainStats {
    /// The domain.
    pub domain: String,
    /// Number of reviews.
    pub count: usize,
    /// Reviews per label id (index = id of the set's [`LabelSet`]).
    pub label_counts: Vec<usize>,
    /// Mean review length in Unicode characters (`char`s).
    pub mean_chars: f64,
    /// Mean review length in whitespace-separated words.
    pub mean_words: f64,
}

/// All reviews of one file, validated, with the label set their ids refer to.
///
/// Invariants (upheld by the loaders): `reviews[i].source_index == i`, every label id is below
/// `labels.len()`, and every text, label and domain is non-empty.
#[derive(Debug, Clone)]
pub struct ReviewSet {
    /// The file the reviews came from (used in error messages).
    pub path: PathBuf,
    /// The reviews, in file order.
    pub reviews: Vec<Review>,
    /// The label set that [`Review::label`] indexes.
    pub labels: LabelSet,
}

impl ReviewSet {
    /// Loads a review file, choosing the format from its extension (see
    /// [`ReviewFormat::from_path`]) and the label set from its labels (see
    /// [`LabelSet::from_observed`]).
    ///
    /// # Errors
    /// A [`DatasetError`] naming the file, and the record where one is at fault.
    pub fn load(path: &Path) -> Result<Self, DatasetError> {
        Self::load_inner(path, None)
    }

    /// Loads a review file whose labels must all belong to `labels` (e.g. a checkpoint's), which
    /// then is the set's label set whatever subset the file uses.
    ///
    /// # Errors
    /// As [`ReviewSet::load`], and [`DatasetError::UnknownLabel`] for a label outside `labels`.
    pub fn load_with_labels(path: &Path, labels: &LabelSet) -> Result<Self, DatasetError> {
        Self::load_inner(path, Some(labels))
    }

    fn load_inner(path: &Path, labels: Option<&LabelSet>) -> Result<Self, DatasetError> {
        let format = ReviewFormat::from_path(path)?;
        let bytes = std::fs::read(path).map_err(|source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(path, &bytes, format, labels)
    }

    /// Parses and validates the contents of a review file; `path` only names it in errors and is
    /// stored as [`ReviewSet::path`]. With `labels`, every label must belong to it; without, the
    /// label set is read from the file.
    ///
    /// # Errors
    /// As [`ReviewSet::load_with_labels`], except for I/O.
    pub fn from_bytes(
        path: &Path,
        bytes: &[u8],
        format: ReviewFormat,
        labels: Option<&LabelSet>,
    ) -> Result<Self, DatasetError> {
        let records = parse::parse(path, bytes, format)?;
        if records.is_empty() {
            return Err(DatasetError::NoReviews {
                path: path.to_path_buf(),
            });
        }
        let labels = match labels {
            Some(labels) => labels.clone(),
            None => LabelSet::from_observed(records.iter().map(|record| record.label.as_str())),
        };
        let reviews = records
            .into_iter()
            .map(|record| review_from_record(path, &labels, record))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            path: path.to_path_buf(),
            reviews,
            labels,
        })
    }

    /// Number of reviews.
    pub fn len(&self) -> usize {
        self.reviews.len()
    }

    /// True when there are no reviews (never for a loaded set).
    pub fn is_empty(&self) -> bool {
        self.reviews.is_empty()
    }

    /// The distinct domains, sorted by name.
    pub fn domains(&self) -> Vec<&str> {
        let mut domains: Vec<&str> = self.reviews.iter().map(|r| r.domain.as_str()).collect();
        domains.sort_unstable();
        domains.dedup();
        domains
    }

    /// Indices of the reviews of `domain`, in file order.
    ///
    /// # Errors
    /// [`DatasetError::UnknownDomain`] when no review has that domain.
    pub fn domain_indices(&self, domain: &str) -> Result<Vec<usize>, DatasetError> {
        let indices: Vec<usize> = self
            .reviews
            .iter()
            .filter(|review| review.domain == domain)
            .map(|review| review.source_index)
            .collect();
        if indices.is_empty() {
            return Err(self.unknown_domain(domain));
        }
        Ok(indices)
    }

    /// Per-domain count, label counts and mean lengths, sorted by domain name.
    pub fn domain_stats(&self) -> Vec<DomainStats> {
        struct Totals {
            count: usize,
            label_counts: Vec<usize>,
            chars: usize,
            words: usize,
        }
        let mut by_domain: BTreeMap<&str, Totals> = BTreeMap::new();
        for review in &self.reviews {
            let totals = by_domain
                .entry(review.domain.as_str())
                .or_insert_with(|| Totals {
                    count: 0,
                    label_counts: vec![0; self.labels.len()],
                    chars: 0,
                    words: 0,
                });
            totals.count += 1;
            totals.label_counts[review.label] += 1;
            totals.chars += review.text.chars().count();
            totals.words += review.text.split_whitespace().count();
        }
        by_domain
            .into_iter()
            .map(|(domain, totals)| DomainStats {
                domain: domain.to_owned(),
                count: totals.count,
                label_counts: totals.label_counts,
                mean_chars: totals.chars as f64 / totals.count as f64,
                mean_words: totals.words as f64 / totals.count as f64,
            })
            .collect()
    }

    /// The error for a domain this set lacks, listing the domains it has.
    pub fn unknown_domain(&self, domain: &str) -> DatasetError {
        DatasetError::UnknownDomain {
            path: self.path.clone(),
            domain: domain.to_owned(),
            available: self.domains().join(", "),
        }
    }
}

fn review_from_record(
    path: &Path,
    labels: &LabelSet,
    record: RawRecord,
) -> Result<Review, DatasetError> {
    let label = labels
        .id(&record.label)
        .ok_or_else(|| DatasetError::UnknownLabel {
            path: path.to_path_buf(),
            record: record.at,
            label: record.label.clone(),
            expected: labels.to_string(),
        })?;
    Ok(Review {
        text: record.text,
        label,
        domain: record.domain,
        source_index: record.at.index,
    })
}
