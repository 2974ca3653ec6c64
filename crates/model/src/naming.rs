//! Parameters by transformers name: filling a model skeleton (from a weight file or a seed) and
//! reading parameters or gradients back out under the names transformers uses.
//!
//! A Burn module path such as `bert.encoder.layer.0.attention.self_attention.query.weight`
//! becomes the transformers name by respelling three field names (see [`crate::bert`]), so
//! the struct definitions are the one place the mapping lives.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Device, Gradients, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::bert::BertClassifier;
use crate::config::BertConfig;
use crate::error::ModelError;
use crate::weights::transpose;

/// How transformers initialises a parameter it has no weights for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Init {
    /// Linear and embedding weights: N(0, initializer_range).
    Normal,
    /// The word embeddings: normal, with the padding token's row zero.
    NormalPaddingZero,
    /// Biases.
    Zeros,
    /// LayerNorm weights.
    Ones,
}

/// One parameter as the filler asks for it.
pub(crate) struct ParamRequest<'a> {
    /// transformers name, `bert.` prefix included for encoder parameters.
    pub name: &'a str,
    /// Shape in PyTorch layout (linear weights `[out, in]`).
    pub shape: &'a [usize],
    pub init: Init,
}

/// Where parameter values come from: f32, row-major, PyTorch layout.
pub(crate) trait ParamSource {
    fn values(&mut self, request: &ParamRequest<'_>) -> Result<Vec<f32>, ModelError>;
}

/// transformers' initialisation, drawn from a seeded ChaCha stream in parameter order.
pub(crate) struct SeededInit {
    rng: ChaCha8Rng,
    std: f64,
    pad_token_id: Option<usize>,
}

impl SeededInit {
    pub(crate) fn new(config: &BertConfig, seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            std: config.initializer_range,
            pad_token_id: config.pad_token_id,
        }
    }

    fn normal(&mut self, n: usize) -> Vec<f32> {
        // Box-Muller: two uniforms give two independent standard normals.
        let mut values = Vec::with_capacity(n + 1);
        while values.len() < n {
            let u1: f64 = 1.0 - self.rng.random::<f64>(); // (0, 1]: ln stays finite
            let u2: f64 = self.rng.random::<f64>();
            let radius = (-2.0 * u1.ln()).sqrt() * self.std;
            let angle = std::f64::consts::TAU * u2;
            values.push((radius * angle.cos()) as f32);
            values.push((radius * angle.sin()) as f32);
        }
        values.truncate(n);
        values
    }
}

impl ParamSource for SeededInit {
    fn values(&mut self, request: &ParamRequest<'_>) -> Result<Vec<f32>, ModelError> {
        let n = request.shape.iter().product();
        Ok(match request.init {
            Init::Normal => self.normal(n),
            Init::NormalPaddingZero => {
                let mut values = self.normal(n);
                if let Some(pad) = self.pad_token_id {
                    let width = request.shape[1];
                    values[pad * width..(pad + 1) * width].fill(0.0);
                }
                values
            }
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
        })
    }
}

/// The transformers name of the parameter at a Burn module path, and whether it is a linear
/// weight (stored transposed). `path` holds (field name, type of the struct owning it).
fn transformers_name(path: &[(String, String)]) -> (String, bool) {
    let (last, owner) = path.last().expect("a parameter has a path");
    let in_norm = owner == "Struct:LayerNorm";
    let leaf = match last.as_str() {
        "gamma" if in_norm => "weight",
        "beta" if in_norm => "bias",
        other => other,
    };
    let mut parts: Vec<&str> = path[..path.len() - 1]
        .iter()
        .map(|(field, _)| match field.as_str() {
            "layer_norm" => "LayerNorm",
            "self_attention" => "self",
            other => other,
        })
        .collect();
    parts.push(leaf);
    (
        parts.join("."),
        owner == "Struct:Linear" && leaf == "weight",
    )
}

fn init_for(path: &[(String, String)], name: &str) -> Init {
    let (leaf, owner) = path.last().expect("a parameter has a path");
    match (owner.as_str(), leaf.as_str()) {
        ("Struct:LayerNorm", "gamma") => Init::Ones,
        ("Struct:Embedding", _) if name.ends_with("word_embeddings.weight") => {
            Init::NormalPaddingZero
        }
        (_, "weight") => Init::Normal,
        _ => Init::Zeros,
    }
}

/// A stable parameter id from the transformers name (FNV-1a), so that optimizer state saved
/// with one process matches the parameters of a model loaded by another.
fn param_id(name: &str) -> ParamId {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    ParamId::from(hash)
}

/// Burn's tensors and layout from PyTorch-layout values.
fn burn_values(values: Vec<f32>, torch_shape: &[usize], linear_weight: bool) -> Vec<f32> {
    if linear_weight {
        transpose(&values, torch_shape[0], torch_shape[1])
    } else {
        values
    }
}

struct Filler<'a> {
    path: Vec<(String, String)>,
    source: &'a mut dyn ParamSource,
    device: &'a Device,
    error: Option<ModelError>,
}

impl ModuleMapper for Filler<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.error.is_some() {
            return param;
        }
        let (name, linear_weight) = transformers_name(&self.path);
        let burn_shape = param.lazy_shape();
        let mut shape: Vec<usize> = burn_shape.dims::<D>().to_vec();
        if linear_weight {
            shape.reverse();
        }
        let request = ParamRequest {
            name: &name,
            shape: &shape,
            init: init_for(&self.path, &name),
        };
        match self.source.values(&request) {
            Ok(values) => {
                let data = TensorData::new(
                    burn_values(values, &shape, linear_weight),
                    burn_shape.clone(),
                );
                Param::uninitialized(
                    param_id(&name),
                    move |device, require_grad| {
                        Tensor::from_data(data, device).set_require_grad(require_grad)
                    },
                    self.device.clone(),
                    true,
                    burn_shape,
                )
            }
            Err(error) => {
                self.error = Some(error);
                param
            }
        }
    }
}

/// Gives every parameter of `skeleton` its values from `source`, in transformers' order.
pub(crate) fn fill_parameters(
    skeleton: BertClassifier,
    source: &mut dyn ParamSource,
    device: &Device,
) -> Result<BertClassifier, ModelError> {
    let mut filler = Filler {
        path: Vec::new(),
        source,
        device,
        error: None,
    };
    let model = skeleton.map(&mut filler);
    match filler.error {
        Some(error) => Err(error),
        None => Ok(model),
    }
}

/// A parameter (or gradient) under its transformers name, PyTorch layout, f32.
#[derive(Debug, Clone)]
pub struct NamedTensor {
    /// transformers name, e.g. `bert.encoder.layer.0.attention.self.query.weight`.
    pub name: String,
    /// PyTorch shape (linear weights `[out, in]`).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f32>,
}

struct Collector<'a> {
    path: Vec<(String, String)>,
    gradients: Option<&'a Gradients>,
    out: Vec<NamedTensor>,
}

impl ModuleVisitor for Collector<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let (name, linear_weight) = transformers_name(&self.path);
        let tensor = match self.gradients {
            None => param.val(),
            Some(gradients) => match param.val().grad(gradients) {
                Some(grad) => grad,
                None => return,
            },
        };
        let mut shape = tensor.dims().to_vec();
        let values = tensor
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("converted to f32 just above");
        let values = if linear_weight {
            let values = transpose(&values, shape[0], shape[1]);
            shape.reverse();
            values
        } else {
            values
        };
        self.out.push(NamedTensor {
            name,
            shape,
            values,
        });
    }
}

impl BertClassifier {
    /// Every parameter under its transformers name, in transformers' order (the state dict
    /// `model.safetensors` holds).
    pub fn state_dict(&self) -> Vec<NamedTensor> {
        self.collect(None)
    }

    /// The gradient of every parameter that has one in `gradients`, under its transformers
    /// name, in PyTorch layout.
    pub fn named_gradients(&self, gradients: &Gradients) -> Vec<NamedTensor> {
        self.collect(Some(gradients))
    }

    fn collect(&self, gradients: Option<&Gradients>) -> Vec<NamedTensor> {
        let mut collector = Collector {
            path: Vec::new(),
            gradients,
            out: Vec::new(),
        };
        self.visit(&mut collector);
        collector.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_config() -> BertConfig {
        BertConfig::from_json(
            r#"{"vocab_size": 50, "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
                "intermediate_size": 12, "max_position_embeddings": 16, "pad_token_id": 0}"#,
        )
        .unwrap()
    }

    #[test]
    fn names_and_shapes_are_transformers() {
        let model = tiny_config().init(3, 1, &Device::flex());
        let state = model.state_dict();
        let names: Vec<&str> = state.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names.len(), 5 + 2 * 16 + 2 + 2);
        assert_eq!(names[0], "bert.embeddings.word_embeddings.weight");
        assert_eq!(names[3], "bert.embeddings.LayerNorm.weight");
        assert_eq!(names[5], "bert.encoder.layer.0.attention.self.query.weight");
        assert!(names.contains(&"bert.encoder.layer.1.attention.output.LayerNorm.bias"));
        assert!(names.contains(&"bert.encoder.layer.1.output.dense.weight"));
        assert_eq!(
            &names[names.len() - 4..],
            [
                "bert.pooler.dense.weight",
                "bert.pooler.dense.bias",
                "classifier.weight",
                "classifier.bias"
            ]
        );
        let shape = |name: &str| state.iter().find(|t| t.name == name).unwrap().shape.clone();
        assert_eq!(
            shape("bert.encoder.layer.0.intermediate.dense.weight"),
            [12, 8]
        );
        assert_eq!(shape("classifier.weight"), [3, 8]);
    }

    #[test]
    fn seeded_init_is_transformers_and_reproducible() {
        let config = tiny_config();
        let a = config.init(2, 7, &Device::flex()).state_dict();
        let b = config.init(2, 7, &Device::flex()).state_dict();
        let c = config.init(2, 8, &Device::flex()).state_dict();
        for ((x, y), z) in a.iter().zip(&b).zip(&c) {
            assert_eq!(x.values, y.values, "{} differs for one seed", x.name);
            if x.name.ends_with("dense.weight") {
                assert_ne!(x.values, z.values, "{} ignores the seed", x.name);
            }
        }
        let get = |name: &str| &a.iter().find(|t| t.name == name).unwrap().values;
        assert!(get("classifier.bias").iter().all(|&v| v == 0.0));
        assert!(
            get("bert.embeddings.LayerNorm.weight")
                .iter()
                .all(|&v| v == 1.0)
        );
        let words = get("bert.embeddings.word_embeddings.weight");
        assert!(
            words[..8].iter().all(|&v| v == 0.0),
            "padding row must be zero"
        );
        let rest = &words[8..];
        let mean = rest.iter().map(|&v| f64::from(v)).sum::<f64>() / rest.len() as f64;
        let std = (rest
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / rest.len() as f64)
            .sqrt();
        assert!(
            mean.abs() < 0.005 && (std - 0.02).abs() < 0.003,
            "mean {mean}, std {std}"
        );
    }
}
