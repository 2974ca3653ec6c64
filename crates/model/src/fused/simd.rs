//! The widest SIMD instructions this CPU has, chosen once at run time, for our own kernels.
//!
//! Without `-C target-cpu` (binaries are carried to other machines), Rust compiles for baseline
//! x86-64: SSE2, four `f32` lanes. Each kernel of the fused operations and of dropout is
//! therefore compiled three times by [`multiversion!`] — as written, with AVX2 + FMA, and with
//! AVX-512 (F, BW, DQ, VL) — and a call runs the widest version the CPU supports, unless
//! [`SIMD_ENV`] asks for a lower one. The kernels are plain loops that the compiler vectorises
//! for whatever it may use; the SIMD versions also fuse `a·b + c` into one rounding
//! ([`Fused`]), which the portable one cannot do cheaply without FMA hardware ([`Separate`]).
//! So results differ between levels by rounding only; the tests run every level this CPU has
//! against the portable one.

use std::sync::OnceLock;

/// Environment variable that caps the SIMD level: `portable`, `avx2` or `avx512`. A level above
/// what the CPU supports means the CPU's level; unset or empty means the CPU's level.
pub const SIMD_ENV: &str = "METABERT_SIMD";

/// A set of vector instructions the kernels are compiled for, from narrowest to widest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimdLevel {
    /// Baseline for the target (SSE2 on x86-64), as the compiler vectorises the loops.
    Portable,
    /// x86-64 AVX2 with FMA: eight lanes.
    Avx2,
    /// x86-64 AVX-512 F, BW, DQ and VL: sixteen lanes.
    Avx512,
}

/// [`SIMD_ENV`] holds something that is no level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{SIMD_ENV}={value} is not a SIMD level: use portable, avx2 or avx512 (or unset it)")]
pub struct SimdLevelError {
    value: String,
}

impl SimdLevel {
    const ALL: [Self; 3] = [Self::Portable, Self::Avx2, Self::Avx512];

    /// The name [`SIMD_ENV`] takes, and benchmarks report.
    pub fn name(self) -> &'static str {
        match self {
            Self::Portable => "portable",
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512",
        }
    }

    /// The widest level this CPU supports.
    pub fn detected() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512dq")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
            {
                return Self::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Self::Avx2;
            }
        }
        Self::Portable
    }

    /// Every level this CPU supports, narrowest first.
    pub fn supported() -> impl Iterator<Item = Self> {
        let detected = Self::detected();
        Self::ALL
            .into_iter()
            .filter(move |&level| level <= detected)
    }

    fn parse(value: &str) -> Result<Self, SimdLevelError> {
        Self::ALL
            .into_iter()
            .find(|level| level.name() == value)
            .ok_or_else(|| SimdLevelError {
                value: value.to_owned(),
            })
    }

    /// The level to run: `requested` (the value of [`SIMD_ENV`]) capped at `detected`.
    fn choose(requested: Option<&str>, detected: Self) -> Result<Self, SimdLevelError> {
        match requested {
            None | Some("") => Ok(detected),
            Some(value) => Ok(Self::parse(value)?.min(detected)),
        }
    }
}

/// The level the kernels run at: the CPU's, capped by [`SIMD_ENV`] (read once per process).
pub fn simd_level() -> Result<SimdLevel, SimdLevelError> {
    static LEVEL: OnceLock<Result<SimdLevel, SimdLevelError>> = OnceLock::new();
    LEVEL
        .get_or_init(|| {
            let requested = std::env::var(SIMD_ENV).ok();
            SimdLevel::choose(requested.as_deref(), SimdLevel::detected())
        })
        .clone()
}

/// [`simd_level`] for the kernels, which have no way to return an error: a binary that wants
/// a misspelt [`SIMD_ENV`] reported as an error calls [`simd_level`] first.
pub(crate) fn active() -> SimdLevel {
    simd_level().unwrap_or_else(|error| panic!("{error}"))
}

/// How a kernel computes `a·b + c`.
pub(crate) trait Arithmetic {
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

/// A product, then a sum: two roundings, as every CPU does it fast.
pub(crate) struct Separate;

/// One FMA instruction, one rounding: for the levels whose CPUs have FMA.
pub(crate) struct Fused;

impl Arithmetic for Separate {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

impl Arithmetic for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

/// `fn name<A>(args) -> R body` becomes `fn name(level: SimdLevel, args) -> R`, which runs the
/// body compiled for `level` (at most the detected one), with `A` the [`Arithmetic`] the level
/// has. The body is compiled into each version by inlining, together with every
/// `#[inline(always)]` helper it calls.
macro_rules! multiversion {
    (
        $(#[$attr:meta])*
        $vis:vis fn $name:ident<$arithmetic:ident>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?
        $body:block
    ) => {
        $(#[$attr])*
        $vis fn $name(level: $crate::fused::simd::SimdLevel, $($arg: $ty),*) $(-> $ret)? {
            // A kernel that rounds every operation on its own has no use for its `Arithmetic`.
            #[allow(clippy::extra_unused_type_parameters)]
            #[inline(always)]
            fn kernel<$arithmetic: $crate::fused::simd::Arithmetic>($($arg: $ty),*) $(-> $ret)?
            $body

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn avx2($($arg: $ty),*) $(-> $ret)? {
                kernel::<$crate::fused::simd::Fused>($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
            fn avx512($($arg: $ty),*) $(-> $ret)? {
                kernel::<$crate::fused::simd::Fused>($($arg),*)
            }

            // Capped, so that no caller can run instructions the CPU lacks.
            match level.min($crate::fused::simd::SimdLevel::detected()) {
                // SAFETY: the CPU supports AVX-512 F/BW/DQ/VL, AVX2 and FMA (detected above).
                #[cfg(target_arch = "x86_64")]
                $crate::fused::simd::SimdLevel::Avx512 => unsafe { avx512($($arg),*) },
                // SAFETY: the CPU supports AVX2 and FMA (detected above).
                #[cfg(target_arch = "x86_64")]
                $crate::fused::simd::SimdLevel::Avx2 => unsafe { avx2($($arg),*) },
                _ => kernel::<$crate::fused::simd::Separate>($($arg),*),
            }
        }
    };
}

pub(crate) use multiversion;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_caps_the_detected_level() {
        let choose = SimdLevel::choose;
        assert_eq!(choose(None, SimdLevel::Avx512), Ok(SimdLevel::Avx512));
        assert_eq!(choose(Some(""), SimdLevel::Avx2), Ok(SimdLevel::Avx2));
        assert_eq!(choose(Some("avx2"), SimdLevel::Avx512), Ok(SimdLevel::Avx2));
        assert_eq!(
            choose(Some("portable"), SimdLevel::Avx512),
            Ok(SimdLevel::Portable)
        );
        // Never above what the CPU has.
        assert_eq!(choose(Some("avx512"), SimdLevel::Avx2), Ok(SimdLevel::Avx2));
    }

    #[test]
    fn a_misspelt_level_is_an_error_that_names_the_choices() {
        let error = SimdLevel::choose(Some("avx-512"), SimdLevel::Avx512).unwrap_err();
        assert_eq!(
            error.to_string(),
            "METABERT_SIMD=avx-512 is not a SIMD level: use portable, avx2 or avx512 (or unset it)"
        );
    }

    #[test]
    fn supported_levels_start_portable_and_end_at_the_detected_one() {
        let levels: Vec<_> = SimdLevel::supported().collect();
        assert_eq!(levels.first(), Some(&SimdLevel::Portable));
        assert_eq!(levels.last(), Some(&SimdLevel::detected()));
    }

    multiversion! {
        fn sum_of_products<A>(a: &[f32], b: &[f32]) -> f32 {
            a.iter().zip(b).fold(0.0, |sum, (&a, &b)| A::mul_add(a, b, sum))
        }
    }

    #[test]
    fn every_level_computes_the_same_function() {
        let a: Vec<f32> = (0..100).map(|i| i as f32 * 0.25).collect();
        for level in SimdLevel::supported() {
            // Exact in either rounding: small multiples of 1/16.
            assert_eq!(sum_of_products(level, &a, &a), 20_521.875, "{level:?}");
        }
    }
}
