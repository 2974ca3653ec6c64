//! The forward pass on the wgpu backend matches transformers, in f32 and, where the adapter
//! computes f16, with its matrix products in f16 (tiny fixture: on Mesa's software Vulkan driver
//! the first run compiles shaders for minutes). Without a usable adapter this test fails, naming
//! what to install, unless `METABERT_SKIP_WGPU=1`.
#![cfg(feature = "wgpu")]

use model::{BackendKind, BertInput, ModelDir, Precision, load_classifier};
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
    let expected = flatten_f64(&golden["logits"]);
    let logits = |precision| -> Vec<f64> {
        model
            .clone()
            .with_precision(precision)
            .forward(&input)
            .into_data()
            .convert::<f64>()
            .try_into_vec()
            .unwrap()
    };
    assert_close(&logits(Precision::F32), &expected, 1e-4, 0.0, "wgpu logits");
    // As in `half_precision.rs`: 50 f16 unit roundoffs, relative to the largest logit.
    if BackendKind::Wgpu
        .check_precision(&device, Precision::F16)
        .is_ok()
    {
        let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let half = logits(Precision::F16);
        assert_close(
            &half,
            &expected,
            50.0 * 2f64.powi(-11) * scale,
            0.0,
            "f16 wgpu logits",
        );
        assert_ne!(half, logits(Precision::F32), "f16 gave the f32 logits");
    } else {
        eprintln!("this adapter has no f16: the f16 half of the test did not run");
    }
}
