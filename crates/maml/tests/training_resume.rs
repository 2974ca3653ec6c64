//! `MetaTraining` through a host of a library user's own (checkpoints kept in memory, optimizer
//! state in a temporary directory): a run stopped after its first checkpoint and resumed from
//! it ends exactly as the same run without the stop.

#[allow(dead_code)] // the example's `main` and task generator are not used here
#[path = "../examples/keyword_tasks.rs"]
mod keyword_tasks;

use std::path::PathBuf;

use burn::tensor::Device;
use keyword_tasks::{Example, KEYWORDS, Perceptron};
use maml::{
    Batching, Checkpoint, Evaluation, InnerLoopConfig, MetaConfig, MetaTraining, Progress,
    RngState, RunEnd, Saved, Stream, TaskIndices, TaskSampler, TrainingHost, TrainingPlan,
    TrainingState,
};
use rand::Rng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;

/// Examples of every keyword with either label, 8 of each.
const PER_KEYWORD_AND_LABEL: usize = 8;

fn pool(seed: u64) -> Vec<Example> {
    let mut rng = Stream::Holdout.rng(seed);
    (0..KEYWORDS * 2 * PER_KEYWORD_AND_LABEL)
        .map(|i| {
            let keyword = i / (2 * PER_KEYWORD_AND_LABEL);
            let label = i / PER_KEYWORD_AND_LABEL % 2;
            Example::draw(keyword, label, &mut rng)
        })
        .collect()
}

/// Position in [`pool`] of the `n`-th example of `keyword` with `label`.
fn position(keyword: usize, label: usize, n: usize) -> usize {
    (keyword * 2 + label) * PER_KEYWORD_AND_LABEL + n
}

#[derive(Debug, Clone)]
struct Drawn {
    support: Vec<usize>,
    query: Vec<usize>,
}

impl TaskIndices for Drawn {
    fn domain(&self) -> &str {
        "keywords"
    }
    fn support(&self) -> &[usize] {
        &self.support
    }
    fn query(&self) -> &[usize] {
        &self.query
    }
}

/// Keyword tasks drawn from the pool: two keywords, one meaning label 0 and one label 1.
struct Sampler {
    rng: ChaCha8Rng,
    seed: u64,
}

impl TaskSampler for Sampler {
    type Drawn = Drawn;
    type State = RngState;

    fn sample(&mut self) -> Drawn {
        let picked = sample(&mut self.rng, KEYWORDS, 2);
        let (zero, one) = (picked.index(0), picked.index(1));
        let mut side = |label, keyword, range: std::ops::Range<usize>| -> Vec<usize> {
            range
                .map(|n| position(keyword, label, (n + self.rng.random_range(0..2)) % 8))
                .collect()
        };
        let mut support = side(0, zero, 0..4);
        support.extend(side(1, one, 0..4));
        let mut query = side(0, zero, 4..8);
        query.extend(side(1, one, 4..8));
        Drawn { support, query }
    }

    fn state(&self) -> RngState {
        RngState::of(&self.rng, self.seed)
    }

    fn restore(&mut self, state: &RngState) {
        self.rng = state.restore().expect("a state this sampler wrote");
    }
}

/// Checkpoints in memory; only the optimizer state goes to disk, as Burn writes it to a path.
struct MemoryHost {
    dir: tempfile::TempDir,
    saved: Vec<(Perceptron, Saved<RngState>)>,
    stop_after_first_save: bool,
    evaluations: Vec<Evaluation>,
}

impl MemoryHost {
    fn new(stop_after_first_save: bool) -> Self {
        Self {
            dir: tempfile::tempdir().expect("temporary directory"),
            saved: Vec::new(),
            stop_after_first_save,
            evaluations: Vec::new(),
        }
    }
}

impl TrainingHost<Perceptron, RngState> for MemoryHost {
    type Error = std::io::Error;

    fn save(&mut self, checkpoint: Checkpoint<'_, Perceptron, RngState>) -> std::io::Result<()> {
        let dir: PathBuf = self.dir.path().join(&checkpoint.name);
        std::fs::create_dir_all(&dir)?;
        let optimizer_state = dir.join("optimizer.bpk");
        (checkpoint.optimizer)(&optimizer_state).map_err(std::io::Error::other)?;
        let state: TrainingState<RngState> = checkpoint.state.clone();
        self.saved.push((
            checkpoint.model.clone(),
            Saved {
                dir,
                optimizer_state,
                state,
            },
        ));
        Ok(())
    }

    fn latest(&mut self) -> std::io::Result<Option<Saved<RngState>>> {
        Ok(self.saved.last().map(|(_, saved)| saved.clone()))
    }

    fn progress(&mut self, progress: Progress<'_>) -> std::io::Result<()> {
        if let Progress::Evaluated(evaluation) = progress {
            self.evaluations.push(evaluation.clone());
        }
        Ok(())
    }

    fn stop_requested(&mut self) -> bool {
        self.stop_after_first_save && !self.saved.is_empty()
    }
}

const SEED: u64 = 5;

fn plan() -> TrainingPlan {
    TrainingPlan {
        epochs: 2,
        tasks_per_epoch: 6,
        outer_batch_size: 2,
        eval_every: 2,
        eval_inner_epochs: 1,
    }
}

fn training<'a>(
    model: Perceptron,
    examples: &'a [Example],
    evaluation_tasks: &'a [Drawn],
) -> MetaTraining<'a, Perceptron, Sampler> {
    let config = MetaConfig::default().with_outer_lr(3e-3).with_inner(
        InnerLoopConfig::default()
            .with_lr(1e-2)
            .with_epochs(2)
            .with_batching(Batching::shuffled(4)),
    );
    let learner = config
        .init(model)
        .expect("valid config")
        .with_task_threads(2);
    let sampler = Sampler {
        rng: Stream::Holdout.rng(SEED + 1),
        seed: SEED + 1,
    };
    MetaTraining::new(
        learner,
        plan(),
        sampler,
        SEED,
        examples,
        &evaluation_tasks[..2],
        &evaluation_tasks[2..],
    )
    .expect("valid plan")
}

fn weights(model: &Perceptron) -> Vec<Vec<f32>> {
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::tensor::Tensor;
    struct Values(Vec<Vec<f32>>);
    impl ModuleVisitor for Values {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let values = param
                .val()
                .into_data()
                .try_into_vec_as::<f32>()
                .expect("f32");
            self.0.push(values);
        }
    }
    let mut visitor = Values(Vec::new());
    model.visit(&mut visitor);
    visitor.0
}

#[test]
fn a_stopped_and_resumed_run_ends_as_an_uninterrupted_one() {
    let device = Device::flex();
    device.seed(SEED);
    let initial = Perceptron::init(&device);
    let examples = pool(SEED);
    let mut draws = Sampler {
        rng: Stream::Evaluation.rng(SEED + 2),
        seed: SEED + 2,
    };
    let evaluation_tasks: Vec<Drawn> = (0..4).map(|_| draws.sample()).collect();

    let mut whole_host = MemoryHost::new(false);
    let mut whole = training(initial.clone(), &examples, &evaluation_tasks);
    assert_eq!(whole.run(&mut whole_host).unwrap(), RunEnd::Completed);
    assert_eq!(whole.learner().completed_steps(), 6);
    assert_eq!(whole.evaluations().len(), 3);

    let mut stopped_host = MemoryHost::new(true);
    let mut stopped = training(initial.clone(), &examples, &evaluation_tasks);
    assert_eq!(stopped.run(&mut stopped_host).unwrap(), RunEnd::Stopped);
    assert_eq!(stopped.learner().completed_steps(), 2);
    let saved = stopped_host.latest().unwrap().expect("a checkpoint");
    let (model, _) = stopped_host.saved.last().unwrap();
    let mut resumed = training(model.clone(), &examples, &evaluation_tasks);
    resumed.resume(&saved).unwrap();
    stopped_host.stop_after_first_save = false;
    assert_eq!(resumed.run(&mut stopped_host).unwrap(), RunEnd::Completed);

    assert_eq!(resumed.evaluations(), whole.evaluations());
    assert_eq!(stopped_host.evaluations, whole_host.evaluations);
    assert_eq!(
        weights(resumed.learner().model()),
        weights(whole.learner().model())
    );
    assert_eq!(resumed.best(), whole.best());
    assert_ne!(
        weights(whole.learner().model()),
        weights(&initial),
        "meta-training changed the weights"
    );
}
