//! Dropout on the CPU backend with masks from a per-thread, counter-based generator.
//!
//! Burn's `Dropout` samples a Bernoulli tensor element by element from one ChaCha generator
//! behind a lock. On Flex that is single-threaded and cost about a tenth of a training step
//! (most of it on attention probabilities, `batch × heads × len²` draws per layer); and because
//! every thread shares that generator, two tasks adapting at once would draw each other's
//! numbers and a seeded run would stop being reproducible. Here a mask is a pure function of
//! (the calling thread's seed, how many masks that thread has drawn since, element index), so
//! masks are cheap to draw in parallel and the same seed gives the same masks whatever other
//! threads do. GPU backends keep Burn's `Dropout`: their generator runs on the device, and a
//! host-drawn mask would have to be copied there.

use std::cell::Cell;

use burn::nn::Dropout;
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use crate::fused::simd::{self, SimdLevel, multiversion};

thread_local! {
    static STREAM: Cell<Stream> = const { Cell::new(Stream { seed: 0, draws: 0 }) };
}

#[derive(Clone, Copy)]
struct Stream {
    seed: u64,
    draws: u64,
}

/// Restarts the calling thread's dropout stream at `seed`: the masks drawn on this thread
/// afterwards depend only on `seed` and their order. Threads that never call it start at seed 0.
/// On GPU backends, seed the device instead (`Device::seed`).
pub fn seed_dropout(seed: u64) {
    STREAM.set(Stream { seed, draws: 0 });
}

/// `dropout` applied to `input` as `burn::nn::Dropout::forward` would (identity outside
/// training, when the probability is zero or off an autodiff device), with the mask drawn from
/// the thread's stream on Flex.
pub(crate) fn apply<const D: usize>(dropout: &Dropout, input: Tensor<D>) -> Tensor<D> {
    let device = input.device();
    if !is_active(dropout, &device) {
        return input;
    }
    if device != Device::flex() {
        return dropout.forward(input);
    }
    let shape = input.shape();
    let mask = DropoutMask::draw(dropout.prob).values(shape.num_elements());
    input * Tensor::from_data(TensorData::new(mask, shape), &device)
}

/// Whether `dropout` drops anything from a tensor on `device`: in training, with a non-zero
/// probability, on an autodiff device (as Burn's `Dropout` decides).
pub(crate) fn is_active(dropout: &Dropout, device: &Device) -> bool {
    dropout.training.is_enabled() && dropout.prob != 0.0 && device.is_autodiff()
}

/// One mask of inverted dropout: element `i` is 0 with probability `prob`, otherwise
/// `1 / (1 - prob)` (as PyTorch scales), decided by the top 32 bits of SplitMix64's `i`-th
/// output after `key` — a pure function of the index, so a backward pass can redraw the mask
/// instead of keeping it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DropoutMask {
    key: u64,
    /// Dropped when the 32 random bits fall below it: probability threshold / 2³².
    threshold: u64,
    kept: f32,
}

impl DropoutMask {
    /// The calling thread's next mask.
    pub(crate) fn draw(prob: f64) -> Self {
        Self::new(prob, next_key())
    }

    fn new(prob: f64, key: u64) -> Self {
        Self {
            key,
            threshold: (prob * 4_294_967_296.0).round() as u64,
            kept: (1.0 / (1.0 - prob)) as f32,
        }
    }

    /// The mask's value at flat index `index`.
    #[inline(always)]
    fn value(&self, index: usize) -> f32 {
        let counter = index as u64 + 1;
        let bits = mix(self.key.wrapping_add(counter.wrapping_mul(GOLDEN_GAMMA))) >> 32;
        if bits < self.threshold {
            0.0
        } else {
            self.kept
        }
    }

    /// `values` times the mask from flat index `first` on.
    pub(crate) fn scale(&self, level: SimdLevel, values: &mut [f32], first: usize) {
        scale_by_mask(level, self, values, first);
    }

    /// The first `len` values.
    fn values(&self, len: usize) -> Vec<f32> {
        const CHUNK: usize = 1 << 16;
        let level = simd::active();
        let mut mask = vec![0.0f32; len];
        mask.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(chunk_index, chunk)| {
                write_mask(level, self, chunk, chunk_index * CHUNK);
            });
        mask
    }
}

multiversion! {
    fn scale_by_mask<A>(mask: &DropoutMask, values: &mut [f32], first: usize) {
        for (offset, value) in values.iter_mut().enumerate() {
            *value *= mask.value(first + offset);
        }
    }
}

multiversion! {
    /// The mask's values from flat index `first` on, into `values`.
    fn write_mask<A>(mask: &DropoutMask, values: &mut [f32], first: usize) {
        for (offset, value) in values.iter_mut().enumerate() {
            *value = mask.value(first + offset);
        }
    }
}

/// The key of the thread's next mask.
fn next_key() -> u64 {
    let stream = STREAM.get();
    STREAM.set(Stream {
        draws: stream.draws + 1,
        ..stream
    });
    mix(stream.seed ^ mix(stream.draws))
}

/// SplitMix64's increment.
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function (Steele, Lea and Flood 2014).
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use burn::nn::DropoutConfig;

    use super::*;

    #[test]
    fn masks_drop_the_asked_fraction_and_scale_the_rest() {
        let mask = DropoutMask::new(0.1, 7).values(1_000_000);
        let dropped = mask.iter().filter(|&&value| value == 0.0).count();
        // Binomial(10⁶, 0.1): standard deviation 300, so ±1,500 is five of them.
        assert!((98_500..=101_500).contains(&dropped), "{dropped} dropped");
        let kept = 1.0f32 / 0.9;
        assert!(mask.iter().all(|&value| value == 0.0 || value == kept));
    }

    #[test]
    fn every_simd_level_draws_the_same_mask() {
        let mask = DropoutMask::new(0.1, 9);
        // Starts and lengths that are no multiple of a vector register.
        let portable: Vec<f32> = (0..1_001).map(|index| mask.value(index + 3)).collect();
        for level in SimdLevel::supported() {
            let mut written = vec![f32::NAN; 1_001];
            write_mask(level, &mask, &mut written, 3);
            assert_eq!(written, portable, "{level:?}");
            let mut scaled = vec![2.0f32; 1_001];
            mask.scale(level, &mut scaled, 3);
            let doubled: Vec<f32> = portable.iter().map(|value| value * 2.0).collect();
            assert_eq!(scaled, doubled, "{level:?}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_masks_and_draws_differ() {
        let draw = |seed| {
            seed_dropout(seed);
            let first = DropoutMask::draw(0.5).values(4_096);
            let second = DropoutMask::draw(0.5).values(4_096);
            (first, second)
        };
        let (first, second) = draw(3);
        assert_eq!(draw(3), (first.clone(), second.clone()));
        assert_ne!(first, second);
        assert_ne!(draw(4).0, first);
    }

    #[test]
    fn a_thread_stream_is_not_disturbed_by_other_threads() {
        let masks = |seed| {
            seed_dropout(seed);
            (0..8)
                .map(|_| DropoutMask::draw(0.1).values(1_000))
                .collect::<Vec<_>>()
        };
        let alone = masks(11);
        let together = std::thread::scope(|scope| {
            let other = scope.spawn(|| masks(12));
            let mine = masks(11);
            other.join().expect("no panic");
            mine
        });
        assert_eq!(alone, together);
    }

    #[test]
    fn dropout_applies_only_in_training_on_an_autodiff_device() {
        let dropout = DropoutConfig::new(0.5).init();
        let ones = |device: &Device| Tensor::<2>::ones([64, 64], device);
        let plain = apply(&dropout, ones(&Device::flex()));
        assert_eq!(plain.sum().into_scalar::<f32>(), 4_096.0);

        let trained = apply(&dropout, ones(&Device::flex().autodiff()));
        let values = trained.into_data().try_to_vec::<f32>().expect("f32 tensor");
        let dropped = values.iter().filter(|&&value| value == 0.0).count();
        assert!(
            (1_800..=2_300).contains(&dropped),
            "{dropped} of 4096 dropped"
        );
        assert!(values.iter().all(|&value| value == 0.0 || value == 2.0));
    }
}
