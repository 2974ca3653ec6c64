//! The user's choice of compute backend, and the one place a Burn [`Device`] is made from it.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

/// A Burn backend meta-bert can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BackendKind {
    /// Burn's pure-Rust CPU backend; always compiled in.
    #[default]
    Flex,
    /// wgpu (Vulkan, Metal, DX12); cargo feature `wgpu`, on by default.
    Wgpu,
    /// CUDA; cargo feature `cuda`.
    Cuda,
    /// LibTorch (deprecated in Burn); cargo feature `tch`, needs libtorch 2.9.0.
    Tch,
}

/// A backend that cannot be used in this build or on this machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The name is not a backend.
    #[error("unknown backend `{name}`: choose one of flex, wgpu, cuda, tch")]
    Unknown {
        /// What was given.
        name: String,
    },
    /// The backend's cargo feature was off when this binary was built.
    #[error(
        "backend `{backend}` is not compiled into this binary: rebuild with `--features {feature}`{requirement}"
    )]
    NotCompiled {
        /// The backend asked for.
        backend: BackendKind,
        /// The cargo feature that compiles it in.
        feature: &'static str,
        /// What else the build needs, if anything.
        requirement: &'static str,
    },
    /// The backend is compiled in but the machine cannot run it.
    #[error("backend `{backend}` cannot start on this machine: {reason}")]
    Unavailable {
        /// The backend asked for.
        backend: BackendKind,
        /// What failed, and what would fix it.
        reason: String,
    },
}

impl BackendKind {
    /// Every backend, compiled in or not.
    pub fn all() -> [BackendKind; 4] {
        [Self::Flex, Self::Wgpu, Self::Cuda, Self::Tch]
    }

    /// The name users type (`--backend flex`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
            Self::Tch => "tch",
        }
    }

    /// Whether this binary was built with the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            Self::Flex => true,
            Self::Wgpu => cfg!(feature = "wgpu"),
            Self::Cuda => cfg!(feature = "cuda"),
            Self::Tch => cfg!(feature = "tch"),
        }
    }

    /// The device to run on (without autodiff: call `.autodiff()` on it to train).
    ///
    /// GPU backends are started here, so a missing driver or adapter is reported now, as an
    /// error, rather than as a panic at the first tensor.
    pub fn device(self) -> Result<Device, BackendError> {
        match self {
            Self::Flex => Ok(Device::flex()),
            Self::Wgpu => wgpu_device(),
            Self::Cuda => cuda_device(),
            Self::Tch => tch_device(),
        }
    }

    fn not_compiled(self) -> BackendError {
        BackendError::NotCompiled {
            backend: self,
            feature: self.name(),
            requirement: match self {
                Self::Tch => {
                    " (and libtorch 2.9.0: in a clone, `eval \"$(cargo xtask libtorch)\"` sets up and selects it; see the README)"
                }
                Self::Cuda => {
                    " (and the CUDA toolkit and driver; the build downloads a prebuilt LLVM, so it needs network)"
                }
                _ => "",
            },
        }
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_device() -> Result<Device, BackendError> {
    use std::sync::OnceLock;
    // wgpu's runtime can be initialised once per process; later calls share the device.
    static DEVICE: OnceLock<Result<Device, String>> = OnceLock::new();
    DEVICE
        .get_or_init(|| Device::wgpu_options().init().map_err(|e| e.to_string()))
        .clone()
        .map_err(|error| BackendError::Unavailable {
            backend: BackendKind::Wgpu,
            reason: format!(
                "{error}. wgpu needs a Vulkan, Metal or DX12 driver; without a GPU, Mesa's software \
                 Vulkan driver works (Debian/Ubuntu: apt-get install mesa-vulkan-drivers)"
            ),
        })
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device() -> Result<Device, BackendError> {
    Err(BackendKind::Wgpu.not_compiled())
}

/// Starts a lazily initialised device by making one tensor on it, turning the backend's panic
/// (no driver, no library) into an error.
#[cfg(any(feature = "cuda", feature = "tch"))]
fn probe(backend: BackendKind, device: Device, fix: &str) -> Result<Device, BackendError> {
    let probe_device = device.clone();
    // Nothing outlives a failed probe, so no broken state can be observed after the unwind.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        burn::tensor::Tensor::<1>::zeros([1], &probe_device).into_data();
    }))
    .map(|()| device)
    .map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the backend panicked".to_string());
        BackendError::Unavailable {
            backend,
            reason: format!("{message}. {fix}"),
        }
    })
}

#[cfg(feature = "cuda")]
fn cuda_device() -> Result<Device, BackendError> {
    probe(
        BackendKind::Cuda,
        Device::cuda(0),
        "Install an NVIDIA driver and the CUDA toolkit, or choose the flex backend",
    )
}

#[cfg(not(feature = "cuda"))]
fn cuda_device() -> Result<Device, BackendError> {
    Err(BackendKind::Cuda.not_compiled())
}

#[cfg(feature = "tch")]
#[allow(deprecated)] // LibTorch is deprecated in Burn but users ask for it.
fn tch_device() -> Result<Device, BackendError> {
    probe(
        BackendKind::Tch,
        Device::libtorch(),
        "Build and run with libtorch 2.9.0 (in a clone: `eval \"$(cargo xtask libtorch)\"`)",
    )
}

#[cfg(not(feature = "tch"))]
fn tch_device() -> Result<Device, BackendError> {
    Err(BackendKind::Tch.not_compiled())
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = BackendError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::all()
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| BackendError::Unknown {
                name: name.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in BackendKind::all() {
            assert_eq!(kind.to_string().parse::<BackendKind>(), Ok(kind));
        }
        assert_eq!("FLEX".parse::<BackendKind>(), Ok(BackendKind::Flex));
    }

    #[test]
    fn unknown_backend_lists_the_choices() {
        let error = "metal".parse::<BackendKind>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown backend `metal`: choose one of flex, wgpu, cuda, tch"
        );
    }

    #[test]
    fn flex_is_always_available() {
        assert!(BackendKind::Flex.device().is_ok());
    }

    #[test]
    fn a_backend_left_out_of_the_build_names_its_feature() {
        for kind in BackendKind::all()
            .into_iter()
            .filter(|kind| !kind.is_compiled())
        {
            let error = kind.device().unwrap_err();
            assert!(matches!(error, BackendError::NotCompiled { .. }), "{error}");
            assert!(
                error.to_string().contains(&format!("--features {kind}")),
                "{error}"
            );
        }
        #[cfg(not(feature = "tch"))]
        assert!(
            BackendKind::Tch
                .device()
                .unwrap_err()
                .to_string()
                .contains("libtorch")
        );
    }
}
