"""The Python API: `corrbench.evaluate(model, suite, …)` — the engine `corrbench eval` runs, on any model.

    import corrbench, timm
    model = timm.create_model("resnet18", num_classes=10)
    results = corrbench.evaluate(model, "cifar10-c", mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26))
    results.rows      # one row per corruption × severity (clean first), the results schema's columns
    results.summary   # clean error, mean corruption error, mCE (with a normaliser), NLL, ECE …
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from corrbench.engine.evaluate import EvalResult
from corrbench.engine.session import ModelArg
from corrbench.engine.sources import SourceOptions
from corrbench.progress import ProgressLike

if TYPE_CHECKING:
    import pandas as pd

    from corrbench.report.compare import Comparison

Results = EvalResult


def evaluate(model: ModelArg, suite: str = "cifar10-c", *, mean: Sequence[float] | None = None,
             std: Sequence[float] | None = None, input_size: Sequence[int] | None = None,
             interpolation: str | None = None, crop_pct: float | None = None, weights: str | Path | None = None,
             model_dir: str | Path | None = None, class_map: str | Path | None = None, label: str | None = None,
             precision: str = "fp32", data_root: str | Path | None = None, source: str = "auto", seed: int = 0,
             corruptions: Sequence[str] | None = None, severities: Sequence[int] | None = None,
             batch_size: int | None = None, device: str = "auto", baseline: str | Path | None = None,
             results_dir: str | Path | None = None, progress: ProgressLike | None = None) -> Results:
    """Evaluate `model` on a -C suite; returns the per corruption × severity rows and their summary.

    `model`: an nn.Module (fed float images in [0, 1], normalised with `mean`/`std` and resized to
    `input_size` = (C, H, W) when given), a source string ('timm:resnet50.a1_in1k', 'torchvision:resnet18'
    with `weights='IMAGENET1K_V1'`, 'robustbench:Standard', 'hf-hub:ORG/NAME', 'torchscript:PATH',
    'python:FILE.py:FACTORY') or a corrbench run folder. `class_map` picks the dataset's classes out of
    more logits ('imagenet-r-200', 'tinyimagenet-200' or a file). `precision`: 'fp32' (TF32 off) or 'bf16'.
    Writes a Parquet file only when `results_dir` is given; `baseline` (a run folder, run id or label
    evaluated before) normalises the mCE with its results under `results_dir` (or ./results).
    """
    from corrbench.engine.evaluate import evaluate as run_evaluation

    options = SourceOptions(weights=str(weights) if weights is not None else None,
                            model_dir=str(model_dir) if model_dir is not None else None,
                            mean=tuple(float(v) for v in mean) if mean is not None else None,
                            std=tuple(float(v) for v in std) if std is not None else None,
                            input_size=tuple(int(v) for v in input_size) if input_size is not None else None,
                            interpolation=interpolation, crop_pct=crop_pct,
                            class_map=str(class_map) if class_map is not None else None, label=label,
                            precision=precision)
    return run_evaluation(model, suite, options=options, data_root=data_root, source=source, seed=seed,
                          corruptions=corruptions, severities=severities, batch_size=batch_size, device=device,
                          baseline=baseline, results_dir=results_dir, progress=progress)


def compare(results: str | Path | "pd.DataFrame", a: str, b: str, *, suite: str | None = None, alpha: float = 0.05,
            confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> "Comparison":
    """Paired comparison of A and B (run ids, labels or method names; all seeds of a method) on the same test
    images of one suite — the numbers `corrbench compare` prints.

    `results`: a results folder or a frame of results rows (e.g. `load_results(...)`, or `Results.rows` of two
    `evaluate` calls concatenated). Returns a `corrbench.report.compare.Comparison`: `.corruptions` (A − B error
    per corruption with a paired bootstrap interval, McNemar p, Holm-adjusted p, verdict), `.cells` (per
    corruption × severity), `.overall` (over the benchmark corruptions × severities), `.a_better`, `.b_better`.
    """
    import pandas as pd

    from corrbench.report.compare import compare as compare_rows

    if isinstance(results, pd.DataFrame):
        rows = results
    else:
        from corrbench.results import load_results
        rows = load_results(Path(results), kinds=["eval"])
    return compare_rows(rows, a, b, suite=suite, alpha=alpha, confidence=confidence, resamples=resamples, seed=seed)
