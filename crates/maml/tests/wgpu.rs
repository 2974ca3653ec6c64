//! One outer step on the wgpu backend, compared with the same step on flex. The first shader
//! compilation takes minutes on a software Vulkan driver (lavapipe), so this is the only wgpu
//! test. Without a usable wgpu adapter it fails, unless `METABERT_SKIP_WGPU=1`.
#![cfg(feature = "wgpu")]

mod common;

use burn::tensor::Device;
use common::{KeywordTask, tiny_config, tiny_model, weights};
use maml::{OuterStepReport, Task};
use model::BackendKind;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn outer_step(device: &Device) -> (OuterStepReport, Vec<(String, Vec<f32>)>) {
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let sets: Vec<KeywordTask> = (0..2).map(|_| KeywordTask::draw(&mut rng, 8, 8)).collect();
    let tasks: Vec<Task<'_, tasks::EncodedReview>> = sets.iter().map(KeywordTask::task).collect();
    let mut learner = tiny_config().init(tiny_model(5, device)).expect("valid");
    let report = learner
        .outer_step(&tasks, &mut rng, &mut |_| {})
        .expect("outer step");
    (report, weights(learner.model()))
}

#[test]
fn outer_step_on_wgpu_matches_flex() {
    let Some(device) = test_support::wgpu_device_or_skip(|| BackendKind::Wgpu.device()) else {
        return;
    };
    let (on_wgpu, wgpu_weights) = outer_step(&device);
    let (on_flex, flex_weights) = outer_step(&Device::flex());
    assert_eq!(on_wgpu.step, 1);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-4 * b.abs().max(1.0);
    assert!(
        close(on_wgpu.mean_query_loss, on_flex.mean_query_loss),
        "{on_wgpu:?} vs {on_flex:?}"
    );
    assert!(
        close(on_wgpu.grad_norm, on_flex.grad_norm),
        "{on_wgpu:?} vs {on_flex:?}"
    );
    for ((name, a), (_, b)) in wgpu_weights.iter().zip(&flex_weights) {
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        // Float sums differ between the backends and compound over the inner Adam steps; a
        // weight moved the wrong way by the outer Adam step would differ by ~2 × outer_lr (6e-3).
        assert!(
            worst < 5e-4,
            "{name} differs by {worst} between wgpu and flex"
        );
    }
}
