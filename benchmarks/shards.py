"""Sharded evaluation on this machine: `--shard i/n` merged by the results store against the unsharded eval.

    python benchmarks/shards.py [--device cpu|cuda] [--shards 4] [--batch-size 256] [--precision fp32|bf16]

Trains a one-epoch mnist_cnn on mnist5k, evaluates it on a generated mnist5k-c subset (3 corruptions × 2
severities + clean) once whole and once as n shards, merges the shards with `corrbench.results.load_results`
and prints, per metric, the largest difference between the merged and the unsharded rows, and whether the
per-image data (correctness bits, float16 confidences, calibration bins) are byte-identical. The shards put
other images side by side in a batch: on CUDA, kernels chosen per batch shape may change logits in the last
bits, which this measures (CPU: 0 expected).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from corrbench.config import RunConfig
from corrbench.engine.evaluate import evaluate
from corrbench.engine.sources import SourceOptions
from corrbench.engine.train import train
from corrbench.metric_catalog import ROW_METRICS
from corrbench.results import load_results

SUITE = dict(source="generated", corruptions=["contrast", "gaussian_noise", "fog"], severities=[1, 5])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--precision", default="fp32")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        run = train(RunConfig(dataset="mnist5k", arch="mnist_cnn", method="standard", epochs=1, batch_size=100,
                              device=args.device), runs_dir=folder / "runs").run_dir
        options = SourceOptions(precision=args.precision)
        started = time.perf_counter()
        whole = evaluate(run, "mnist5k-c", options=options, results_dir=None, device=args.device,
                         batch_size=args.batch_size, **SUITE).rows
        whole_s = time.perf_counter() - started
        started = time.perf_counter()
        for index in range(args.shards):
            evaluate(run, "mnist5k-c", options=options, results_dir=folder / "results", device=args.device,
                     batch_size=args.batch_size, shard=f"{index}/{args.shards}", **SUITE)
        shards_s = time.perf_counter() - started
        merged = load_results(folder / "results")
    key = ["corruption", "severity"]
    whole, merged = whole.sort_values(key).reset_index(drop=True), merged.sort_values(key).reset_index(drop=True)
    print(f"device {args.device}, precision {args.precision}, {len(whole)} parts of {int(whole['n'].iloc[0])} "
          f"images, {args.shards} shards; unsharded {whole_s:.1f} s, shards one after another {shards_s:.1f} s")
    print(f"{'metric':<24} max |merged - unsharded|")
    for metric in ROW_METRICS:
        if metric.compute is None:
            continue
        a, b = whole[metric.column].to_numpy(float), merged[metric.column].to_numpy(float)
        finite = ~(np.isnan(a) & np.isnan(b))
        print(f"{metric.column:<24} {np.abs(a - b)[finite].max() if finite.any() else 0.0:.3g}")
    for column in ("sample_correct", "sample_confidence", "calibration_bins"):
        print(f"{column:<24} {'identical' if list(whole[column]) == list(merged[column]) else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
