"""`corrbench train` runs unchanged under torchrun: 2 gloo processes on CPU, one checkpoint, equal weights."""
from __future__ import annotations

import os
import subprocess
import sys

from corrbench.engine.checkpoint import load_checkpoint, state_digest


def test_torchrun_two_gloo_processes(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "corrbench", "train", "--dataset", "mnist5k", "--arch", "mnist_cnn", "--epochs", "1",
               "--batch-size", "200", "--runs-dir", str(tmp_path), "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "DDP: 2 processes; weights identical on every rank" in done.stdout, done.stdout
    runs = list(tmp_path.iterdir())
    assert len(runs) == 1
    checkpoint = load_checkpoint(runs[0])
    assert checkpoint["epoch"] == 1
    digest = done.stdout.split("sha256 ")[1][:16]
    assert state_digest(checkpoint["model"]).startswith(digest)
