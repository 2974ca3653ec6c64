//! The BERT sequence classifier Meta-BERT trains: transformers' `BertForSequenceClassification`
//! written with Burn, loaded from and saved as Hugging Face weights, on any Burn device.
//!
//! - [`BertConfig`]: `config.json`; every size of the network comes from it.
//! - [`BertClassifier`]: embeddings (word + position + token type, LayerNorm) → post-norm
//!   encoder with exact (erf) GELU → tanh pooler on [CLS] → dropout → linear head.
//!   [`BertClassifier::forward`] gives logits, [`BertClassifier::encode`] the hidden states and
//!   pooled output, [`BertClassifier::classify`] the head alone (for ANIL).
//! - [`resolve_model`] finds a model (local directory, our checkpoint, or Hugging Face id via
//!   the hub cache), [`load_classifier`] loads it for the label names it is given
//!   (`model.safetensors` or `pytorch_model.bin`),
//!   [`save_checkpoint`] writes a directory transformers loads, atomically. A directory without
//!   weights opens only as a [`ConfigDir`], and [`random_classifier`] gives it random weights
//!   (for benchmarks).
//! - [`BackendKind`] turns a backend name into a [`burn::tensor::Device`]: the one place a
//!   device is made. No GPU backend is compiled in unless asked for (features `wgpu`,
//!   `vulkan` (wgpu with SPIR-V), `cuda`, `tch`).
//! - [`Precision`]: matrix products in f32, f16 or bf16, everything else in f32.
//!
//! The crate is a leaf of the workspace: labels go in and out as names, inputs as token ids
//! ([`BertInput`]); it knows nothing of review files, tokenisers or few-shot tasks.
//!
//! # Where this differs from PyTorch
//!
//! - **Dropout.** Burn applies dropout only when the module is in training state *and* its
//!   tensors are on an autodiff device. `model.valid()` (plain device, no gradients) is
//!   PyTorch's `model.eval()` + `torch.no_grad()`. For gradients without dropout, PyTorch's
//!   `model.eval()` + `backward()`, use [`BertClassifier::without_dropout`], which sets every
//!   dropout probability to zero; the parity tests do that.
//! - **Linear weights** are stored `[in, out]` (Burn), not `[out, in]`; names and layouts are
//!   translated to transformers' when loading, saving, and in [`BertClassifier::state_dict`] /
//!   [`BertClassifier::named_gradients`].
//! - **Parameter ids** are derived from transformers names, so they are the same in every
//!   process that loads the same architecture (optimizer state can be matched on resume).
//! - **Attention mask.** Padding positions get −inf added to their scores (transformers adds
//!   the most negative f32); both give them exactly zero weight.
//! - **Dropout randomness.** On Flex, masks come from the calling thread's own stream, seeded
//!   with [`seed_dropout`] (not from Burn's shared generator), so tasks adapting on different
//!   threads stay reproducible; other backends draw on the device, seeded with `Device::seed`.
//! - **GELU and softmax on Flex** use their own approximations, so that they vectorise: `erf`
//!   from Abramowitz and Stegun 7.1.26 (absolute error ≤ 1.5·10⁻⁷, so GELU is within
//!   2·10⁻⁷·|x| of the exact one) and an `exp` within a few ulp that returns 0 below `e⁻⁸⁷`.
//!   The transformers goldens hold at their tolerances.
//! - **SIMD chosen at run time.** Those kernels, LayerNorm and dropout masks run AVX-512 or
//!   AVX2+FMA code when the CPU has it ([`simd_level`]; [`SIMD_ENV`] caps it), so the float
//!   results differ from one CPU to another by rounding (as PyTorch's do); masks do not.
//! - **Precision.** Weights are f32 (f16/bf16 weights are converted when loaded); with
//!   [`BertClassifier::with_precision`] the matrix products run in f16 or bf16 and everything
//!   else stays f32, as under `torch.autocast` ([`Precision`]).
//!
//! # Example
//!
//! ```
//! use burn::tensor::{Device, Int, Tensor, TensorData};
//! use burn::nn::loss::CrossEntropyLossConfig;
//! use model::{BertClassifier, BertConfig, BertInput};
//!
//! let config = BertConfig::from_json(
//!     r#"{"vocab_size": 100, "hidden_size": 16, "num_hidden_layers": 2,
//!         "num_attention_heads": 4, "intermediate_size": 32, "max_position_embeddings": 64}"#,
//! )
//! .unwrap();
//! let device = Device::flex().autodiff();
//! let model = config.init(2, 42, &device).without_dropout();
//! // Two texts of 3 tokens, the second padded.
//! let input = BertInput::new(
//!     vec![1, 5, 2, 1, 7, 0],
//!     vec![1, 1, 1, 1, 1, 0],
//!     vec![0; 6],
//!     [2, 3],
//!     &device,
//! );
//! let logits = model.forward(&input);
//! assert_eq!(logits.dims(), [2, 2]);
//! let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1], [2]), &device);
//! let loss = CrossEntropyLossConfig::new().init(&device).forward(logits, labels);
//! let gradients = loss.backward();
//! assert_eq!(model.named_gradients(&gradients).len(), model.state_dict().len());
//! ```

mod backend;
mod bert;
mod checkpoint;
mod config;
mod dropout;
mod error;
mod fused;
mod hub;
mod load;
mod naming;
mod packing;
mod precision;
mod weights;

pub use backend::{BackendError, BackendKind, adapter_name};
pub use bert::{BertClassifier, BertInput, BertOutput};
pub use checkpoint::{CheckpointMeta, METADATA_FILE, save_checkpoint};
pub use config::{Activation, BertConfig};
pub use dropout::seed_dropout;
pub use error::ModelError;
pub use fused::adam::FusedAdam;
pub use fused::simd::{SIMD_ENV, SimdLevel, SimdLevelError, simd_level};
pub use hub::{ConfigDir, DEFAULT_MODEL, HubOptions, ModelDir, TOKENIZER_FILES, resolve_model};
pub use load::{LoadReport, load_classifier, random_classifier};
pub use naming::NamedTensor;
pub use precision::{Precision, UnknownPrecision};
pub use weights::WEIGHT_FILES;
