#!/usr/bin/env bash
# One call on a GPU machine (≤ 8 min on an H100/H200 that starts bare): the CUDA tests, train throughput
# per method, a full CIFAR-10-C-sized make-c and eval (files and generated, wall time including start-up)
# on a synthetic 10,000-image npy: dataset, bare forward, per-corruption rates at the three scales.
# Prints one summary table (then the detailed tables); logs go to $OUT (or a temporary folder).
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine, from the repository root
#   bash benchmarks/gpu_check.sh --tiny     # smoke run anywhere (CPU): small sizes, same steps
#   GPU_CHECK_SKIP=train_methods,bare_forward bash benchmarks/gpu_check.sh   # leave steps out
#
# The project need not be installed: it runs `python3 -m corrbench` / `python3 benchmarks/...` with the
# repository on PYTHONPATH. Extra wheels (mlxtend, imagecorruptions) may be put on PYTHONPATH first, e.g.
#   pip install --no-deps --target /tmp/site .whl/*.whl; export PYTHONPATH=/tmp/site:$PWD
set -u
cd "$(dirname "$0")/.."
REPO=$PWD
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$REPO"
PY=${PYTHON:-python3}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
TINY=0
[ "${1:-}" = "--tiny" ] && TINY=1
DEVICE=$($PY -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
WORK=$(mktemp -d)
STEPS="$OUT/gpu_check_steps.tsv"
: > "$STEPS"
STARTED=$(date +%s)

BUDGET=${GPU_CHECK_BUDGET_S:-450}   # the whole script, so the call stays under 8 minutes
LIMIT_SCALE=1
if [ $TINY = 1 ]; then
  N_IMAGES=64; CORRUPTIONS="--corruptions gaussian_noise,glass_blur,zoom_blur,jpeg_compression"
  METHOD_ARGS="--archs mnist_cnn --steps 1 --batch-size 16 --methods standard,augmix"; BARE_ARCH=mnist_cnn
  RATES_CIFAR=16; RATES_TINY=4; RATES_IMAGENET=1; RATE_NAMES="--corruptions gaussian_noise,zoom_blur,defocus_blur"
  BUDGET=${GPU_CHECK_BUDGET_S:-2400}; LIMIT_SCALE=6
else
  N_IMAGES=10000; CORRUPTIONS=""
  METHOD_ARGS="--archs resnet18 --steps 5 --batch-size 128"; BARE_ARCH=resnet18
  RATES_CIFAR=5000; RATES_TINY=1000; RATES_IMAGENET=128; RATE_NAMES=""
fi

# step NAME LIMIT_S COMMAND... : run under min(LIMIT_S, what is left of BUDGET), log to $OUT/NAME.log,
# record rc (124: timed out, 125: skipped, no time left) and wall seconds
step() {
  local name=$1 limit=$2; shift 2
  local t0 t1 rc left
  case ",${GPU_CHECK_SKIP:-}," in *",$name,"*) echo "== $name: skipped (GPU_CHECK_SKIP)"; return;; esac
  limit=$(( limit * LIMIT_SCALE ))
  left=$(( BUDGET - ($(date +%s) - STARTED) - 10 ))
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (limit ${limit}s): $*" | tee "$OUT/$name.log"
  t0=$(date +%s%N)
  if [ "$limit" -gt 0 ]; then
    timeout "$limit" "$@" >> "$OUT/$name.log" 2>&1
    rc=$?
  else
    rc=125
  fi
  t1=$(date +%s%N)
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(( (t1 - t0) / 1000000 ))" >> "$STEPS"
  tail -n 3 "$OUT/$name.log" | sed 's/^/   /'
}

$PY - "$WORK" "$N_IMAGES" <<'EOF'
import sys, numpy as np
work, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
# smooth colour fields (not white noise: blurs and JPEG behave as on photographs) + noise, 32x32 RGB
coarse = rng.random((n, 4, 4, 3))
images = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2) * 200 + rng.random((n, 32, 32, 3)) * 55
np.save(f"{work}/images.npy", images.astype(np.uint8))
np.save(f"{work}/labels.npy", rng.integers(0, 10, n).astype(np.int64))
EOF
DATASET="npy:$WORK/images.npy,$WORK/labels.npy"
echo "# gpu_check: device $DEVICE, $N_IMAGES synthetic images in $WORK, logs in $OUT"
$PY -c "import torch; print('# torch', torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu', torch.get_num_threads(), 'threads')" | tee "$OUT/env.log"

step cuda_tests 120 $PY -m pytest -o addopts= -q -p no:cacheprovider -rs tests/test_cuda_equivalence.py
[ $TINY = 0 ] && step other_cuda_tests 60 $PY -m pytest -o addopts= -q -p no:cacheprovider -rs -k "cuda and not test_cuda_equivalence" tests/
step train_methods 60 $PY benchmarks/methods.py --device "$DEVICE" $METHOD_ARGS
step bare_forward 40 $PY benchmarks/throughput.py --device "$DEVICE" --archs "$BARE_ARCH" --batch-size 512
step train_run 30 $PY -m corrbench train --dataset "$DATASET" --arch resnet18 --epochs 1 --batch-size 512 --device "$DEVICE" --runs-dir "$WORK/runs"
RUN=$(ls -d "$WORK"/runs/*/ 2>/dev/null | head -n 1)
step make_c 100 $PY -m corrbench data make-c --dataset "$DATASET" --out "$WORK/images-C" --device "$DEVICE" $CORRUPTIONS
step eval_files 45 $PY -m corrbench eval --checkpoint "${RUN:-missing-run}" --suite "c:$DATASET" --source files --device "$DEVICE" --results "$WORK/results-files" --batch-size 1000 $CORRUPTIONS
step eval_generated 100 $PY -m corrbench eval --checkpoint "${RUN:-missing-run}" --suite "c:$DATASET" --source generated --device "$DEVICE" --results "$WORK/results-generated" --batch-size 1000 $CORRUPTIONS
step rates_cifar 50 $PY benchmarks/corruptions.py --devices "$DEVICE" --scales cifar --images "$RATES_CIFAR" --reference-images 0 --cold $RATE_NAMES
step rates_tiny 35 $PY benchmarks/corruptions.py --devices "$DEVICE" --scales tiny --images "$RATES_TINY" --reference-images 0 --cold $RATE_NAMES
step rates_imagenet 35 $PY benchmarks/corruptions.py --devices "$DEVICE" --scales imagenet --images "$RATES_IMAGENET" --reference-images 0 --cold $RATE_NAMES
step cuda_equivalence 50 $PY benchmarks/cuda_equivalence.py --device "$DEVICE" --scales cifar --no-stages $([ $TINY = 1 ] && echo --quick)

$PY - "$OUT" "$STEPS" "$N_IMAGES" "$(( $(date +%s) - STARTED ))" <<'EOF' | tee "$OUT/gpu_check_summary.txt"
import re, sys
from pathlib import Path
out, steps, n, total = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def log(name):
    path = out / f"{name}.log"
    return path.read_text(errors="replace") if path.exists() else ""

def last(name, pattern):
    hits = [line.strip() for line in log(name).splitlines() if re.search(pattern, line)]
    return hits[-1] if hits else ""

def figure(name):
    if name in ("cuda_tests", "other_cuda_tests"):
        return last(name, r"\b(passed|failed|error)")
    if name == "cuda_equivalence":
        return last(name, r"ops differ or failed")
    if name == "make_c":
        total = re.sub(r"[│┃]", " ", last(name, r"^\s*│\s*total"))
        return f"{n} test images; (written, images, MB, s, img/s): {' '.join(total.split())[:80]}"
    if name.startswith("eval"):
        return last(name, r"images in .* s \(|rror")[:110]
    if name.startswith("rates"):
        return last(name, r"whole set")
    if name == "bare_forward":
        return last(name, r"^resnet18")
    if name == "train_methods":
        return last(name, r"augmix")[:100]
    return ""

print(f"\n{'step':<32}{'rc':>5}{'wall s':>9}  figure")
for line in steps.read_text().splitlines():
    name, rc, milliseconds = line.split("\t")
    status = {"124": "T/O", "125": "skip"}.get(rc, rc)
    print(f"{name:<32}{status:>5}{int(milliseconds) / 1000:>9.1f}  {figure(name)}")
print(f"{'total':<32}{'':>5}{float(total):>9.1f}")
for name in ("train_methods", "bare_forward", "rates_cifar", "rates_tiny", "rates_imagenet"):
    text = log(name).strip().splitlines()
    if text:
        print(f"\n--- {name} ---")
        print("\n".join(text[-40:]))
EOF
rm -rf "$WORK"
