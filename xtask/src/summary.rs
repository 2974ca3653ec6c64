//! Aggregates the runs' `results.json` over seeds into results/summary.md and summary.csv:
//! per setting the mean, sample standard deviation and 95 % t-interval over seeds; per
//! Meta-BERT setting the paired difference from BERT seed by seed, its t-interval over seeds and
//! a bootstrap interval over the test reviews.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Result, bail};

use crate::contract::{FinetuneResults, RESULTS_FILE, SplitMetrics, TestPredictions, read_results};
use crate::plan::{Init, Run, RunKind};
use crate::preset::DomainCount;
use crate::stats::{
    BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, Interval, Metric, PairedPrediction, Stat, accuracy,
    bootstrap_difference, macro_f1,
};

/// How a model was scored on the test split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// After fine-tuning on the training split of `num_domain` domains (final epoch).
    Finetune { num_domain: DomainCount },
    /// As it was, without training.
    ZeroShot,
}

impl Mode {
    /// The seed paper's reported gain of Meta-BERT over BERT in test accuracy, in percent, for
    /// the tables' comparison: +2.2 % in low-resource fine-tuning, +5.7 % zero-shot.
    pub fn paper_delta_accuracy_percent(&self) -> f64 {
        match self {
            Mode::Finetune { .. } => 2.2,
            Mode::ZeroShot => 5.7,
        }
    }
}

/// One row of the summary: a model and how it was scored, over every seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Setting {
    pub mode: Mode,
    pub init: Init,
}

/// What one finished run scored.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedScores {
    pub seed: u64,
    /// The test scores the row reports: final epoch, or before training for zero-shot.
    pub test: SplitMetrics,
    /// Test accuracy after each fine-tuning epoch (1, 2, ...); empty for zero-shot.
    pub epoch_accuracy: Vec<(usize, f64)>,
    /// Per-review test predictions of the scored model, when the run wrote them.
    pub predictions: Option<TestPredictions>,
}

/// A Meta-BERT setting's difference from BERT in one seed (same seed, same splits).
#[derive(Debug, Clone, PartialEq)]
pub struct SeedDelta {
    pub seed: u64,
    pub accuracy: f64,
    pub macro_f1: f64,
    /// Bootstrap intervals over this seed's test reviews, when both runs wrote predictions.
    pub accuracy_bootstrap: Option<Interval>,
    pub macro_f1_bootstrap: Option<Interval>,
}

/// A difference over seeds: its mean, deviation and t-interval, and the bootstrap interval of
/// its mean over the test reviews of every seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeltaStat {
    pub over_seeds: Stat,
    pub bootstrap: Option<Interval>,
}

impl DeltaStat {
    /// Whether the difference is told apart from zero: both its t-interval over seeds (the
    /// noise of meta-training and fine-tuning) and, when there are predictions, its bootstrap
    /// interval over test reviews (the noise of which reviews were drawn) exclude 0.
    pub fn verdict(&self) -> Verdict {
        match self.over_seeds.interval {
            None => Verdict::OneSeed,
            Some(interval) => {
                let bootstrap_agrees = self.bootstrap.is_none_or(|bootstrap| {
                    bootstrap.excludes_zero() && (bootstrap.low > 0.0) == (interval.low > 0.0)
                });
                if interval.excludes_zero() && bootstrap_agrees {
                    Verdict::Yes
                } else {
                    Verdict::No
                }
            }
        }
    }
}

/// The "distinguishable from zero" column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Yes,
    No,
    /// One seed gives no interval over seeds.
    OneSeed,
}

impl Verdict {
    fn text(self) -> &'static str {
        match self {
            Verdict::Yes => "yes",
            Verdict::No => "no",
            Verdict::OneSeed => "cannot tell (1 seed)",
        }
    }

    fn csv(self) -> &'static str {
        match self {
            Verdict::Yes => "yes",
            Verdict::No => "no",
            Verdict::OneSeed => "",
        }
    }
}

/// A Meta-BERT setting against BERT in the same mode, over the seeds both finished.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub per_seed: Vec<SeedDelta>,
    pub accuracy: DeltaStat,
    pub macro_f1: DeltaStat,
}

/// One setting's scores over the seeds that finished.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingSummary {
    pub setting: Setting,
    pub accuracy: Stat,
    pub macro_f1: Stat,
    pub majority_baseline: Stat,
    /// Against BERT; None for BERT itself or without BERT runs.
    pub comparison: Option<Comparison>,
    /// Every finished seed, in seed order.
    pub runs: Vec<SeedScores>,
}

impl SettingSummary {
    pub fn seeds(&self) -> usize {
        self.runs.len()
    }
}

/// Every setting with at least one finished run, and the runs not finished.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub rows: Vec<SettingSummary>,
    pub missing_runs: Vec<String>,
}

impl Summary {
    /// The row of `setting`, if any run of it finished.
    pub fn row(&self, setting: Setting) -> Option<&SettingSummary> {
        self.rows.iter().find(|row| row.setting == setting)
    }
}

/// Reads the results of every fine-tuning and zero-shot run of `runs` found under `runs_dir`.
pub fn collect(runs: &[Run], runs_dir: &Path) -> Result<Summary> {
    let mut scores: BTreeMap<Setting, Vec<SeedScores>> = BTreeMap::new();
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
        let mut epoch_accuracy: Vec<(usize, f64)> = results
            .epochs
            .iter()
            .map(|epoch| (epoch.epoch, epoch.test.accuracy))
            .collect();
        epoch_accuracy.sort_by_key(|&(epoch, _)| epoch);
        scores.entry(setting).or_default().push(SeedScores {
            seed: run.seed,
            test,
            epoch_accuracy,
            predictions: results.test_predictions,
        });
    }
    Ok(Summary {
        rows: summarize(scores)?,
        missing_runs,
    })
}

fn summarize(scores: BTreeMap<Setting, Vec<SeedScores>>) -> Result<Vec<SettingSummary>> {
    let stat = |runs: &[SeedScores], field: fn(&SplitMetrics) -> f64| {
        Stat::of(&runs.iter().map(|run| field(&run.test)).collect::<Vec<_>>())
    };
    let bert: HashMap<Mode, &[SeedScores]> = scores
        .iter()
        .filter(|(setting, _)| setting.init == Init::Bert)
        .map(|(setting, runs)| (setting.mode, runs.as_slice()))
        .collect();
    scores
        .iter()
        .map(|(&setting, runs)| {
            let comparison = match (setting.init, bert.get(&setting.mode)) {
                (Init::MetaBert { .. }, Some(bert)) => compare(bert, runs)?,
                _ => None,
            };
            let mut runs = runs.clone();
            runs.sort_by_key(|run| run.seed);
            Ok(SettingSummary {
                setting,
                accuracy: stat(&runs, |m| m.accuracy),
                macro_f1: stat(&runs, |m| m.macro_f1),
                majority_baseline: stat(&runs, |m| m.majority_baseline),
                comparison,
                runs,
            })
        })
        .collect()
}

/// The reviews of one seed as both models predicted them; an error if the runs scored
/// different reviews.
fn paired_predictions(
    seed: u64,
    bert: &TestPredictions,
    meta: &TestPredictions,
) -> Result<Vec<PairedPrediction>> {
    if bert.review_index != meta.review_index || bert.label != meta.label {
        bail!("seed {seed}: BERT and Meta-BERT were scored on different test reviews");
    }
    if bert.predicted.len() != bert.label.len() || meta.predicted.len() != meta.label.len() {
        bail!("seed {seed}: a run wrote a prediction list as long as its label list");
    }
    Ok(bert
        .label
        .iter()
        .zip(bert.predicted.iter().zip(&meta.predicted))
        .map(|(&label, (&baseline, &candidate))| PairedPrediction {
            label,
            baseline,
            candidate,
        })
        .collect())
}

/// Meta-BERT minus BERT seed by seed, over the seeds both finished; None if there are none.
fn compare(bert: &[SeedScores], meta: &[SeedScores]) -> Result<Option<Comparison>> {
    let mut per_seed = Vec::new();
    // Per paired seed, its reviews; None as soon as one seed lacks predictions.
    let mut reviews: Option<Vec<Vec<PairedPrediction>>> = Some(Vec::new());
    let mut meta: Vec<&SeedScores> = meta.iter().collect();
    meta.sort_by_key(|run| run.seed);
    for meta_run in meta {
        let Some(bert_run) = bert.iter().find(|run| run.seed == meta_run.seed) else {
            continue;
        };
        let paired = match (&bert_run.predictions, &meta_run.predictions) {
            (Some(bert), Some(meta)) => Some(paired_predictions(meta_run.seed, bert, meta)?),
            _ => None,
        };
        let seed_bootstrap = |metric: Metric| {
            paired.as_ref().map(|paired| {
                bootstrap_difference(&[paired], metric, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED)
            })
        };
        per_seed.push(SeedDelta {
            seed: meta_run.seed,
            accuracy: meta_run.test.accuracy - bert_run.test.accuracy,
            macro_f1: meta_run.test.macro_f1 - bert_run.test.macro_f1,
            accuracy_bootstrap: seed_bootstrap(accuracy),
            macro_f1_bootstrap: seed_bootstrap(macro_f1),
        });
        reviews = match (reviews, paired) {
            (Some(mut all), Some(paired)) => {
                all.push(paired);
                Some(all)
            }
            _ => None,
        };
    }
    if per_seed.is_empty() {
        return Ok(None);
    }
    let delta = |field: fn(&SeedDelta) -> f64, metric: Metric| {
        let values: Vec<f64> = per_seed.iter().map(field).collect();
        DeltaStat {
            over_seeds: Stat::of(&values),
            bootstrap: reviews.as_ref().map(|reviews| {
                let seeds: Vec<&[PairedPrediction]> = reviews.iter().map(Vec::as_slice).collect();
                bootstrap_difference(&seeds, metric, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED)
            }),
        }
    };
    Ok(Some(Comparison {
        accuracy: delta(|seed| seed.accuracy, accuracy),
        macro_f1: delta(|seed| seed.macro_f1, macro_f1),
        per_seed,
    }))
}

/// What the summary's header says about how the runs were made.
#[derive(Debug, Clone)]
pub struct RunDescription {
    pub preset: String,
    pub bert_model: String,
    pub data: String,
    /// One line on how the review file differs from the reference's, when it does.
    pub data_note: Option<String>,
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

fn mean_std(stat: &Stat) -> String {
    match stat.std {
        Some(std) => format!("{:.3} ± {std:.3}", stat.mean),
        None => format!("{:.3}", stat.mean),
    }
}

fn interval(interval: Option<Interval>) -> String {
    interval.map_or_else(
        || "–".to_owned(),
        |interval| format!("[{:.3}, {:.3}]", interval.low, interval.high),
    )
}

fn signed_interval(interval: Option<Interval>) -> String {
    interval.map_or_else(
        || "–".to_owned(),
        |interval| format!("[{:+.3}, {:+.3}]", interval.low, interval.high),
    )
}

fn mode_heading(mode: Mode) -> String {
    match mode {
        Mode::Finetune { num_domain } => {
            format!("## Fine-tuned on D = {num_domain} training domain(s), final epoch\n")
        }
        Mode::ZeroShot => "## Zero-shot (no fine-tuning)\n".to_owned(),
    }
}

const HOW_TO_READ: &str = "How to read the tables: scores are on the test split (the held-out \
test domains), as mean ± sample standard deviation over seeds, with the 95 % Student-t interval \
of the mean. A Meta-BERT row is the checkpoint meta-trained on D domains with the given number \
of tasks, chosen on validation tasks from the training domains. Δ is Meta-BERT minus BERT in \
the same seed (same splits, same fine-tuning batches' seed), then averaged over seeds: its \
t-interval measures the noise of meta-training and fine-tuning across seeds; its bootstrap \
interval resamples the test reviews of every seed (paired, 4000 resamples) and measures the \
noise of which reviews the test set holds. Δ is distinguishable from zero when both intervals \
exclude it. The seed paper's gains are its reported accuracy improvements of Meta-BERT over \
BERT, on the reference data and sizes.";

impl Summary {
    /// Markdown: per fine-tuning D and for zero-shot, a table of scores and one of Δ; then
    /// every seed's Δ.
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
            "Model `{}`, data `{}`, seeds {}; runs in `{}`.\n",
            description.bert_model,
            description.data,
            seeds.join(", "),
            description.runs_dir
        );
        if let Some(note) = &description.data_note {
            let _ = writeln!(out, "**Data:** {note}\n");
        }
        let _ = writeln!(out, "{HOW_TO_READ}\n");
        let mut modes: Vec<Mode> = self.rows.iter().map(|row| row.setting.mode).collect();
        modes.dedup();
        for &mode in &modes {
            out.push_str(&mode_heading(mode));
            out.push_str(
                "\n| model | meta-train D | meta-train tasks | seeds | accuracy | 95 % interval \
                 | macro-F1 | 95 % interval | majority baseline |\n\
                 |---|---|---|---|---|---|---|---|---|\n",
            );
            let rows: Vec<&SettingSummary> = self
                .rows
                .iter()
                .filter(|row| row.setting.mode == mode)
                .collect();
            for row in &rows {
                let (model, meta_domains, meta_tasks) = init_columns(row.setting.init);
                let _ = writeln!(
                    out,
                    "| {model} | {meta_domains} | {meta_tasks} | {} | {} | {} | {} | {} | {} |",
                    row.seeds(),
                    mean_std(&row.accuracy),
                    interval(row.accuracy.interval),
                    mean_std(&row.macro_f1),
                    interval(row.macro_f1.interval),
                    mean_std(&row.majority_baseline),
                );
            }
            let compared: Vec<(&SettingSummary, &Comparison)> = rows
                .iter()
                .filter_map(|row| row.comparison.as_ref().map(|comparison| (*row, comparison)))
                .collect();
            if !compared.is_empty() {
                out.push_str(
                    "\n| Meta-BERT − BERT | meta-train D | meta-train tasks | paired seeds \
                     | Δ accuracy | t-interval | bootstrap | distinguishable from 0 \
                     | seed paper's Δ accuracy | Δ macro-F1 | t-interval | bootstrap \
                     | distinguishable from 0 |\n\
                     |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
                );
                for (row, comparison) in compared {
                    let (_, meta_domains, meta_tasks) = init_columns(row.setting.init);
                    let (accuracy, macro_f1) = (&comparison.accuracy, &comparison.macro_f1);
                    let _ = writeln!(
                        out,
                        "| Δ | {meta_domains} | {meta_tasks} | {} | {} | {} | {} | {} | +{:.1} % \
                         | {} | {} | {} | {} |",
                        comparison.per_seed.len(),
                        signed_mean_std(&accuracy.over_seeds),
                        signed_interval(accuracy.over_seeds.interval),
                        signed_interval(accuracy.bootstrap),
                        accuracy.verdict().text(),
                        mode.paper_delta_accuracy_percent(),
                        signed_mean_std(&macro_f1.over_seeds),
                        signed_interval(macro_f1.over_seeds.interval),
                        signed_interval(macro_f1.bootstrap),
                        macro_f1.verdict().text(),
                    );
                }
            }
            out.push('\n');
        }
        self.per_seed_markdown(&mut out);
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

    fn per_seed_markdown(&self, out: &mut String) {
        let compared: Vec<(&SettingSummary, &Comparison)> = self
            .rows
            .iter()
            .filter_map(|row| row.comparison.as_ref().map(|comparison| (row, comparison)))
            .collect();
        if compared.is_empty() {
            return;
        }
        out.push_str(
            "## Δ seed by seed\n\nEach seed's bootstrap interval resamples that seed's test \
             reviews.\n\n\
             | table | meta-train D | meta-train tasks | seed | Δ accuracy | bootstrap \
             | Δ macro-F1 | bootstrap |\n|---|---|---|---|---|---|---|---|\n",
        );
        for (row, comparison) in compared {
            let table = match row.setting.mode {
                Mode::Finetune { num_domain } => format!("fine-tuned, D = {num_domain}"),
                Mode::ZeroShot => "zero-shot".to_owned(),
            };
            let (_, meta_domains, meta_tasks) = init_columns(row.setting.init);
            for seed in &comparison.per_seed {
                let _ = writeln!(
                    out,
                    "| {table} | {meta_domains} | {meta_tasks} | {} | {:+.3} | {} | {:+.3} | {} |",
                    seed.seed,
                    seed.accuracy,
                    signed_interval(seed.accuracy_bootstrap),
                    seed.macro_f1,
                    signed_interval(seed.macro_f1_bootstrap),
                );
            }
        }
        out.push('\n');
    }

    /// CSV: per setting one row over all seeds (`seed` = `all`) and one row per seed; Δ columns
    /// on Meta-BERT rows only; empty cells where a value does not exist (a deviation from one
    /// seed, a bootstrap without predictions).
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "mode,model,meta_num_domain,meta_num_train_task,finetune_num_domain,seed,seeds,\
             accuracy_mean,accuracy_std,accuracy_ci_low,accuracy_ci_high,\
             macro_f1_mean,macro_f1_std,macro_f1_ci_low,macro_f1_ci_high,majority_baseline_mean,\
             delta_accuracy_mean,delta_accuracy_std,delta_accuracy_t_low,delta_accuracy_t_high,\
             delta_accuracy_bootstrap_low,delta_accuracy_bootstrap_high,\
             delta_accuracy_distinguishable,\
             delta_macro_f1_mean,delta_macro_f1_std,delta_macro_f1_t_low,delta_macro_f1_t_high,\
             delta_macro_f1_bootstrap_low,delta_macro_f1_bootstrap_high,\
             delta_macro_f1_distinguishable,paper_delta_accuracy_percent\n",
        );
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
            let prefix = format!("{mode},{model},{meta_domains},{meta_tasks},{finetune_domains}");
            let paper = format!("{:.1}", row.setting.mode.paper_delta_accuracy_percent());
            let delta_cells = |delta: Option<&DeltaStat>| match delta {
                Some(delta) => [
                    number(Some(delta.over_seeds.mean)),
                    number(delta.over_seeds.std),
                    number(delta.over_seeds.interval.map(|i| i.low)),
                    number(delta.over_seeds.interval.map(|i| i.high)),
                    number(delta.bootstrap.map(|i| i.low)),
                    number(delta.bootstrap.map(|i| i.high)),
                    delta.verdict().csv().to_owned(),
                ]
                .join(","),
                None => ",,,,,,".to_owned(),
            };
            let comparison = row.comparison.as_ref();
            let _ = writeln!(
                out,
                "{prefix},all,{},{},{},{},{},{},{}",
                row.seeds(),
                stat_cells(&row.accuracy),
                stat_cells(&row.macro_f1),
                number(Some(row.majority_baseline.mean)),
                delta_cells(comparison.map(|c| &c.accuracy)),
                delta_cells(comparison.map(|c| &c.macro_f1)),
                if comparison.is_some() { &paper } else { "" },
            );
            for run in &row.runs {
                let seed_delta =
                    comparison.and_then(|c| c.per_seed.iter().find(|delta| delta.seed == run.seed));
                let seed_cells = |delta: Option<(f64, Option<Interval>)>| match delta {
                    Some((value, bootstrap)) => format!(
                        "{},,,,{},{},",
                        number(Some(value)),
                        number(bootstrap.map(|i| i.low)),
                        number(bootstrap.map(|i| i.high)),
                    ),
                    None => ",,,,,,".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "{prefix},{},1,{},,,,{},,,,{},{},{},{}",
                    run.seed,
                    number(Some(run.test.accuracy)),
                    number(Some(run.test.macro_f1)),
                    number(Some(run.test.majority_baseline)),
                    seed_cells(seed_delta.map(|d| (d.accuracy, d.accuracy_bootstrap))),
                    seed_cells(seed_delta.map(|d| (d.macro_f1, d.macro_f1_bootstrap))),
                    if seed_delta.is_some() { &paper } else { "" },
                );
            }
        }
        out
    }
}

fn number(value: Option<f64>) -> String {
    value.map_or_else(String::new, |value| format!("{value:.6}"))
}

/// mean, std, interval low, interval high.
fn stat_cells(stat: &Stat) -> String {
    [
        number(Some(stat.mean)),
        number(stat.std),
        number(stat.interval.map(|i| i.low)),
        number(stat.interval.map(|i| i.high)),
    ]
    .join(",")
}

fn signed_mean_std(stat: &Stat) -> String {
    match stat.std {
        Some(std) => format!("{:+.3} ± {std:.3}", stat.mean),
        None => format!("{:+.3}", stat.mean),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::plan::plan;
    use crate::preset::{PAPER, Preset};
    use crate::stats::t_quantile;
    use std::fs;

    /// A one-D, one-task-count grid: BERT and one Meta-BERT, fine-tuned on D = 1.
    pub(crate) const TINY: Preset = Preset {
        name: "tiny",
        seeds: 3,
        num_domains: &[DomainCount::Count(1)],
        num_train_tasks: &[10],
        ..PAPER
    };

    fn metrics(accuracy: f64, macro_f1: f64) -> serde_json::Value {
        serde_json::json!({"accuracy": accuracy, "macro_f1": macro_f1, "majority_baseline": 0.8})
    }

    /// A fine-tuning run's results: epoch 1 scores 0.1 below epoch 2, the final one.
    pub(crate) fn write_finetune_results(run_dir: &Path, accuracy: f64, macro_f1: f64) {
        write_results(
            run_dir,
            serde_json::json!({
                "epochs": [
                    {"epoch": 2, "validation": metrics(0.9, 0.9), "test": metrics(accuracy, macro_f1)},
                    {"epoch": 1, "validation": metrics(0.1, 0.1), "test": metrics(accuracy - 0.1, macro_f1)}
                ]
            }),
        );
    }

    pub(crate) fn write_zero_shot_results(run_dir: &Path, accuracy: f64) {
        write_results(
            run_dir,
            serde_json::json!({"epochs": [], "zero_shot": {"test": metrics(accuracy, 0.4)}}),
        );
    }

    fn write_results(run_dir: &Path, results: serde_json::Value) {
        fs::create_dir_all(run_dir).unwrap();
        fs::write(run_dir.join(RESULTS_FILE), results.to_string()).unwrap();
    }

    fn row(summary: &Summary, mode: Mode, init: Init) -> &SettingSummary {
        summary
            .row(Setting { mode, init })
            .unwrap_or_else(|| panic!("no row for {mode:?} {init:?}"))
    }

    const FINETUNE_D1: Mode = Mode::Finetune {
        num_domain: DomainCount::Count(1),
    };
    const META: Init = Init::MetaBert {
        num_domain: DomainCount::Count(1),
        num_train_task: 10,
    };

    fn description() -> RunDescription {
        RunDescription {
            preset: "tiny".into(),
            bert_model: "m".into(),
            data: "d.json".into(),
            data_note: Some("a small file.".into()),
            seeds: vec![1, 2, 3],
            runs_dir: "runs/tiny".into(),
        }
    }

    #[test]
    fn aggregates_seeds_and_pairs_meta_bert_with_bert_seed_by_seed() {
        let dir = tempfile::tempdir().unwrap();
        let runs = plan(&TINY, &[1, 2, 3]);
        let scores = [
            ("finetune-d1-bert", [0.70, 0.80, 0.90], 0.6),
            ("finetune-d1-meta-d1-t10", [0.80, 0.85, 0.90], 0.7),
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
        for seed in 1..=3 {
            write_zero_shot_results(&dir.path().join(format!("zeroshot-bert-s{seed}")), 0.5);
        }
        let summary = collect(&runs, dir.path()).unwrap();

        let bert_row = row(&summary, FINETUNE_D1, Init::Bert);
        assert_eq!(bert_row.seeds(), 3);
        assert!((bert_row.accuracy.std.unwrap() - 0.1).abs() < 1e-12);
        assert_eq!(bert_row.comparison, None);
        assert_eq!(bert_row.runs[1].epoch_accuracy.len(), 2);
        assert!((bert_row.runs[1].epoch_accuracy[0].1 - 0.7).abs() < 1e-12);
        let meta_row = row(&summary, FINETUNE_D1, META);
        assert!((meta_row.accuracy.mean - 0.85).abs() < 1e-12);
        assert!((meta_row.accuracy.std.unwrap() - 0.05).abs() < 1e-12);
        // Per-seed differences +0.10, +0.05, 0.00: mean 0.05, std 0.05, t-interval
        // 0.05 ± 4.302653 * 0.05 / sqrt(3) = 0.05 ± 0.124207.
        let comparison = meta_row.comparison.as_ref().unwrap();
        let deltas: Vec<f64> = comparison.per_seed.iter().map(|d| d.accuracy).collect();
        assert!(
            (deltas[0] - 0.10).abs() < 1e-12 && deltas[2].abs() < 1e-12,
            "{deltas:?}"
        );
        let over_seeds = comparison.accuracy.over_seeds;
        assert!((over_seeds.mean - 0.05).abs() < 1e-12);
        let half_width = t_quantile(0.95, 2) * 0.05 / 3f64.sqrt();
        assert!((half_width - 0.124207).abs() < 1e-6);
        assert!((over_seeds.interval.unwrap().high - 0.174207).abs() < 1e-6);
        assert_eq!(
            comparison.accuracy.bootstrap, None,
            "no predictions written"
        );
        assert_eq!(comparison.accuracy.verdict(), Verdict::No);
        assert!((comparison.macro_f1.over_seeds.mean - 0.1).abs() < 1e-12);
        assert_eq!(comparison.macro_f1.over_seeds.std, Some(0.0));
        // A constant difference has a zero-width interval that excludes 0.
        assert_eq!(comparison.macro_f1.verdict(), Verdict::Yes);
        assert_eq!(
            row(&summary, Mode::ZeroShot, Init::Bert).accuracy.std,
            Some(0.0)
        );
        assert_eq!(
            summary.missing_runs,
            [
                "zeroshot-meta-d1-t10-s1",
                "zeroshot-meta-d1-t10-s2",
                "zeroshot-meta-d1-t10-s3"
            ]
        );

        let markdown = summary.to_markdown(&description());
        for expected in [
            "**Data:** a small file.",
            "| Meta-BERT | 1 | 10 | 3 | 0.850 ± 0.050 | [0.726, 0.974] | 0.700 ± 0.000 | [0.700, 0.700] | 0.800 ± 0.000 |",
            "| Δ | 1 | 10 | 3 | +0.050 ± 0.050 | [-0.074, +0.174] | – | no | +2.2 % | +0.100 ± 0.000 | [+0.100, +0.100] | – | yes |",
            "| fine-tuned, D = 1 | 1 | 10 | 2 | +0.050 | – | +0.100 | – |",
            "## Zero-shot",
            "zeroshot-meta-d1-t10-s2",
        ] {
            assert!(markdown.contains(expected), "{expected}\n{markdown}");
        }

        let csv = summary.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 1 + 3 * 4, "{csv}");
        let columns = lines[0].split(',').count();
        assert!(
            lines.iter().all(|line| line.split(',').count() == columns),
            "{csv}"
        );
        assert!(csv.contains("finetune,meta-bert,1,10,1,all,3,0.850000,0.050000,0.725793,0.974207,0.700000,0.000000,0.700000,0.700000,0.800000,0.050000,0.050000,-0.074207,0.174207,,,no,0.100000,0.000000,0.100000,0.100000,,,yes,2.2"), "{csv}");
        assert!(csv.contains("finetune,meta-bert,1,10,1,3,1,0.900000,,,,0.700000,,,,0.800000,0.000000,,,,,,,0.100000,,,,,,,2.2"), "{csv}");
        assert!(
            csv.contains("zero-shot,bert,,,,all,3,0.500000,0.000000,"),
            "{csv}"
        );
    }

    /// Predictions of 10 reviews, all labelled 1: the model is right on the first `right`.
    fn predictions(right: usize) -> serde_json::Value {
        let predicted: Vec<usize> = (0..10).map(|review| usize::from(review < right)).collect();
        serde_json::json!({
            "review_index": (100..110).collect::<Vec<usize>>(),
            "label": vec![1; 10],
            "predicted": predicted,
            "probabilities": vec![[0.5, 0.5]; 10],
        })
    }

    #[test]
    fn bootstraps_over_the_test_reviews_of_each_seed() {
        let dir = tempfile::tempdir().unwrap();
        let runs = plan(&TINY, &[1, 2]);
        for seed in [1, 2] {
            for (name, right) in [("bert", 3), ("meta-d1-t10", 9)] {
                let run_dir = dir.path().join(format!("zeroshot-{name}-s{seed}"));
                write_results(
                    &run_dir,
                    serde_json::json!({
                        "zero_shot": {"test": metrics(right as f64 / 10.0, 0.5)},
                        "test_predictions": predictions(right),
                    }),
                );
            }
        }
        let summary = collect(&runs, dir.path()).unwrap();
        let comparison = row(&summary, Mode::ZeroShot, META)
            .comparison
            .clone()
            .unwrap();
        // Meta-BERT alone is right on 6 of 10 reviews, both on 3: a resample's difference is
        // the share of the 6 among 10 draws, Binomial(10, 0.6) / 10, whose 2.5 % and 97.5 %
        // quantiles are 0.3 and 0.9; both seeds are identical and resampled independently.
        let seed_interval = comparison.per_seed[0].accuracy_bootstrap.unwrap();
        assert!(
            (seed_interval.low - 0.3).abs() < 1e-9 && (seed_interval.high - 0.9).abs() < 1e-9,
            "{seed_interval:?}"
        );
        let pooled = comparison.accuracy.bootstrap.unwrap();
        assert!(pooled.low > 0.3 && pooled.high < 0.9, "{pooled:?}");
        assert_eq!(comparison.accuracy.verdict(), Verdict::Yes);
        let markdown = summary.to_markdown(&description());
        assert!(
            markdown.contains("| zero-shot | 1 | 10 | 1 | +0.600 | [+0.300, +0.900] |"),
            "{markdown}"
        );
        assert!(markdown.contains("| +5.7 % |"), "{markdown}");
    }

    #[test]
    fn predictions_of_different_reviews_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let runs = plan(&TINY, &[1]);
        let mut other = predictions(5);
        other["review_index"][0] = serde_json::json!(7);
        for (name, predictions) in [("bert", predictions(5)), ("meta-d1-t10", other)] {
            write_results(
                &dir.path().join(format!("zeroshot-{name}-s1")),
                serde_json::json!({
                    "zero_shot": {"test": metrics(0.5, 0.5)},
                    "test_predictions": predictions,
                }),
            );
        }
        let error = collect(&runs, dir.path()).unwrap_err().to_string();
        assert!(error.contains("different test reviews"), "{error}");
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
