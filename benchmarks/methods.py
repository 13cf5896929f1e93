"""Train throughput of every method beside `standard` on the same model and batch, and the slowdown
relative to the method's inherent number of forward/backward passes.

    python benchmarks/methods.py [--archs mnist_cnn,resnet18] [--batch-size 128] [--steps 5] [--device cpu]

Each step is what the training engine does: crop + flip on the device, the method's loss (its own
augmentation, noise, attack …), backward, SGD step. `slowdown = (standard img/s ÷ method img/s) ÷ passes`:
1.0 means the method costs exactly its passes; the goal is ≤ 1.2 (the augmentation is not the bottleneck).
"""
from __future__ import annotations

import argparse
import time

import torch

from corrbench.augment import random_crop_flip
from corrbench.device import make_generator
from corrbench.methods import METHODS, create_method
from corrbench.models import create_model

# Forward/backward passes a step of each method inherently needs, relative to `standard`
# (methods.md / the issue): JSD methods see 3 views; MAGN 2 + n noisy copies; PGD k steps + 1; TRADES 10 + 2.
INHERENT_PASSES = {"augmix": 3, "noisymix": 3, "magn": 3, "magn+augmix": 5, "augmix+esp": 3, "at": 8,
                   "trades": 12, "rse": 1}


def passes(name: str, method) -> float:
    if name == "magn":
        return 2 + getattr(method, "n", 1)
    if name == "magn+augmix":
        return 4 + getattr(method, "n", 1)
    return INHERENT_PASSES.get(name, 1)


def measure(name: str, arch: str, batch_size: int, steps: int, device: torch.device) -> float:
    method = create_method(name)
    torch.manual_seed(0)
    model = create_model(arch, num_classes=10, image_size=32, mean=(0.5,) * 3, std=(0.25,) * 3)
    model = model.to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    generator = make_generator(device, 0, name)
    data_generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8, generator=data_generator).to(device)
    labels = torch.randint(0, 10, (batch_size,), generator=data_generator).to(device)

    def step() -> None:
        batch = random_crop_flip(images, 4, True, generator).contiguous(memory_format=torch.channels_last)
        loss, _ = method.loss(model, batch, labels, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="mnist_cnn,resnet18")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--methods", default="", help="comma-separated subset (default: all registered)")
    args = parser.parse_args()
    device = torch.device(args.device)
    names = [m for m in args.methods.split(",") if m] or [m for m in METHODS.names() if not m.startswith("test-")]
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}")
    for arch in args.archs.split(","):
        base = measure("standard", arch, args.batch_size, args.steps, device)
        print(f"\n{arch}: standard {base:.0f} train images/s")
        print(f"{'method':<22}{'img/s':>10}{'passes':>8}{'slowdown/pass':>15}")
        for name in names:
            rate = measure(name, arch, args.batch_size, args.steps, device)
            inherent = passes(name, create_method(name))
            print(f"{name:<22}{rate:>10.0f}{inherent:>8.0f}{base / rate / inherent:>15.2f}", flush=True)


if __name__ == "__main__":
    main()
