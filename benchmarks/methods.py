"""Train throughput of every method beside `standard` on the same model and batch, and the slowdown
relative to the method's inherent number of forward/backward passes.

    python benchmarks/methods.py [--archs mnist_cnn,resnet18] [--batch-size 128] [--steps 5] [--device cpu]
                                 [--methods augmix,noisymix] [--compile]

Each step is what the training engine does: crop + flip on the device, the method's loss (its own
augmentation, noise, attack …) under bf16 autocast on CUDA, backward, SGD step (fused on CUDA), with
channels_last. `slowdown = (standard img/s ÷ method img/s) ÷ passes`: 1.0 means the method costs
exactly its passes; the goal is ≤ 1.2 (the augmentation is not the bottleneck). Time is measured
after two warm-up steps, between device synchronisations.
"""
from __future__ import annotations

import argparse
import time

import torch

from corrbench.augment import random_crop_flip
from corrbench.device import make_generator
from corrbench.engine.train import optimizer_kernels, compile_stages
from corrbench.methods import METHODS, create_method
from corrbench.models import create_model

# Forward/backward passes a step of each method inherently needs, relative to `standard` (methods.md / the
# issue): JSD methods see 3 views (clean + 2 AugMix); MAGN 2 + its noisy draws (+2 AugMix views in
# magn+augmix); PGD AT its attack steps + 1; TRADES its attack steps + 2.
def passes(name: str, method) -> float:
    if name == "magn":
        return 2 + getattr(method, "n_samples", 1)
    if name == "magn+augmix":
        return 4 + getattr(method, "n_samples", 1)
    if name == "at":
        return getattr(method, "steps", 7) + 1
    if name == "trades":
        return getattr(method, "steps", 10) + 2
    if ("augmix" in name.split("+") or name == "noisymix") and getattr(method, "jsd", True):
        return 3
    return 1


def measure(name: str, arch: str, batch_size: int, steps: int, device: torch.device, compile: bool = False) -> float:
    method = create_method(name)
    torch.manual_seed(0)
    model = create_model(arch, num_classes=10, image_size=32, mean=(0.5,) * 3, std=(0.25,) * 3)
    model = model.to(device, memory_format=torch.channels_last).train()
    if compile:
        compile_stages(model, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, **optimizer_kernels(device))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    generator = make_generator(device, 0, name)
    data_generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8, generator=data_generator).to(device)
    labels = torch.randint(0, 10, (batch_size,), generator=data_generator).to(device)

    def step() -> None:
        batch = random_crop_flip(images, 4, True, generator).contiguous(memory_format=torch.channels_last)
        with autocast:
            loss, _ = method.loss(model, batch, labels, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up (twice: cuDNN picks its algorithms, caches fill)
    step()
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
    parser.add_argument("--compile", action="store_true", help="torch.compile the model's stages (CUDA only)")
    args = parser.parse_args()
    device = torch.device(args.device)
    names = [m for m in args.methods.split(",") if m] or [m for m in METHODS.names() if not m.startswith("test-")]
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}"
          f"{', compiled' if args.compile else ''}")
    for arch in args.archs.split(","):
        base = measure("standard", arch, args.batch_size, args.steps, device, args.compile)
        print(f"\n{arch}: standard {base:.0f} train images/s")
        print(f"{'method':<28}{'img/s':>10}{'passes':>8}{'slowdown/pass':>15}")
        for name in names:
            rate = measure(name, arch, args.batch_size, args.steps, device, args.compile)
            inherent = passes(name, create_method(name))
            print(f"{name:<28}{rate:>10.0f}{inherent:>8.0f}{base / rate / inherent:>15.2f}", flush=True)


if __name__ == "__main__":
    main()
