"""The run folders under a runs directory and where each stands, read without torch: `config.json` (what was
asked), `train_log.parquet` (the epochs that finished and their `val_error`) and `status.json` (written when a
run stopped on a non-finite loss, `engine/monitor.record_failure`)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

CONFIG_NAME = "config.json"      # one fact in one place: engine/checkpoint.py has the same names (torch-free copy
LOG_NAME = "train_log.parquet"   # so `corrbench runs` starts fast); tests/test_monitor.py keeps them equal
STATUS_NAME = "status.json"

COLUMNS = ["run_id", "status", "method", "arch", "dataset", "seed", "epochs", "best_val_error", "last_val_error"]


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _read_log(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError, ImportError):
        return pd.DataFrame()


def run_status(run_dir: Path) -> dict | None:
    """One run folder's line of `corrbench runs`, or None when the folder holds no run (no config.json)."""
    run_dir = Path(run_dir)
    config = _read_json(run_dir / CONFIG_NAME)
    if config is None:
        return None
    log = _read_log(run_dir / LOG_NAME)
    done = int(log["epoch"].max()) if "epoch" in log and len(log) else 0
    planned = config.get("epochs")
    failure = _read_json(run_dir / STATUS_NAME)
    if isinstance(planned, int) and done >= planned:
        status = "complete"
    elif failure and failure.get("reason") == "nan" and failure.get("checkpoint_epoch") == done:
        status = f"failed with NaN in epoch {failure.get('epoch')}"
    else:
        status = f"interrupted at epoch {done}"
    errors = log["val_error"].dropna() if "val_error" in log else pd.Series(dtype=float)
    method = config.get("method", "?")
    augment = config.get("augment") or "none"
    return {"run_id": run_dir.name, "status": status,
            "method": method if augment == "none" else f"{method}+{augment}", "arch": config.get("arch", "?"),
            "dataset": config.get("dataset", "?"), "seed": config.get("seed"),
            "epochs": f"{done}/{planned}" if planned is not None else str(done),
            "best_val_error": float(errors.min()) if len(errors) else math.nan,
            "last_val_error": float(errors.iloc[-1]) if len(errors) else math.nan}


def list_runs(runs_dir: Path) -> pd.DataFrame:
    """Every run folder directly under `runs_dir` (hidden folders skipped), sorted by run id."""
    runs_dir = Path(runs_dir)
    lines = [run_status(path) for path in sorted(runs_dir.iterdir()) if path.is_dir() and not path.name.startswith(".")] \
        if runs_dir.is_dir() else []
    return pd.DataFrame([line for line in lines if line is not None], columns=COLUMNS)
