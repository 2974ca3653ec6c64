//! Episodes on the shared review file.

use dataset::{DatasetError, NumDomain, ReviewSet, SplitConfig};
use tasks::{DomainSampling, Episode, EpisodeConfig, EpisodeSampler, TaskError, test_episodes};

fn reviews() -> ReviewSet {
    ReviewSet::load(&test_support::reviews_path()).expect("the shared review file loads")
}

const REFERENCE: EpisodeConfig = EpisodeConfig {
    num_support: 80,
    num_query: 20,
    sampling: DomainSampling::ByReview,
};

fn draw(set: &ReviewSet, config: EpisodeConfig, seed: u64, n: usize) -> Vec<Episode> {
    let pool = SplitConfig::default().training_indices(set).unwrap();
    EpisodeSampler::new(set, &pool, config, seed)
        .unwrap()
        .take(n)
        .collect()
}

#[test]
fn support_and_query_are_disjoint_and_of_one_training_domain() {
    let set = reviews();
    let training = SplitConfig::default().training_domains(&set).unwrap();
    for sampling in [DomainSampling::ByReview, DomainSampling::Uniform] {
        for episode in draw(
            &set,
            EpisodeConfig {
                sampling,
                ..REFERENCE
            },
            1,
            50,
        ) {
            assert_eq!((episode.support.len(), episode.query.len()), (80, 20));
            let mut all: Vec<usize> = episode
                .support
                .iter()
                .chain(&episode.query)
                .copied()
                .collect();
            all.sort_unstable();
            all.dedup();
            assert_eq!(all.len(), 100, "no review twice in one task");
            assert!(all.iter().all(|&i| set.reviews[i].domain == episode.domain));
            assert!(training.contains(&episode.domain));
        }
    }
}

#[test]
fn same_seed_same_episodes_other_seed_different() {
    let set = reviews();
    assert_eq!(draw(&set, REFERENCE, 5, 10), draw(&set, REFERENCE, 5, 10));
    assert_ne!(draw(&set, REFERENCE, 5, 10), draw(&set, REFERENCE, 6, 10));
}

/// "Same seed, same episodes on any machine": pins the first episode of seed 0, so a change of
/// RNG, sampling algorithm or domain order (which would silently change every run's tasks) fails
/// here. The values were recorded from this implementation (x86-64 Linux); they are a
/// regression pin, not a reference result.
#[test]
fn episodes_are_stable_across_versions() {
    let set = reviews();
    let config = EpisodeConfig {
        num_support: 3,
        num_query: 2,
        sampling: DomainSampling::ByReview,
    };
    let first = &draw(&set, config, 0, 1)[0];
    assert_eq!(
        (
            first.domain.as_str(),
            first.support.as_slice(),
            first.query.as_slice()
        ),
        PINNED_FIRST_EPISODE
    );
}

const PINNED_FIRST_EPISODE: (&str, &[usize], &[usize]) =
    ("dvd", &[5371, 5390, 5155], &[5192, 5363]);

#[test]
fn by_review_favours_large_domains_and_uniform_does_not() {
    let set = reviews();
    let count = |sampling, domain: &str| {
        draw(
            &set,
            EpisodeConfig {
                sampling,
                ..REFERENCE
            },
            3,
            2000,
        )
        .iter()
        .filter(|e| e.domain == domain)
        .count()
    };
    // apparel has 1,717 of 8,298 training reviews (20.7 %), dvd 893 (10.8 %); 1 of 7 is 14.3 %.
    let (apparel, dvd) = (
        count(DomainSampling::ByReview, "apparel"),
        count(DomainSampling::ByReview, "dvd"),
    );
    assert!(
        (330..500).contains(&apparel),
        "apparel drawn {apparel} times of 2000"
    );
    assert!((150..290).contains(&dvd), "dvd drawn {dvd} times of 2000");
    let uniform_apparel = count(DomainSampling::Uniform, "apparel");
    assert!(
        (210..370).contains(&uniform_apparel),
        "apparel drawn {uniform_apparel} times of 2000"
    );
}

#[test]
fn restored_state_continues_the_same_stream() {
    let set = reviews();
    let pool = SplitConfig::default().training_indices(&set).unwrap();
    let mut uninterrupted = EpisodeSampler::new(&set, &pool, REFERENCE, 9).unwrap();
    let expected: Vec<Episode> = uninterrupted.by_ref().take(6).collect();

    let mut first_run = EpisodeSampler::new(&set, &pool, REFERENCE, 9).unwrap();
    let mut drawn: Vec<Episode> = first_run.by_ref().take(4).collect();
    let saved = serde_json::to_string(&first_run.state()).unwrap();

    let mut resumed = EpisodeSampler::new(&set, &pool, REFERENCE, 12345).unwrap();
    resumed.restore(&serde_json::from_str(&saved).unwrap());
    drawn.extend(resumed.by_ref().take(2));
    assert_eq!(drawn, expected);
    assert_eq!(resumed.state(), uninterrupted.state());
    assert_eq!(resumed.state().episodes_drawn, 6);
}

#[test]
fn test_episodes_take_the_first_reviews_in_file_order() {
    let set = reviews();
    let domains = SplitConfig::default().test_domains;
    let episodes = test_episodes(&set, &domains, 80, 20).unwrap();
    assert_eq!(episodes.len(), 3);
    for (episode, domain) in episodes.iter().zip(&domains) {
        let indices = set.domain_indices(domain).unwrap();
        assert_eq!(&episode.domain, domain);
        assert_eq!(episode.support, indices[..80]);
        assert_eq!(episode.query, indices[80..100]);
    }
}

#[test]
fn a_task_larger_than_a_domain_is_an_error() {
    let set = reviews();
    let domains = SplitConfig::default().test_domains;
    let error = test_episodes(&set, &domains, 80, 21).unwrap_err();
    assert!(
        matches!(
            &error,
            TaskError::Dataset(DatasetError::DomainTooSmall {
                available: 100,
                needed: 101,
                ..
            })
        ),
        "{error:?}"
    );
    let pool = SplitConfig {
        num_domain: NumDomain::Count(1),
        ..SplitConfig::default()
    }
    .training_indices(&set)
    .unwrap();
    let too_big = EpisodeConfig {
        num_support: 800,
        num_query: 100,
        ..REFERENCE
    };
    let error = EpisodeSampler::new(&set, &pool, too_big, 0).unwrap_err();
    assert!(error.to_string().contains("\"dvd\""), "{error}");
}

#[test]
fn invalid_sizes_and_unknown_domains_are_errors() {
    let set = reviews();
    let pool = SplitConfig::default().training_indices(&set).unwrap();
    let no_query = EpisodeConfig {
        num_query: 0,
        ..REFERENCE
    };
    assert!(matches!(
        EpisodeSampler::new(&set, &pool, no_query, 0),
        Err(TaskError::InvalidTaskSize { .. })
    ));
    assert!(matches!(
        EpisodeSampler::new(&set, &[], REFERENCE, 0),
        Err(TaskError::EmptyPool)
    ));
    let error = test_episodes(&set, &["toys".to_owned()], 1, 1).unwrap_err();
    assert!(
        matches!(
            error,
            TaskError::Dataset(DatasetError::UnknownDomain { .. })
        ),
        "{error:?}"
    );
}

#[test]
fn option_names_round_trip() {
    for sampling in [DomainSampling::ByReview, DomainSampling::Uniform] {
        assert_eq!(sampling.to_string().parse::<DomainSampling>(), Ok(sampling));
    }
    assert!("random".parse::<DomainSampling>().is_err());
}
