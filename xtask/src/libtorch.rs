//! `cargo xtask libtorch`: a Python virtual environment holding the PyTorch whose libtorch
//! burn-tch links against, and the shell environment that builds and runs the tch backend with it.
//!
//! burn-tch 0.22's torch-sys accepts exactly libtorch 2.9.0. PyPI's `torch==2.9.0` wheel carries
//! it, and with `LIBTORCH_USE_PYTORCH=1` torch-sys's build script asks the venv's `python` where
//! its headers and libraries are. The test and program binaries get no rpath to them, hence
//! `LD_LIBRARY_PATH` at run time.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The libtorch version torch-sys 0.22 checks for.
pub const TORCH_VERSION: &str = "2.9.0";

/// Overrides the default venv directory.
pub const VENV_VAR: &str = "METABERT_LIBTORCH_VENV";

/// Prints the installed torch's version (local tag included, e.g. `2.9.0+cu128`) and the
/// directory of its shared libraries, one per line.
const PRINT_TORCH: &str = "import os, torch; print(torch.__version__); print(os.path.join(os.path.dirname(torch.__file__), 'lib'))";

/// The venv's torch, as its own interpreter reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Torch {
    /// `torch.__version__`, e.g. `2.9.0+cu128`.
    pub version: String,
    /// The directory holding `libtorch_cpu.so` and friends.
    pub lib_dir: PathBuf,
}

/// `--venv`, else `$METABERT_LIBTORCH_VENV`, else `meta-bert/libtorch-venv` in the user's cache
/// directory (`$XDG_CACHE_HOME`, else `~/.cache`): outside the clone, since it holds gigabytes
/// that neither git nor `cargo clean` should see.
pub fn venv_dir(
    flag: Option<PathBuf>,
    var: Option<PathBuf>,
    xdg_cache: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Result<PathBuf> {
    let dir = match flag.or(var) {
        Some(dir) => dir,
        None => xdg_cache
            .filter(|dir| dir.is_absolute())
            .or_else(|| home.map(|home| home.join(".cache")))
            .context("neither XDG_CACHE_HOME nor HOME is set: pass --venv")?
            .join("meta-bert")
            .join("libtorch-venv"),
    };
    Ok(std::path::absolute(dir)?)
}

/// Whether `version` (as `torch.__version__` prints it) is the one torch-sys accepts: the local
/// tag (`+cpu`, `+cu128`) does not matter, as torch-sys also ignores it.
pub fn is_supported(version: &str) -> bool {
    version.split('+').next() == Some(TORCH_VERSION)
}

/// Makes `venv` hold torch 2.9.0 and returns it: creates the venv with `python -m venv` if it has
/// no interpreter, installs `torch==2.9.0` with pip if it has no torch or another version (from
/// `index_url` when given), and otherwise changes nothing, so a second run is offline and quick.
pub fn ensure(venv: &Path, python: &OsStr, index_url: Option<&str>) -> Result<Torch> {
    let venv_python = venv.join("bin").join("python");
    if !venv_python.exists() {
        eprintln!("creating a virtual environment at {}", venv.display());
        run(Command::new(python).arg("-m").arg("venv").arg(venv)).with_context(|| {
            format!(
                "cannot create a virtual environment at {} with `{} -m venv`: install Python 3 \
                 and its venv module (Debian/Ubuntu: apt-get install python3-venv), or pass \
                 --python",
                venv.display(),
                python.to_string_lossy()
            )
        })?;
    }
    match installed_torch(&venv_python) {
        Some(torch) if is_supported(&torch.version) => return Ok(torch),
        Some(torch) => eprintln!(
            "{} holds torch {}: installing {TORCH_VERSION} instead",
            venv.display(),
            torch.version
        ),
        None => eprintln!(
            "installing torch=={TORCH_VERSION} into {} (from PyPI on Linux: the CUDA build, \
             ≈ 900 MiB plus ≈ 3 GiB of nvidia-* wheels; ≈ 7 GiB installed)",
            venv.display()
        ),
    }
    let mut pip = Command::new(&venv_python);
    pip.args(["-m", "pip", "install", "--no-cache-dir"])
        .arg(format!("torch=={TORCH_VERSION}"));
    if let Some(url) = index_url {
        pip.args(["--index-url", url]);
    }
    run(&mut pip).with_context(|| format!("pip could not install torch=={TORCH_VERSION}"))?;
    match installed_torch(&venv_python) {
        Some(torch) if is_supported(&torch.version) => Ok(torch),
        Some(torch) => bail!(
            "pip installed torch {} into {}, not {TORCH_VERSION}",
            torch.version,
            venv.display()
        ),
        None => bail!(
            "pip reported success but `{}` cannot import torch",
            venv_python.display()
        ),
    }
}

/// The venv's torch, or `None` when its interpreter cannot import one.
fn installed_torch(venv_python: &Path) -> Option<Torch> {
    let output = Command::new(venv_python)
        .args(["-c", PRINT_TORCH])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())?;
    let text = String::from_utf8(output.stdout).ok()?;
    let mut lines = text.lines();
    Some(Torch {
        version: lines.next()?.trim().to_owned(),
        lib_dir: PathBuf::from(lines.next()?.trim()),
    })
}

/// Runs `command` with its output on stderr, keeping stdout for the environment to `eval`.
fn run(command: &mut Command) -> Result<()> {
    let status = command
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .with_context(|| format!("cannot run `{}`", command.get_program().to_string_lossy()))?;
    if !status.success() {
        bail!(
            "`{}` failed ({status})",
            command.get_program().to_string_lossy()
        );
    }
    Ok(())
}

/// Shell lines that `eval` turns into the environment building (`LIBTORCH_USE_PYTORCH`, the
/// venv's `python` first on `PATH`) and running (`LD_LIBRARY_PATH`) the tch backend needs.
pub fn env_script(venv: &Path, torch: &Torch) -> String {
    let venv_text = venv.display().to_string();
    let bin = venv.join("bin").display().to_string();
    let lib = torch.lib_dir.display().to_string();
    format!(
        "export LIBTORCH_USE_PYTORCH=1\n\
         export VIRTUAL_ENV={}\n\
         export PATH={}\"${{PATH:+:$PATH}}\"\n\
         export LD_LIBRARY_PATH={}\"${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\"\n",
        shell_quote(&venv_text),
        shell_quote(&bin),
        shell_quote(&lib),
    )
}

/// `text` as one single-quoted shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_venv_is_the_flag_then_the_variable_then_the_cache() {
        let dir = |flag: Option<&str>, var: Option<&str>, xdg: Option<&str>, home: Option<&str>| {
            venv_dir(
                flag.map(PathBuf::from),
                var.map(PathBuf::from),
                xdg.map(PathBuf::from),
                home.map(PathBuf::from),
            )
        };
        assert_eq!(
            dir(Some("/a"), Some("/b"), Some("/c"), Some("/h")).unwrap(),
            Path::new("/a")
        );
        assert_eq!(
            dir(None, Some("/b"), Some("/c"), Some("/h")).unwrap(),
            Path::new("/b")
        );
        assert_eq!(
            dir(None, None, Some("/c"), Some("/h")).unwrap(),
            Path::new("/c/meta-bert/libtorch-venv")
        );
        // The XDG specification says to ignore a relative XDG_CACHE_HOME.
        assert_eq!(
            dir(None, None, Some("rel"), Some("/h")).unwrap(),
            Path::new("/h/.cache/meta-bert/libtorch-venv")
        );
        assert!(
            dir(None, None, None, None)
                .unwrap_err()
                .to_string()
                .contains("--venv")
        );
    }

    #[test]
    fn only_2_9_0_is_supported_whatever_its_local_tag() {
        assert!(is_supported("2.9.0"));
        assert!(is_supported("2.9.0+cpu"));
        assert!(is_supported("2.9.0+cu128"));
        assert!(!is_supported("2.9.1"));
        assert!(!is_supported("2.10.0+cpu"));
        assert!(!is_supported("12.9.0"));
    }

    #[test]
    fn the_environment_quotes_paths_and_keeps_what_was_set() {
        let torch = Torch {
            version: "2.9.0+cpu".into(),
            lib_dir: PathBuf::from("/v/lib/python3.11/site-packages/torch/lib"),
        };
        assert_eq!(
            env_script(Path::new("/home/me/it's venv"), &torch),
            "export LIBTORCH_USE_PYTORCH=1\n\
             export VIRTUAL_ENV='/home/me/it'\\''s venv'\n\
             export PATH='/home/me/it'\\''s venv/bin'\"${PATH:+:$PATH}\"\n\
             export LD_LIBRARY_PATH='/v/lib/python3.11/site-packages/torch/lib'\
             \"${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}\"\n"
        );
    }

    #[test]
    fn the_environment_evaluates_in_a_shell_to_the_paths() {
        let torch = Torch {
            version: "2.9.0".into(),
            lib_dir: PathBuf::from("/t/lib dir"),
        };
        let script = env_script(Path::new("/v/it's"), &torch);
        let output = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{script}printf '%s|%s|%s|%s' \"$LIBTORCH_USE_PYTORCH\" \"$VIRTUAL_ENV\" \
                 \"$PATH\" \"$LD_LIBRARY_PATH\""
            ))
            .env("PATH", "/usr/bin:/bin")
            .env_remove("LD_LIBRARY_PATH")
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        assert_eq!(
            String::from_utf8(output.stdout).unwrap(),
            "1|/v/it's|/v/it's/bin:/usr/bin:/bin|/t/lib dir"
        );
    }

    #[test]
    fn a_missing_python_is_an_error_that_says_what_to_install() {
        let scratch = tempfile::tempdir().unwrap();
        let venv = scratch.path().join("venv");
        let error = ensure(&venv, OsStr::new("/nonexistent/python3"), None).unwrap_err();
        let message = format!("{error:#}");
        assert!(
            message.contains("/nonexistent/python3 -m venv"),
            "{message}"
        );
        assert!(message.contains("python3-venv"), "{message}");
        assert!(!venv.exists());
    }

    /// A venv whose `python` answers like one holding `version`, without Python or a download.
    fn fake_venv(version: &str) -> tempfile::TempDir {
        let venv = tempfile::tempdir().unwrap();
        std::fs::create_dir(venv.path().join("bin")).unwrap();
        let python = venv.path().join("bin").join("python");
        std::fs::write(
            &python,
            format!("#!/bin/sh\nprintf '%s\\n' '{version}' '/fake/torch/lib'\n"),
        )
        .unwrap();
        std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
        venv
    }

    #[test]
    fn a_venv_with_torch_2_9_0_is_reused_without_python_or_pip() {
        let venv = fake_venv("2.9.0+cu128");
        let torch = ensure(venv.path(), OsStr::new("/nonexistent/python3"), None).unwrap();
        assert_eq!(
            torch,
            Torch {
                version: "2.9.0+cu128".into(),
                lib_dir: PathBuf::from("/fake/torch/lib"),
            }
        );
    }

    #[test]
    fn a_venv_with_another_torch_is_not_accepted() {
        // The fake `python` runs pip as a no-op and still reports 2.10.0 afterwards.
        let venv = fake_venv("2.10.0");
        let error = ensure(venv.path(), OsStr::new("/nonexistent/python3"), None).unwrap_err();
        assert!(
            error.to_string().contains("installed torch 2.10.0"),
            "{error:#}"
        );
    }
}
