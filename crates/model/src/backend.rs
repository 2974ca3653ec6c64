//! The user's choice of compute backend, and the one place a Burn [`Device`] is made from it.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

use crate::Precision;

/// A Burn backend meta-bert can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BackendKind {
    /// Burn's pure-Rust CPU backend; always compiled in.
    #[default]
    Flex,
    /// wgpu on whichever graphics API the machine offers (Vulkan, Metal, DX12); cargo feature
    /// `wgpu`, on by default. Kernels compile to SPIR-V on a Vulkan adapter that allows it when
    /// the build has feature `vulkan` (opt-in: the GPU build), to WGSL otherwise.
    Wgpu,
    /// wgpu pinned to Vulkan, and so to SPIR-V where the adapter allows it (cooperative-matrix
    /// products for f16, compiled kernels cached on disk); cargo feature `vulkan`.
    Vulkan,
    /// CUDA; cargo feature `cuda`.
    Cuda,
    /// LibTorch (deprecated in Burn); cargo feature `tch`, needs libtorch 2.9.0.
    Tch,
}

/// A backend that cannot be used in this build or on this machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The name is not a backend.
    #[error("unknown backend `{name}`: choose one of flex, wgpu, vulkan, cuda, tch")]
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
    /// The backend (or this machine's adapter) has no arithmetic in the dtype a precision
    /// needs.
    #[error(
        "backend `{backend}` cannot compute in {precision} on this device ({dtype:?} is not \
         supported here): choose --precision f32{alternative}"
    )]
    Precision {
        /// The backend asked for.
        backend: BackendKind,
        /// The precision asked for.
        precision: Precision,
        /// The dtype it lacks.
        dtype: burn::tensor::FloatDType,
        /// Another precision it does support, as a hint (", or bf16"), or empty.
        alternative: String,
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
    pub fn all() -> [BackendKind; 5] {
        [Self::Flex, Self::Wgpu, Self::Vulkan, Self::Cuda, Self::Tch]
    }

    /// The name users type (`--backend flex`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Wgpu => "wgpu",
            Self::Vulkan => "vulkan",
            Self::Cuda => "cuda",
            Self::Tch => "tch",
        }
    }

    /// Whether this binary was built with the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            Self::Flex => true,
            Self::Wgpu => cfg!(feature = "wgpu"),
            Self::Vulkan => cfg!(feature = "vulkan"),
            Self::Cuda => cfg!(feature = "cuda"),
            Self::Tch => cfg!(feature = "tch"),
        }
    }

    /// The kernel compilers this build has for the backend, best first (what `meta-bert
    /// backends` lists); empty when the backend is not compiled in. Which one a device uses is
    /// settled when it opens: SPIR-V needs a Vulkan adapter with the features cubecl asks for.
    pub fn compilers(self) -> &'static [&'static str] {
        let spirv = cfg!(feature = "vulkan");
        match self {
            _ if !self.is_compiled() => &[],
            Self::Flex => &["Rust (SIMD chosen at run time)"],
            Self::Wgpu if spirv => &["SPIR-V (Vulkan adapters)", "WGSL"],
            Self::Wgpu => &["WGSL"],
            Self::Vulkan => &["SPIR-V", "WGSL (adapters without SPIR-V's features)"],
            Self::Cuda => &["CUDA C++ (NVRTC)"],
            Self::Tch => &["LibTorch"],
        }
    }

    /// Errors unless `device` (of this backend) computes in `precision`: a backend without the
    /// dtype would compute garbage rather than fail.
    pub fn check_precision(
        self,
        device: &Device,
        precision: Precision,
    ) -> Result<(), BackendError> {
        if precision.runs_on(device) {
            return Ok(());
        }
        let alternative = Precision::all()
            .into_iter()
            .filter(|&other| other != Precision::F32 && other != precision)
            .find(|other| other.runs_on(device))
            .map_or_else(String::new, |other| format!(" or {other}"));
        Err(BackendError::Precision {
            backend: self,
            precision,
            dtype: precision.matmul_dtype(),
            alternative,
        })
    }

    /// Whether the backend compiles and autotunes kernels for every new tensor shape (cubecl's
    /// wgpu and CUDA), so that a run should keep to a few batch shapes. Flex and LibTorch run any
    /// shape at no extra cost.
    pub fn compiles_per_shape(self) -> bool {
        // Every variant listed: a new backend must say which it is.
        match self {
            Self::Flex | Self::Tch => false,
            Self::Wgpu | Self::Vulkan | Self::Cuda => true,
        }
    }

    /// The device to run on (without autodiff: call `.autodiff()` on it to train).
    ///
    /// GPU backends are started here, so a missing driver or adapter is reported now, as an
    /// error, rather than as a panic at the first tensor.
    pub fn device(self) -> Result<Device, BackendError> {
        match self {
            Self::Flex => Ok(Device::flex()),
            Self::Wgpu | Self::Vulkan => wgpu_device(self),
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

/// The wgpu device of `backend` (`Wgpu`: any graphics API; `Vulkan`: pinned to Vulkan).
#[cfg(feature = "wgpu")]
fn wgpu_device(backend: BackendKind) -> Result<Device, BackendError> {
    use std::sync::OnceLock;
    // wgpu's runtime can be initialised once per device selector and process; later calls
    // share the device.
    static AUTO: OnceLock<Result<Device, String>> = OnceLock::new();
    static VULKAN: OnceLock<Result<Device, String>> = OnceLock::new();
    let (cell, driver) = match backend {
        BackendKind::Vulkan if cfg!(feature = "vulkan") => (&VULKAN, "a Vulkan driver"),
        BackendKind::Vulkan => return Err(backend.not_compiled()),
        _ => (&AUTO, "a Vulkan, Metal or DX12 driver"),
    };
    cell.get_or_init(|| {
        let options = Device::wgpu_options();
        let options = match backend {
            BackendKind::Vulkan => options.graphics_api(burn::tensor::wgpu::WgpuBackend::Vulkan),
            _ => options,
        };
        options.init().map_err(|e| e.to_string())
    })
    .clone()
    .map_err(|error| BackendError::Unavailable {
        backend,
        reason: format!(
            "{error}. {backend} needs {driver}; without a GPU, Mesa's software Vulkan driver \
             works (Debian/Ubuntu: apt-get install mesa-vulkan-drivers)"
        ),
    })
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device(backend: BackendKind) -> Result<Device, BackendError> {
    Err(backend.not_compiled())
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

/// The adapter `device` runs on, as its driver names it (`NVIDIA H100 PCIe`,
/// `llvmpipe (LLVM 19.1.7, 256 bits)`); `None` for a CPU backend or one that does not say.
/// Opens the device.
pub fn adapter_name(device: &Device) -> Option<String> {
    #[cfg(feature = "wgpu")]
    return device.identity().map(|identity| identity.name);
    #[cfg(not(feature = "wgpu"))]
    {
        let _ = device;
        None
    }
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
            "unknown backend `metal`: choose one of flex, wgpu, vulkan, cuda, tch"
        );
    }

    #[test]
    fn compilers_are_listed_for_compiled_backends_only() {
        for kind in BackendKind::all() {
            assert_eq!(kind.is_compiled(), !kind.compilers().is_empty(), "{kind}");
        }
        assert_eq!(
            BackendKind::Wgpu
                .compilers()
                .contains(&"SPIR-V (Vulkan adapters)"),
            cfg!(feature = "vulkan")
        );
    }

    #[test]
    fn flex_takes_every_precision() {
        let device = Device::flex();
        for precision in Precision::all() {
            assert_eq!(
                BackendKind::Flex.check_precision(&device, precision),
                Ok(())
            );
        }
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
