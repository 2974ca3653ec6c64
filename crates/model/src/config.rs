//! `config.json` of a Hugging Face BERT model: every size of the network comes from here.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::bert::BertClassifier;
use crate::error::ModelError;

/// The activation of the feed-forward blocks, from `hidden_act`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`: exact, with erf (PyTorch's default GELU).
    Gelu,
    /// `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`: the tanh approximation.
    GeluTanh,
    /// `relu`.
    Relu,
}

/// A BERT `config.json` as transformers writes it.
///
/// Defaults are transformers' `BertConfig` defaults, so a config that omits a key means what it
/// means to transformers. Keys this crate does not use are kept in [`BertConfig::other`] and
/// written back on save.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    /// Size of the token vocabulary.
    #[serde(default = "defaults::vocab_size")]
    pub vocab_size: usize,
    /// Width of every hidden state.
    #[serde(default = "defaults::hidden_size")]
    pub hidden_size: usize,
    /// Number of encoder layers.
    #[serde(default = "defaults::num_hidden_layers")]
    pub num_hidden_layers: usize,
    /// Attention heads per layer; divides `hidden_size`.
    #[serde(default = "defaults::num_attention_heads")]
    pub num_attention_heads: usize,
    /// Width of the feed-forward block.
    #[serde(default = "defaults::intermediate_size")]
    pub intermediate_size: usize,
    /// Feed-forward activation (`gelu`, `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`, `relu`).
    #[serde(default = "defaults::hidden_act")]
    pub hidden_act: String,
    /// Dropout after embeddings, attention output and feed-forward output.
    #[serde(default = "defaults::dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities.
    #[serde(default = "defaults::dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Dropout before the classifier head; `hidden_dropout_prob` when absent.
    #[serde(default)]
    pub classifier_dropout: Option<f64>,
    /// Number of learned positions: the longest input the model accepts.
    #[serde(default = "defaults::max_position_embeddings")]
    pub max_position_embeddings: usize,
    /// Number of token types (segments).
    #[serde(default = "defaults::type_vocab_size")]
    pub type_vocab_size: usize,
    /// Standard deviation of the normal initialisation of new weights.
    #[serde(default = "defaults::initializer_range")]
    pub initializer_range: f64,
    /// Epsilon of every LayerNorm.
    #[serde(default = "defaults::layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Id of the padding token (its embedding row starts at zero).
    #[serde(default)]
    pub pad_token_id: Option<usize>,
    /// Only `absolute` is supported.
    #[serde(default)]
    pub position_embedding_type: Option<String>,
    /// Label names by id (keys are decimal strings, as transformers writes them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id2label: Option<BTreeMap<String, String>>,
    /// Label ids by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label2id: Option<BTreeMap<String, usize>>,
    /// Number of labels, when given without `id2label`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_labels: Option<usize>,
    /// Every other key, kept so that saving does not lose it.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

mod defaults {
    pub fn vocab_size() -> usize {
        30522
    }
    pub fn hidden_size() -> usize {
        768
    }
    pub fn num_hidden_layers() -> usize {
        12
    }
    pub fn num_attention_heads() -> usize {
        12
    }
    pub fn intermediate_size() -> usize {
        3072
    }
    pub fn hidden_act() -> String {
        "gelu".to_string()
    }
    pub fn dropout() -> f64 {
        0.1
    }
    pub fn max_position_embeddings() -> usize {
        512
    }
    pub fn type_vocab_size() -> usize {
        2
    }
    pub fn initializer_range() -> f64 {
        0.02
    }
    pub fn layer_norm_eps() -> f64 {
        1e-12
    }
}

impl BertConfig {
    /// Reads and checks `config.json`.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(ModelError::io("read", path))?;
        Self::from_json(&text).map_err(|message| ModelError::Config {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses and checks the text of a `config.json`; the error says what is wrong.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let config: BertConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    /// Checks that the sizes describe a network this crate can build.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(format!("{name} must be positive"));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        self.activation()?;
        if let Some(kind) = &self.position_embedding_type
            && kind != "absolute"
        {
            return Err(format!(
                "position_embedding_type `{kind}` is not supported (only `absolute`)"
            ));
        }
        let probabilities = [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                self.attention_probs_dropout_prob,
            ),
            ("classifier_dropout", self.classifier_dropout()),
        ];
        if let Some((name, p)) = probabilities.iter().find(|(_, p)| !(0.0..1.0).contains(p)) {
            return Err(format!("{name} {p} is not a probability in [0, 1)"));
        }
        if !(self.layer_norm_eps > 0.0 && self.initializer_range >= 0.0) {
            return Err(
                "layer_norm_eps must be positive and initializer_range non-negative".into(),
            );
        }
        if let Some(pad) = self.pad_token_id
            && pad >= self.vocab_size
        {
            return Err(format!(
                "pad_token_id {pad} is outside the vocabulary of {}",
                self.vocab_size
            ));
        }
        Ok(())
    }

    /// The feed-forward activation `hidden_act` names.
    pub fn activation(&self) -> Result<Activation, String> {
        match self.hidden_act.as_str() {
            "gelu" => Ok(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Activation::GeluTanh),
            "relu" => Ok(Activation::Relu),
            other => Err(format!(
                "hidden_act `{other}` is not supported (gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu)"
            )),
        }
    }

    /// Width of one attention head.
    pub fn head_size(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Dropout before the classifier head, as transformers picks it.
    pub fn classifier_dropout(&self) -> f64 {
        self.classifier_dropout.unwrap_or(self.hidden_dropout_prob)
    }

    /// The label names the config declares, ordered by id, when it declares any.
    pub fn label_names(&self) -> Option<Vec<String>> {
        let id2label = self.id2label.as_ref()?;
        let mut by_id: Vec<(usize, &String)> = id2label
            .iter()
            .map(|(id, name)| Some((id.parse().ok()?, name)))
            .collect::<Option<_>>()?;
        by_id.sort();
        by_id
            .iter()
            .enumerate()
            .all(|(position, (id, _))| position == *id)
            .then(|| by_id.into_iter().map(|(_, name)| name.clone()).collect())
    }

    /// A randomly initialised classifier of `num_labels` labels on `device` (Burn's
    /// `XConfig::init` idiom), as transformers initialises a new
    /// `BertForSequenceClassification`: every linear and embedding weight drawn from
    /// N(0, initializer_range), biases zero, LayerNorm weight one and bias zero, the padding
    /// token's embedding zero. The same seed gives the same weights on every device.
    pub fn init(&self, num_labels: usize, seed: u64, device: &Device) -> BertClassifier {
        let mut source = crate::naming::SeededInit::new(self, seed);
        crate::naming::fill_parameters(
            BertClassifier::skeleton(self, num_labels, device),
            &mut source,
            device,
        )
        .expect("seeded initialisation cannot fail")
    }

    /// Sets `num_labels`, `id2label` and `label2id` (and the architecture) for a classifier
    /// over `labels`, as transformers expects them in a saved `BertForSequenceClassification`.
    pub fn set_labels(&mut self, labels: &[String]) {
        self.num_labels = Some(labels.len());
        self.id2label = Some(
            labels
                .iter()
                .enumerate()
                .map(|(id, name)| (id.to_string(), name.clone()))
                .collect(),
        );
        self.label2id = Some(
            labels
                .iter()
                .enumerate()
                .map(|(id, name)| (name.clone(), id))
                .collect(),
        );
        self.other.insert(
            "architectures".into(),
            serde_json::json!(["BertForSequenceClassification"]),
        );
        self.other
            .insert("model_type".into(), serde_json::json!("bert"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_transformers_bert_base() {
        let config = BertConfig::from_json("{}").unwrap();
        assert_eq!(
            (
                config.hidden_size,
                config.num_hidden_layers,
                config.intermediate_size
            ),
            (768, 12, 3072)
        );
        assert_eq!(config.classifier_dropout(), 0.1);
        assert_eq!(config.activation(), Ok(Activation::Gelu));
    }

    #[test]
    fn rejects_heads_that_do_not_divide_the_width() {
        let error =
            BertConfig::from_json(r#"{"hidden_size": 30, "num_attention_heads": 4}"#).unwrap_err();
        assert!(error.contains("not a multiple"), "{error}");
    }

    #[test]
    fn rejects_unknown_activation_and_relative_positions() {
        assert!(
            BertConfig::from_json(r#"{"hidden_act": "swish"}"#)
                .unwrap_err()
                .contains("swish")
        );
        assert!(
            BertConfig::from_json(r#"{"position_embedding_type": "relative_key"}"#)
                .unwrap_err()
                .contains("relative_key")
        );
    }

    #[test]
    fn labels_round_trip_in_id_order() {
        let mut config = BertConfig::from_json(r#"{"unknown_key": [1, 2]}"#).unwrap();
        let labels: Vec<String> = (0..12).map(|i| format!("l{i}")).collect();
        config.set_labels(&labels);
        let text = serde_json::to_string(&config).unwrap();
        let back = BertConfig::from_json(&text).unwrap();
        assert_eq!(back.label_names(), Some(labels));
        assert_eq!(back.num_labels, Some(12));
        assert_eq!(back.other["unknown_key"], serde_json::json!([1, 2]));
    }
}
