//! The dtype BERT's matrix products run in: f32, or half precision with f32 everywhere else.
//!
//! Mixed precision as `torch.autocast` does it for BERT: every matrix product (the linear
//! layers, attention's scores and its weighted sum of values) takes both operands in f16 or
//! bf16, and its result is turned back to f32 at once, so that the parameters (master weights),
//! embeddings, LayerNorm, GELU, softmax, dropout and the loss stay f32. Gradients reach the f32
//! parameters through the casts in f32 too (autodiff casts a gradient back to its input's
//! dtype), so optimizers and their moments never see a half-precision tensor. On GPU backends
//! the half-precision products are what reaches tensor cores (SPIR-V's cooperative matrices,
//! f32 accumulation).

use std::fmt;
use std::str::FromStr;

use burn::nn::Linear;
use burn::tensor::{Device, FloatDType, Tensor};

use crate::fused;

/// What the matrix products of [`crate::BertClassifier`] compute in
/// ([`crate::BertClassifier::with_precision`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// Everything in f32 (the default, as the reference).
    #[default]
    F32,
    /// Matrix products in IEEE half precision (range ±65504): train it with loss scaling.
    F16,
    /// Matrix products in bfloat16 (f32's range, 8 bits of mantissa): no loss scaling needed.
    Bf16,
}

/// A precision name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown precision `{name}`: choose one of f32, f16, bf16")]
pub struct UnknownPrecision {
    /// What was given.
    pub name: String,
}

impl Precision {
    /// Every precision.
    pub fn all() -> [Precision; 3] {
        [Self::F32, Self::F16, Self::Bf16]
    }

    /// The name users type (`--precision f16`).
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
        }
    }

    /// The dtype matrix products take their operands in.
    pub fn matmul_dtype(self) -> FloatDType {
        match self {
            Self::F32 => FloatDType::F32,
            Self::F16 => FloatDType::F16,
            Self::Bf16 => FloatDType::BF16,
        }
    }

    /// Whether gradients need dynamic loss scaling to survive the half-precision backward
    /// pass: f16's smallest normal number is 6·10⁻⁵, so small gradients would flush to zero;
    /// bf16 shares f32's exponent range and does not (as `torch.amp` advises).
    pub fn needs_loss_scaling(self) -> bool {
        self == Self::F16
    }

    /// Whether `device` computes in this precision's matrix-product dtype (f32 always).
    pub fn runs_on(self, device: &Device) -> bool {
        self == Self::F32 || device.supports_dtype(self.matmul_dtype())
    }
}

/// `lhs · rhs` with both operands in `precision`'s dtype and the product back in f32.
pub(crate) fn matmul<const D: usize>(
    precision: Precision,
    lhs: Tensor<D>,
    rhs: Tensor<D>,
) -> Tensor<D> {
    match precision {
        Precision::F32 => fused::matmul::matmul(lhs, rhs),
        half => {
            let dtype = half.matmul_dtype();
            lhs.cast(dtype)
                .matmul(rhs.cast(dtype))
                .cast(FloatDType::F32)
        }
    }
}

/// `linear` applied to `input` with its matrix product in `precision` (the bias is added in
/// f32). In f32 it is exactly Burn's `Linear::forward`.
pub(crate) fn linear(precision: Precision, linear: &Linear, input: Tensor<2>) -> Tensor<2> {
    match precision {
        Precision::F32 => fused::matmul::linear(linear, input),
        half => {
            let product = matmul(half, input, linear.weight.val());
            match &linear.bias {
                Some(bias) => product + bias.val().unsqueeze_dim(0),
                None => product,
            }
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = UnknownPrecision;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::all()
            .into_iter()
            .find(|precision| precision.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| UnknownPrecision {
                name: name.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::tensor::TensorData;

    #[test]
    fn names_round_trip() {
        for precision in Precision::all() {
            assert_eq!(precision.to_string().parse::<Precision>(), Ok(precision));
        }
        assert_eq!(
            "fp16".parse::<Precision>().unwrap_err().to_string(),
            "unknown precision `fp16`: choose one of f32, f16, bf16"
        );
    }

    #[test]
    fn half_products_round_their_operands_and_return_f32() {
        let device = Device::flex();
        // 1 + 2⁻¹² is not an f16 (10 mantissa bits) and rounds to 1, nor a bf16 (7 bits);
        // 3 · 1 = 3 in both, exactly, where f32 keeps 3 + 3·2⁻¹².
        let lhs = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32 + 1.0 / 4096.0], [1, 1]),
            &device,
        );
        let rhs = Tensor::<2>::from_data(TensorData::new(vec![3.0f32], [1, 1]), &device);
        let product = |precision| {
            let out = matmul(precision, lhs.clone(), rhs.clone());
            assert_eq!(out.dtype(), burn::tensor::DType::F32);
            out.into_data().try_to_vec::<f32>().unwrap()[0]
        };
        assert_eq!(product(Precision::F32), 3.0 + 3.0 / 4096.0);
        assert_eq!(product(Precision::F16), 3.0);
        assert_eq!(product(Precision::Bf16), 3.0);
    }

    #[test]
    fn a_half_linear_adds_its_bias_in_f32() {
        let device = Device::flex();
        let layer = Linear {
            weight: Param::from_data(TensorData::new(vec![1.0f32, 2.0], [2, 1]), &device),
            // 1 + 2⁻²⁰ survives in f32 only: added after the product is back in f32.
            bias: Some(Param::from_data(
                TensorData::new(vec![1.0f32 + 1.0 / 1_048_576.0], [1]),
                &device,
            )),
        };
        let input = Tensor::<2>::from_data(TensorData::new(vec![3.0f32, 4.0], [1, 2]), &device);
        let out = linear(Precision::F16, &layer, input.clone());
        assert_eq!(
            out.into_data().try_to_vec::<f32>().unwrap(),
            vec![12.0 + 1.0 / 1_048_576.0]
        );
        let exact = linear(Precision::F32, &layer, input.clone());
        assert_eq!(
            exact.into_data(),
            layer.forward(input).into_data(),
            "f32 is Burn's own forward"
        );
    }

    #[test]
    fn flex_computes_in_every_precision() {
        let device = Device::flex();
        for precision in Precision::all() {
            assert!(precision.runs_on(&device), "{precision}");
        }
    }
}
