//! The label map: the one place that says which class id a label name has.

use serde::{Deserialize, Serialize};

use crate::DatasetError;

/// Ordered class names; a label's id is its position.
///
/// The reference code inverted negative/positive between its two stages; every crate of this
/// workspace takes ids from here instead, so `negative` is 0 and `positive` is 1 everywhere.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct LabelSet {
    names: Vec<String>,
}

impl LabelSet {
    /// `["negative", "positive"]`: negative = 0, positive = 1.
    pub fn sentiment() -> Self {
        Self {
            names: vec!["negative".to_owned(), "positive".to_owned()],
        }
    }

    /// A label set with the given names in the given order.
    ///
    /// # Errors
    /// [`DatasetError::InvalidLabelSet`] when it is empty, a name is empty, or a name repeats.
    pub fn new(names: Vec<String>) -> Result<Self, DatasetError> {
        if names.is_empty() {
            return Err(DatasetError::InvalidLabelSet {
                reason: "it has no labels".to_owned(),
            });
        }
        if names.iter().any(|name| name.trim().is_empty()) {
            return Err(DatasetError::InvalidLabelSet {
                reason: "a label name is empty".to_owned(),
            });
        }
        for (position, name) in names.iter().enumerate() {
            if names[..position].contains(name) {
                return Err(DatasetError::InvalidLabelSet {
                    reason: format!("label {name:?} appears twice"),
                });
            }
        }
        Ok(Self { names })
    }

    /// The label set of a file whose labels are `observed`: [`LabelSet::sentiment`] when they are
    /// all `negative`/`positive`, else every distinct name sorted by byte order (stable across
    /// runs and machines, independent of record order).
    pub fn from_observed<'a>(observed: impl IntoIterator<Item = &'a str>) -> Self {
        let distinct: std::collections::BTreeSet<&str> = observed.into_iter().collect();
        let sentiment = Self::sentiment();
        if distinct.iter().all(|name| sentiment.id(name).is_some()) {
            return sentiment;
        }
        Self {
            names: distinct.into_iter().map(str::to_owned).collect(),
        }
    }

    /// The id of `name`, if it is one of the labels.
    pub fn id(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|candidate| candidate == name)
    }

    /// The name of label `id`.
    ///
    /// # Panics
    /// If `id >= self.len()`: ids come from this set, so that is a bug in the caller.
    pub fn name(&self, id: usize) -> &str {
        &self.names[id]
    }

    /// All names, in id order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The number of classes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Always false for a constructed set (kept for API symmetry with `len`).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

impl TryFrom<Vec<String>> for LabelSet {
    type Error = DatasetError;

    fn try_from(names: Vec<String>) -> Result<Self, Self::Error> {
        Self::new(names)
    }
}

impl From<LabelSet> for Vec<String> {
    fn from(labels: LabelSet) -> Self {
        labels.names
    }
}

impl std::fmt::Display for LabelSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentiment_has_negative_zero_positive_one() {
        let labels = LabelSet::sentiment();
        assert_eq!(labels.id("negative"), Some(0));
        assert_eq!(labels.id("positive"), Some(1));
        assert_eq!(labels.name(1), "positive");
        assert_eq!(labels.len(), 2);
    }

    #[test]
    fn observed_sentiment_labels_keep_the_fixed_order() {
        let labels = LabelSet::from_observed(["positive", "positive", "negative"]);
        assert_eq!(labels, LabelSet::sentiment());
        assert_eq!(LabelSet::from_observed(["positive"]), LabelSet::sentiment());
    }

    #[test]
    fn other_labels_are_sorted() {
        let labels = LabelSet::from_observed(["neutral", "positive", "negative", "neutral"]);
        assert_eq!(labels.names(), ["negative", "neutral", "positive"]);
    }

    #[test]
    fn rejects_duplicate_and_empty_names() {
        assert!(LabelSet::new(vec!["a".into(), "a".into()]).is_err());
        assert!(LabelSet::new(vec![" ".into()]).is_err());
        assert!(LabelSet::new(Vec::new()).is_err());
    }

    #[test]
    fn serde_round_trip_validates() {
        let json = serde_json::to_string(&LabelSet::sentiment()).unwrap();
        assert_eq!(json, r#"["negative","positive"]"#);
        assert_eq!(
            serde_json::from_str::<LabelSet>(&json).unwrap(),
            LabelSet::sentiment()
        );
        assert!(serde_json::from_str::<LabelSet>(r#"["x","x"]"#).is_err());
    }
}
