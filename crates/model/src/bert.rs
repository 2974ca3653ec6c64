//! transformers' `BertForSequenceClassification` as Burn modules.
//!
//! Struct fields are named after the transformers modules they mirror, so that a parameter's
//! Burn path *is* its transformers name (see [`crate::naming`]); the only spellings that
//! differ are `layer_norm` (`LayerNorm`), `self_attention` (`self`) and LayerNorm's
//! `gamma`/`beta` (`weight`/`bias`). Linear weights are stored as Burn does, `[in, out]`.

use burn::module::Module;
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear,
    LinearConfig,
};
use burn::tensor::activation::{gelu_approximate, relu};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::config::{Activation, BertConfig};
use crate::packing::{Grid, Packing};
use crate::precision::{self, Precision};
use crate::{dropout, fused};

/// The inputs of one forward pass, `[batch, seq_len]` each.
#[derive(Debug, Clone)]
pub struct BertInput {
    /// Token ids.
    pub input_ids: Tensor<2, Int>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Tensor<2, Int>,
    /// Segment ids (all 0 for single-text classification).
    pub token_type_ids: Tensor<2, Int>,
    /// The rows [`BertClassifier::forward`] computes when it skips padding; `None` when the
    /// batch has no padding to skip.
    packing: Option<Packing>,
}

impl BertInput {
    /// Row-major `[batch_size, seq_len]` id, mask and token-type arrays as tensors on `device`
    /// (pass the model's device).
    ///
    /// # Panics
    ///
    /// If an array does not hold `batch_size * seq_len` values.
    pub fn new(
        input_ids: Vec<i64>,
        attention_mask: Vec<i64>,
        token_type_ids: Vec<i64>,
        [batch_size, seq_len]: [usize; 2],
        device: &Device,
    ) -> Self {
        let tensor = |values: Vec<i64>| {
            Tensor::from_data(TensorData::new(values, [batch_size, seq_len]), device)
        };
        Self {
            packing: Packing::from_mask(&attention_mask, [batch_size, seq_len], device),
            input_ids: tensor(input_ids),
            attention_mask: tensor(attention_mask),
            token_type_ids: tensor(token_type_ids),
        }
    }
}

/// What the encoder computes before the classification head.
#[derive(Debug, Clone)]
pub struct BertOutput {
    /// `[batch, seq_len, hidden]`: the last encoder layer's output.
    pub last_hidden_state: Tensor<3>,
    /// `[batch, hidden]`: tanh(dense([CLS] state)).
    pub pooler_output: Tensor<2>,
}

/// `BertForSequenceClassification`: BERT encoder, pooler, dropout and a linear head.
#[derive(Module, Debug)]
pub struct BertClassifier {
    pub(crate) bert: BertModel,
    pub(crate) dropout: Dropout,
    pub(crate) classifier: Linear,
    #[module(skip)]
    pub(crate) config: BertConfig,
    #[module(skip)]
    pub(crate) skip_padding: bool,
    #[module(skip)]
    pub(crate) precision: Precision,
}

#[derive(Module, Debug)]
pub(crate) struct BertModel {
    pub(crate) embeddings: BertEmbeddings,
    pub(crate) encoder: BertEncoder,
    pub(crate) pooler: BertPooler,
}

#[derive(Module, Debug)]
pub(crate) struct BertEmbeddings {
    pub(crate) word_embeddings: Embedding,
    pub(crate) position_embeddings: Embedding,
    pub(crate) token_type_embeddings: Embedding,
    pub(crate) layer_norm: LayerNorm,
    /// `layer_norm`'s epsilon, which Burn's `LayerNorm` keeps private.
    #[module(skip)]
    pub(crate) layer_norm_eps: f64,
    pub(crate) dropout: Dropout,
}

#[derive(Module, Debug)]
pub(crate) struct BertEncoder {
    pub(crate) layer: Vec<BertLayer>,
}

#[derive(Module, Debug)]
pub(crate) struct BertLayer {
    pub(crate) attention: BertAttention,
    pub(crate) intermediate: BertIntermediate,
    pub(crate) output: DenseNormOutput,
}

#[derive(Module, Debug)]
pub(crate) struct BertAttention {
    pub(crate) self_attention: BertSelfAttention,
    pub(crate) output: DenseNormOutput,
}

#[derive(Module, Debug)]
pub(crate) struct BertSelfAttention {
    pub(crate) query: Linear,
    pub(crate) key: Linear,
    pub(crate) value: Linear,
    pub(crate) dropout: Dropout,
    pub(crate) num_heads: usize,
}

#[derive(Module, Debug)]
pub(crate) struct BertIntermediate {
    pub(crate) dense: Linear,
    #[module(skip)]
    pub(crate) activation: Activation,
}

/// transformers' `BertSelfOutput` and `BertOutput`: dense, dropout, residual, LayerNorm.
#[derive(Module, Debug)]
pub(crate) struct DenseNormOutput {
    pub(crate) dense: Linear,
    pub(crate) layer_norm: LayerNorm,
    /// `layer_norm`'s epsilon, which Burn's `LayerNorm` keeps private.
    #[module(skip)]
    pub(crate) layer_norm_eps: f64,
    pub(crate) dropout: Dropout,
}

#[derive(Module, Debug)]
pub(crate) struct BertPooler {
    pub(crate) dense: Linear,
}

impl BertClassifier {
    /// The network `config` describes with `num_labels` outputs, every parameter not yet
    /// initialised (lazy). Loading and seeded initialisation fill it through
    /// [`crate::naming::fill_parameters`].
    pub(crate) fn skeleton(config: &BertConfig, num_labels: usize, device: &Device) -> Self {
        let activation = config
            .activation()
            .expect("configs are validated when they are read");
        let hidden = config.hidden_size;
        let linear = |d_in, d_out| LinearConfig::new(d_in, d_out).init(device);
        let norm = || {
            LayerNormConfig::new(hidden)
                .with_epsilon(config.layer_norm_eps)
                .init(device)
        };
        let hidden_dropout = || DropoutConfig::new(config.hidden_dropout_prob).init();
        let embedding = |n| EmbeddingConfig::new(n, hidden).init(device);
        let dense_norm = |d_in| DenseNormOutput {
            dense: linear(d_in, hidden),
            layer_norm: norm(),
            layer_norm_eps: config.layer_norm_eps,
            dropout: hidden_dropout(),
        };
        let layer = || BertLayer {
            attention: BertAttention {
                self_attention: BertSelfAttention {
                    query: linear(hidden, hidden),
                    key: linear(hidden, hidden),
                    value: linear(hidden, hidden),
                    dropout: DropoutConfig::new(config.attention_probs_dropout_prob).init(),
                    num_heads: config.num_attention_heads,
                },
                output: dense_norm(hidden),
            },
            intermediate: BertIntermediate {
                dense: linear(hidden, config.intermediate_size),
                activation,
            },
            output: dense_norm(config.intermediate_size),
        };
        Self {
            bert: BertModel {
                embeddings: BertEmbeddings {
                    word_embeddings: embedding(config.vocab_size),
                    position_embeddings: embedding(config.max_position_embeddings),
                    token_type_embeddings: embedding(config.type_vocab_size),
                    layer_norm: norm(),
                    layer_norm_eps: config.layer_norm_eps,
                    dropout: hidden_dropout(),
                },
                encoder: BertEncoder {
                    layer: (0..config.num_hidden_layers).map(|_| layer()).collect(),
                },
                pooler: BertPooler {
                    dense: linear(hidden, hidden),
                },
            },
            dropout: DropoutConfig::new(config.classifier_dropout()).init(),
            classifier: linear(hidden, num_labels),
            config: config.clone(),
            skip_padding: true,
            precision: Precision::F32,
        }
    }

    /// The config the network was built from.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// Number of classes the head predicts.
    pub fn num_labels(&self) -> usize {
        self.classifier.weight.lazy_shape().dims::<2>()[1]
    }

    /// The longest input (in tokens, special tokens included) the position embeddings cover.
    pub fn max_sequence_length(&self) -> usize {
        self.config.max_position_embeddings
    }

    /// The same network with every dropout probability set to zero: what PyTorch's
    /// `model.eval()` does to BERT, while gradients still flow (Burn's `valid()` instead also
    /// leaves autodiff). Used for parity with transformers and for deterministic runs.
    pub fn without_dropout(mut self) -> Self {
        let zero = |dropout: &mut Dropout| dropout.prob = 0.0;
        zero(&mut self.dropout);
        zero(&mut self.bert.embeddings.dropout);
        for layer in &mut self.bert.encoder.layer {
            zero(&mut layer.attention.self_attention.dropout);
            zero(&mut layer.attention.output.dropout);
            zero(&mut layer.output.dropout);
        }
        self
    }

    /// Whether [`Self::forward`] and [`Self::pooled`] compute only the positions that carry a
    /// token (on by default). Padding is masked out of attention, so skipping it changes no
    /// logit beyond rounding, while the work of every layer shrinks to the batch's real tokens
    /// (attention's scores: to grids per group of neighbouring sequences, each as long as its
    /// longest). Off computes every position, as transformers does (dropout
    /// masks then cover every position, so seeded runs with dropout differ between the two).
    pub fn with_skip_padding(mut self, skip_padding: bool) -> Self {
        self.skip_padding = skip_padding;
        self
    }

    /// Computes every matrix product in `precision`'s dtype, everything else in f32 (see
    /// [`Precision`]; f32, the default, is exactly the reference). Check
    /// [`Precision::runs_on`] the model's device first: a backend without the dtype computes
    /// garbage rather than failing.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// The precision matrix products run in ([`Self::with_precision`]).
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Logits `[batch, num_labels]`.
    ///
    /// # Panics
    ///
    /// If the sequence is longer than [`Self::max_sequence_length`] (callers truncate).
    pub fn forward(&self, input: &BertInput) -> Tensor<2> {
        self.classify(self.pooled(input))
    }

    /// The pooled [CLS] representation `[batch, hidden]`, as [`Self::encode`] gives it, without
    /// computing padding unless [`Self::with_skip_padding`] turned that off.
    ///
    /// # Panics
    ///
    /// If the sequence is longer than [`Self::max_sequence_length`] (callers truncate).
    pub fn pooled(&self, input: &BertInput) -> Tensor<2> {
        let grid = match input.packing.as_ref().filter(|_| self.skip_padding) {
            Some(packing) => Grid::Packed(packing),
            None => Grid::full(&input.attention_mask),
        };
        let hidden = self.encode_rows(input, &grid);
        self.pool(grid.first_tokens(hidden))
    }

    /// The encoder's hidden states at every position and pooled [CLS] representation, as
    /// transformers computes them.
    ///
    /// # Panics
    ///
    /// If the sequence is longer than [`Self::max_sequence_length`] (callers truncate).
    pub fn encode(&self, input: &BertInput) -> BertOutput {
        let grid = Grid::full(&input.attention_mask);
        let hidden = self.encode_rows(input, &grid);
        let [batch, seq_len] = input.input_ids.dims();
        let [_, width] = hidden.dims();
        BertOutput {
            pooler_output: self.pool(grid.first_tokens(hidden.clone())),
            last_hidden_state: hidden.reshape([batch, seq_len, width]),
        }
    }

    /// The last layer's output `[rows, hidden]` at the rows `grid` computes.
    fn encode_rows(&self, input: &BertInput, grid: &Grid) -> Tensor<2> {
        let [_, seq_len] = input.input_ids.dims();
        assert!(
            seq_len <= self.config.max_position_embeddings,
            "input of {seq_len} tokens is longer than the model's {} positions; truncate it",
            self.config.max_position_embeddings
        );
        let mut hidden = self.bert.embeddings.forward(input, grid);
        for layer in &self.bert.encoder.layer {
            hidden = layer.forward(hidden, grid, self.precision);
        }
        hidden
    }

    fn pool(&self, first_tokens: Tensor<2>) -> Tensor<2> {
        precision::linear(self.precision, &self.bert.pooler.dense, first_tokens).tanh()
    }

    /// Dropout and the linear head on pooled representations `[batch, hidden]`: the part ANIL
    /// adapts.
    pub fn classify(&self, pooled: Tensor<2>) -> Tensor<2> {
        precision::linear(
            self.precision,
            &self.classifier,
            dropout::apply(&self.dropout, pooled),
        )
    }
}

impl BertEmbeddings {
    fn forward(&self, input: &BertInput, grid: &Grid) -> Tensor<2> {
        let [_, seq_len] = input.input_ids.dims();
        let words = self.word_embeddings.forward(input.input_ids.clone());
        let types = self
            .token_type_embeddings
            .forward(input.token_type_ids.clone());
        // Positions 0..seq_len for every row: a slice of the table, broadcast over the batch.
        let positions = self
            .position_embeddings
            .weight
            .val()
            .narrow(0, 0, seq_len)
            .unsqueeze_dim::<3>(0);
        let embedded = grid.to_rows(words + types + positions);
        let normalized =
            fused::layer_norm::layer_norm(embedded, &self.layer_norm, self.layer_norm_eps);
        dropout::apply(&self.dropout, normalized)
    }
}

impl BertLayer {
    fn forward(&self, hidden: Tensor<2>, grid: &Grid, precision: Precision) -> Tensor<2> {
        let attended = self
            .attention
            .self_attention
            .forward(hidden.clone(), grid, precision);
        let attended = self.attention.output.forward(attended, hidden, precision);
        let intermediate = self.intermediate.forward(attended.clone(), precision);
        self.output.forward(intermediate, attended, precision)
    }
}

impl BertSelfAttention {
    fn forward(&self, hidden: Tensor<2>, grid: &Grid, precision: Precision) -> Tensor<2> {
        let [_, width] = hidden.dims();
        let head_size = width / self.num_heads;
        let query_key_value = [&self.query, &self.key, &self.value]
            .map(|linear| precision::linear(precision, linear, hidden.clone()));
        grid.attend(query_key_value, |[query, key, value], mask| {
            let [sequences, positions, _] = query.dims();
            let heads = |x: Tensor<3>| {
                x.reshape([sequences, positions, self.num_heads, head_size])
                    .swap_dims(1, 2)
            };
            let scores = precision::matmul(precision, heads(query), heads(key).swap_dims(2, 3));
            let scale = 1.0 / (head_size as f64).sqrt();
            let probs = fused::attention::probabilities(scores, mask, scale, &self.dropout);
            precision::matmul(precision, probs, heads(value))
                .swap_dims(1, 2)
                .reshape([sequences, positions, width])
        })
    }
}

impl BertIntermediate {
    fn forward(&self, hidden: Tensor<2>, precision: Precision) -> Tensor<2> {
        let x = precision::linear(precision, &self.dense, hidden);
        match self.activation {
            Activation::Gelu => fused::gelu::gelu(x),
            Activation::GeluTanh => gelu_approximate(x),
            Activation::Relu => relu(x),
        }
    }
}

impl DenseNormOutput {
    fn forward(&self, hidden: Tensor<2>, residual: Tensor<2>, precision: Precision) -> Tensor<2> {
        let x = dropout::apply(
            &self.dropout,
            precision::linear(precision, &self.dense, hidden),
        );
        fused::layer_norm::layer_norm(x + residual, &self.layer_norm, self.layer_norm_eps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipping_padding_changes_no_logit_or_gradient() {
        let config = BertConfig::from_json(
            r#"{"vocab_size": 32, "hidden_size": 16, "num_hidden_layers": 2,
                "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 128}"#,
        )
        .unwrap();
        let device = Device::flex().autodiff();
        // Sequences of 100, 3, 2 and 4 positions, the third's first one masked (the pooler
        // still reads it, so it must be computed): the long one gets an attention grid of its
        // own, the three short ones share one.
        let seq_len = 100;
        let lengths = [100, 3, 2, 4];
        let mask: Vec<i64> = lengths
            .iter()
            .enumerate()
            .flat_map(|(row, &len)| {
                (0..seq_len).map(move |p| i64::from(p < len && !(row == 2 && p == 0)))
            })
            .collect();
        let ids = (0..mask.len() as i64).map(|i| (i * 7 % 31) + 1).collect();
        let input = BertInput::new(ids, mask, vec![0; 4 * seq_len], [4, seq_len], &device);
        assert_eq!(input.packing.as_ref().map(Packing::group_count), Some(2));
        let run = |skip_padding| {
            let model = config
                .init(3, 11, &device)
                .without_dropout()
                .with_skip_padding(skip_padding);
            let logits = model.forward(&input);
            // Unequal weights per logit, so that every row and class reaches the gradients.
            let weights = Tensor::<1, Int>::arange(1..13, &device)
                .float()
                .reshape([4, 3]);
            let gradients = (logits.clone() * weights).sum().backward();
            let logits: Vec<f32> = logits.into_data().try_to_vec().unwrap();
            (logits, model.named_gradients(&gradients))
        };
        let (padded_logits, padded_gradients) = run(false);
        let (packed_logits, packed_gradients) = run(true);
        let close = |actual: &[f32], expected: &[f32], what: &str| {
            let wide = |values: &[f32]| values.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
            test_support::assert_close(&wide(actual), &wide(expected), 1e-5, 1e-5, what);
        };
        close(&packed_logits, &padded_logits, "logits");
        assert_eq!(packed_gradients.len(), padded_gradients.len());
        for (packed, padded) in packed_gradients.iter().zip(&padded_gradients) {
            assert_eq!(packed.name, padded.name);
            close(&packed.values, &padded.values, &packed.name);
        }
        // Every parameter took part (no comparison of zeros with zeros).
        for tensor in &padded_gradients {
            assert!(
                tensor.values.iter().any(|&value| value != 0.0),
                "{}",
                tensor.name
            );
        }
    }
}
