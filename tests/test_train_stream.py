"""The RandomResizedCrop training stream (corrbench/data/train_stream.py) and train_crop=random_resized."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from corrbench.config import RunConfig, apply_overrides
from corrbench.data.datasets import load_dataset
from corrbench.data.train_stream import (RRC_RATIO, RRC_SCALE, ResizedCropStream, draw_image_params,
                                         draw_resized_crop, image_files)
from corrbench.engine.train import train
from corrbench.errors import UserError

HEIGHT, WIDTH = 260, 300
CLASSES = ("cat", "dog", "eel")
OUT = (224, 224)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """24 JPEGs of 300×260 px in 3 classes, folder:PATH layout with train/ and val/ split folders."""
    root = tmp_path_factory.mktemp("rrc") / "mine"
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 2)):
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for k in range(count):
                # smooth gradients + noise: JPEG-like content, and every crop window looks different
                y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
                base = np.stack([x * 255 // WIDTH, y * 255 // HEIGHT, (x + y + 60 * label) % 256], -1)
                pixels = np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{k:02d}.JPEG", quality=90)
    return root


def files(root):
    return image_files(load_dataset(f"folder:{root}", "train"))


def stream(root, **kwargs) -> ResizedCropStream:
    paths, labels = files(root)
    options = dict(seed=3, batch_size=5, workers=0) | kwargs
    return ResizedCropStream(paths, labels, OUT, **options)


def collect(batches):
    images, labels = zip(*batches)
    return torch.cat(images), torch.cat(labels)


def reference_window(height: int, width: int, uniforms, randints):
    """torchvision's RandomResizedCrop rule written out from its documentation, on given draws:
    `uniforms` yields (area fraction, log aspect) pairs, `randints(n)` a uniform integer in [0, n)."""
    for fraction, log_aspect in uniforms:
        target, aspect = height * width * fraction, math.exp(log_aspect)
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return randints(height - h + 1), randints(width - w + 1), h, w
    ratio = width / height
    if ratio < 3 / 4:
        w, h = width, round(width / (3 / 4))
    elif ratio > 4 / 3:
        w, h = round(height * 4 / 3), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


@pytest.mark.parametrize("height,width", [(260, 300), (375, 500), (40, 400), (400, 30), (7, 9)])
def test_window_is_torchvisions_rule(height, width):
    from torchvision.transforms import RandomResizedCrop
    log_low, log_high = math.log(3 / 4), math.log(4 / 3)
    for seed in range(60):
        torch.manual_seed(seed)   # torchvision draws from the global generator
        expected = RandomResizedCrop.get_params(torch.empty(3, height, width), list(RRC_SCALE), list(RRC_RATIO))
        generator = torch.Generator().manual_seed(seed)
        assert draw_resized_crop(height, width, generator) == expected

        # The same rule written independently on the same draws (float32 uniforms, as torch draws them).
        draws = torch.Generator().manual_seed(seed)

        def uniforms():
            for _ in range(10):
                fraction = torch.empty(1).uniform_(0.08, 1.0, generator=draws).item()
                log_aspect = torch.empty(1).uniform_(log_low, log_high, generator=draws)
                yield fraction, log_aspect.item()

        def randints(n):
            return int(torch.randint(0, n, (1,), generator=draws).item())

        top, left, h, w = reference_window(height, width, uniforms(), randints)
        got = draw_resized_crop(height, width, torch.Generator().manual_seed(seed))
        # the independent version may differ from torch's float32 exp by one pixel of rounding at most
        assert abs(got[2] - h) <= 1 and abs(got[3] - w) <= 1
        if (got[2], got[3]) == (h, w):
            assert got[:2] == (top, left)


def test_windows_statistics():
    """Area fraction ~ U(scale) and log aspect ~ U(log 3/4, log 4/3), with the window placed uniformly. With
    scale up to 0.5 every first try fits a square image (√(0.5·4/3) < 1), so no draw is rejected."""
    generator = torch.Generator().manual_seed(0)
    side, n = 2000, 4000
    windows = np.array([draw_resized_crop(side, side, generator, scale=(0.08, 0.5)) for _ in range(n)], dtype=np.float64)
    fraction = windows[:, 2] * windows[:, 3] / side ** 2
    log_aspect = np.log(windows[:, 3] / windows[:, 2])
    tolerance = 4 / math.sqrt(12 * n)   # 4 standard errors of a uniform's mean, in units of its range
    assert abs(fraction.mean() - 0.29) < 0.42 * tolerance + 1e-3
    assert fraction.min() > 0.079 and fraction.max() < 0.501
    assert abs(log_aspect.mean()) < 2 * math.log(4 / 3) * tolerance + 1e-3
    assert log_aspect.min() > math.log(3 / 4) - 1e-3 and log_aspect.max() < math.log(4 / 3) + 1e-3
    relative_top = windows[:, 0] / (side - windows[:, 2])
    assert abs(relative_top.mean() - 0.5) < tolerance


def test_stream_bytes_equal_pil_reference(image_folder):
    """Each output image is PIL crop → resize(224, bilinear) → optional mirror of its file, with the window
    and flip its own (seed, epoch, rank, index) draws give."""
    paths, labels = files(image_folder)
    order = torch.tensor([7, 0, 23, 12, 5, 18])
    images, got_labels = collect(stream(image_folder).epoch(2, order))
    assert images.dtype == torch.uint8 and images.shape == (6, 3, *OUT)
    assert torch.equal(got_labels, labels[order])
    for row, index in enumerate(order.tolist()):
        with Image.open(paths[index]) as image:
            image = image.convert("RGB")
            top, left, h, w, flipped = draw_image_params(3, 2, 0, index, HEIGHT, WIDTH, flip=True)
            expected = np.asarray(image.crop((left, top, left + w, top + h)).resize(OUT[::-1], Image.BILINEAR))
        if flipped:
            expected = expected[:, ::-1]
        assert np.array_equal(images[row].permute(1, 2, 0).numpy(), expected)


def test_same_seed_same_bytes_other_seed_differs(image_folder):
    order = torch.randperm(24, generator=torch.Generator().manual_seed(1))
    first = collect(stream(image_folder).epoch(0, order))[0]
    again = collect(stream(image_folder).epoch(0, order))[0]
    other_seed = collect(stream(image_folder, seed=4).epoch(0, order))[0]
    other_epoch = collect(stream(image_folder).epoch(1, order))[0]
    assert torch.equal(first, again)
    assert not torch.equal(first, other_seed) and not torch.equal(first, other_epoch)


def test_batch_size_does_not_change_images(image_folder):
    order = torch.arange(24)
    assert torch.equal(collect(stream(image_folder, batch_size=5).epoch(0, order))[0],
                       collect(stream(image_folder, batch_size=8).epoch(0, order))[0])


def test_resumed_epoch_replays_the_same_batches(image_folder):
    """A fresh stream (a resumed run) asked for epoch 2 gives the batches a stream that ran epochs 0-1 gave."""
    orders = [torch.randperm(24, generator=torch.Generator().manual_seed(e)) for e in range(3)]
    running = stream(image_folder)
    continuous = [list(running.epoch(e, orders[e])) for e in range(3)]
    resumed = list(stream(image_folder).epoch(2, orders[2]))
    assert len(resumed) == len(continuous[2]) == 5
    for (a, la), (b, lb) in zip(continuous[2], resumed):
        assert torch.equal(a, b) and torch.equal(la, lb)


def test_two_workers_give_the_same_batches_as_none(image_folder):
    order = torch.randperm(24, generator=torch.Generator().manual_seed(2))
    serial = stream(image_folder, workers=0)
    parallel = stream(image_folder, workers=2, prefetch=2)
    try:
        for epoch in (0, 1):   # persistent workers across epochs
            a = list(serial.epoch(epoch, order))
            b = list(parallel.epoch(epoch, order))
            assert len(a) == len(b) == 5
            for (ia, la), (ib, lb) in zip(a, b):
                assert torch.equal(ia, ib) and torch.equal(la, lb)
    finally:
        parallel.close()


def test_ranks_draw_their_own_windows(image_folder):
    order = torch.arange(6)
    rank0 = collect(stream(image_folder, rank=0).epoch(0, order))[0]
    rank1 = collect(stream(image_folder, rank=1).epoch(0, order))[0]
    assert not torch.equal(rank0, rank1)


def test_torchvision_decoder_is_close_to_pil(image_folder, tmp_path):
    """The GPU path's code (workers read bytes; decode_jpeg + antialiased torch resize in this process), here
    with torchvision's CPU decoder: same windows and flips as the PIL path, pixels equal up to the decoders'
    and interpolations' rounding. A PNG among the JPEGs goes through the non-JPEG branch."""
    paths, labels = files(image_folder)
    png = tmp_path / "extra.png"
    with Image.open(paths[0]) as image:
        image.convert("RGB").save(png)
    paths, labels = [*paths, png], torch.cat([labels, labels[:1]])
    order = torch.tensor([24, 3, 0, 17, 9, 11, 20])
    pil = collect(ResizedCropStream(paths, labels, OUT, seed=5, batch_size=4, decoder="pil").epoch(1, order))
    tensor_path = ResizedCropStream(paths, labels, OUT, seed=5, batch_size=4, decoder="torchvision", workers=1)
    try:
        other = collect(tensor_path.epoch(1, order))
    finally:
        tensor_path.close()
    assert torch.equal(pil[1], other[1])
    difference = (pil[0].float() - other[0].float()).abs()
    assert difference.mean() < 2.0   # a wrong window or flip gives tens of levels on these gradients
    mirrored = (pil[0].float() - other[0].flip(-1).float()).abs().mean(dim=(1, 2, 3))
    assert (difference.mean(dim=(1, 2, 3)) < mirrored).all()


def test_unreadable_file_is_one_line_error(tmp_path, image_folder):
    from corrbench.errors import LayoutError
    paths, labels = files(image_folder)
    broken = tmp_path / "broken.JPEG"
    broken.write_bytes(b"not a jpeg")
    s = ResizedCropStream([*paths[:2], broken], labels[:3], OUT, seed=0, batch_size=3, workers=1)
    try:
        with pytest.raises(LayoutError, match="broken.JPEG is not a readable image"):
            list(s.epoch(0, torch.arange(3)))
    finally:
        s.close()


def test_config_train_crop_identity_and_validation():
    base = RunConfig(dataset="cifar10")
    assert "train_crop" not in base.identity()   # runs with the padded crop keep their run ids
    rrc = apply_overrides(base, ["train_crop=random_resized"])
    assert rrc.train_crop == "random_resized" and rrc.run_id() != base.run_id()
    with pytest.raises(UserError, match="train_crop must be one of pad, random_resized"):
        apply_overrides(base, ["train_crop=resized"]).check()


def test_one_epoch_train_on_the_folder(image_folder, tmp_path):
    config = RunConfig(dataset=f"folder:{image_folder}", arch="mnist_cnn", epochs=1, batch_size=8, lr=0.01,
                       train_crop="random_resized", device="cpu", eval_batch_size=6, holdout=3)
    result = train(config, runs_dir=tmp_path / "runs")   # holdout: the stream reads the kept files only
    assert result.epochs_completed == 1 and np.isfinite(result.log["loss"].iloc[0])
    again = train(config, runs_dir=tmp_path / "again")
    assert again.weights_digest == result.weights_digest   # the workers' decoding is reproducible


def test_random_resized_on_memory_data_is_a_user_error(tmp_path):
    config = RunConfig(dataset="mnist5k", arch="mnist_cnn", epochs=1, batch_size=200, train_crop="random_resized",
                       device="cpu")
    with pytest.raises(UserError, match="train_crop=random_resized needs a dataset of image files"):
        train(config, runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_torchrun_two_gloo_processes_random_resized(image_folder, tmp_path):
    """Under DDP each rank decodes its own shard of the permutation; the weights stay identical on every rank."""
    import os
    import subprocess
    import sys
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "corrbench", "train", "--dataset", f"folder:{image_folder}", "--arch", "mnist_cnn",
               "--epochs", "1", "--batch-size", "8", "--runs-dir", str(tmp_path), "--device", "cpu",
               "--set", "train_crop=random_resized", "--set", "lr=0.01"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "DDP: 2 processes; weights identical on every rank" in done.stdout, done.stdout
