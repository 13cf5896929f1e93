"""Generation throughput (videos/s) of the Tiny-ImageNet-P (64 px) and ImageNet-P (224 px) sequences, per
perturbation, on the devices asked for; with CUDA also checks that every sequence gives the CPU's bytes.

    python benchmarks/p_scales.py                            # short CPU run (~1 min on 2 cores)
    python benchmarks/p_scales.py --devices cpu,cuda --videos 16

One uint8 batch of `--videos` context images (smooth random fields; 64 px, or 256 px cut to 224 frames) is
on the device; each perturbation runs once to warm up, then once timed (CUDA synchronised). Draws come from
a CPU generator on every device, as in `make-p`. "days for the val set" extrapolates the summed rate to the
50,000 ImageNet val images × 14 perturbations (10,000 × 14 for Tiny ImageNet).
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from corrbench.perturbations import P_PERTURBATIONS
from corrbench.perturbations.scales import IMAGENET_P, TINY_P, generate_scaled_sequences

VAL_IMAGES = {"tiny": 10_000, "imagenet": 50_000}


def contexts(count: int, side: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(count, 3, side // 16, side // 16, generator=generator, dtype=torch.float64)
    smooth = F.interpolate(coarse, size=(side, side), mode="bicubic", align_corners=False).clamp(0, 1)
    return (smooth * 255).round().to(torch.uint8)


def run(name: str, context: torch.Tensor, scale, device: torch.device) -> tuple[torch.Tensor, float]:
    def once() -> torch.Tensor:
        return generate_scaled_sequences(context, name, scale, torch.Generator().manual_seed(1))
    once()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    videos = once()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return videos, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="cpu")
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--scales", default="tiny,imagenet")
    args = parser.parse_args()
    scales = {"tiny": (TINY_P, 64), "imagenet": (IMAGENET_P, 256)}
    mismatches = 0
    for scale_name in args.scales.split(","):
        scale, side = scales[scale_name]
        base = contexts(args.videos, side)
        cpu_bytes: dict[str, torch.Tensor] = {}
        for device_name in args.devices.split(","):
            device = torch.device(device_name)
            context = base.to(device)
            total = 0.0
            print(f"\n{scale_name} ({scale.frame_size} px), {args.videos} videos on {device}")
            for name in P_PERTURBATIONS:
                videos, seconds = run(name, context, scale, device)
                total += seconds
                note = ""
                if device.type == "cpu":
                    cpu_bytes[name] = videos
                elif name in cpu_bytes:
                    same = torch.equal(cpu_bytes[name], videos.cpu())
                    mismatches += not same
                    note = "  same bytes as CPU" if same else "  DIFFERENT BYTES FROM CPU"
                print(f"  {name:15s} {args.videos / seconds:8.2f} videos/s{note}")
            rate = len(P_PERTURBATIONS) * args.videos / total
            days = VAL_IMAGES[scale_name] * len(P_PERTURBATIONS) / rate / 86400
            print(f"  all 14: {rate:.2f} videos/s → {days:.1f} days for the val set on this device")
    if mismatches:
        raise SystemExit(f"{mismatches} sequences differ between CPU and CUDA")


if __name__ == "__main__":
    main()
