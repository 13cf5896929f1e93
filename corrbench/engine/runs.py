"""Loading a trained run (folder or checkpoint) back into a model + method for evaluation."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from corrbench.config import RunConfig
from corrbench.engine.checkpoint import file_sha256, load_checkpoint, resolve_checkpoint_path
from corrbench.errors import CheckpointError
from corrbench.methods import Method, create_method
from corrbench.models import create_model


@dataclass
class LoadedRun:
    model: nn.Module
    method: Method
    config: RunConfig
    dataset: dict
    run_id: str
    checkpoint_path: Path
    checkpoint_sha256: str
    epoch: int
    complete: bool


def load_run(path: Path | str, device: torch.device) -> LoadedRun:
    """Rebuild the model of a run folder / checkpoint on `device`, in eval mode."""
    checkpoint_path = resolve_checkpoint_path(path)
    payload = load_checkpoint(checkpoint_path)
    config = RunConfig.from_json(payload["config"])
    dataset = payload["dataset"]
    model = create_model(config.arch, num_classes=dataset["num_classes"], image_size=dataset["image_size"],
                         mean=dataset["mean"], std=dataset["std"])
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as error:
        raise CheckpointError(f"{checkpoint_path}: the weights do not fit arch '{config.arch}' "
                              f"({str(error).splitlines()[0]}); the checkpoint is damaged or from another corrbench") from None
    model = model.to(device, memory_format=torch.channels_last).eval()
    method = create_method(config.method, payload.get("method_hyperparameters") or config.method_params)
    return LoadedRun(model=model, method=method, config=config, dataset=dataset, run_id=config.run_id(),
                     checkpoint_path=checkpoint_path, checkpoint_sha256=file_sha256(checkpoint_path),
                     epoch=int(payload["epoch"]), complete=bool(payload.get("complete", False)))


def run_identity(run: LoadedRun) -> dict:
    """The identity columns of a results row that come from the run."""
    return {"run_id": run.run_id, "method": run.config.method,
            "method_params": json.dumps(run.method.hyperparameters(), sort_keys=True, default=str),
            "augment": run.config.augment,
            "arch": run.config.arch, "dataset": run.config.dataset, "seed": run.config.seed}


def default_suite(path: Path | str, kind: str) -> str:
    """`<dataset>-<kind>` for the run's dataset (the suite a user most likely means)."""
    payload = load_checkpoint(resolve_checkpoint_path(path))
    return f"{payload['config']['dataset']}-{kind}"
