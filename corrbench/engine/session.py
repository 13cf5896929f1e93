"""One evaluation session, shared by eval, calibrate and flip-rate.

resolve device → open predictor (any model source) → open suite (the caller: -C parts or -P sequences)
→ bind the predictor to the suite's dataset (class count, class map, a probe batch) → batches → logits →
per-sample statistics → rows. The callers add what is theirs: eval the mCE normaliser, calibrate a
temperature fitted on top of the same statistics, flip-rate its walk over sequences.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import torch
import torch.nn as nn

from corrbench import __version__
from corrbench.data.datasets import ImageSet, dataset_info, resolve_data_root
from corrbench.data.suites import Part, SuiteSpec, get_suite_spec, suite_dataset
from corrbench.device import resolve_device
from corrbench.engine.sources import (SOURCE_KINDS, ModelSourceError, Predictor, SourceOptions, open_model,
                                      predictor_from_module, predictor_from_run)
from corrbench.errors import InvalidValueError, UserError
from corrbench.metrics import SampleStats, sample_stats
from corrbench.progress import ProgressLike, null_progress
from corrbench.results import utc_timestamp

DEFAULT_EVAL_BATCH_SIZE = 256
ModelArg = Predictor | nn.Module | str | Path


def open_predictor(model: ModelArg, options: SourceOptions, *, dataset: str | None,
                   device: torch.device) -> Predictor:
    """A Predictor from what the caller has: a Predictor, an nn.Module, a source string ('timm:…') or the
    path of a corrbench run folder / checkpoint (also 'run:PATH')."""
    if isinstance(model, Predictor):
        return model.to(device)
    if isinstance(model, nn.Module):
        return predictor_from_module(model, options).to(device)
    if isinstance(model, (str, Path)):
        text = str(model)
        kind = text.partition(":")[0]
        if isinstance(model, Path) or kind not in SOURCE_KINDS:
            if not Path(text).exists() and ":" in text:
                return open_model(text, options, dataset=dataset, device=device)   # refuses the prefix
            from corrbench.engine.runs import load_run
            return predictor_from_run(load_run(text, device), options).to(device)
        return open_model(text, options, dataset=dataset, device=device)
    raise ModelSourceError(f"expected an nn.Module, a model source string or a run folder, got {type(model).__name__}")


@dataclass
class Session:
    """A predictor on a device, the data root and batch size it reads suites with, and progress."""

    predictor: Predictor
    spec: SuiteSpec
    device: torch.device
    data_root: Path
    batch_size: int
    progress: ProgressLike
    image_shape: tuple[int, int, int] | None = None

    @property
    def run(self):
        return self.predictor.run

    def bind(self, clean: ImageSet) -> None:
        """Fix the predictor to the suite's clean dataset (class count, class map, probe batch)."""
        info = dataset_info(self.spec.dataset)
        self.image_shape = tuple(clean.images(slice(0, 1)).shape[1:]) if len(clean) else (3, info.image_size,
                                                                                            info.image_size)
        self.predictor.bind(dataset=self.spec.dataset, num_classes=info.num_classes,
                            classes=list(getattr(clean, "classes", None) or []) or None,
                            image_shape=self.image_shape, device=self.device)

    def bind_shape(self, image_shape: Sequence[int]) -> None:
        """As `bind` when only the image shape is known (flip-rate's sequences)."""
        info = dataset_info(self.spec.dataset)
        self.image_shape = tuple(int(v) for v in image_shape)
        self.predictor.bind(dataset=self.spec.dataset, num_classes=info.num_classes, classes=None,
                            image_shape=self.image_shape, device=self.device)

    def logits(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
               task=None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(float32 logits, labels) per batch, on the device."""
        for images, labels in batches:
            logits = self.predictor.logits(images.to(self.device, non_blocking=True))
            if task is not None:
                self.progress.advance(task, labels.shape[0])
            yield logits, labels.to(self.device)

    def stats(self, part: Part, task=None, temperature: float = 1.0,
              images: tuple[int, int] | None = None) -> SampleStats:
        """Per-sample statistics (confidence, correct, NLL) of one part, in suite order; `images`: only the
        range (start, stop) of the part (a shard, corrbench.shards)."""
        batches = part.batches(self.batch_size) if images is None else part.batches(self.batch_size, *images)
        return SampleStats.concat([sample_stats(logits / temperature, labels)
                                   for logits, labels in self.logits(batches, task)])

    def row_base(self, kind: str) -> dict:
        """Columns every row of this session shares: provenance, model identity, precision, preprocessing."""
        predictor = self.predictor
        height, width = self.image_shape[1:] if self.image_shape else (0, 0)
        device_name = str(self.device) if self.device.type != "cuda" else torch.cuda.get_device_name(self.device)
        run_config = ""
        if predictor.run is not None:   # report pools only runs whose training configuration matches
            run_config = json.dumps(predictor.run.config.resolved().identity(), sort_keys=True, default=str)
        return {"kind": kind, **predictor.identity.columns(), "run_config": run_config,
                "precision": predictor.precision,
                "class_map": predictor.class_map_name,
                "preprocessing": predictor.preprocessing.describe(height, width),
                "corrbench_version": __version__, "device": device_name, "timestamp": utc_timestamp(),
                "torch_version": torch.__version__, "eval_batch_size": self.batch_size}


def start_session(model: ModelArg, suite: str, *, dataset: str | None = None, options: SourceOptions | None,
                  data_root: Path | str | None, batch_size: int | None, device: str,
                  progress: ProgressLike | None) -> Session:
    """Resolve the device, open the predictor for `suite`'s dataset (`dataset`: the clean set of suites that
    need one — `c`, `cfolder:`, `cnpy:`; a run's own by default), choose the data root and batch size."""
    options = options or SourceOptions()
    progress = progress or null_progress()
    torch_device = resolve_device(device, int(os.environ.get("LOCAL_RANK", "0") or 0))   # torchrun: one GPU per rank
    try:
        hint = suite_dataset(suite, dataset)
    except UserError:   # e.g. `c` without a dataset: a run supplies its own below
        hint = dataset
    predictor = open_predictor(model, options, dataset=hint, device=torch_device)
    run = predictor.run
    try:
        spec = get_suite_spec(suite, dataset)
    except UserError:
        if run is None or dataset is not None:
            raise
        spec = get_suite_spec(suite, run.config.dataset)
    if run is not None and run.config.dataset != spec.dataset:
        raise UserError(f"run {run.run_id} was trained on {run.config.dataset} but suite {suite} is built from "
                        f"{spec.dataset}; evaluate it on a {run.config.dataset} suite")
    if batch_size is None:
        batch_size = run.config.eval_batch_size if run is not None else DEFAULT_EVAL_BATCH_SIZE
    if batch_size < 1:
        raise InvalidValueError(f"batch size must be at least 1, got {batch_size}")
    if data_root is None and run is not None:
        data_root = run.config.data_root
    return Session(predictor=predictor, spec=spec, device=torch_device, data_root=resolve_data_root(data_root),
                   batch_size=batch_size, progress=progress)


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started
