//! Mixed precision against transformers' f32 goldens: the MiniLM golden batch's logits with
//! matrix products in f16 and bf16 (on Flex, which computes both).
//!
//! The tolerance follows from the formats, not from our output: a product rounds each operand
//! once to the half format (unit roundoff u = 2⁻¹¹ for f16, 2⁻⁸ for bf16) and accumulates in f32,
//! so each of the 6 layers' chains of products (query/key/value, scores, values, output, two
//! feed-forward) adds about 2u of relative error. Over 6 layers that is ≈ 50u: 2.5·10⁻² in f16,
//! 0.2 in bf16, relative to the logits' scale. The f32 path stays at the goldens' 1e-4.

use burn::tensor::Device;
use model::{BertInput, ModelDir, Precision, load_classifier};
use test_support::{flatten_f64, minilm_golden};

/// 50 unit roundoffs of the precision, relative to the largest logit.
fn tolerance(precision: Precision) -> f64 {
    let unit_roundoff = match precision {
        Precision::F32 => return 1e-4,
        Precision::F16 => 2f64.powi(-11),
        Precision::Bf16 => 2f64.powi(-8),
    };
    50.0 * unit_roundoff
}

fn logits(precision: Precision) -> Vec<f64> {
    let device = Device::flex();
    let dir = ModelDir::open(&test_support::golden_checkpoint_dir()).unwrap();
    let (model, _) = load_classifier(&dir, &test_support::sentiment_labels(), 0, &device).unwrap();
    let model = model.with_precision(precision);
    let batch = test_support::golden_batch(&minilm_golden()["batch"]);
    let input = BertInput::new(
        batch.input_ids,
        batch.attention_mask,
        batch.token_type_ids,
        batch.shape,
        &device,
    );
    model
        .forward(&input)
        .into_data()
        .convert::<f64>()
        .try_into_vec()
        .unwrap()
}

#[test]
fn half_precision_logits_match_transformers_within_the_format_tolerance() {
    let expected = flatten_f64(&minilm_golden()["forward"]["logits"]);
    let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let full = logits(Precision::F32);
    for precision in [Precision::F16, Precision::Bf16] {
        let half = logits(precision);
        let error = half
            .iter()
            .zip(&expected)
            .fold(0.0f64, |m, (a, e)| m.max((a - e).abs()));
        eprintln!("{precision}: max |logit - transformers| = {error:.3e} (scale {scale:.3})");
        assert!(
            error <= tolerance(precision) * scale,
            "{precision}: logits differ from transformers' by {error:.3e}, more than {:.3e}",
            tolerance(precision) * scale
        );
        // The products really ran in half precision: rounding shows.
        assert_ne!(half, full, "{precision} gave the f32 logits");
    }
    test_support::assert_close(
        &full,
        &expected,
        tolerance(Precision::F32),
        0.0,
        "f32 logits",
    );
}
