//! Project automation, run as `cargo xtask <command>`:
//! - `fetch-data`: download the reference review file and verify its git blob id;
//! - `reproduce`: run the reference's experiment grid through `meta-bert` and summarise it;
//! - `libtorch`: a venv with the libtorch the tch backend links, and the environment to use it.

mod contract;
mod fetch;
mod libtorch;
mod plan;
mod plot;
mod preset;
mod reproduce;
mod stats;
mod summary;

use std::env;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use crate::fetch::{FetchOutcome, REFERENCE_BLOB_SHA1, REFERENCE_DATA_URL, fetch_verified};
use crate::preset::{Preset, preset_by_name};
use crate::reproduce::{ReproduceConfig, reproduce};

/// Where `data/dataset.json` and `runs/` live, whatever directory `cargo xtask` is run from.
fn workspace_root() -> PathBuf {
    // `cargo run` sets the package directory at run time; the compile-time value can name another
    // clone, as cargo reuses builds across checkouts that share a target directory.
    let package = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    package
        .parent()
        .expect("xtask sits one level below the workspace root")
        .to_path_buf()
}

#[derive(Parser)]
#[command(about = "meta-bert project automation")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Download the reference dataset.json and verify it against its git blob id.
    FetchData {
        /// Source URL [default: $METABERT_DATA_URL, else the reference repository's file].
        #[arg(long)]
        url: Option<String>,
        /// Expected git blob SHA-1 of the file.
        #[arg(long, default_value = REFERENCE_BLOB_SHA1)]
        sha1: String,
        /// Destination [default: data/dataset.json in the workspace].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run the experiment grid (meta-training, fine-tuning, zero-shot) and write the summary.
    Reproduce {
        /// Grid and sizes: quick (CPU, minutes) or paper (the reference's, for a GPU).
        #[arg(long, default_value = "quick", value_parser = preset_by_name)]
        preset: &'static Preset,
        /// Passed to every meta-bert run as --backend [default: the CLI's].
        #[arg(long)]
        backend: Option<String>,
        /// Passed to every meta-bert run as --precision (f32, f16, bf16) [default: the CLI's,
        /// f32]. Runs of another precision than f32 go to their own directory,
        /// runs/<preset>-<precision>; give --out to keep their summary apart too.
        #[arg(long)]
        precision: Option<String>,
        /// Number of seeds (1..=N) [default: the preset's].
        #[arg(long)]
        seeds: Option<u64>,
        /// Directory for summary.md, summary.csv and the plot [default: results/ in the workspace].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Directory holding one directory per preset of runs [default: runs/ in the workspace].
        #[arg(long)]
        runs: Option<PathBuf>,
        /// Review file [default: $METABERT_DATA, else the preset's, else data/dataset.json,
        /// fetched if missing].
        #[arg(long)]
        data: Option<PathBuf>,
        /// Pre-trained model: local directory or hub id [default: the preset's].
        #[arg(long)]
        bert_model: Option<String>,
        /// Cargo features for building the CLI, e.g. `cuda` or `tch`.
        #[arg(long)]
        cli_features: Option<String>,
        /// Go on with the remaining runs after one fails.
        #[arg(long)]
        keep_going: bool,
        /// Run with dropout off and have every run record what it consumed (meta-bert's
        /// --no-dropout --record), for the PyTorch replay: see FIDELITY.md.
        #[arg(long)]
        record: bool,
    },
    /// Make (or reuse) a Python venv holding torch 2.9.0, the libtorch the tch backend links
    /// against, and print the environment that builds and runs with it, for
    /// `eval "$(cargo xtask libtorch)"`. Progress goes to stderr.
    Libtorch {
        /// The venv [default: $METABERT_LIBTORCH_VENV, else ~/.cache/meta-bert/libtorch-venv].
        #[arg(long)]
        venv: Option<PathBuf>,
        /// The Python that creates the venv when it does not exist.
        #[arg(long, default_value = "python3")]
        python: PathBuf,
        /// The package index pip installs torch from [default: PyPI, whose Linux wheel is the
        /// CUDA build], e.g. https://download.pytorch.org/whl/cpu for the CPU-only one.
        #[arg(long)]
        index_url: Option<String>,
    },
}

fn main() -> Result<()> {
    let root = workspace_root();
    match Cli::parse().command {
        Task::FetchData { url, sha1, out } => {
            let out = match out {
                Some(out) => std::path::absolute(out)?,
                None => root.join("data").join("dataset.json"),
            };
            let url = data_url(url);
            match fetch_verified(&url, &sha1, &out)? {
                FetchOutcome::AlreadyPresent => {
                    println!("{} already holds git blob {sha1}", out.display());
                }
                FetchOutcome::Downloaded { bytes } => {
                    println!("wrote {} ({bytes} bytes, git blob {sha1})", out.display());
                }
            }
            Ok(())
        }
        Task::Reproduce {
            preset,
            backend,
            precision,
            seeds,
            out,
            runs,
            data,
            bert_model,
            cli_features,
            keep_going,
            record,
        } => {
            let config = ReproduceConfig {
                seeds: (1..=seeds.unwrap_or(preset.seeds)).collect(),
                bin: meta_bert_binary(&root, cli_features.as_deref())?,
                bert_model: resolve_model(preset, bert_model, &root)?,
                data: resolve_data(preset, data, &root)?,
                runs_dir: absolute_or(runs, &root, "runs")?
                    .join(runs_dir_name(preset.name, precision.as_deref())),
                backend,
                precision,
                out_dir: absolute_or(out, &root, "results")?,
                keep_going,
                record,
                work_dir: root,
                preset: preset.clone(),
            };
            if config.seeds.is_empty() {
                bail!("--seeds must be at least 1");
            }
            println!(
                "reproduce `{}`: model {}, data {}, seeds {:?}, runs in {}",
                config.preset.name,
                config.bert_model,
                config.data.display(),
                config.seeds,
                config.runs_dir.display()
            );
            reproduce(&config).map(|_| ())
        }
        Task::Libtorch {
            venv,
            python,
            index_url,
        } => {
            let path = |name: &str| env::var_os(name).map(PathBuf::from);
            let venv = libtorch::venv_dir(
                venv,
                path(libtorch::VENV_VAR),
                path("XDG_CACHE_HOME"),
                path("HOME"),
            )?;
            let torch = libtorch::ensure(&venv, python.as_os_str(), index_url.as_deref())?;
            eprintln!(
                "torch {} in {}; its libraries in {}",
                torch.version,
                venv.display(),
                torch.lib_dir.display()
            );
            print!("{}", libtorch::env_script(&venv, &torch));
            Ok(())
        }
    }
}

/// The directory of a preset's runs: its name, with the precision appended unless it is f32,
/// so that a run in another precision never resumes (or collides with) one in f32.
fn runs_dir_name(preset: &str, precision: Option<&str>) -> String {
    match precision {
        Some(precision) if !precision.eq_ignore_ascii_case("f32") => {
            format!("{preset}-{}", precision.to_ascii_lowercase())
        }
        _ => preset.to_owned(),
    }
}

/// A path the user gave, made absolute against the current directory; else `root/default`.
fn absolute_or(flag: Option<PathBuf>, root: &Path, default: &str) -> Result<PathBuf> {
    Ok(match flag {
        Some(path) => std::path::absolute(path)?,
        None => root.join(default),
    })
}

fn data_url(flag: Option<String>) -> String {
    flag.or_else(|| env::var("METABERT_DATA_URL").ok())
        .unwrap_or_else(|| REFERENCE_DATA_URL.to_owned())
}

/// `--data`, else `$METABERT_DATA`, else the preset's local file, else `data/dataset.json`,
/// downloaded and verified first if missing.
fn resolve_data(preset: &Preset, flag: Option<PathBuf>, root: &Path) -> Result<PathBuf> {
    if let Some(path) = flag.or_else(|| env::var_os("METABERT_DATA").map(PathBuf::from)) {
        if !path.is_file() {
            bail!("review file `{}` does not exist", path.display());
        }
        return Ok(std::path::absolute(path)?);
    }
    if let Some(local) = preset.local_data.map(|local| root.join(local))
        && local.is_file()
    {
        return Ok(local);
    }
    let path = root.join("data").join("dataset.json");
    if !path.is_file() {
        println!("{} is missing: fetching the reference file", path.display());
        fetch_verified(&data_url(None), REFERENCE_BLOB_SHA1, &path).with_context(|| {
            format!(
                "no review file for preset `{}`: pass --data with a JSON list of \
                 {{text, label, domain}} (e.g. ../shared/data/amazon-reviews/dataset.json)",
                preset.name
            )
        })?;
    }
    Ok(path)
}

/// `--bert-model`, else the preset's local model directory when present, else its hub id.
/// Local directories are made absolute, since the runs do not share our working directory.
fn resolve_model(preset: &Preset, flag: Option<String>, root: &Path) -> Result<String> {
    let spec = flag.unwrap_or_else(|| match preset.local_model.map(|local| root.join(local)) {
        Some(local) if local.is_dir() => local.display().to_string(),
        _ => preset.hub_model.to_owned(),
    });
    if Path::new(&spec).exists() {
        return Ok(std::path::absolute(&spec)?.display().to_string());
    }
    Ok(spec)
}

/// `$METABERT_BIN` when set (tests point it at a stand-in); else builds package `cli` with the
/// dev profile, as the tests do, and returns the executable cargo reports, which honours
/// CARGO_TARGET_DIR and any cargo configuration.
fn meta_bert_binary(root: &Path, features: Option<&str>) -> Result<PathBuf> {
    if let Some(bin) = env::var_os("METABERT_BIN") {
        return Ok(std::path::absolute(bin)?);
    }
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args(["build", "--package", "cli", "--bin", "meta-bert"])
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped());
    if let Some(features) = features {
        command.args(["--features", features]);
    }
    println!("building meta-bert (cargo build --package cli)");
    let mut child = command.spawn().context("cannot run cargo build")?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut executable = None;
    for line in BufReader::new(stdout).lines() {
        let message: serde_json::Value =
            serde_json::from_str(&line.context("cannot read cargo's output")?)
                .context("cargo printed a line that is not JSON")?;
        if message["reason"] == "compiler-artifact"
            && message["target"]["name"] == "meta-bert"
            && let Some(path) = message["executable"].as_str()
        {
            executable = Some(PathBuf::from(path));
        }
    }
    let status = child.wait().context("cannot wait for cargo build")?;
    if !status.success() {
        bail!("cargo build --package cli failed ({status})");
    }
    executable.context("cargo build reported no meta-bert executable")
}

#[cfg(test)]
mod tests {
    use super::{Cli, Task, runs_dir_name};
    use clap::{CommandFactory, Parser};
    use std::path::PathBuf;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn libtorch_defaults_to_python3_pypi_and_the_default_venv() {
        let Task::Libtorch {
            venv,
            python,
            index_url,
        } = Cli::try_parse_from(["xtask", "libtorch"]).unwrap().command
        else {
            panic!("not the libtorch command");
        };
        assert_eq!(
            (venv, python, index_url),
            (None, PathBuf::from("python3"), None)
        );
    }

    #[test]
    fn libtorch_takes_a_venv_a_python_and_an_index() {
        let cli = Cli::try_parse_from([
            "xtask",
            "libtorch",
            "--venv",
            "/v",
            "--python",
            "/usr/bin/python3.11",
            "--index-url",
            "https://download.pytorch.org/whl/cpu",
        ])
        .unwrap();
        let Task::Libtorch {
            venv,
            python,
            index_url,
        } = cli.command
        else {
            panic!("not the libtorch command");
        };
        assert_eq!(venv, Some(PathBuf::from("/v")));
        assert_eq!(python, PathBuf::from("/usr/bin/python3.11"));
        assert_eq!(
            index_url.as_deref(),
            Some("https://download.pytorch.org/whl/cpu")
        );
        assert!(Cli::try_parse_from(["xtask", "libtorch", "--venv"]).is_err());
    }

    #[test]
    fn runs_in_another_precision_get_their_own_directory() {
        assert_eq!(runs_dir_name("quick", None), "quick");
        assert_eq!(runs_dir_name("quick", Some("f32")), "quick");
        assert_eq!(runs_dir_name("quick", Some("F16")), "quick-f16");
        assert_eq!(runs_dir_name("paper", Some("bf16")), "paper-bf16");
    }
}
