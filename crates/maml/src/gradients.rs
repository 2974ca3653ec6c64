//! Arithmetic on gradients keyed by parameter id, and the meta-gradient that sums task updates.
//!
//! Burn's [`GradientsParams`] maps a [`ParamId`] to a gradient tensor of any rank; walking a
//! module with a visitor is the one way to reach every entry with its rank, so each operation
//! here takes the module whose parameters the gradients belong to.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// The sum of per-task updates of one outer step, and how many tasks it holds.
///
/// Each task's update is independent, so tasks may be computed anywhere (another thread, another
/// device) and added here in any grouping; [`MetaGradient::mean`] gives what the outer optimizer
/// applies.
#[derive(Debug, Default)]
pub struct MetaGradient {
    sum: GradientsParams,
    tasks: usize,
}

impl MetaGradient {
    /// An empty sum (no tasks).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one task's gradient (keyed by the parameter ids of `model`).
    pub fn add<M: Module>(&mut self, model: &M, task_gradient: GradientsParams) {
        let sum = std::mem::take(&mut self.sum);
        self.sum = add(model, sum, task_gradient);
        self.tasks += 1;
    }

    /// Adds another partial sum (e.g. from another device, already moved to this one).
    pub fn merge<M: Module>(&mut self, model: &M, other: MetaGradient) {
        let sum = std::mem::take(&mut self.sum);
        self.sum = add(model, sum, other.sum);
        self.tasks += other.tasks;
    }

    /// Number of task updates summed so far.
    pub fn tasks(&self) -> usize {
        self.tasks
    }

    /// The mean over tasks (the reference divides the summed gradients by the number of tasks).
    ///
    /// # Panics
    /// If no task was added.
    pub fn mean<M: Module>(self, model: &M) -> GradientsParams {
        assert!(self.tasks > 0, "a meta-gradient needs at least one task");
        scale(model, self.sum, 1.0 / self.tasks as f32)
    }
}

/// The element-wise sum; a parameter with a gradient in one set only keeps that gradient (an
/// ANIL task, for one, may leave parameters without gradient).
pub(crate) fn add<M: Module>(
    model: &M,
    left: GradientsParams,
    right: GradientsParams,
) -> GradientsParams {
    struct Add {
        left: GradientsParams,
        right: GradientsParams,
        out: GradientsParams,
    }
    impl ModuleVisitor for Add {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let sum = match (
                self.left.remove::<D>(param.id),
                self.right.remove::<D>(param.id),
            ) {
                (Some(a), Some(b)) => a + b,
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => return,
            };
            self.out.register(param.id, sum);
        }
    }
    let mut visitor = Add {
        left,
        right,
        out: GradientsParams::new(),
    };
    model.visit(&mut visitor);
    visitor.out
}

/// Every gradient multiplied by `factor`.
pub(crate) fn scale<M: Module>(model: &M, grads: GradientsParams, factor: f32) -> GradientsParams {
    struct Scale {
        grads: GradientsParams,
        factor: f32,
    }
    impl ModuleVisitor for Scale {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.grads.remove::<D>(param.id) {
                self.grads.register(param.id, grad.mul_scalar(self.factor));
            }
        }
    }
    let mut visitor = Scale { grads, factor };
    model.visit(&mut visitor);
    visitor.grads
}

/// The global L2 norm of all gradients as a one-element tensor (not read back), or `None` if
/// there are no gradients.
pub(crate) fn global_norm<M: Module>(model: &M, grads: &GradientsParams) -> Option<Tensor<1>> {
    struct SquaredNorm<'a> {
        grads: &'a GradientsParams,
        total: Option<Tensor<1>>,
    }
    impl ModuleVisitor for SquaredNorm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.grads.get::<D>(param.id) {
                let squares = grad.square().sum();
                self.total = Some(match self.total.take() {
                    Some(total) => total + squares,
                    None => squares,
                });
            }
        }
    }
    let mut visitor = SquaredNorm { grads, total: None };
    model.visit(&mut visitor);
    visitor.total.map(Tensor::sqrt)
}

/// `meta - adapted` for every float parameter: the direction Reptile moves the meta-weights
/// against (so that an SGD step with rate `ε` gives `meta + ε (adapted - meta)`).
pub(crate) fn weight_difference<M: Module>(meta: &M, adapted: &M) -> GradientsParams {
    struct Collect(GradientsParams);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.register(param.id, param.val().inner());
        }
    }
    struct Subtract(GradientsParams);
    impl ModuleVisitor for Subtract {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(meta) = self.0.remove::<D>(param.id) {
                self.0.register(param.id, meta - param.val().inner());
            }
        }
    }
    let mut collect = Collect(GradientsParams::new());
    meta.visit(&mut collect);
    let mut subtract = Subtract(collect.0);
    adapted.visit(&mut subtract);
    subtract.0
}

/// The gradients scaled so that their global L2 norm (`norm`, computed by [`global_norm`]) is at
/// most `max_norm`, as `torch.nn.utils.clip_grad_norm_` does: factor
/// `min(1, max_norm / (norm + 1e-6))`. The factor stays on the device (no read-back).
pub(crate) fn clip_to_norm<M: Module>(
    model: &M,
    grads: GradientsParams,
    norm: Tensor<1>,
    max_norm: f64,
) -> GradientsParams {
    struct ScaleBy {
        grads: GradientsParams,
        factor: Tensor<1>,
    }
    impl ModuleVisitor for ScaleBy {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.grads.remove::<D>(param.id) {
                let factor = self.factor.clone().reshape([1; D]);
                self.grads.register(param.id, grad * factor);
            }
        }
    }
    let factor = (norm.add_scalar(1e-6).recip() * max_norm).clamp_max(1.0);
    let mut visitor = ScaleBy { grads, factor };
    model.visit(&mut visitor);
    visitor.grads
}
