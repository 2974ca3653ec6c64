//! Aggregates the runs' `results.json` over seeds into results/summary.md and summary.csv.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use crate::contract::{FinetuneResults, RESULTS_FILE, SplitMetrics, read_results};
use crate::plan::{Init, Run, RunKind};
use crate::preset::DomainCount;

/// How a model was scored on the test split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// After fine-tuning on the training split of `num_domain` domains (final epoch).
    Finetune { num_domain: DomainCount },
    /// As it was, without training.
    ZeroShot,
}

/// One row of the summary: a model and how it was scored, over every seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Setting {
    pub mode: Mode,
    pub init: Init,
}

/// Mean and sample standard deviation (n - 1) of one metric over seeds; no deviation from a
/// single seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    pub mean: f64,
    pub std: Option<f64>,
}

impl Stat {
    /// Panics on an empty slice: a setting enters the summary only with at least one run.
    pub fn of(values: &[f64]) -> Stat {
        assert!(!values.is_empty(), "a statistic needs at least one value");
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.len() > 1).then(|| {
            let squares: f64 = values.iter().map(|value| (value - mean).powi(2)).sum();
            (squares / (n - 1.0)).sqrt()
        });
        Stat { mean, std }
    }

    fn display(&self) -> String {
        match self.std {
            Some(std) => format!("{:.3} ± {std:.3}", self.mean),
            None => format!("{:.3}", self.mean),
        }
    }
}

/// One setting's scores over the seeds that finished.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingSummary {
    pub setting: Setting,
    pub seeds: usize,
    pub accuracy: Stat,
    pub macro_f1: Stat,
    pub majority_baseline: Stat,
    /// Mean accuracy minus BERT's in the same mode; None for BERT itself or without BERT runs.
    pub delta_accuracy: Option<f64>,
    pub delta_macro_f1: Option<f64>,
}

/// Every setting with at least one finished run, and the runs not finished.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub rows: Vec<SettingSummary>,
    pub missing_runs: Vec<String>,
}

/// Reads the results of every fine-tuning and zero-shot run of `runs` found under `runs_dir`.
pub fn collect(runs: &[Run], runs_dir: &Path) -> Result<Summary> {
    let mut scores: HashMap<Setting, Vec<SplitMetrics>> = HashMap::new();
    let mut missing_runs = Vec::new();
    for run in runs {
        let run_dir = runs_dir.join(run.name());
        let setting = match run.kind {
            RunKind::MetaTrain { .. } => continue,
            RunKind::Finetune { init, num_domain } => Setting {
                mode: Mode::Finetune { num_domain },
                init,
            },
            RunKind::ZeroShot { init } => Setting {
                mode: Mode::ZeroShot,
                init,
            },
        };
        if !run_dir.join(RESULTS_FILE).is_file() {
            missing_runs.push(run.name());
            continue;
        }
        let results: FinetuneResults = read_results(&run_dir)?;
        let test = match setting.mode {
            Mode::Finetune { .. } => results.final_test(&run_dir)?,
            Mode::ZeroShot => results.zero_shot_test(&run_dir)?,
        };
        scores.entry(setting).or_default().push(test);
    }
    Ok(Summary {
        rows: summarize(scores),
        missing_runs,
    })
}

fn summarize(scores: HashMap<Setting, Vec<SplitMetrics>>) -> Vec<SettingSummary> {
    let stat = |metrics: &[SplitMetrics], field: fn(&SplitMetrics) -> f64| {
        Stat::of(&metrics.iter().map(field).collect::<Vec<_>>())
    };
    let mut rows: Vec<SettingSummary> = scores
        .iter()
        .map(|(&setting, metrics)| SettingSummary {
            setting,
            seeds: metrics.len(),
            accuracy: stat(metrics, |m| m.accuracy),
            macro_f1: stat(metrics, |m| m.macro_f1),
            majority_baseline: stat(metrics, |m| m.majority_baseline),
            delta_accuracy: None,
            delta_macro_f1: None,
        })
        .collect();
    rows.sort_by_key(|row| row.setting);
    let bert: HashMap<Mode, (f64, f64)> = rows
        .iter()
        .filter(|row| row.setting.init == Init::Bert)
        .map(|row| (row.setting.mode, (row.accuracy.mean, row.macro_f1.mean)))
        .collect();
    for row in rows.iter_mut().filter(|row| row.setting.init != Init::Bert) {
        if let Some(&(accuracy, macro_f1)) = bert.get(&row.setting.mode) {
            row.delta_accuracy = Some(row.accuracy.mean - accuracy);
            row.delta_macro_f1 = Some(row.macro_f1.mean - macro_f1);
        }
    }
    rows
}

/// What the summary's header says about how the runs were made.
#[derive(Debug, Clone)]
pub struct RunDescription {
    pub preset: String,
    pub bert_model: String,
    pub data: String,
    pub seeds: Vec<u64>,
    pub runs_dir: String,
}

fn init_columns(init: Init) -> (&'static str, String, String) {
    match init {
        Init::Bert => ("BERT", "–".to_owned(), "–".to_owned()),
        Init::MetaBert {
            num_domain,
            num_train_task,
        } => (
            "Meta-BERT",
            num_domain.to_string(),
            num_train_task.to_string(),
        ),
    }
}

fn signed(delta: Option<f64>) -> String {
    delta.map_or_else(|| "–".to_owned(), |delta| format!("{delta:+.3}"))
}

impl Summary {
    /// Markdown: one table per fine-tuning D and one for zero-shot, each row a model.
    pub fn to_markdown(&self, description: &RunDescription) -> String {
        let mut out = String::new();
        let seeds: Vec<String> = description.seeds.iter().map(u64::to_string).collect();
        let _ = writeln!(
            out,
            "# Reproduction summary: preset `{}`\n",
            description.preset
        );
        let _ = writeln!(
            out,
            "Model `{}`, data `{}`, seeds {}; runs in `{}`. Scores are on the test split \
             (the held-out test domains), mean ± sample standard deviation over seeds. \
             Δ is Meta-BERT's mean minus BERT's in the same table. A Meta-BERT row is the \
             checkpoint meta-trained on D domains with the given number of tasks, chosen on \
             validation tasks from the training domains.\n",
            description.bert_model,
            description.data,
            seeds.join(", "),
            description.runs_dir
        );
        let mut modes: Vec<Mode> = self.rows.iter().map(|row| row.setting.mode).collect();
        modes.dedup();
        for mode in modes {
            match mode {
                Mode::Finetune { num_domain } => {
                    let _ = writeln!(
                        out,
                        "## Fine-tuned on D = {num_domain} training domain(s), final epoch\n"
                    );
                }
                Mode::ZeroShot => {
                    let _ = writeln!(out, "## Zero-shot (no fine-tuning)\n");
                }
            }
            out.push_str(
                "| model | meta-train D | meta-train tasks | seeds | accuracy | macro-F1 \
                 | majority baseline | Δ accuracy | Δ macro-F1 |\n\
                 |---|---|---|---|---|---|---|---|---|\n",
            );
            for row in self.rows.iter().filter(|row| row.setting.mode == mode) {
                let (model, meta_domains, meta_tasks) = init_columns(row.setting.init);
                let _ = writeln!(
                    out,
                    "| {model} | {meta_domains} | {meta_tasks} | {} | {} | {} | {} | {} | {} |",
                    row.seeds,
                    row.accuracy.display(),
                    row.macro_f1.display(),
                    row.majority_baseline.display(),
                    signed(row.delta_accuracy),
                    signed(row.delta_macro_f1),
                );
            }
            out.push('\n');
        }
        if !self.missing_runs.is_empty() {
            let _ = writeln!(
                out,
                "## Runs without results ({})\n\n{}\n",
                self.missing_runs.len(),
                self.missing_runs.join(", ")
            );
        }
        out
    }

    /// CSV, one row per setting; an empty std where only one seed finished.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "mode,model,meta_num_domain,meta_num_train_task,finetune_num_domain,seeds,\
             accuracy_mean,accuracy_std,macro_f1_mean,macro_f1_std,majority_baseline_mean,\
             delta_accuracy_vs_bert,delta_macro_f1_vs_bert\n",
        );
        let number = |value: Option<f64>| value.map_or_else(String::new, |v| format!("{v:.6}"));
        for row in &self.rows {
            let (mode, finetune_domains) = match row.setting.mode {
                Mode::Finetune { num_domain } => ("finetune", num_domain.to_string()),
                Mode::ZeroShot => ("zero-shot", String::new()),
            };
            let (model, meta_domains, meta_tasks) = match row.setting.init {
                Init::Bert => ("bert", String::new(), String::new()),
                Init::MetaBert {
                    num_domain,
                    num_train_task,
                } => (
                    "meta-bert",
                    num_domain.to_string(),
                    num_train_task.to_string(),
                ),
            };
            let _ = writeln!(
                out,
                "{mode},{model},{meta_domains},{meta_tasks},{finetune_domains},{},{},{},{},{},{},{},{}",
                row.seeds,
                number(Some(row.accuracy.mean)),
                number(row.accuracy.std),
                number(Some(row.macro_f1.mean)),
                number(row.macro_f1.std),
                number(Some(row.majority_baseline.mean)),
                number(row.delta_accuracy),
                number(row.delta_macro_f1),
            );
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::plan::plan;
    use crate::preset::{PAPER, Preset};
    use std::fs;

    /// A one-D, one-task-count grid: BERT and one Meta-BERT, fine-tuned on D = 1.
    pub(crate) const TINY: Preset = Preset {
        name: "tiny",
        seeds: 3,
        num_domains: &[DomainCount::Count(1)],
        num_train_tasks: &[10],
        ..PAPER
    };

    pub(crate) fn write_finetune_results(run_dir: &Path, accuracy: f64, macro_f1: f64) {
        fs::create_dir_all(run_dir).unwrap();
        let metrics = |accuracy: f64| serde_json::json!({"accuracy": accuracy, "macro_f1": macro_f1, "majority_baseline": 0.8});
        let results = serde_json::json!({
            "epochs": [
                {"epoch": 1, "validation": metrics(0.1), "test": metrics(0.1)},
                {"epoch": 2, "validation": metrics(0.9), "test": metrics(accuracy)}
            ],
            "zero_shot": {"test": metrics(accuracy)}
        });
        fs::write(run_dir.join(RESULTS_FILE), results.to_string()).unwrap();
    }

    #[test]
    fn mean_and_sample_std_match_hand_computed_values() {
        let stat = Stat::of(&[0.7, 0.8, 0.9]);
        assert!((stat.mean - 0.8).abs() < 1e-12);
        // squares 0.01 + 0 + 0.01, over n - 1 = 2: sqrt(0.01) = 0.1
        assert!((stat.std.unwrap() - 0.1).abs() < 1e-12);
        let stat = Stat::of(&[1.0, 2.0, 4.0, 5.0]);
        assert_eq!(stat.mean, 3.0);
        // (4 + 1 + 1 + 4) / 3 = 10 / 3
        assert!((stat.std.unwrap() - (10.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(
            Stat::of(&[0.5]),
            Stat {
                mean: 0.5,
                std: None
            }
        );
    }

    #[test]
    fn aggregates_seeds_and_compares_meta_bert_with_bert() {
        let dir = tempfile::tempdir().unwrap();
        let runs = plan(&TINY, &[1, 2, 3]);
        let scores = [
            ("finetune-d1-bert", [0.70, 0.80, 0.90], 0.6),
            ("finetune-d1-meta-d1-t10", [0.80, 0.85, 0.90], 0.7),
            ("zeroshot-bert", [0.50, 0.50, 0.50], 0.3),
        ];
        for (prefix, accuracies, macro_f1) in scores {
            for (seed, accuracy) in (1..=3).zip(accuracies) {
                write_finetune_results(
                    &dir.path().join(format!("{prefix}-s{seed}")),
                    accuracy,
                    macro_f1,
                );
            }
        }
        let summary = collect(&runs, dir.path()).unwrap();

        let row = |mode, init| {
            summary
                .rows
                .iter()
                .find(|row| row.setting == Setting { mode, init })
                .unwrap_or_else(|| panic!("no row for {mode:?} {init:?}"))
        };
        let finetune = Mode::Finetune {
            num_domain: DomainCount::Count(1),
        };
        let meta = Init::MetaBert {
            num_domain: DomainCount::Count(1),
            num_train_task: 10,
        };
        let bert_row = row(finetune, Init::Bert);
        assert_eq!(bert_row.seeds, 3);
        assert!((bert_row.accuracy.std.unwrap() - 0.1).abs() < 1e-12);
        assert_eq!(bert_row.delta_accuracy, None);
        let meta_row = row(finetune, meta);
        assert!((meta_row.accuracy.mean - 0.85).abs() < 1e-12);
        assert!((meta_row.accuracy.std.unwrap() - 0.05).abs() < 1e-12);
        assert!((meta_row.delta_accuracy.unwrap() - 0.05).abs() < 1e-12);
        assert!((meta_row.delta_macro_f1.unwrap() - 0.1).abs() < 1e-12);
        assert!((meta_row.majority_baseline.mean - 0.8).abs() < 1e-12);
        assert_eq!(row(Mode::ZeroShot, Init::Bert).accuracy.std, Some(0.0));
        assert_eq!(
            summary.missing_runs,
            [
                "zeroshot-meta-d1-t10-s1",
                "zeroshot-meta-d1-t10-s2",
                "zeroshot-meta-d1-t10-s3"
            ]
        );

        let markdown = summary.to_markdown(&RunDescription {
            preset: "tiny".into(),
            bert_model: "m".into(),
            data: "d.json".into(),
            seeds: vec![1, 2, 3],
            runs_dir: "runs/tiny".into(),
        });
        assert!(markdown.contains("| Meta-BERT | 1 | 10 | 3 | 0.850 ± 0.050 | 0.700 ± 0.000 | 0.800 ± 0.000 | +0.050 | +0.100 |"), "{markdown}");
        assert!(markdown.contains("## Zero-shot"), "{markdown}");
        assert!(markdown.contains("zeroshot-meta-d1-t10-s2"), "{markdown}");

        let csv = summary.to_csv();
        assert_eq!(csv.lines().count(), 1 + 3, "{csv}");
        assert!(csv.contains("finetune,meta-bert,1,10,1,3,0.850000,0.050000,0.700000,0.000000,0.800000,0.050000,0.100000"), "{csv}");
        assert!(
            csv.contains("zero-shot,bert,,,,3,0.500000,0.000000,"),
            "{csv}"
        );
    }

    #[test]
    fn a_results_file_without_epochs_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let runs = plan(&TINY, &[1]);
        let run_dir = dir.path().join("finetune-d1-bert-s1");
        fs::create_dir_all(&run_dir).unwrap();
        fs::write(run_dir.join(RESULTS_FILE), r#"{"epochs": []}"#).unwrap();
        let error = collect(&runs, dir.path()).unwrap_err();
        assert!(error.to_string().contains("finetune-d1-bert-s1"), "{error}");
    }
}
