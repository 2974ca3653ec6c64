//! Support/query episodes: seeded meta-training tasks and the fixed test tasks.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use dataset::{DatasetError, ReviewSet};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::TaskError;

/// One few-shot task: indices into [`ReviewSet::reviews`] of a single domain; no review is in
/// both the support and the query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Episode {
    /// The domain every review of the task comes from.
    pub domain: String,
    /// Reviews the learner adapts on.
    pub support: Vec<usize>,
    /// Reviews the adapted learner is scored on.
    pub query: Vec<usize>,
}

/// How a meta-training task picks its domain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DomainSampling {
    /// The reference: the domain of a uniformly drawn training review, so larger domains come
    /// up in proportion to their size.
    #[default]
    ByReview,
    /// Every training domain equally often.
    Uniform,
}

impl FromStr for DomainSampling {
    type Err = String;

    /// `by-review` or `uniform`.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "by-review" => Ok(Self::ByReview),
            "uniform" => Ok(Self::Uniform),
            other => Err(format!(
                "unknown domain sampling {other:?}: use \"by-review\" or \"uniform\""
            )),
        }
    }
}

impl fmt::Display for DomainSampling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ByReview => "by-review",
            Self::Uniform => "uniform",
        })
    }
}

/// The shape of a meta-training task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpisodeConfig {
    /// Support reviews per task (the reference's `k_spt`, 80).
    pub num_support: usize,
    /// Query reviews per task (the reference's `k_qry`, 20).
    pub num_query: usize,
    /// How the task's domain is chosen.
    pub sampling: DomainSampling,
}

impl EpisodeConfig {
    fn check(&self) -> Result<(), TaskError> {
        check_task_size(self.num_support, self.num_query)
    }
}

fn check_task_size(num_support: usize, num_query: usize) -> Result<(), TaskError> {
    if num_support == 0 || num_query == 0 {
        return Err(TaskError::InvalidTaskSize {
            num_support,
            num_query,
        });
    }
    Ok(())
}

/// Where an [`EpisodeSampler`]'s random stream stands; save it with a checkpoint and
/// [`EpisodeSampler::restore`] it to continue with exactly the episodes an uninterrupted run
/// would have drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplerState {
    /// The seed the sampler was created with.
    pub seed: u64,
    /// Position in the ChaCha8 stream, in 32-bit words. A decimal string in JSON, because
    /// JSON readers elsewhere lose precision above 2^53.
    #[serde(with = "u128_as_string")]
    pub word_pos: u128,
    /// Episodes drawn so far.
    pub episodes_drawn: u64,
}

mod u128_as_string {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(value: &u128, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u128, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(D::Error::custom)
    }
}

/// Draws meta-training tasks from a pool of reviews, reproducibly: the same set, pool, config and
/// seed give the same episodes on any machine (ChaCha8, domains kept in name order).
#[derive(Debug, Clone)]
pub struct EpisodeSampler {
    /// (domain, its pool indices in file order), sorted by domain name.
    domains: Vec<(String, Vec<usize>)>,
    pool_len: usize,
    config: EpisodeConfig,
    seed: u64,
    rng: ChaCha8Rng,
    episodes_drawn: u64,
}

impl EpisodeSampler {
    /// A sampler over `pool` (indices into `set.reviews`, e.g. the training split).
    ///
    /// # Errors
    /// [`TaskError::InvalidTaskSize`], [`TaskError::EmptyPool`], or
    /// [`DatasetError::DomainTooSmall`] when a domain of the pool has fewer than
    /// `num_support + num_query` reviews (the reference crashed on that mid-run).
    ///
    /// # Panics
    /// If an index of `pool` is out of range for `set` (indices come from `dataset`'s splits).
    pub fn new(
        set: &ReviewSet,
        pool: &[usize],
        config: EpisodeConfig,
        seed: u64,
    ) -> Result<Self, TaskError> {
        config.check()?;
        if pool.is_empty() {
            return Err(TaskError::EmptyPool);
        }
        let mut by_domain: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for &index in pool {
            by_domain
                .entry(set.reviews[index].domain.as_str())
                .or_default()
                .push(index);
        }
        let needed = config.num_support + config.num_query;
        for (domain, indices) in &by_domain {
            if indices.len() < needed {
                return Err(DatasetError::DomainTooSmall {
                    path: set.path.clone(),
                    domain: (*domain).to_owned(),
                    available: indices.len(),
                    needed,
                    purpose: task_purpose("", config.num_support, config.num_query),
                }
                .into());
            }
        }
        Ok(Self {
            domains: by_domain
                .into_iter()
                .map(|(domain, indices)| (domain.to_owned(), indices))
                .collect(),
            pool_len: pool.len(),
            config,
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            episodes_drawn: 0,
        })
    }

    /// The next task: a domain chosen as [`EpisodeConfig::sampling`] says, then
    /// `num_support + num_query` distinct reviews of it drawn uniformly; the first
    /// `num_support` drawn are the support, as in the reference.
    pub fn sample(&mut self) -> Episode {
        let domain_position = match self.config.sampling {
            DomainSampling::Uniform => self.rng.random_range(0..self.domains.len()),
            DomainSampling::ByReview => {
                let mut review = self.rng.random_range(0..self.pool_len);
                self.domains
                    .iter()
                    .position(|(_, indices)| {
                        let here = review < indices.len();
                        review = review.saturating_sub(indices.len());
                        here
                    })
                    .expect("a review position below the pool size falls in some domain")
            }
        };
        let (domain, indices) = &self.domains[domain_position];
        let mut drawn = indices.clone();
        let needed = self.config.num_support + self.config.num_query;
        // A partial Fisher-Yates shuffle: written out so the episode depends only on ChaCha8's
        // output, not on a library's choice of sampling algorithm.
        for position in 0..needed {
            let pick = self.rng.random_range(position..drawn.len());
            drawn.swap(position, pick);
        }
        drawn.truncate(needed);
        let query = drawn.split_off(self.config.num_support);
        self.episodes_drawn += 1;
        Episode {
            domain: domain.clone(),
            support: drawn,
            query,
        }
    }

    /// The domains tasks are drawn from, sorted by name.
    pub fn domains(&self) -> impl Iterator<Item = &str> {
        self.domains.iter().map(|(domain, _)| domain.as_str())
    }

    /// Where the random stream stands, for resuming.
    pub fn state(&self) -> SamplerState {
        SamplerState {
            seed: self.seed,
            word_pos: self.rng.get_word_pos(),
            episodes_drawn: self.episodes_drawn,
        }
    }

    /// Continues from a saved [`SamplerState`]; with the same set, pool and config the sampler
    /// then draws what the saved one would have drawn next.
    pub fn restore(&mut self, state: &SamplerState) {
        self.seed = state.seed;
        self.rng = ChaCha8Rng::seed_from_u64(state.seed);
        self.rng.set_word_pos(state.word_pos);
        self.episodes_drawn = state.episodes_drawn;
    }
}

impl Iterator for EpisodeSampler {
    type Item = Episode;

    /// Never ends: meta-training decides how many tasks it wants.
    fn next(&mut self) -> Option<Episode> {
        Some(self.sample())
    }
}

/// What a domain must hold reviews for, for error messages: `kind` is "" or e.g. "test ".
fn task_purpose(kind: &str, num_support: usize, num_query: usize) -> String {
    format!("a {kind}task of {num_support} support + {num_query} query reviews")
}

/// The reference's test tasks, one per test domain in the order given: the domain's first
/// `num_support` reviews in file order are the support, the next `num_query` the query.
///
/// # Errors
/// [`TaskError::InvalidTaskSize`]; [`DatasetError::UnknownDomain`] for a domain not in `set`;
/// [`DatasetError::DomainTooSmall`] when a domain has fewer than `num_support + num_query`.
pub fn test_episodes(
    set: &ReviewSet,
    test_domains: &[String],
    num_support: usize,
    num_query: usize,
) -> Result<Vec<Episode>, TaskError> {
    check_task_size(num_support, num_query)?;
    let needed = num_support + num_query;
    test_domains
        .iter()
        .map(|domain| {
            let mut indices = set.domain_indices(domain)?;
            if indices.len() < needed {
                return Err(DatasetError::DomainTooSmall {
                    path: set.path.clone(),
                    domain: domain.clone(),
                    available: indices.len(),
                    needed,
                    purpose: task_purpose("test ", num_support, num_query),
                }
                .into());
            }
            indices.truncate(needed);
            let query = indices.split_off(num_support);
            Ok(Episode {
                domain: domain.clone(),
                support: indices,
                query,
            })
        })
        .collect()
}
