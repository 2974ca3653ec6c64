//! An optimizer's state (moments and step count) in a checkpoint, for resuming a run.
//!
//! Burn creates loaded state on `Device::default()` (the `BURN_DEVICE` environment variable,
//! else the first compiled GPU backend) before moving it to the model's device at the next step:
//! a binary built with wgpu should set `BURN_DEVICE` to the backend in use, or loading starts
//! wgpu even for a flex run.

use std::path::Path;

use burn::optim::ModuleOptimizer;
use burn::store::RecordError;

use crate::MamlError;

/// Writes `optimizer`'s state to `path` (Burn's burnpack format).
pub(crate) fn save(optimizer: &ModuleOptimizer, path: &Path) -> Result<(), MamlError> {
    optimizer.save(path).map_err(failed("save", path))
}

/// `optimizer` with the state [`save`] wrote to `path`.
pub(crate) fn load(optimizer: &ModuleOptimizer, path: &Path) -> Result<ModuleOptimizer, MamlError> {
    optimizer.clone().load(path).map_err(failed("load", path))
}

fn failed(action: &'static str, path: &Path) -> impl FnOnce(RecordError) -> MamlError {
    let path = path.to_path_buf();
    move |source| MamlError::OptimizerState {
        action,
        path,
        source,
    }
}
