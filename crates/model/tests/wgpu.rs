//! The forward pass on the wgpu backend matches transformers (tiny fixture: on Mesa's software
//! Vulkan driver the first run compiles shaders for minutes). Without a usable adapter this
//! test fails, naming what to install, unless `METABERT_SKIP_WGPU=1`.
#![cfg(feature = "wgpu")]

use model::{BackendKind, BertInput, ModelDir, load_classifier};
use test_support::{assert_close, flatten_f64};

#[test]
fn wgpu_forward_matches_transformers() {
    let Some(device) = test_support::wgpu_device_or_skip(|| BackendKind::Wgpu.device()) else {
        return;
    };
    let golden = test_support::tiny_bert_golden();
    let labels = test_support::tiny_labels();
    let dir = ModelDir::open(&test_support::tiny_bert_dir()).unwrap();
    let (model, _) = load_classifier(&dir, &labels, 0, &device).unwrap();
    let batch = test_support::golden_batch(&golden["batch"]);
    let input = BertInput::new(
        batch.input_ids,
        batch.attention_mask,
        batch.token_type_ids,
        batch.shape,
        &device,
    );
    let logits: Vec<f64> = model
        .forward(&input)
        .into_data()
        .convert::<f64>()
        .try_into_vec()
        .unwrap();
    assert_close(
        &logits,
        &flatten_f64(&golden["logits"]),
        1e-4,
        0.0,
        "wgpu logits",
    );
}
