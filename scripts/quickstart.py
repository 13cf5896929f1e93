"""`make quickstart`: train `standard` and `gaussian-noise` on the embedded mnist5k with mnist_cnn,
evaluate both on mnist5k-c (generated on the fly, seed 0) and print the comparison table.

Runs offline on a CPU in a few minutes. Every step is an ordinary corrbench command; re-running
reuses finished runs (--resume) and rewrites the results under quickstart/.
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from corrbench.cli.app import main
from corrbench.config import RunConfig

OUT = Path("quickstart")
TRAINING = ["--dataset", "mnist5k", "--arch", "mnist_cnn", "--epochs", "15", "--batch-size", "64", "--lr", "0.05"]
METHODS = ["standard", "gaussian-noise"]


def corrbench(*args: str) -> None:
    print("\n$ corrbench " + " ".join(args), flush=True)
    try:
        main(list(args))
    except SystemExit as done:
        if done.code not in (0, None):
            sys.exit(done.code)


def run_id(method: str) -> str:
    return RunConfig(dataset="mnist5k", arch="mnist_cnn", method=method, epochs=15, batch_size=64,
                     lr=0.05).resolved().run_id()


if __name__ == "__main__":
    started = time.perf_counter()
    results = OUT / "results"
    shutil.rmtree(results, ignore_errors=True)
    for method in METHODS:
        corrbench("train", *TRAINING, "--method", method, "--runs-dir", str(OUT / "runs"), "--resume")
    for method in METHODS:
        corrbench("eval", "--checkpoint", str(OUT / "runs" / run_id(method)), "--suite", "mnist5k-c",
                  "--source", "generated", "--results", str(results))
    corrbench("report", "--results", str(results))
    print(f"\nquickstart finished in {time.perf_counter() - started:.0f} s", flush=True)
