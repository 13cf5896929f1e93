"""Start-up times: how fast the CLI answers `--help` and a user error, and where `eval` spends its time
before the first batch (imports, device init, reading the checkpoint, opening the suite).

    python benchmarks/startup.py                      # CLI only (seconds)
    python benchmarks/startup.py --eval --device cuda # + eval start-up phases (trains a 1-epoch run first
                                                      #   unless --checkpoint RUN is given)

Targets (issue 9): a user error exits in < 1 s, `--help` in < 0.5 s, eval reaches its first batch in < 3 s
on a GPU. Each CLI command runs --repeat times in a fresh process; the minimum wall time is the figure
least disturbed by other work on the machine, and CPU time (user + sys) shows the work itself.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI_COMMANDS = [
    ["--help"],
    ["train", "--help"],
    ["train", "--dataset", "nosuch"],
    ["train", "--dataset", "mnist5k", "--lr", "inf"],
    ["eval", "--checkpoint", "x", "--corruptions", "gausian_noise"],
    ["run", "quickstart", "--set", "eval.severities=x"],
    ["report", "--format", "pdf"],
]

# Runs in a fresh interpreter so every import is paid for; prints one JSON line of phase end times.
EVAL_PHASES = r"""
import json, sys, time
start = time.perf_counter()
marks = {}
def mark(name):
    marks[name] = round(time.perf_counter() - start, 3)
import torch
mark("import torch")
from corrbench.engine.evaluate import evaluate
mark("import corrbench.engine.evaluate")
from corrbench.device import resolve_device
device = resolve_device(sys.argv[2])
torch.zeros(1, device=device)
if device.type == "cuda":
    torch.cuda.synchronize()
mark("device ready (" + device.type + ")")
from corrbench.engine.checkpoint import load_checkpoint
load_checkpoint(sys.argv[1])
mark("checkpoint read (first time)")

class FirstBatch:
    def add_task(self, description, total=None, **fields):
        return description
    def advance(self, task_id, advance=1):
        if "first batch" not in marks:
            mark("first batch done")
    def reset(self, task_id, **fields):
        pass
    def update(self, task_id, **fields):
        pass

evaluate(sys.argv[1], sys.argv[3], corruptions=["contrast"], severities=[1], device=sys.argv[2],
         results_dir=None, progress=FirstBatch())
mark("evaluation done (clean + contrast s1)")
print(json.dumps(marks))
"""


def corrbench_command() -> list[str]:
    script = Path(sys.executable).parent / "corrbench"
    return [str(script)] if script.exists() else [sys.executable, "-m", "corrbench"]


def time_command(args: list[str], repeat: int, cwd: Path) -> dict[str, float]:
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(corrbench_command() + args, cwd=cwd, capture_output=True, text=True,
                              env={**os.environ, "COLUMNS": "120"})
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return {"exit": done.returncode, "wall_min": min(walls), "wall_median": statistics.median(walls),
            "cpu_median": statistics.median(cpus)}


def bench_cli(repeat: int) -> None:
    print(f"CLI start-up ({repeat} fresh processes each; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs)")
    print(f"{'command':58s} {'exit':>4s} {'wall min':>9s} {'wall med':>9s} {'CPU med':>8s}")
    with tempfile.TemporaryDirectory() as folder:
        for args in CLI_COMMANDS:
            figures = time_command(args, repeat, Path(folder))
            print(f"{'corrbench ' + ' '.join(args):58s} {figures['exit']:4d} {figures['wall_min']:8.2f}s "
                  f"{figures['wall_median']:8.2f}s {figures['cpu_median']:7.2f}s")


def bench_eval(checkpoint: str | None, device: str, suite: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        if checkpoint is None:
            subprocess.run(corrbench_command() + ["train", "--dataset", "mnist5k", "--arch", "mnist_cnn", "--epochs",
                                                  "1", "--device", device, "--runs-dir", folder],
                           check=True, capture_output=True)
            checkpoint = str(next(Path(folder).iterdir()))
            suite = suite or "mnist5k-c"
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", EVAL_PHASES, checkpoint, device, suite], capture_output=True,
                              text=True)
        wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"eval start-up benchmark failed:\n{done.stderr}")
    marks = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\neval start-up on {device}, {suite} (process wall {wall:.2f} s, includes Python start):")
    previous = 0.0
    for phase, at in marks.items():
        print(f"  {phase:45s} at {at:6.2f} s  (+{at - previous:.2f} s)")
        previous = at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--eval", action="store_true", help="also measure eval's start-up phases")
    parser.add_argument("--checkpoint", help="a run folder to evaluate (default: train a 1-epoch mnist5k run)")
    parser.add_argument("--suite", default="", help="suite for --checkpoint (default: mnist5k-c for the trained run)")
    parser.add_argument("--device", default="cpu")
    options = parser.parse_args()
    bench_cli(options.repeat)
    if options.eval:
        bench_eval(options.checkpoint, options.device, options.suite)


if __name__ == "__main__":
    main()
