#!/usr/bin/env bash
# Builds and packs what bench/gpu_side_by_side.sh needs on a GPU machine that has no Rust
# toolchain: the GPU build of meta-bert (`--features vulkan`: SPIR-V) and the default one (WGSL
# only), stripped and
# xz-compressed into gpu-carry/ (git-ignored; a device run may carry 64 MiB), with the reference
# benchmark, a review file and bert-base's config.
#
#   bench/gpu_prepare.sh [SHARED_DIR]       # default: ../shared beside the clone
#
# PROFILE=release builds with the release profile (Burn compiled again for it: ~25 minutes on
# 2 cores); the default, the dev profile, optimises every dependency (Burn, cubecl, wgpu) as a
# release build would and only our crates less, which a GPU run does not notice.
# Then on the device (the working tree is its current directory):
#   bash gpu-carry/run.sh "$OUT"
set -euo pipefail
cd "$(dirname "$0")/.."
shared=$(realpath "${1:-../shared}")
profile=${PROFILE:-dev}
target=${CARGO_TARGET_DIR:-target}
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
mkdir -p gpu-carry

build() { # FILE CARGO_FLAGS...
  local file=$1
  shift
  cargo build --profile "$profile" -p cli --bin meta-bert "$@"
  strip -o "gpu-carry/$file" "$target/$dir/meta-bert"
  xz -T0 -f "gpu-carry/$file"
}
# The default feature set last: a later `cargo test --workspace` then finds its binary in place.
build meta-bert --features vulkan
build meta-bert-wgsl
cp "$shared/bench/pytorch_fomaml_bench.py" bench/reference_on_cuda.py bench/gpu_side_by_side.sh gpu-carry/
cp -r "$shared/models/bert-base-uncased-config" gpu-carry/bert-base
cp "$shared/data/amazon-reviews/"*.json gpu-carry/ 2>/dev/null || true
cat >gpu-carry/run.sh <<'RUN'
#!/usr/bin/env bash
# On the device: unpack the binaries, then run the side-by-side script into $1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
for file in meta-bert meta-bert-wgsl; do
  xz -dc "$here/$file.xz" >"/tmp/$file" && chmod +x "/tmp/$file"
done
data=$(ls "$here"/*.json | head -n 1)
bash "$here/gpu_side_by_side.sh" /tmp/meta-bert /tmp/meta-bert-wgsl \
  "$here/pytorch_fomaml_bench.py" "$data" "$here/bert-base" "$1"
RUN
chmod +x gpu-carry/run.sh
du -sh gpu-carry/* | sort -h
echo "carry gpu-carry (its total must stay under 64 MiB), run: bash gpu-carry/run.sh \$OUT"
