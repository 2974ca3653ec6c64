//! The reference's splits: held-out test domains, the D smallest training domains, and the
//! seeded 80/20 fine-tuning split.

use std::fmt;
use std::str::FromStr;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::{DatasetError, ReviewSet};

/// The reference's unseen test domains.
pub const REFERENCE_TEST_DOMAINS: [&str; 3] =
    ["office_products", "automotive", "computer_&_video_games"];

/// How many training domains to use (the reference's `--num_domain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumDomain {
    /// The D smallest training domains by review count (D ≥ 1; D at or above the number of
    /// training domains means all of them).
    Count(usize),
    /// Every training domain.
    All,
}

impl FromStr for NumDomain {
    type Err = DatasetError;

    /// `"all"` or a positive number.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let value = value.trim();
        if value.eq_ignore_ascii_case("all") {
            return Ok(Self::All);
        }
        match value.parse::<usize>() {
            Ok(count) if count > 0 => Ok(Self::Count(count)),
            _ => Err(DatasetError::InvalidNumDomain {
                value: value.to_owned(),
            }),
        }
    }
}

impl fmt::Display for NumDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Count(count) => write!(f, "{count}"),
            Self::All => f.write_str("all"),
        }
    }
}

/// Which domains are held out for testing and how many of the rest are trained on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitConfig {
    /// Domains held out as unseen test tasks.
    pub test_domains: Vec<String>,
    /// How many training domains to use.
    pub num_domain: NumDomain,
}

impl Default for SplitConfig {
    /// The reference test domains and every training domain.
    fn default() -> Self {
        Self {
            test_domains: REFERENCE_TEST_DOMAINS.map(str::to_owned).to_vec(),
            num_domain: NumDomain::All,
        }
    }
}

impl SplitConfig {
    /// The training domains: those not held out, the D smallest by review count with ties
    /// broken by name, returned in that order.
    ///
    /// # Errors
    /// [`DatasetError::UnknownDomain`] when a test domain is not in the set (a typo would
    /// otherwise leak that domain into training), [`DatasetError::NoTrainingDomains`] when
    /// nothing is left, [`DatasetError::InvalidNumDomain`] for `Count(0)`.
    pub fn training_domains(&self, set: &ReviewSet) -> Result<Vec<String>, DatasetError> {
        self.check_test_domains(set)?;
        let mut candidates: Vec<(usize, String)> = set
            .domain_stats()
            .into_iter()
            .filter(|stats| !self.test_domains.contains(&stats.domain))
            .map(|stats| (stats.count, stats.domain))
            .collect();
        if candidates.is_empty() {
            return Err(DatasetError::NoTrainingDomains {
                path: set.path.clone(),
                test_domains: self.test_domains.join(", "),
            });
        }
        candidates.sort();
        let take = match self.num_domain {
            NumDomain::All => candidates.len(),
            NumDomain::Count(0) => {
                return Err(DatasetError::InvalidNumDomain {
                    value: "0".to_owned(),
                });
            }
            NumDomain::Count(count) => count.min(candidates.len()),
        };
        Ok(candidates
            .into_iter()
            .take(take)
            .map(|(_, domain)| domain)
            .collect())
    }

    /// Indices of the reviews of the training domains, in file order.
    ///
    /// # Errors
    /// As [`SplitConfig::training_domains`].
    pub fn training_indices(&self, set: &ReviewSet) -> Result<Vec<usize>, DatasetError> {
        let domains = self.training_domains(set)?;
        Ok(indices_of_domains(set, &domains))
    }

    /// Indices of the reviews of the test domains, in file order.
    ///
    /// # Errors
    /// [`DatasetError::UnknownDomain`] when a test domain is not in the set.
    pub fn test_indices(&self, set: &ReviewSet) -> Result<Vec<usize>, DatasetError> {
        self.check_test_domains(set)?;
        Ok(indices_of_domains(set, &self.test_domains))
    }

    fn check_test_domains(&self, set: &ReviewSet) -> Result<(), DatasetError> {
        let present = set.domains();
        match self
            .test_domains
            .iter()
            .find(|domain| !present.contains(&domain.as_str()))
        {
            Some(missing) => Err(set.unknown_domain(missing)),
            None => Ok(()),
        }
    }
}

fn indices_of_domains(set: &ReviewSet, domains: &[String]) -> Vec<usize> {
    set.reviews
        .iter()
        .filter(|review| domains.contains(&review.domain))
        .map(|review| review.source_index)
        .collect()
}

/// The reference's fine-tuning split: shuffles `indices` with a ChaCha8 generator seeded by
/// `seed`, then gives the first `len * (100 - validation_percent) / 100` (rounded down) to
/// training and the rest to validation. The reference uses 20 %.
///
/// # Errors
/// [`DatasetError::InvalidValidationPercent`] when `validation_percent >= 100`.
pub fn finetune_split(
    indices: &[usize],
    validation_percent: u32,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>), DatasetError> {
    if validation_percent >= 100 {
        return Err(DatasetError::InvalidValidationPercent {
            value: validation_percent,
        });
    }
    let mut shuffled = indices.to_vec();
    shuffled.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let train_len = shuffled.len() * (100 - validation_percent as usize) / 100;
    let validation = shuffled.split_off(train_len);
    Ok((shuffled, validation))
}
