//! The reference's splits on the shared review file (../shared/data/amazon-reviews).

use dataset::{LabelSet, NumDomain, ReviewSet, SplitConfig, finetune_split};

fn reviews() -> ReviewSet {
    ReviewSet::load(&test_support::reviews_path()).expect("the shared review file loads")
}

fn split(num_domain: NumDomain) -> SplitConfig {
    SplitConfig {
        num_domain,
        ..SplitConfig::default()
    }
}

#[test]
fn shared_file_has_ten_domains_and_sentiment_labels() {
    let set = reviews();
    assert_eq!(set.len(), 8598);
    assert_eq!(set.domains().len(), 10);
    assert_eq!(set.labels, LabelSet::sentiment());
    assert!(
        set.reviews
            .iter()
            .enumerate()
            .all(|(i, r)| r.source_index == i)
    );
}

#[test]
fn domain_stats_match_provenance() {
    let set = reviews();
    let stats = set.domain_stats();
    let dvd = stats
        .iter()
        .find(|s| s.domain == "dvd")
        .expect("dvd is a domain");
    let (negative, positive) = (
        set.labels.id("negative").unwrap(),
        set.labels.id("positive").unwrap(),
    );
    assert_eq!(
        (
            dvd.count,
            dvd.label_counts[positive],
            dvd.label_counts[negative]
        ),
        (893, 458, 435)
    );
    assert!(dvd.mean_words > 1.0 && dvd.mean_chars > dvd.mean_words);
    assert_eq!(stats.iter().map(|s| s.count).sum::<usize>(), set.len());
    let names: Vec<&str> = stats.iter().map(|s| s.domain.as_str()).collect();
    assert!(names.is_sorted());
}

/// The split sizes, derived from the per-domain counts, then checked against PROVENANCE.md.
#[test]
fn training_and_test_split_sizes_follow_the_reference_rules() {
    let set = reviews();
    let config = SplitConfig::default();
    let mut training_counts: Vec<(usize, String)> = set
        .domain_stats()
        .into_iter()
        .filter(|s| !config.test_domains.contains(&s.domain))
        .map(|s| (s.count, s.domain))
        .collect();
    training_counts.sort();
    let smallest_sum = |d: usize| {
        training_counts
            .iter()
            .take(d)
            .map(|(c, _)| c)
            .sum::<usize>()
    };
    let test_size: usize = set
        .domain_stats()
        .iter()
        .filter(|s| config.test_domains.contains(&s.domain))
        .map(|s| s.count)
        .sum();

    let mut sizes = Vec::new();
    for (num_domain, derived) in [
        (NumDomain::Count(1), smallest_sum(1)),
        (NumDomain::Count(3), smallest_sum(3)),
        (NumDomain::Count(5), smallest_sum(5)),
        (NumDomain::All, smallest_sum(training_counts.len())),
    ] {
        let indices = split(num_domain).training_indices(&set).unwrap();
        assert_eq!(indices.len(), derived, "D = {num_domain}");
        assert!(indices.is_sorted(), "training indices keep file order");
        sizes.push(indices.len());
    }
    let test = config.test_indices(&set).unwrap();
    assert_eq!(test.len(), test_size);
    // The literal numbers come from PROVENANCE.md, not from this code.
    assert_eq!(sizes, [893, 2807, 5191, 8298]);
    assert_eq!(test.len(), 300);
    assert_eq!(
        split(NumDomain::Count(100))
            .training_indices(&set)
            .unwrap()
            .len(),
        8298
    );
}

#[test]
fn smallest_training_domains_are_chosen_in_count_order() {
    let set = reviews();
    let domains = split(NumDomain::Count(3)).training_domains(&set).unwrap();
    assert_eq!(domains, ["dvd", "books", "beauty"]);
}

#[test]
fn training_and_test_splits_are_disjoint() {
    let set = reviews();
    let config = SplitConfig::default();
    let training = config.training_indices(&set).unwrap();
    let test = config.test_indices(&set).unwrap();
    assert_eq!(training.len() + test.len(), set.len());
    assert!(test.iter().all(|i| training.binary_search(i).is_err()));
}

#[test]
fn finetune_split_is_seeded_80_20_and_disjoint() {
    let set = reviews();
    let training = split(NumDomain::Count(1)).training_indices(&set).unwrap();
    let (train, validation) = finetune_split(&training, 20, 7).unwrap();
    assert_eq!((train.len(), validation.len()), (714, 179));
    let mut all: Vec<usize> = train.iter().chain(&validation).copied().collect();
    all.sort_unstable();
    assert_eq!(all, training);
    assert_eq!(
        finetune_split(&training, 20, 7).unwrap(),
        (train.clone(), validation)
    );
    assert_ne!(finetune_split(&training, 20, 8).unwrap().0, train);
}
