"""Shared fixtures: tiny data in the exact official layouts, and small trained runs reused across tests."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

# Tests share 2 cores with a parallel worker: one intra-op thread each keeps them from thrashing.
torch.set_num_threads(1)
os.environ["COLUMNS"] = "240"   # rich tables unwrapped in captured output
os.environ.setdefault("CORRBENCH_DATA", str(Path(__file__).parent / "_no_data_here"))


def write_cifar10(root: Path, n_train: int = 200, n_test: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 in torchvision's python layout (cifar-10-batches-py pickles). Images are class-dependent
    colour blobs so a model can learn something in one epoch. Returns the test images (N,32,32,3) and labels."""
    rng = np.random.default_rng(seed)
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)

    def make(n: int) -> tuple[np.ndarray, list[int]]:
        labels = rng.integers(0, 10, size=n)
        colours = np.stack([np.linspace(0, 255, 10), np.linspace(255, 0, 10), (np.arange(10) * 77) % 256], 1)
        images = colours[labels][:, None, None, :] * 0.7 + rng.integers(0, 77, size=(n, 32, 32, 3))
        return images.clip(0, 255).astype(np.uint8), [int(v) for v in labels]

    per_batch = n_train // 5
    for index in range(1, 6):
        images, labels = make(per_batch)
        with open(base / f"data_batch_{index}", "wb") as handle:
            pickle.dump({b"data": images.transpose(0, 3, 1, 2).reshape(per_batch, -1), b"labels": labels}, handle)
    test_images, test_labels = make(n_test)
    with open(base / "test_batch", "wb") as handle:
        pickle.dump({b"data": test_images.transpose(0, 3, 1, 2).reshape(n_test, -1), b"labels": test_labels}, handle)
    with open(base / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [f"class{i}".encode() for i in range(10)]}, handle)
    return test_images, np.asarray(test_labels)


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar-data")
    write_cifar10(root)
    return root


def train_run(runs_dir: Path, **overrides) -> Path:
    from corrbench.config import RunConfig
    from corrbench.engine.train import train

    settings = dict(dataset="mnist5k", arch="mnist_cnn", method="standard", epochs=1, batch_size=50, lr=0.05)
    settings.update(overrides)
    result = train(RunConfig(**settings), runs_dir=runs_dir)
    return result.run_dir


@pytest.fixture(scope="session")
def mnist_run(tmp_path_factory) -> Path:
    """A one-epoch mnist_cnn run on mnist5k (shared, read-only)."""
    return train_run(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="session")
def cifar_run(tmp_path_factory, cifar_root) -> Path:
    """A one-epoch mnist_cnn run on the tiny CIFAR-10 fixture (shared, read-only)."""
    return train_run(tmp_path_factory.mktemp("cifar-runs"), dataset="cifar10", data_root=str(cifar_root),
                     batch_size=50)
