//! The experiment grids `cargo xtask reproduce` runs: the ONE table to edit to resize them.

use std::fmt;

/// How many training domains a run uses: the `--num-domain` value of the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DomainCount {
    /// The given number of smallest training domains.
    Count(usize),
    /// Every training domain.
    All,
}

impl fmt::Display for DomainCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainCount::Count(count) => write!(f, "{count}"),
            DomainCount::All => f.write_str("all"),
        }
    }
}

/// Meta-training sizes, one field per `meta-bert meta-train` flag of the same name.
#[derive(Debug, Clone, PartialEq)]
pub struct MetaTrainSizes {
    pub epochs: usize,
    pub outer_batch_size: usize,
    pub inner_batch_size: usize,
    pub inner_update_step: usize,
    pub inner_update_step_eval: usize,
    pub num_support: usize,
    pub num_query: usize,
    pub num_test_task: usize,
    pub outer_update_lr: f64,
    pub inner_update_lr: f64,
    pub eval_every: usize,
}

/// Fine-tuning sizes, one field per `meta-bert finetune` flag of the same name.
#[derive(Debug, Clone, PartialEq)]
pub struct FinetuneSizes {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
}

/// One experiment grid with the sizes of every run in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Preset {
    pub name: &'static str,
    /// Seeds 1..=seeds unless `--seeds` says otherwise.
    pub seeds: u64,
    pub max_seq_len: usize,
    /// D values, used both for meta-training and for fine-tuning.
    pub num_domains: &'static [DomainCount],
    /// num_train_task values of meta-training.
    pub num_train_tasks: &'static [usize],
    pub meta_train: MetaTrainSizes,
    pub finetune: FinetuneSizes,
    /// The model, relative to the workspace root, used when that directory exists...
    pub local_model: Option<&'static str>,
    /// ...else this Hugging Face hub id (or path).
    pub hub_model: &'static str,
    /// The review file, relative to the workspace root, used when present; else
    /// `data/dataset.json`, fetched from the reference repository if missing.
    pub local_data: Option<&'static str>,
    /// One line for the summary on how `local_data` differs from the reference file, shown
    /// when it is the file used.
    pub local_data_note: Option<&'static str>,
}

/// The reference's sizes (pjlintw/Meta-BERT run_meta_training.py and run_finetuning.py defaults,
/// and its scripts' grid): for a GPU.
pub const PAPER: Preset = Preset {
    name: "paper",
    seeds: 3,
    max_seq_len: 256,
    num_domains: &[
        DomainCount::Count(1),
        DomainCount::Count(3),
        DomainCount::Count(5),
        DomainCount::All,
    ],
    num_train_tasks: &[10, 50, 100],
    meta_train: MetaTrainSizes {
        epochs: 3,
        outer_batch_size: 5,
        inner_batch_size: 16,
        inner_update_step: 10,
        inner_update_step_eval: 10,
        num_support: 80,
        num_query: 20,
        num_test_task: 3,
        outer_update_lr: 5e-5,
        inner_update_lr: 5e-5,
        eval_every: 2,
    },
    finetune: FinetuneSizes {
        epochs: 10,
        batch_size: 32,
        learning_rate: 5e-5,
    },
    local_model: None,
    hub_model: "bert-base-uncased",
    local_data: None,
    local_data_note: None,
};

/// One cell of the reference's grid at small sizes, on MiniLM, over 3 seeds: meta-training on
/// D = 1 with 40 tasks of 16 support + 8 query reviews, then BERT and Meta-BERT scored
/// zero-shot and fine-tuned for 2 epochs. Measured at under 20 minutes on a 2-core CPU after
/// the build (README, "Quick start").
pub const QUICK: Preset = Preset {
    name: "quick",
    seeds: 3,
    max_seq_len: 128,
    num_domains: &[DomainCount::Count(1)],
    num_train_tasks: &[40],
    meta_train: MetaTrainSizes {
        epochs: 1,
        outer_batch_size: 5,
        inner_batch_size: 16,
        inner_update_step: 1,
        inner_update_step_eval: 1,
        num_support: 16,
        num_query: 8,
        num_test_task: 3,
        outer_update_lr: 5e-5,
        inner_update_lr: 5e-5,
        eval_every: 2,
    },
    finetune: FinetuneSizes {
        epochs: 2,
        batch_size: 16,
        learning_rate: 5e-5,
    },
    local_model: Some("../shared/models/all-MiniLM-L6-v2"),
    hub_model: "sentence-transformers/all-MiniLM-L6-v2",
    local_data: Some("../shared/data/amazon-reviews/dataset.json"),
    local_data_note: Some(SHARED_DATA_NOTE),
};

/// How ../shared/data/amazon-reviews/dataset.json differs from the reference (its PROVENANCE.md).
const SHARED_DATA_NOTE: &str = "this is the small shared review file, not the paper's: 8,598 \
    reviews from 10 domains (the reference has 21,855 from 22), and its three test domains are \
    83 % positive, two of them (office_products, computer_&_video_games) lower-cased, \
    stop-word-stripped ARSC text (see ../shared/data/amazon-reviews/PROVENANCE.md); its scores \
    are not comparable with the paper's.";

/// Every preset `--preset` accepts.
static PRESETS: [Preset; 2] = [QUICK, PAPER];

/// The preset called `name`, for `--preset`.
pub fn preset_by_name(name: &str) -> Result<&'static Preset, String> {
    PRESETS
        .iter()
        .find(|preset| preset.name == name)
        .ok_or_else(|| format!("unknown preset `{name}`; choose quick or paper"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_found_by_name() {
        assert_eq!(preset_by_name("quick").unwrap(), &QUICK);
        assert_eq!(preset_by_name("paper").unwrap(), &PAPER);
        assert!(
            preset_by_name("huge")
                .unwrap_err()
                .contains("quick or paper")
        );
    }

    #[test]
    fn paper_grid_is_the_references() {
        assert_eq!(PAPER.num_train_tasks, &[10, 50, 100]);
        assert_eq!(PAPER.num_domains.len(), 4);
        assert_eq!(PAPER.num_domains[3].to_string(), "all");
        assert_eq!(
            (PAPER.meta_train.num_support, PAPER.meta_train.num_query),
            (80, 20)
        );
    }
}
