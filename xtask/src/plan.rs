//! The list of runs a preset's grid expands to, in the order they run.

use crate::preset::{DomainCount, Preset};

/// Where a fine-tuned or zero-shot model starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Init {
    /// The pre-trained model as given by `--bert-model`.
    Bert,
    /// The best checkpoint of the meta-training run with these settings (and the same seed).
    MetaBert {
        num_domain: DomainCount,
        num_train_task: usize,
    },
}

impl Init {
    /// Short name used in run directory names: `bert` or `meta-d3-t50`.
    pub fn label(&self) -> String {
        match self {
            Init::Bert => "bert".to_owned(),
            Init::MetaBert {
                num_domain,
                num_train_task,
            } => format!("meta-d{num_domain}-t{num_train_task}"),
        }
    }
}

/// What one run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunKind {
    MetaTrain {
        num_domain: DomainCount,
        num_train_task: usize,
    },
    Finetune {
        init: Init,
        num_domain: DomainCount,
    },
    ZeroShot {
        init: Init,
    },
}

/// One invocation of `meta-bert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Run {
    pub kind: RunKind,
    pub seed: u64,
}

impl Run {
    /// Directory name under `runs/<preset>/`, unique within a grid.
    pub fn name(&self) -> String {
        let seed = self.seed;
        match self.kind {
            RunKind::MetaTrain {
                num_domain,
                num_train_task,
            } => format!(
                "{}-s{seed}",
                Init::MetaBert {
                    num_domain,
                    num_train_task
                }
                .label()
            ),
            RunKind::Finetune { init, num_domain } => {
                format!("finetune-d{num_domain}-{}-s{seed}", init.label())
            }
            RunKind::ZeroShot { init } => format!("zeroshot-{}-s{seed}", init.label()),
        }
    }

    /// The meta-training run whose checkpoint this run starts from, if any.
    pub fn depends_on(&self) -> Option<Run> {
        let init = match self.kind {
            RunKind::MetaTrain { .. } => return None,
            RunKind::Finetune { init, .. } | RunKind::ZeroShot { init } => init,
        };
        match init {
            Init::Bert => None,
            Init::MetaBert {
                num_domain,
                num_train_task,
            } => Some(Run {
                kind: RunKind::MetaTrain {
                    num_domain,
                    num_train_task,
                },
                seed: self.seed,
            }),
        }
    }
}

/// Every run of `preset` for the given seeds, seed by seed, so that an interrupted reproduce
/// has complete results for its first seeds; within a seed every meta-training run comes
/// before the runs that start from its checkpoint.
pub fn plan(preset: &Preset, seeds: &[u64]) -> Vec<Run> {
    let meta_settings: Vec<(DomainCount, usize)> = preset
        .num_train_tasks
        .iter()
        .flat_map(|&num_train_task| {
            preset
                .num_domains
                .iter()
                .map(move |&num_domain| (num_domain, num_train_task))
        })
        .collect();
    let inits = std::iter::once(Init::Bert).chain(meta_settings.iter().map(
        |&(num_domain, num_train_task)| Init::MetaBert {
            num_domain,
            num_train_task,
        },
    ));
    let inits: Vec<Init> = inits.collect();
    let mut runs = Vec::new();
    for &seed in seeds {
        let mut push = |kind| runs.push(Run { kind, seed });
        for &(num_domain, num_train_task) in &meta_settings {
            push(RunKind::MetaTrain {
                num_domain,
                num_train_task,
            });
        }
        for &init in &inits {
            push(RunKind::ZeroShot { init });
            for &num_domain in preset.num_domains {
                push(RunKind::Finetune { init, num_domain });
            }
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preset::PAPER;
    use std::collections::HashSet;

    #[test]
    fn paper_grid_has_the_references_runs() {
        let runs = plan(&PAPER, &[1, 2, 3]);
        let count = |predicate: fn(&RunKind) -> bool| {
            runs.iter().filter(|run| predicate(&run.kind)).count()
        };
        // Per seed: 3 task counts x 4 domain counts meta-trainings; BERT and 12 Meta-BERTs,
        // each fine-tuned on 4 domain counts and evaluated zero-shot once.
        assert_eq!(
            count(|kind| matches!(kind, RunKind::MetaTrain { .. })),
            3 * 12
        );
        assert_eq!(
            count(|kind| matches!(kind, RunKind::Finetune { .. })),
            3 * 13 * 4
        );
        assert_eq!(
            count(|kind| matches!(kind, RunKind::ZeroShot { .. })),
            3 * 13
        );
        let names: HashSet<String> = runs.iter().map(Run::name).collect();
        assert_eq!(names.len(), runs.len(), "run names are unique");
        assert!(names.contains("meta-dall-t100-s3"));
        assert!(names.contains("finetune-d5-meta-d1-t10-s2"));
        assert!(names.contains("zeroshot-bert-s1"));
    }

    #[test]
    fn every_dependency_runs_earlier() {
        let runs = plan(&PAPER, &[7, 8]);
        for (position, run) in runs.iter().enumerate() {
            if let Some(dependency) = run.depends_on() {
                let earlier = runs[..position].contains(&dependency);
                assert!(earlier, "{} runs before {}", run.name(), dependency.name());
            }
        }
    }
}
