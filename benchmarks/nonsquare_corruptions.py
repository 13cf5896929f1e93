"""Every corruption at every scale family on non-square images, on one device: shape and dtype kept,
the same seed giving the same bytes, and the time per image.

    python benchmarks/nonsquare_corruptions.py --device cuda      # or cpu (the default)

Prints one line per (shape, family) with the slowest corruption; exits 1 if any check fails.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from corrbench.corruptions import SCALES, corrupt, get_corruption, list_corruptions
from corrbench.device import resolve_device


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    device = resolve_device(args.device)
    failures = 0
    for height, width in ((48, 40), (40, 48), (72, 100), (230, 260)):
        source = torch.Generator().manual_seed(height * 1000 + width)
        images = torch.randint(0, 256, (args.batch, 3, height, width), dtype=torch.uint8, generator=source).to(device)
        for scale in SCALES:
            slowest, slowest_name = 0.0, ""
            for name in list_corruptions("all"):
                started = time.perf_counter()
                first = corrupt(images, name, 5, scale=scale, generator=torch.Generator(device).manual_seed(1))
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                seconds = time.perf_counter() - started
                again = corrupt(images, name, 5, scale=scale, generator=torch.Generator(device).manual_seed(1))
                ok = first.shape == images.shape and first.dtype == torch.uint8 and torch.equal(first, again)
                if get_corruption(name).stochastic:
                    other = corrupt(images, name, 5, scale=scale, generator=torch.Generator(device).manual_seed(2))
                    ok = ok and not torch.equal(first, other)
                if not ok:
                    failures += 1
                    print(f"FAIL {height}×{width} {scale} {name}")
                if seconds > slowest:
                    slowest, slowest_name = seconds, name
            print(f"{height}×{width} {scale:8s} all 19 ok on {device}; slowest {slowest_name} "
                  f"{1000 * slowest / args.batch:.1f} ms/image")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
