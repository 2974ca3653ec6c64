//! results/accuracy-vs-domains.svg: test accuracy against the fine-tuning D, BERT vs Meta-BERT.
//!
//! Written by hand rather than with a plotting crate: a few lines, axes and labels need no font
//! files or system libraries, and the SVG stays small enough to commit.

use std::fmt::Write as _;

use crate::plan::Init;
use crate::preset::DomainCount;
use crate::summary::{Mode, Setting, Summary};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 230.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
const COLORS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// One line of the plot: a mean (and deviation) per fine-tuning D, or none where no run finished.
struct Series {
    name: String,
    color: &'static str,
    dashed: bool,
    points: Vec<Option<(f64, Option<f64>)>>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The y-axis range: the data's span widened to whole tenths, within [0, 1].
fn y_range(series: &[Series]) -> (f64, f64) {
    let values: Vec<f64> = series
        .iter()
        .flat_map(|series| series.points.iter().flatten())
        .flat_map(|&(mean, std)| {
            let std = std.unwrap_or(0.0);
            [mean - std, mean + std]
        })
        .collect();
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !low.is_finite() {
        return (0.0, 1.0);
    }
    let low = ((low - 0.02) * 10.0).floor() / 10.0;
    let high = ((high + 0.02) * 10.0).ceil() / 10.0;
    (low.max(0.0), high.min(1.0).max(low.max(0.0) + 0.1))
}

/// BERT and, per number of meta-training tasks, the Meta-BERT meta-trained on the same D it is
/// fine-tuned on (both saw the same domains), with the majority baseline of the test split.
fn series(summary: &Summary, domains: &[DomainCount], num_train_tasks: &[usize]) -> Vec<Series> {
    let mean_accuracy = |init: Init, num_domain: DomainCount| {
        let mode = Mode::Finetune { num_domain };
        summary
            .rows
            .iter()
            .find(|row| row.setting == Setting { mode, init })
            .map(|row| (row.accuracy.mean, row.accuracy.std))
    };
    let mut all = vec![Series {
        name: "BERT".to_owned(),
        color: COLORS[0],
        dashed: false,
        points: domains
            .iter()
            .map(|&num_domain| mean_accuracy(Init::Bert, num_domain))
            .collect(),
    }];
    for (index, &num_train_task) in num_train_tasks.iter().enumerate() {
        all.push(Series {
            name: format!("Meta-BERT ({num_train_task} tasks)"),
            color: COLORS[(index + 1) % COLORS.len()],
            dashed: false,
            points: domains
                .iter()
                .map(|&num_domain| {
                    let init = Init::MetaBert {
                        num_domain,
                        num_train_task,
                    };
                    mean_accuracy(init, num_domain)
                })
                .collect(),
        });
    }
    all.push(Series {
        name: "majority baseline".to_owned(),
        color: "#7f7f7f",
        dashed: true,
        points: domains
            .iter()
            .map(|&num_domain| {
                summary
                    .rows
                    .iter()
                    .find(|row| row.setting.mode == Mode::Finetune { num_domain })
                    .map(|row| (row.majority_baseline.mean, None))
            })
            .collect(),
    });
    all
}

/// The SVG document.
pub fn accuracy_vs_domains(
    summary: &Summary,
    domains: &[DomainCount],
    num_train_tasks: &[usize],
) -> String {
    let all = series(summary, domains, num_train_tasks);
    let (low, high) = y_range(&all);
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let x = |index: usize| LEFT + plot_width * (index as f64 + 0.5) / domains.len().max(1) as f64;
    let y = |value: f64| TOP + plot_height * (high - value) / (high - low);

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r##"<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">Test accuracy after fine-tuning on D training domains</text>"#,
        LEFT + plot_width / 2.0
    );

    let step = if high - low <= 0.3 { 0.05 } else { 0.1 };
    let ticks = ((high - low) / step).round() as usize;
    for tick in 0..=ticks {
        let value = low + step * tick as f64;
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e0e0e0"/><text x="{}" y="{:.1}" text-anchor="end">{value:.2}</text>"##,
            LEFT + plot_width,
            LEFT - 8.0,
            y(value) + 4.0,
            y = y(value),
        );
    }
    for (index, num_domain) in domains.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{num_domain}</text>"#,
            x(index),
            TOP + plot_height + 20.0
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_width}" height="{plot_height}" fill="none" stroke="#333333"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">D (number of training domains)</text>"#,
        LEFT + plot_width / 2.0,
        HEIGHT - 15.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="18" y="{0}" text-anchor="middle" transform="rotate(-90 18 {0})">test accuracy</text>"#,
        TOP + plot_height / 2.0
    );

    for (rank, series) in all.iter().enumerate() {
        let name = escape(&series.name);
        let dash = if series.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = writeln!(svg, r#"<g class="series" data-series="{name}">"#);
        let points: Vec<String> = series
            .points
            .iter()
            .enumerate()
            .filter_map(|(index, point)| {
                point.map(|(mean, _)| format!("{:.1},{:.1}", x(index), y(mean)))
            })
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
            points.join(" "),
            series.color
        );
        for (index, point) in series.points.iter().enumerate() {
            let Some((mean, std)) = *point else { continue };
            if let Some(std) = std.filter(|std| *std > 0.0) {
                let _ = writeln!(
                    svg,
                    r#"<line x1="{0:.1}" x2="{0:.1}" y1="{1:.1}" y2="{2:.1}" stroke="{3}"/>"#,
                    x(index),
                    y((mean - std).max(low)),
                    y((mean + std).min(high)),
                    series.color
                );
            }
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{}"><title>{name}, D = {}: {mean:.3}</title></circle>"#,
                x(index),
                y(mean),
                series.color,
                domains[index]
            );
        }
        let legend_y = TOP + 10.0 + 22.0 * rank as f64;
        let legend_x = LEFT + plot_width + 16.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{legend_x}" x2="{}" y1="{legend_y}" y2="{legend_y}" stroke="{}" stroke-width="2"{dash}/><text x="{}" y="{}">{name}</text>"#,
            legend_x + 24.0,
            series.color,
            legend_x + 30.0,
            legend_y + 4.0
        );
        svg.push_str("</g>\n");
    }
    for (line, note) in [
        "Meta-BERT: meta-trained on",
        "the same D. Bars: ± 1 std",
        "over seeds.",
    ]
    .iter()
    .enumerate()
    {
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{}" font-size="11" fill="#555555">{note}</text>"##,
            LEFT + plot_width + 16.0,
            TOP + plot_height - 28.0 + 14.0 * line as f64
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::plan;
    use crate::preset::{PAPER, Preset};
    use crate::summary::collect;
    use crate::summary::tests::write_finetune_results;

    const TWO_DOMAINS: Preset = Preset {
        name: "two",
        num_domains: &[DomainCount::Count(1), DomainCount::All],
        num_train_tasks: &[10],
        ..PAPER
    };

    #[test]
    fn svg_is_well_formed_with_one_series_per_model_and_the_baseline() {
        let dir = tempfile::tempdir().unwrap();
        let runs = plan(&TWO_DOMAINS, &[1, 2]);
        for (name, accuracy) in [
            ("finetune-d1-bert", 0.70),
            ("finetune-dall-bert", 0.75),
            ("finetune-d1-meta-d1-t10", 0.80),
            ("finetune-dall-meta-dall-t10", 0.85),
            // Off the diagonal: in the summary, not in the plot.
            ("finetune-dall-meta-d1-t10", 0.30),
        ] {
            for seed in [1, 2] {
                let run_dir = dir.path().join(format!("{name}-s{seed}"));
                write_finetune_results(&run_dir, accuracy + 0.01 * seed as f64, 0.5);
            }
        }
        let summary = collect(&runs, dir.path()).unwrap();
        let svg = accuracy_vs_domains(
            &summary,
            TWO_DOMAINS.num_domains,
            TWO_DOMAINS.num_train_tasks,
        );

        let document = roxmltree::Document::parse(&svg).expect("the SVG is well-formed XML");
        let series: Vec<&str> = document
            .descendants()
            .filter(|node| node.attribute("class") == Some("series"))
            .filter_map(|node| node.attribute("data-series"))
            .collect();
        assert_eq!(
            series,
            ["BERT", "Meta-BERT (10 tasks)", "majority baseline"]
        );
        let titles: Vec<&str> = document
            .descendants()
            .filter(|node| node.has_tag_name("title"))
            .filter_map(|node| node.text())
            .collect();
        assert!(titles.contains(&"BERT, D = all: 0.765"), "{titles:?}");
        assert!(
            titles.contains(&"Meta-BERT (10 tasks), D = 1: 0.815"),
            "{titles:?}"
        );
        assert!(
            titles.contains(&"majority baseline, D = 1: 0.800"),
            "{titles:?}"
        );
        assert!(
            !titles.iter().any(|title| title.contains("0.315")),
            "{titles:?}"
        );
        let polylines = document
            .descendants()
            .filter(|node| node.has_tag_name("polyline"))
            .count();
        assert_eq!(polylines, 3);
    }

    #[test]
    fn y_range_covers_the_data_within_zero_and_one() {
        let one = |mean, std| Series {
            name: String::new(),
            color: COLORS[0],
            dashed: false,
            points: vec![Some((mean, std)), None],
        };
        assert_eq!(
            y_range(&[one(0.55, Some(0.1)), one(0.91, None)]),
            (0.4, 1.0)
        );
        assert_eq!(y_range(&[one(0.5, None)]), (0.4, 0.6));
        assert_eq!(y_range(&[]), (0.0, 1.0));
    }
}
