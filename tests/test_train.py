"""Training engine: run folders, exact resume, NaN handling, Ctrl-C, schedules, crop/flip."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import pytest
import torch

from corrbench.augment import random_crop_flip
from corrbench.config import RunConfig, apply_overrides
from corrbench.engine.checkpoint import load_checkpoint, state_digest
from corrbench.engine.train import TrainingInterrupted, build_scheduler, train
from corrbench.errors import InvalidValueError, TrainingDivergedError, UserError
from corrbench.methods.base import METHODS, Method, register_method

QUICK = dict(dataset="mnist5k", arch="mnist_cnn", method="standard", batch_size=200, lr=0.05)


def test_run_folder_layout(mnist_run):
    assert mnist_run.name.startswith("mnist5k-mnist_cnn-standard-s0-")
    config = json.loads((mnist_run / "config.json").read_text())
    assert config["epochs"] == 1 and config["seed"] == 0 and config["corrbench_version"]
    log = pd.read_parquet(mnist_run / "train_log.parquet")
    assert list(log["epoch"]) == [1]
    assert {"loss", "acc", "lr", "images_per_s"} <= set(log.columns)
    checkpoint = load_checkpoint(mnist_run)
    assert checkpoint["epoch"] == 1 and checkpoint["complete"]
    assert checkpoint["dataset"]["num_classes"] == 10 and checkpoint["dataset"]["image_size"] == 32
    assert {"model", "optimizer", "scheduler", "config"} <= set(checkpoint)


def test_one_epoch_learns_something(mnist_run):
    log = pd.read_parquet(mnist_run / "train_log.parquet")
    assert log["acc"].iloc[0] > 0.3   # chance is 0.1


def test_interrupted_run_resumes_to_identical_weights(tmp_path):
    config = RunConfig(epochs=2, **QUICK)
    straight = train(config, runs_dir=tmp_path / "a")

    def stop_after_first(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted, match="checkpoint of epoch 1"):
        train(config, runs_dir=tmp_path / "b", on_epoch_end=stop_after_first)
    assert load_checkpoint(tmp_path / "b" / straight.run_id)["epoch"] == 1
    resumed = train(config, runs_dir=tmp_path / "b", resume=True)
    assert resumed.resumed_from_epoch == 1 and resumed.epochs_completed == 2
    assert resumed.weights_digest == straight.weights_digest
    assert list(resumed.log["epoch"]) == [1, 2]


def test_existing_run_needs_resume_or_overwrite(tmp_path):
    config = RunConfig(epochs=1, **QUICK)
    train(config, runs_dir=tmp_path)
    with pytest.raises(UserError, match="--resume"):
        train(config, runs_dir=tmp_path)
    again = train(config, runs_dir=tmp_path, resume=True)   # complete: nothing left to do
    assert again.resumed_from_epoch == 1


def test_seed_reproduces_weights_and_changes_with_seed(tmp_path):
    a = train(RunConfig(epochs=1, **QUICK), runs_dir=tmp_path / "a")
    b = train(RunConfig(epochs=1, **QUICK), runs_dir=tmp_path / "b")
    c = train(RunConfig(epochs=1, seed=1, **QUICK), runs_dir=tmp_path / "c")
    assert a.weights_digest == b.weights_digest != c.weights_digest


@register_method
@dataclass
class _ExplodesAtStep3(Method):
    name = "test-explodes"
    summary = "test only: NaN loss at the third step of epoch 2"
    calls: int = 0

    def loss(self, model, images, labels, generator):
        self.calls += 1
        logits = model(images.float() / 255)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        if self.calls == 20 + 3:   # mnist5k: 4000 images / 200 = 20 steps per epoch
            loss = loss * float("nan")
        return loss, {}


def test_nan_loss_stops_with_epoch_and_step_and_keeps_checkpoint(tmp_path):
    config = RunConfig(epochs=3, **{**QUICK, "method": "test-explodes"})
    with pytest.raises(TrainingDivergedError, match=r"epoch 2, step 3.*epoch 1"):
        train(config, runs_dir=tmp_path)
    assert load_checkpoint(tmp_path / config.resolved().run_id())["epoch"] == 1


@pytest.mark.parametrize("setting, message", [
    ("epochs=0", "epochs must be at least 1"), ("lr=0", "lr must be greater than 0"),
    ("batch_size=0", "batch size must be at least 1"), ("lr=abc", "lr expects a float"),
])
def test_invalid_numbers_are_user_errors(setting, message):
    with pytest.raises(InvalidValueError, match=message):
        apply_overrides(RunConfig(**QUICK), [setting]).resolved()


def test_set_overrides_method_hyperparameters():
    config = apply_overrides(RunConfig(method="gaussian-noise"), ["gaussian-noise.sigma_max=0.4", "epochs=3"])
    assert config.method_params == {"sigma_max": "0.4"} and config.epochs == 3
    with pytest.raises(UserError, match="not the method of this run"):
        apply_overrides(RunConfig(method="standard"), ["magn.sigma_max=0.4"])
    from corrbench.methods import create_method
    assert create_method("gaussian-noise", config.method_params).sigma_max == 0.4
    with pytest.raises(UserError, match="has no hyperparameter"):
        create_method("gaussian-noise", {"sigma": "1"})


def test_recipe_fills_unset_settings():
    config = RunConfig(method="gaussian-noise").resolved()
    recipe = METHODS.get("gaussian-noise").recipe
    assert (config.epochs, config.schedule, config.milestones) == (recipe.epochs, "step", (50, 100))
    assert RunConfig(method="gaussian-noise", epochs=3).resolved().epochs == 3


def test_cosine_and_step_schedules_per_step():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    cosine = build_scheduler(optimizer, RunConfig(epochs=2, schedule="cosine", lr=1.0, batch_size=1).resolved(), 5)
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        cosine.step()
    assert lrs[0] == 1.0 and lrs[5] == pytest.approx(0.5) and optimizer.param_groups[0]["lr"] == pytest.approx(0.0)
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    step = build_scheduler(optimizer, RunConfig(epochs=4, schedule="step", milestones=(2, 3), gamma=0.1,
                                                 lr=1.0, batch_size=1).resolved(), 3)
    lrs = []
    for _ in range(12):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        step.step()
    assert lrs[5] == 1.0 and lrs[6] == pytest.approx(0.1) and lrs[9] == pytest.approx(0.01)


def test_random_crop_flip_is_per_image_and_seeded():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.int64).reshape(2, 3, 8, 8).to(torch.uint8).repeat(16, 1, 1, 1)
    first = random_crop_flip(images, 2, True, torch.Generator().manual_seed(0))
    again = random_crop_flip(images, 2, True, torch.Generator().manual_seed(0))
    assert torch.equal(first, again) and first.dtype == torch.uint8 and first.shape == images.shape
    assert len({bytes(img.numpy().tobytes()) for img in first[::2]}) > 1   # identical inputs, different crops
    # every output is a shifted (possibly flipped) window of the zero-padded input
    padded = torch.nn.functional.pad(images[:1], (2, 2, 2, 2))[0]
    windows = [padded[:, y:y + 8, x:x + 8] for y in range(5) for x in range(5)]
    windows += [w.flip(-1) for w in windows]
    assert any(torch.equal(first[0], w) for w in windows)
    assert torch.equal(random_crop_flip(images, 0, False, torch.Generator()), images)


def test_state_digest_tracks_weights():
    a = {"w": torch.ones(3), "n": torch.tensor(5)}
    assert state_digest(a) == state_digest({k: v.clone() for k, v in a.items()})
    assert state_digest(a) != state_digest({"w": torch.ones(3) * 2, "n": torch.tensor(5)})


def test_config_json_round_trip_keeps_the_run_identity():
    for config in (RunConfig(method="gaussian-noise", dataset="mnist5k", arch="mnist_cnn"),
                   RunConfig(method="standard", milestones=(3,), schedule="step", epochs=5)):
        again = RunConfig.from_json(json.loads(json.dumps(config.to_json())))
        assert again.resolved().run_id() == config.resolved().run_id()
