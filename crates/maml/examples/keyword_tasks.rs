//! FOMAML on a model that is not BERT: a two-layer perceptron over bag-of-keyword vectors,
//! meta-trained on synthetic few-shot tasks in a few seconds on a CPU, using only `maml`.
//!
//! Each task picks two of 16 keywords and which of them means label 1; an example is the one-hot
//! vector of its keyword plus noise. No fixed classifier beats chance over all tasks, so what
//! meta-training can learn is an initialisation from which a few inner Adam steps on 8 support
//! examples classify the 8 query examples well. The example prints the mean query loss after
//! adaptation on held-out tasks, before and after meta-training.
//!
//!     cargo run --release -p maml --example keyword_tasks

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use maml::{
    Batching, Classifier, Forward, InnerLoopConfig, MamlError, MetaConfig, MetaLearner, NoOptions,
    Task,
};
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Keywords a task picks two of.
pub const KEYWORDS: usize = 16;
const NOISE: usize = 4;
const FEATURES: usize = KEYWORDS + NOISE;

/// A two-layer perceptron: features → hidden (ReLU) → two logits.
#[derive(Module, Debug)]
pub struct Perceptron {
    hidden: Linear,
    head: Linear,
}

impl Perceptron {
    /// Burn's default initialisation, seeded through the device's generator.
    pub fn init(device: &Device) -> Self {
        Self {
            hidden: LinearConfig::new(FEATURES, 32).init(device),
            head: LinearConfig::new(32, 2).init(device),
        }
    }
}

/// One example: its feature vector and label.
pub struct Example {
    /// One-hot keyword, then noise.
    pub features: [f32; FEATURES],
    /// 0 or 1.
    pub label: usize,
}

impl Example {
    /// An example of `keyword` with `label`, its noise drawn from `rng`.
    pub fn draw(keyword: usize, label: usize, rng: &mut impl Rng) -> Self {
        let mut features = [0.0; FEATURES];
        features[keyword] = 1.0;
        for noise in &mut features[KEYWORDS..] {
            *noise = rng.random_range(-1.0..1.0);
        }
        Self { features, label }
    }
}

impl Classifier for Perceptron {
    type Example = Example;
    type BatchOptions = NoOptions;

    fn label(example: &Example) -> usize {
        example.label
    }

    fn length(_example: &Example) -> usize {
        1
    }

    fn num_labels(&self) -> usize {
        2
    }

    fn check(&self, example: &Example, _options: &NoOptions) -> Result<(), MamlError> {
        match example.label {
            0 | 1 => Ok(()),
            label => Err(MamlError::LabelOutOfRange {
                source_index: 0,
                label,
                num_labels: 2,
            }),
        }
    }

    fn scoring_options(&self, _: &NoOptions) -> NoOptions {
        NoOptions {}
    }

    fn forward(&self, examples: &[&Example], _options: &NoOptions, device: &Device) -> Forward {
        let features = self.head_features(examples, &NoOptions {}, device);
        let logits = self
            .head_logits(features.expect("always some"))
            .expect("always some");
        Forward {
            logits,
            work: examples.len(),
        }
    }

    fn without_dropout(self) -> Self {
        self
    }

    fn head_features(
        &self,
        examples: &[&Example],
        _options: &NoOptions,
        device: &Device,
    ) -> Option<Tensor<2>> {
        let values: Vec<f32> = examples.iter().flat_map(|e| e.features).collect();
        let input = Tensor::from_data(TensorData::new(values, [examples.len(), FEATURES]), device);
        Some(relu(self.hidden.forward(input)))
    }

    fn head_logits(&self, features: Tensor<2>) -> Option<Tensor<2>> {
        Some(self.head.forward(features))
    }
}

/// The support and query examples of one freshly drawn keyword task.
pub struct KeywordTask {
    support: Vec<Example>,
    query: Vec<Example>,
}

impl KeywordTask {
    /// 8 support and 8 query examples, labels alternating.
    pub fn draw(rng: &mut impl Rng) -> Self {
        let picked = sample(rng, KEYWORDS, 2);
        let keywords = [picked.index(0), picked.index(1)];
        let mut examples: Vec<Example> = (0..16)
            .map(|i| Example::draw(keywords[i % 2], i % 2, rng))
            .collect();
        let query = examples.split_off(8);
        Self {
            support: examples,
            query,
        }
    }

    /// The task, borrowing the examples.
    pub fn task(&self) -> Task<'_, Example> {
        Task {
            domain: "keywords",
            support: self.support.iter().collect(),
            query: self.query.iter().collect(),
        }
    }
}

/// The mean query loss after adaptation on 16 held-out tasks, before and after 100 FOMAML outer
/// steps of 4 tasks each. Everything random comes from `seed`.
pub fn held_out_loss_before_and_after(seed: u64) -> (f64, f64) {
    let device = Device::flex().autodiff();
    device.seed(seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let held_out: Vec<KeywordTask> = (0..16).map(|_| KeywordTask::draw(&mut rng)).collect();
    let held_out: Vec<Task<'_, Example>> = held_out.iter().map(KeywordTask::task).collect();
    let config = MetaConfig::default().with_outer_lr(1e-2).with_inner(
        InnerLoopConfig::default()
            .with_lr(1e-2)
            .with_epochs(2)
            .with_batching(Batching::shuffled(4)),
    );
    let mut learner = config
        .init(Perceptron::init(&device))
        .expect("valid config");
    let score = |learner: &MetaLearner<Perceptron>| {
        learner
            .evaluate_tasks(&held_out, &mut ChaCha8Rng::seed_from_u64(9), &mut |_| {})
            .expect("evaluation")
            .pooled
            .mean_loss
    };
    let before = score(&learner);
    for _ in 0..100 {
        let drawn: Vec<KeywordTask> = (0..4).map(|_| KeywordTask::draw(&mut rng)).collect();
        let tasks: Vec<Task<'_, Example>> = drawn.iter().map(KeywordTask::task).collect();
        learner
            .outer_step(&tasks, &mut rng, &mut |_| {})
            .expect("outer step");
    }
    (before, score(&learner))
}

fn main() {
    for seed in 1..=4 {
        let (before, after) = held_out_loss_before_and_after(seed);
        println!(
            "seed {seed}: held-out query loss after adaptation {before:.3} before meta-training, \
             {after:.3} after"
        );
    }
}
