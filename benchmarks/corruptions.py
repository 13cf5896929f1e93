"""Corruption throughput (images/s) of corrbench's batched engine, per corruption and for the whole set,
at each scale family, beside a per-image loop through `imagecorruptions.corrupt` over the same images.

    python benchmarks/corruptions.py                        # short run (< 2 min on 2 CPU cores)
    python benchmarks/corruptions.py --scales cifar --images 10000 --reference-images 200
    python benchmarks/corruptions.py --devices cpu,cuda --threads 1

- corrbench: `corrbench.corruptions.corrupt` on one uint8 batch B×3×S×S already on the device, all five
  severities, timed after one untimed pass (the steady state of a long make-c run; `--cold` times the
  first pass in the process instead); images/s = 5·B / seconds. Draws come from a CPU
  generator on every device, as in make-c (so a GPU's rate includes drawing on the CPU). CPU uses `--threads` intra-op
  threads (default: torch's); CUDA is timed with synchronisation. Every registered corruption is measured,
  so corruptions added later are picked up without edits.
- reference: `imagecorruptions.corrupt(image, severity, name)` one image at a time (one core, NumPy/OpenCV),
  on the first `--reference-images` images of the same batch, after one warm-up image per severity. imagecorruptions uses its 224-px (ImageNet-C)
  constants at every image size, so at 32 and 64 px it does more work per pixel than CIFAR-10-C /
  Tiny-ImageNet-C constants would (e.g. longer motion-blur kernels); it is the only runnable reference
  generator here. Corruptions it cannot run on current NumPy / scikit-image are reported as such.
- "whole set": total images / total seconds over the corruptions listed (each corruption weighs equally,
  as in a -C suite); the speed-up compares both sides over the corruptions both ran.
The goal for the CIFAR scale (issue: corruption engine) is the whole set at ≥ 20× the reference rate.
Images are crops of scikit-image's bundled photographs, resized to the scale's side.
"""
from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from corrbench.corruptions import SCALE_SIZE, get_corruption, list_corruptions

SEVERITIES = (1, 2, 3, 4, 5)
DEFAULT_IMAGES = {"cifar": 300, "tiny": 32, "imagenet": 4}
DEFAULT_REFERENCE_IMAGES = {"cifar": 20, "tiny": 4, "imagenet": 1}
GOAL_SPEEDUP = 20


def photo_batch(n: int, side: int, seed: int = 0) -> np.ndarray:
    """n uint8 side×side×3 crops of scikit-image's photographs (deterministic)."""
    from skimage import data
    photos = [getattr(data, name)() for name in ("astronaut", "chelsea", "coffee", "rocket")]
    rng = np.random.default_rng(seed)
    out = np.empty((n, side, side, 3), np.uint8)
    for index in range(n):   # a one-off setup loop, not the measured path
        photo = photos[index % len(photos)]
        crop = int(rng.integers(min(photo.shape[:2]) // 2, min(photo.shape[:2]) + 1))
        top = int(rng.integers(0, photo.shape[0] - crop + 1))
        left = int(rng.integers(0, photo.shape[1] - crop + 1))
        window = Image.fromarray(photo[top:top + crop, left:left + crop])
        out[index] = np.asarray(window.resize((side, side), Image.BILINEAR))
    return out


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def corrbench_rate(images: torch.Tensor, name: str, scale: str, cold: bool = False) -> tuple[float, float]:
    """(images/s, seconds) of `corrupt` on the batch at all five severities: the steady state, after one
    untimed pass over the batch (a make-c run of thousands of images pays the first-use costs once:
    tables, caches and the first touch of fresh memory, which costs ~3 µs per 4 KiB page on small VMs);
    `cold`: the first pass in the process instead, after a 2-image warm-up."""
    device = images.device
    generator = torch.Generator().manual_seed(0)   # CPU draws on every device, as make-c (same bytes everywhere)
    corruption = get_corruption(name)
    corruption(images[:2], 1, scale=scale, generator=generator)    # warm-up (lazy tables, kernels)
    if not cold:
        for severity in SEVERITIES:
            corruption(images, severity, scale=scale, generator=generator)
    synchronize(device)
    started = time.perf_counter()
    for severity in SEVERITIES:
        corruption(images, severity, scale=scale, generator=generator)
    synchronize(device)
    seconds = time.perf_counter() - started
    return len(SEVERITIES) * images.shape[0] / seconds, seconds


def reference_rate(images: np.ndarray, name: str) -> tuple[float, float] | str:
    """(images/s, seconds) of imagecorruptions' per-image loop, or why it cannot run."""
    from imagecorruptions import corrupt as reference_corrupt
    np.random.seed(0)   # imagecorruptions draws from NumPy's global RNG
    try:
        for severity in SEVERITIES:   # warm-up: one image per severity
            reference_corrupt(images[0], severity, corruption_name=name)
        started = time.perf_counter()
        for severity in SEVERITIES:
            for image in images:
                reference_corrupt(image, severity, corruption_name=name)
        seconds = time.perf_counter() - started
    except Exception as error:  # report any failure of the reference as a table cell
        return f"fails: {type(error).__name__}"
    return len(SEVERITIES) * len(images) / seconds, seconds


@dataclass
class Row:
    name: str
    ours: dict[str, tuple[float, float]]           # device -> (images/s, seconds)
    reference: tuple[float, float] | str


def whole_set(rates: list[tuple[float, float]]) -> float:
    images = sum(rate * seconds for rate, seconds in rates)
    seconds = sum(seconds for _, seconds in rates)
    return images / seconds if seconds else float("nan")


def run_scale(scale: str, devices: list[torch.device], n_images: int, n_reference: int,
              names: list[str], cold: bool = False) -> list[Row]:
    side = SCALE_SIZE[scale]
    batch = photo_batch(max(n_images, n_reference), side)
    tensors = {device.type: torch.from_numpy(batch[:n_images]).permute(0, 3, 1, 2).contiguous().to(device)
               for device in devices}
    rows = []
    for name in names:
        ours = {kind: corrbench_rate(images, name, scale, cold) for kind, images in tensors.items()}
        reference = reference_rate(batch[:n_reference], name) if n_reference else "skipped"
        rows.append(Row(name, ours, reference))
        print_row(rows[-1], list(tensors), flush=True)
    return rows


def print_header(scale: str, kinds: list[str], n_images: int, n_reference: int) -> None:
    side = SCALE_SIZE[scale]
    print(f"\n== {scale} scale ({side}×{side} px): corrbench on batches of {n_images}, imagecorruptions on "
          f"{n_reference} images one by one (224-px constants) — images/s over severities 1-5")
    columns = "".join(f"{'corrbench ' + kind:>18}" for kind in kinds)
    print(f"{'corruption':<20}{columns}{'imagecorruptions':>24}{'speed-up':>10}")


def print_row(row: Row, kinds: list[str], flush: bool = False) -> None:
    ours = "".join(f"{row.ours[kind][0]:>18,.0f}" for kind in kinds)
    if isinstance(row.reference, str):
        reference, speedup = f"{row.reference:>24}", f"{'':>10}"
    else:
        reference = f"{row.reference[0]:>24,.0f}"
        speedup = f"{row.ours[kinds[0]][0] / row.reference[0]:>9.1f}×"
    print(f"{row.name:<20}{ours}{reference}{speedup}", flush=flush)


def print_summary(scale: str, rows: list[Row], kinds: list[str]) -> None:
    common = [row for row in rows if not isinstance(row.reference, str)]
    ours_all = "".join(f"{whole_set([row.ours[kind] for row in rows]):>18,.0f}" for kind in kinds)
    print(f"{'whole set (' + str(len(rows)) + ')':<20}{ours_all}")
    if not common:
        return
    reference = whole_set([row.reference for row in common])
    ours_common = {kind: whole_set([row.ours[kind] for row in common]) for kind in kinds}
    text = "".join(f"{ours_common[kind]:>18,.0f}" for kind in kinds)
    speedup = ours_common[kinds[0]] / reference
    print(f"{'both ran (' + str(len(common)) + ')':<20}{text}{reference:>24,.0f}{speedup:>9.1f}×")
    if scale == "cifar":
        verdict = "meets" if speedup >= GOAL_SPEEDUP else "misses"
        print(f"goal: whole set ≥ {GOAL_SPEEDUP}× the reference's per-image rate on {kinds[0]} → "
              f"{speedup:.1f}× ({verdict} it; {len(rows)} of 19 corruptions registered)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="cifar,tiny,imagenet", help="comma-separated scale families")
    parser.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=None, help="batch size for corrbench [per-scale default]")
    parser.add_argument("--reference-images", type=int, default=None,
                        help="images for the imagecorruptions loop (0 skips it) [per-scale default]")
    parser.add_argument("--corruptions", default=None, help="comma-separated subset [default: all registered]")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads [default: torch's]")
    parser.add_argument("--cold", action="store_true",
                        help="time corrbench's first pass in the process instead of the steady state")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")   # imagecorruptions' pkg_resources / skimage deprecation noise
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device(kind) for kind in args.devices.split(",") if kind]
    names = args.corruptions.split(",") if args.corruptions else list_corruptions("all")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name()}" if any(d.type == "cuda" for d in devices) else "")
          + f"; {len(names)} corruptions: {', '.join(names)}")
    for scale in args.scales.split(","):
        n_images = args.images or DEFAULT_IMAGES[scale]
        n_reference = DEFAULT_REFERENCE_IMAGES[scale] if args.reference_images is None else args.reference_images
        kinds = [device.type for device in devices]
        print_header(scale, kinds, n_images, n_reference)
        rows = run_scale(scale, devices, n_images, n_reference, names, args.cold)
        print_summary(scale, rows, kinds)


if __name__ == "__main__":
    main()
