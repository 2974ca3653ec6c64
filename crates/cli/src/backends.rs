//! `meta-bert backends`: which compute backends and kernel compilers this binary has, and, with
//! `--probe`, whether each one starts on this machine, on which adapter, in which precisions.

use model::{BackendKind, Precision};
use serde_json::json;

use crate::{Outcome, table};

/// `backends` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also start every compiled-in backend and report its adapter and the precisions it
    /// computes in (starting a GPU backend can take seconds; on a software driver, longer).
    #[arg(long)]
    pub probe: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One row of the answer.
struct Row {
    backend: BackendKind,
    /// `None` without `--probe` or when not compiled; else whether it started, and how.
    probe: Option<Result<Probe, String>>,
}

struct Probe {
    adapter: Option<String>,
    precisions: Vec<Precision>,
}

/// Runs `meta-bert backends`.
pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let rows: Vec<Row> = BackendKind::all()
        .into_iter()
        .map(|backend| Row {
            backend,
            probe: (args.probe && backend.is_compiled()).then(|| probe(backend)),
        })
        .collect();
    let out = match args.json {
        true => serde_json::to_string(&to_json(&rows)).expect("JSON values serialise"),
        false => render(&rows, args.probe),
    };
    println!("{}", out.trim_end());
    Ok(Outcome::Completed)
}

fn probe(backend: BackendKind) -> Result<Probe, String> {
    let device = backend.device().map_err(|error| error.to_string())?;
    Ok(Probe {
        adapter: model::adapter_name(&device),
        precisions: Precision::all()
            .into_iter()
            .filter(|&precision| backend.check_precision(&device, precision).is_ok())
            .collect(),
    })
}

fn names(precisions: &[Precision]) -> Vec<&'static str> {
    precisions
        .iter()
        .map(|precision| precision.name())
        .collect()
}

fn to_json(rows: &[Row]) -> serde_json::Value {
    let backends: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let mut entry = json!({
                "backend": row.backend.name(),
                "compiled": row.backend.is_compiled(),
                "compilers": row.backend.compilers(),
            });
            match &row.probe {
                Some(Ok(probe)) => {
                    entry["starts"] = json!(true);
                    entry["adapter"] = json!(probe.adapter);
                    entry["precisions"] = json!(names(&probe.precisions));
                }
                Some(Err(error)) => {
                    entry["starts"] = json!(false);
                    entry["error"] = json!(error);
                }
                None => {}
            }
            entry
        })
        .collect();
    json!({ "version": env!("CARGO_PKG_VERSION"), "backends": backends })
}

fn render(rows: &[Row], probed: bool) -> String {
    let mut headers = vec!["backend", "compiled", "kernel compilers"];
    if probed {
        headers.extend(["starts", "adapter", "precisions"]);
    }
    let mut errors = Vec::new();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let compilers = row.backend.compilers();
            let mut cells = vec![
                row.backend.name().to_string(),
                if row.backend.is_compiled() {
                    "yes"
                } else {
                    "no"
                }
                .to_string(),
                if compilers.is_empty() {
                    "-".to_string()
                } else {
                    compilers.join(", ")
                },
            ];
            if probed {
                let (starts, adapter, precisions) = match &row.probe {
                    None => ("-".into(), "-".into(), "-".into()),
                    Some(Ok(probe)) => (
                        "yes".into(),
                        probe.adapter.clone().unwrap_or_else(|| "(CPU)".into()),
                        names(&probe.precisions).join(", "),
                    ),
                    Some(Err(error)) => {
                        errors.push(format!("{}: {error}", row.backend));
                        ("no".into(), "-".into(), "-".into())
                    }
                };
                cells.extend([starts, adapter, precisions]);
            }
            cells
        })
        .collect();
    let mut out = table::render(&headers, &cells);
    for error in errors {
        out.push_str(&format!("\n{error}"));
    }
    out
}
