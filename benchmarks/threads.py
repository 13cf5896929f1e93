"""make-c on a busy machine: default CPU threads against one thread, while another process loads every core.

    python benchmarks/threads.py                          # 1,000 images, all corruptions
    python benchmarks/threads.py --images 10000           # CIFAR-10-C-sized
    python benchmarks/threads.py --corruptions gaussian_noise,zoom_blur --no-load

Each measurement is a fresh `python -m corrbench data make-c --device cpu` process (start-up included) on
a synthetic CIFAR-sized `npy:` dataset (smooth colour fields plus noise), once with torch's default
thread count and once with OMP_NUM_THREADS=1, while a load process keeps every core busy with
multi-threaded matrix products (an OpenMP-heavy neighbour, as other jobs on a shared machine). It prints
both wall times and their ratio default / one thread; the goal (issue 12) is ≤ 1.3.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
GOAL_RATIO = 1.3

LOAD_SCRIPT = """
import os, torch
torch.set_num_threads(os.cpu_count() or 1)
a = torch.rand(384, 384)
while True:
    a @ a
"""


def synthetic_npy(folder: Path, n: int) -> str:
    rng = np.random.default_rng(0)
    coarse = rng.random((n, 4, 4, 3))
    images = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2) * 200 + rng.random((n, 32, 32, 3)) * 55
    np.save(folder / "images.npy", images.astype(np.uint8))
    np.save(folder / "labels.npy", rng.integers(0, 10, n).astype(np.int64))
    return f"npy:{folder / 'images.npy'},{folder / 'labels.npy'}"


def make_c_seconds(dataset: str, out: Path, corruptions: str | None, one_thread: bool) -> float:
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{env['PYTHONPATH']}" if env.get("PYTHONPATH") else str(REPO)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY"):
        env.pop(name, None)
    if one_thread:
        env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, "-m", "corrbench", "data", "make-c", "--dataset", dataset, "--out", str(out),
               "--device", "cpu", "--overwrite"]
    if corruptions:
        command += ["--corruptions", corruptions]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--corruptions", default=None, help="comma-separated subset [default: all]")
    parser.add_argument("--no-load", action="store_true", help="measure without the load process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        dataset = synthetic_npy(work, args.images)
        load = None if args.no_load else subprocess.Popen([sys.executable, "-c", LOAD_SCRIPT])
        try:
            time.sleep(1.0)
            default = make_c_seconds(dataset, work / "default-C", args.corruptions, one_thread=False)
            single = make_c_seconds(dataset, work / "single-C", args.corruptions, one_thread=True)
        finally:
            if load is not None:
                load.kill()
                load.wait()
    cores = os.cpu_count()
    print(f"make-c of {args.images} CIFAR-sized images ({args.corruptions or 'all corruptions'}), {cores} cores, "
          f"{'a load process on every core' if not args.no_load else 'no load'}:")
    print(f"  default threads   {default:8.1f} s")
    print(f"  OMP_NUM_THREADS=1 {single:8.1f} s")
    ratio = default / single
    print(f"  ratio default / one thread: {ratio:.2f} (goal ≤ {GOAL_RATIO}: {'met' if ratio <= GOAL_RATIO else 'missed'})")


if __name__ == "__main__":
    main()
