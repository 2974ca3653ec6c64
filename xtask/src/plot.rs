//! The summary's plots, as SVG drawn with `plotters` (its SVG backend writes text as `<text>`
//! elements, so no font files are needed):
//! - accuracy by fine-tuning epoch (epoch 0 = zero-shot), BERT against Meta-BERT, for each
//!   fine-tuning D: fast adaptation, what the seed paper is about;
//! - accuracy against the fine-tuning D, for presets with several D.
//!
//! Both show every seed's score as a small hollow dot, the mean over seeds as a filled dot on a
//! line with its 95 % t-interval as a bar, and the test split's majority baseline as a dashed
//! line.

use plotters::prelude::*;

use crate::plan::Init;
use crate::preset::DomainCount;
use crate::stats::{Interval, Stat};
use crate::summary::{Mode, Setting, Summary};

const WIDTH: u32 = 760;
const HEIGHT: u32 = 460;
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
];
const BASELINE_COLOR: RGBColor = RGBColor(127, 127, 127);

/// One model's scores at one x position: each seed's and their mean with its interval.
#[derive(Debug, Clone, PartialEq)]
struct Point {
    seeds: Vec<f64>,
    mean: f64,
    interval: Option<Interval>,
}

impl Point {
    /// None without any score.
    fn of(seeds: Vec<f64>) -> Option<Point> {
        if seeds.is_empty() {
            return None;
        }
        let stat = Stat::of(&seeds);
        Some(Point {
            seeds,
            mean: stat.mean,
            interval: stat.interval,
        })
    }
}

/// One model: a point (or none, where no run finished) per x position.
#[derive(Debug, Clone, PartialEq)]
struct Series {
    name: String,
    points: Vec<Option<Point>>,
}

/// A plot over categorical x positions 0..x_ticks.len().
struct Chart<'a> {
    title: &'a str,
    x_label: &'a str,
    x_ticks: Vec<String>,
    series: Vec<Series>,
    majority_baseline: Option<f64>,
}

fn meta_bert_name(num_train_task: usize) -> String {
    format!("Meta-BERT ({num_train_task} tasks)")
}

/// The majority baseline of the test split (the same test domains in every mode).
fn majority_baseline(summary: &Summary) -> Option<f64> {
    summary.rows.first().map(|row| row.majority_baseline.mean)
}

/// Test accuracy after each fine-tuning epoch on `num_domain` domains, epoch 0 being the
/// zero-shot score: BERT and, per number of meta-training tasks, the Meta-BERT meta-trained on
/// the same D (both saw the same domains). None when no fine-tuning run on this D finished.
pub fn accuracy_by_epoch(
    summary: &Summary,
    num_domain: DomainCount,
    num_train_tasks: &[usize],
) -> Option<String> {
    let mode = Mode::Finetune { num_domain };
    let epochs = summary
        .rows
        .iter()
        .filter(|row| row.setting.mode == mode)
        .flat_map(|row| &row.runs)
        .flat_map(|run| run.epoch_accuracy.iter().map(|&(epoch, _)| epoch))
        .max()?;
    let series_of = |name: String, init: Init| {
        let zero_shot = summary.row(Setting {
            mode: Mode::ZeroShot,
            init,
        });
        let finetuned = summary.row(Setting { mode, init });
        let points = (0..=epochs)
            .map(|epoch| {
                let seeds = if epoch == 0 {
                    zero_shot.map_or_else(Vec::new, |row| {
                        row.runs.iter().map(|run| run.test.accuracy).collect()
                    })
                } else {
                    finetuned.map_or_else(Vec::new, |row| {
                        row.runs
                            .iter()
                            .filter_map(|run| {
                                run.epoch_accuracy
                                    .iter()
                                    .find(|&&(at, _)| at == epoch)
                                    .map(|&(_, accuracy)| accuracy)
                            })
                            .collect()
                    })
                };
                Point::of(seeds)
            })
            .collect();
        Series { name, points }
    };
    let mut series = vec![series_of("BERT".to_owned(), Init::Bert)];
    series.extend(num_train_tasks.iter().map(|&num_train_task| {
        series_of(
            meta_bert_name(num_train_task),
            Init::MetaBert {
                num_domain,
                num_train_task,
            },
        )
    }));
    let title = format!("Test accuracy by fine-tuning epoch (D = {num_domain})");
    Some(draw(&Chart {
        title: &title,
        x_label: "fine-tuning epoch (0 = zero-shot)",
        x_ticks: (0..=epochs).map(|epoch| epoch.to_string()).collect(),
        series,
        majority_baseline: majority_baseline(summary),
    }))
}

/// Test accuracy after fine-tuning on each D: BERT and, per number of meta-training tasks, the
/// Meta-BERT meta-trained on the same D.
pub fn accuracy_vs_domains(
    summary: &Summary,
    domains: &[DomainCount],
    num_train_tasks: &[usize],
) -> String {
    let point = |init: Init, num_domain: DomainCount| {
        let row = summary.row(Setting {
            mode: Mode::Finetune { num_domain },
            init,
        })?;
        Point::of(row.runs.iter().map(|run| run.test.accuracy).collect())
    };
    let mut series = vec![Series {
        name: "BERT".to_owned(),
        points: domains
            .iter()
            .map(|&num_domain| point(Init::Bert, num_domain))
            .collect(),
    }];
    series.extend(num_train_tasks.iter().map(|&num_train_task| {
        Series {
            name: meta_bert_name(num_train_task),
            points: domains
                .iter()
                .map(|&num_domain| {
                    let init = Init::MetaBert {
                        num_domain,
                        num_train_task,
                    };
                    point(init, num_domain)
                })
                .collect(),
        }
    }));
    draw(&Chart {
        title: "Test accuracy after fine-tuning on D training domains",
        x_label: "D (number of training domains)",
        x_ticks: domains.iter().map(ToString::to_string).collect(),
        series,
        majority_baseline: majority_baseline(summary),
    })
}

/// The y-axis range: every drawn value widened to whole tenths, within [0, 1].
fn y_range(chart: &Chart) -> (f64, f64) {
    let points = chart
        .series
        .iter()
        .flat_map(|series| series.points.iter().flatten());
    let values: Vec<f64> = points
        .flat_map(|point| {
            let interval = point.interval.map_or([point.mean; 2], |i| [i.low, i.high]);
            point.seeds.iter().copied().chain(interval)
        })
        .chain(chart.majority_baseline)
        .collect();
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !low.is_finite() {
        return (0.0, 1.0);
    }
    let low = (((low - 0.02) * 10.0).floor() / 10.0).max(0.0);
    let high = (((high + 0.02) * 10.0).ceil() / 10.0).min(1.0);
    (low, high.max(low + 0.1))
}

/// Renders `chart` into an SVG document.
fn draw(chart: &Chart) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        render(chart, &root).expect("drawing into a string does not fail");
        root.present().expect("drawing into a string does not fail");
    }
    svg
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn render(chart: &Chart, root: &Area) -> DrawResult {
    root.fill(&WHITE)?;
    let (plot_area, footer) = root.split_vertically(HEIGHT - 22);
    let (low, high) = y_range(chart);
    let positions = chart.x_ticks.len();
    let mut context = ChartBuilder::on(&plot_area)
        .caption(chart.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(-0.5..positions as f64 - 0.5, low..high)?;
    let ticks = &chart.x_ticks;
    let tick_label = |x: &f64| {
        let index = x.round();
        let on_tick = (x - index).abs() < 1e-9 && index >= 0.0 && (index as usize) < ticks.len();
        if on_tick {
            ticks[index as usize].clone()
        } else {
            String::new()
        }
    };
    context
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .x_labels(positions + 1)
        .x_label_formatter(&tick_label)
        .y_label_formatter(&|y| format!("{y:.2}"))
        .x_desc(chart.x_label)
        .y_desc("test accuracy")
        .label_style(("sans-serif", 13))
        .draw()?;

    if let Some(baseline) = chart.majority_baseline {
        let dashes = DashedLineSeries::new(
            [(-0.5, baseline), (positions as f64 - 0.5, baseline)],
            8,
            5,
            BASELINE_COLOR.stroke_width(2),
        );
        context
            .draw_series(dashes)?
            .label(format!("majority baseline ({baseline:.3})"))
            .legend(|(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], BASELINE_COLOR.stroke_width(2))
            });
    }

    // Series side by side around each position, so that their seeds do not hide each other.
    let spread = 0.3 / chart.series.len().max(1) as f64;
    for (rank, series) in chart.series.iter().enumerate() {
        let color = COLORS[rank % COLORS.len()];
        let offset = (rank as f64 - (chart.series.len() as f64 - 1.0) / 2.0) * spread;
        let placed: Vec<(f64, &Point)> = series
            .points
            .iter()
            .enumerate()
            .filter_map(|(index, point)| point.as_ref().map(|point| (index as f64 + offset, point)))
            .collect();
        context
            .draw_series(LineSeries::new(
                placed.iter().map(|&(x, point)| (x, point.mean)),
                color.stroke_width(2),
            ))?
            .label(series.name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        context.draw_series(placed.iter().filter_map(|&(x, point)| {
            point.interval.map(|interval| {
                ErrorBar::new_vertical(
                    x,
                    interval.low.max(low),
                    point.mean,
                    interval.high.min(high),
                    color.stroke_width(2),
                    10,
                )
            })
        }))?;
        context.draw_series(
            placed
                .iter()
                .map(|&(x, point)| Circle::new((x, point.mean), 5, color.filled())),
        )?;
        context.draw_series(placed.iter().flat_map(|&(x, point)| {
            point
                .seeds
                .iter()
                .map(move |&seed| Circle::new((x - spread / 3.0, seed), 3, color.stroke_width(1)))
        }))?;
    }
    context
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        .draw()?;
    footer.draw(&Text::new(
        "Hollow dots: one per seed. Filled dots: mean over seeds; bars: its 95 % t-interval.",
        (70, 2),
        ("sans-serif", 12).into_font().color(&RGBColor(85, 85, 85)),
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::plan;
    use crate::preset::{PAPER, Preset};
    use crate::summary::collect;
    use crate::summary::tests::{TINY, write_finetune_results, write_zero_shot_results};

    const TWO_DOMAINS: Preset = Preset {
        name: "two",
        num_domains: &[DomainCount::Count(1), DomainCount::All],
        num_train_tasks: &[10],
        ..PAPER
    };

    /// The texts of the SVG, which must be well-formed XML.
    fn texts(svg: &str) -> Vec<String> {
        let document = roxmltree::Document::parse(svg).expect("the SVG is well-formed XML");
        document
            .descendants()
            .filter(|node| node.has_tag_name("text"))
            .filter_map(|node| node.text().map(|text| text.trim().to_owned()))
            .collect()
    }

    fn circles(svg: &str) -> usize {
        let document = roxmltree::Document::parse(svg).unwrap();
        document
            .descendants()
            .filter(|node| node.has_tag_name("circle"))
            .count()
    }

    #[test]
    fn accuracy_by_epoch_starts_at_zero_shot_with_every_seed_and_the_mean() {
        let dir = tempfile::tempdir().unwrap();
        let runs = plan(&TINY, &[1, 2, 3]);
        for seed in 1..=3 {
            let run = |name: &str| dir.path().join(format!("{name}-s{seed}"));
            let shift = 0.01 * seed as f64;
            write_finetune_results(&run("finetune-d1-bert"), 0.7 + shift, 0.5);
            write_finetune_results(&run("finetune-d1-meta-d1-t10"), 0.8 + shift, 0.5);
            write_zero_shot_results(&run("zeroshot-bert"), 0.4 + shift);
            write_zero_shot_results(&run("zeroshot-meta-d1-t10"), 0.45 + shift);
        }
        let summary = collect(&runs, dir.path()).unwrap();
        let svg = accuracy_by_epoch(&summary, DomainCount::Count(1), &[10]).unwrap();
        let texts = texts(&svg);
        for expected in [
            "Test accuracy by fine-tuning epoch (D = 1)",
            "fine-tuning epoch (0 = zero-shot)",
            "BERT",
            "Meta-BERT (10 tasks)",
            "majority baseline (0.800)",
            "0",
            "2",
        ] {
            assert!(
                texts.iter().any(|text| text == expected),
                "{expected}: {texts:?}"
            );
        }
        // 2 models x 3 epochs (0, 1, 2): 3 seed dots, the mean's dot and the one plotters's
        // error bar draws at its middle.
        assert_eq!(circles(&svg), 2 * 3 * (3 + 2));
        // The baseline alone, 0.8, widened to whole tenths.
        assert_eq!(
            y_range(&Chart {
                title: "",
                x_label: "",
                x_ticks: vec![],
                series: vec![],
                majority_baseline: Some(0.8),
            }),
            (0.7, 0.9)
        );
        assert!(accuracy_by_epoch(&summary, DomainCount::All, &[10]).is_none());
    }

    #[test]
    fn accuracy_vs_domains_has_one_point_per_d_and_model() {
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
        let svg = accuracy_vs_domains(&summary, TWO_DOMAINS.num_domains, &[10]);
        let texts = texts(&svg);
        for expected in ["1", "all", "BERT", "Meta-BERT (10 tasks)"] {
            assert!(
                texts.iter().any(|text| text == expected),
                "{expected}: {texts:?}"
            );
        }
        // 2 models x 2 D: 2 seed dots and the mean's two each (as above); the off-diagonal
        // 0.31 is not drawn, so the axis starts at 0.6.
        assert_eq!(circles(&svg), 2 * 2 * (2 + 2));
        assert!(texts.iter().any(|text| text == "0.60"), "{texts:?}");
        assert!(!texts.iter().any(|text| text == "0.30"), "{texts:?}");
    }
}
