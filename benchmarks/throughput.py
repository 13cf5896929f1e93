"""Train and eval throughput (images/s) of the real engine on this machine, beside bare `model(x)`.

    python benchmarks/throughput.py [--device cpu|cuda] [--archs mnist_cnn,resnet18]

- train: `corrbench.engine.train.train` for one epoch (crop + flip on device, SGD, checkpoint),
  images/s from the train log (epoch 2 when measured, so one-off warm-up is excluded);
- eval: the evaluation engine's streaming path (uint8 batches -> device -> method.predict -> per-sample
  statistics) over the clean test split, against a bare `model(x)` loop over the same images already
  as float tensors on the device.
mnist_cnn runs on mnist5k (4,000 train / 1,000 test images); CIFAR-scale archs on random 32x32 data
(`npy:` dataset of 1,024 images), since CIFAR-10 cannot be downloaded here.
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


def measure(arch: str, device: str, workdir: Path, batch_size: int) -> dict[str, float]:
    dataset = "mnist5k" if arch == "mnist_cnn" else synthetic_npy(workdir, 1024)
    config = RunConfig(dataset=dataset, arch=arch, epochs=2, batch_size=batch_size, lr=0.01, device=device)
    result = train(config, runs_dir=workdir / "runs")
    train_rate = float(result.log["images_per_s"].iloc[-1])
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
    args = parser.parse_args()
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'arch':<12}{'train img/s':>14}{'eval img/s':>14}{'bare model(x) img/s':>22}{'eval/bare':>11}")
    for arch in args.archs.split(","):
        with tempfile.TemporaryDirectory() as folder:
            rates = measure(arch, args.device, Path(folder), args.batch_size)
        print(f"{arch:<12}{rates['train']:>14.0f}{rates['eval']:>14.0f}{rates['bare']:>22.0f}"
              f"{rates['eval'] / rates['bare']:>11.2f}", flush=True)


if __name__ == "__main__":
    main()
