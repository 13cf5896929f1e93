"""Train and eval throughput (images/s) of the real engine on this machine, beside bare `model(x)`.

    python benchmarks/throughput.py [--device cpu|cuda] [--archs mnist_cnn,resnet18] [--methods standard,augmix]
                                    [--batch-size 128] [--images 1024] [--compile]

- train: `corrbench.engine.train.train` for one epoch (crop + flip on device, SGD, checkpoint),
  images/s from the train log (epoch 2 when measured, so one-off warm-up is excluded);
- eval: the evaluation engine's streaming path (uint8 batches -> device -> method.predict -> per-sample
  statistics) over the clean test split, against a bare `model(x)` loop over the same images already
  as float tensors on the device.
mnist_cnn runs on mnist5k (4,000 train / 1,000 test images); CIFAR-scale archs on random 32x32 data
(`npy:` dataset of `--images` images), since CIFAR-10 cannot be downloaded here. With several
`--methods`, each trains through the engine and the table adds its slowdown per inherent pass
against the first method (`benchmarks/methods.py`'s pass counts); eval is measured for the first only.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from corrbench.config import RunConfig
from corrbench.data.datasets import load_dataset
from corrbench.data.suites import Part
from corrbench.engine.evaluate import collect_stats
from corrbench.progress import null_progress
from corrbench.engine.runs import load_run
from corrbench.engine.train import train


def synthetic_npy(folder: Path, n: int) -> str:
    rng = np.random.default_rng(0)
    np.save(folder / "images.npy", rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))
    np.save(folder / "labels.npy", rng.integers(0, 10, n).astype(np.int64))
    return f"npy:{folder / 'images.npy'},{folder / 'labels.npy'}"


def measure(arch: str, device: str, workdir: Path, batch_size: int, method: str = "standard", images: int = 1024,
            compile: bool = False, eval_too: bool = True) -> dict[str, float]:
    dataset = "mnist5k" if arch == "mnist_cnn" else synthetic_npy(workdir, images)
    config = RunConfig(dataset=dataset, arch=arch, method=method, epochs=2, batch_size=batch_size, lr=0.01,
                       device=device, compile=compile)
    result = train(config, runs_dir=workdir / "runs")
    train_rate = float(result.log["images_per_s"].iloc[-1])
    if not eval_too:
        return {"train": train_rate}
    torch_device = torch.device(device)
    run = load_run(result.run_dir, torch_device)
    test = load_dataset(dataset, "test")
    part = Part("clean", 0, test.labels, test.images)
    collect_stats(run, part, 500, torch_device, null_progress(), None)      # warm-up
    started = time.perf_counter()
    collect_stats(run, part, 500, torch_device, null_progress(), None)
    engine = len(test) / (time.perf_counter() - started)
    inputs = [test.images(slice(s, s + 500)).to(torch_device).float().div_(255)
              .contiguous(memory_format=torch.channels_last) for s in range(0, len(test), 500)]
    with torch.no_grad():
        for x in inputs:
            run.model(x)
        if torch_device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for x in inputs:
            run.model(x)
        if torch_device.type == "cuda":
            torch.cuda.synchronize()
    bare = len(test) / (time.perf_counter() - started)
    return {"train": train_rate, "eval": engine, "bare": bare}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--archs", default="mnist_cnn,resnet18")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--methods", default="standard", help="comma-separated; the first is the baseline")
    parser.add_argument("--images", type=int, default=1024, help="synthetic training images (CIFAR-scale archs)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model's stages (CUDA only)")
    args = parser.parse_args()
    from methods import passes   # benchmarks/methods.py: the inherent passes per method
    from corrbench.methods import create_method

    methods = [m for m in args.methods.split(",") if m]
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"batch {args.batch_size}{', compiled' if args.compile else ''}")
    print(f"{'arch':<12}{'method':<24}{'train img/s':>14}{'slowdown/pass':>15}{'eval img/s':>14}"
          f"{'bare model(x) img/s':>22}{'eval/bare':>11}")
    for arch in args.archs.split(","):
        base = None
        for index, method in enumerate(methods):
            with tempfile.TemporaryDirectory() as folder:
                rates = measure(arch, args.device, Path(folder), args.batch_size, method, args.images, args.compile,
                                eval_too=index == 0)
            base = base or rates["train"]
            slowdown = base / rates["train"] / passes(method, create_method(method))
            tail = (f"{rates['eval']:>14.0f}{rates['bare']:>22.0f}{rates['eval'] / rates['bare']:>11.2f}"
                    if index == 0 else "")
            print(f"{arch:<12}{method:<24}{rates['train']:>14.0f}{slowdown:>15.2f}{tail}", flush=True)


if __name__ == "__main__":
    main()
