"""What bf16 autocast changes against fp32 (TF32 off): error, NLL and ECE per corruption × severity.

    python benchmarks/precision.py [--device cuda] [--checkpoint RUN | --model timm:resnet18 ...] \
        [--suite mnist5k-c] [--corruptions gaussian_noise,fog] [--severities 1,3,5] [--source generated]

Without --checkpoint/--model it trains a 3-epoch mnist_cnn on mnist5k first (offline, ~1 min on CPU) and
uses mnist5k-c generated on the fly. Prints per part |Δerror| (percentage points), ΔNLL and ΔECE, and the
largest of each; also checks that two fp32 evaluations give identical rows (TF32 off ⇒ deterministic
numbers on a given device).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from corrbench.engine.evaluate import evaluate
from corrbench.engine.sources import SourceOptions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint")
    parser.add_argument("--model")
    parser.add_argument("--weights")
    parser.add_argument("--suite", default="mnist5k-c")
    parser.add_argument("--source", default="generated")
    parser.add_argument("--corruptions", default="gaussian_noise,contrast,fog,jpeg_compression")
    parser.add_argument("--severities", default="1,3,5")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-root")
    parser.add_argument("--batch-size", type=int)
    args = parser.parse_args()

    target = args.checkpoint or args.model
    workdir = tempfile.TemporaryDirectory()
    if target is None:
        from corrbench.config import RunConfig
        from corrbench.engine.train import train
        run = train(RunConfig(dataset="mnist5k", arch="mnist_cnn", epochs=3,
                              device=args.device), runs_dir=Path(workdir.name) / "runs")
        target = str(run.run_dir)
    common = dict(data_root=args.data_root, source=args.source, corruptions=args.corruptions.split(","),
                  severities=[int(s) for s in args.severities.split(",")], batch_size=args.batch_size,
                  device=args.device, results_dir=None)
    rows = {}
    for precision in ("fp32", "fp32-again", "bf16"):
        options = SourceOptions(weights=args.weights, precision=precision.split("-")[0])
        result = evaluate(target, args.suite, options=options, **common)
        rows[precision] = result.rows
        print(f"{precision}: {result.images} images in {result.seconds:.1f} s on {result.rows['device'].iloc[0]}")
    fp32, again, bf16 = rows["fp32"], rows["fp32-again"], rows["bf16"]
    same = all(np.array_equal(fp32[c].to_numpy(), again[c].to_numpy()) for c in ("error", "nll", "ece"))
    print(f"two fp32 evaluations identical: {same}")
    print(f"{'part':<24}{'err fp32 %':>11}{'Δerr pp':>9}{'NLL fp32':>10}{'ΔNLL':>10}{'ECE fp32 %':>11}{'ΔECE pp':>9}")
    for a, b in zip(fp32.itertuples(), bf16.itertuples()):
        part = "clean" if a.severity == 0 else f"{a.corruption} s{a.severity}"
        print(f"{part:<24}{100 * a.error:>11.2f}{100 * (b.error - a.error):>+9.2f}{a.nll:>10.4f}{b.nll - a.nll:>+10.4f}"
              f"{100 * a.ece:>11.2f}{100 * (b.ece - a.ece):>+9.2f}")
    for column, scale, unit in (("error", 100, "pp"), ("nll", 1, "nats"), ("ece", 100, "pp")):
        delta = (bf16[column] - fp32[column]).abs() * scale
        print(f"max |Δ{column}| = {delta.max():.4f} {unit}, mean |Δ{column}| = {delta.mean():.4f} {unit}")
    workdir.cleanup()


if __name__ == "__main__":
    main()
