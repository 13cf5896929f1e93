"""Every paper table renders each cell from exactly the right runs (issue 13): hand-made results with two
seeds of every recipe row, plus a variant (other lr) and a smoke run (1 epoch) of each, in one folder."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest

from corrbench.bundled import recipes_dir
from corrbench.corruptions import ALL_CORRUPTIONS
from corrbench.metrics import CalibrationBins
from corrbench.mnistc import MNISTC_CORRUPTIONS
from corrbench.perturbations.registry import P_PERTURBATIONS
from corrbench.recipes import expand, load_recipe
from corrbench.report.paper import (GAIN_BASELINE, ROW_METHODS, build_paper_table, list_tables, load_published,
                                    parse_variant, table_expectations)

RECIPES = [load_recipe(path) for path in sorted(recipes_dir().glob("*.toml"))]


def run_rows(config, error: float, *, extra: dict | None = None) -> list[dict]:
    """Results rows of one run: clean, its -C (or MNIST-C) suite and, for CIFAR-10, CIFAR-10-P flip rates.
    Every error of the run is `error`; calibration bins put all samples in the top bin at confidence 0.95."""
    correct = int(round(100 * (1 - error)))
    bins = CalibrationBins(count=np.array([0] * 15 + [100]), confidence_sum=np.array([0.0] * 15 + [95.0]),
                           correct_sum=np.array([0] * 15 + [correct])).to_json()
    base = dict(kind="eval", run_id=config.run_id(), method=config.method, augment=config.augment, arch=config.arch,
                dataset=config.dataset, seed=config.seed, source="files", temperature=1.0, n=100, nll=1.0, ece=0.1,
                rms_adaptive=error / 2, aurra=0.9, calibration_bins=bins, model_source=f"run:{config.run_id()}",
                label=config.run_id(), run_config=json.dumps(config.resolved().identity(), default=str),
                method_params=json.dumps(config.method_params), timestamp="2026-01-01T00:00:00+00:00")
    base.update(extra or {})
    suite = {"mnist": "mnist-mnistc"}.get(config.dataset, f"{config.dataset}-c")
    corruptions = MNISTC_CORRUPTIONS if config.dataset == "mnist" else ALL_CORRUPTIONS
    rows = [dict(base, suite=suite, corruption="clean", severity=0, error=error)]
    rows += [dict(base, suite=suite, corruption=c, severity=s, error=error) for c in corruptions for s in range(1, 6)]
    if config.dataset == "cifar10":
        rows += [dict(base, kind="flip-rate", suite="cifar10-p", corruption=p, severity=0, error=math.nan,
                      flip_probability=error / 3) for p in P_PERTURBATIONS]
    return rows


def expected_value(metric: str, paper: str, error: float) -> float:
    if metric in ("accuracy", "mca"):
        return 100 * (1 - error)
    if metric == "error":
        return 100 * error
    if metric == "rms_calibration":
        return abs(round(100 * (1 - error)) / 100 - 0.95) * 100 if paper == "magn" else 100 * error / 2
    if metric == "flip_probability":
        return 100 * error / 3
    raise AssertionError(metric)


@pytest.fixture(scope="module")
def folder():
    """One results folder for every table: per recipe row seeds 0 and 1, an lr variant and a 1-epoch smoke run;
    MAGN Table 4's hyperparameter variants; public-checkpoint rows and a trained run under their name."""
    rows, truth, counter = [], {}, iter(range(1, 10**6))
    seen = set()

    def add(config, role, key, extra=None):
        if config.run_id() in seen:
            return
        seen.add(config.run_id())
        error = 0.01 * (next(counter) % 97 + 1) / 1.01
        rows.extend(run_rows(config, error, extra=extra))
        truth.setdefault(key, {}).setdefault(role, []).append((config.run_id(), error))

    for recipe in RECIPES:
        if not recipe.table:
            continue
        train_jobs, _ = expand(recipe)
        for job in train_jobs:
            if job.config.seed != recipe.seeds[0]:
                continue
            config = job.config
            key = (config.dataset, config.arch, config.method if config.augment == "none"
                   else f"{config.method}+{config.augment}")
            for seed in (0, 1):
                add(dataclasses.replace(config, seed=seed), "right", key + ("",))
            add(dataclasses.replace(config, lr=(config.lr or 0.1) / 2), "variant", key + ("",))
            add(dataclasses.replace(config, epochs=1), "smoke", key + ("",))
            if recipe.name == "magn_table4":
                for variant in ({"lambda1": 5.0}, {"lambda2": 10.0}, {"sigma_max": 0.4}):
                    params = {**config.method_params, **variant}
                    name = ";".join(f"{k}={v:g}" for k, v in variant.items())
                    for seed in (0, 1):
                        add(dataclasses.replace(config, seed=seed, method_params=params), "right", key + (name,))
    # evaluated-not-trained rows: the checkpoint's results, and a trained run of the same name that must not count
    from corrbench.config import RunConfig
    for name in ("noisymix_table1", "noisymix_table6"):
        for key, expected in table_expectations(name).rows.items():
            if not expected.model_source:
                continue
            fake = RunConfig(dataset="imagenet", arch="resnet50", method="standard", seed=7)
            error = 0.01 * (next(counter) % 97 + 1)
            run_id = f"torchvision-{key[2]}-{error:.4f}"
            rows.extend(dict(r, run_id=run_id, method="external", model_source=expected.model_source,
                             label=expected.label or expected.model_source, run_config="", seed=None)
                        for r in run_rows(fake, error))
            truth.setdefault(key + ("",), {}).setdefault("right", []).append((run_id, error))
    trained = RunConfig(dataset="imagenet", arch="resnet50", method="standard", seed=0, epochs=200)
    add(trained, "trained-instead-of-checkpoint", ("imagenet", "resnet50", "standard", ""))
    return pd.DataFrame(rows), truth


def _variant_name(printed_method: str) -> str:
    """'magn+augmix[lambda1=5;lambda2=12;sigma_max=0.2]' -> 'lambda1=5' (what differs from the default)."""
    _, variant = parse_variant(printed_method)
    default = {"lambda1": "3", "lambda2": "12", "sigma_max": "0.2"}
    changed = [f"{k}={v}" for k, v in variant.items() if default.get(k) != v]
    return ";".join(changed)


@pytest.mark.parametrize("name", list_tables())
def test_every_cell_uses_exactly_the_right_runs(folder, name):
    results, truth = folder
    table = build_paper_table(name, results)
    published = load_published(name)
    expectations = table_expectations(name)
    text = table.to_table()   # renders
    assert text.rows
    for record in published.drop_duplicates(["dataset", "arch", "method", "suite", "corruption", "metric"]) \
            .itertuples(index=False):
        row_key = tuple(getattr(record, f) for f in table.row_fields)
        column_key = tuple(getattr(record, f) for f in table.column_fields)
        cell = table.cells[row_key][column_key]
        method, _ = parse_variant(record.method)
        method = ROW_METHODS.get(name, {}).get(method, method)
        key = (record.dataset, expectations.arch(record.arch), method, _variant_name(record.method))
        right = truth.get(key, {}).get("right", []) if key[:3] in expectations.rows else []
        match = table.matches[(record.dataset, record.arch, record.method)]
        assert sorted(match.used) == sorted(run for run, _ in right), (name, key)
        for run, why in match.left_out:   # every left-out candidate is a variant, a smoke run or not this row's kind
            assert why
        values = {run: value for run, value in zip(cell.runs, cell.ours) if not math.isnan(value)}
        if not values:
            continue   # a column corrbench cannot compute (ImageNet-R/-P, …): no value from any run
        assert sorted(values) == sorted(run for run, _ in right), (name, key, column_key)
        metric = "mca" if record.metric == "robustness_gain" else record.metric
        for run, error in right:
            want = expected_value(metric, record.paper, error)
            if record.metric == "robustness_gain":
                base = truth[(record.dataset, expectations.arch(record.arch), "standard", "")]["right"]
                want -= np.mean([expected_value("mca", record.paper, e) for _, e in base])
            assert values[run] == pytest.approx(want, rel=1e-12, abs=1e-12), (name, key, column_key, run)


def test_variants_and_smoke_runs_are_left_out_with_the_reason(folder):
    results, truth = folder
    table = build_paper_table("magn_table1", results)
    match = table.matches[("cifar10", "resnet18", "standard")]
    reasons = dict(match.left_out)
    key = ("cifar10", "resnet18", "standard", "")
    (variant, _), = truth[key]["variant"]
    (smoke, _), = truth[key]["smoke"]
    assert "lr 0.05 (recipe 0.1)" in reasons[variant]
    assert "epochs 1 (recipe 150)" in reasons[smoke]
    explanation = table.explain()
    assert any(smoke in str(line[3]) for line in explanation.rows)
    imagenet = build_paper_table("noisymix_table1", results).matches[("imagenet", "resnet50", "standard")]
    assert [why for _, why in imagenet.left_out] == [
        "this row is evaluated from torchvision:resnet50.IMAGENET1K_V1, not trained"]
    assert GAIN_BASELINE["noisymix_table4"] == "ablation-row01"


def test_runs_without_a_recorded_configuration_are_read_from_the_runs_folder(folder, tmp_path):
    results, truth = folder
    key = ("cifar10", "resnet18", "standard", "")
    (run_id, _), _ = truth[key]["right"]
    rows = results[results["run_id"] == run_id].copy()
    config = json.loads(rows["run_config"].iloc[0])
    rows["run_config"] = ""
    unknown = build_paper_table("magn_table1", rows).matches[key[:3]]
    assert unknown.used == [] and "configuration is unknown" in unknown.left_out[0][1]
    (tmp_path / run_id).mkdir()
    (tmp_path / run_id / "config.json").write_text(json.dumps(config))
    known = build_paper_table("magn_table1", rows, runs_dir=tmp_path).matches[key[:3]]
    assert known.used == [run_id]


def test_pooled_rms_needs_the_bins():
    from corrbench.report.paper import value_and_reason
    rows = pd.DataFrame([dict(kind="eval", suite="clean", corruption="clean", error=0.1, rms_adaptive=0.05)])
    value, why = value_and_reason(rows, "magn", "clean", "clean", "rms_calibration")
    assert math.isnan(value) and "calibration bins" in why


def test_report_explain_lists_the_runs_behind_each_row(folder, tmp_path, capsys):
    from corrbench.cli.app import main
    results, truth = folder
    key = ("cifar10", "resnet18", "standard", "")
    right = [run for run, _ in truth[key]["right"]]
    (smoke, _), = truth[key]["smoke"]
    from corrbench.results import to_frame
    rows = to_frame(results[results["run_id"].isin(right + [smoke])].drop(columns=["run_config"]).to_dict("records"))
    rows.to_parquet(tmp_path / "eval__rows.parquet")
    runs = tmp_path / "runs"
    for run_id, text in results.drop_duplicates("run_id").set_index("run_id")["run_config"].items():
        if run_id in right + [smoke]:
            (runs / run_id).mkdir(parents=True)
            (runs / run_id / "config.json").write_text(text)
    with pytest.raises(SystemExit) as done:
        main(["report", "--table", "magn_table1", "--results", str(tmp_path), "--runs-dir", str(runs), "--explain",
              "--format", "md"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    line = next(text for text in out.splitlines() if text.startswith("| cifar10 / resnet18 / standard "))
    assert all(run in line for run in right) and smoke in line and "epochs 1 (recipe 150)" in line


@pytest.mark.parametrize("path", sorted(recipes_dir().glob("*.toml")), ids=lambda p: p.stem)
def test_every_recipe_states_where_each_setting_comes_from(path):
    from corrbench.recipes import tomllib
    data = tomllib.loads(path.read_text())
    provenance = data["provenance"]
    assert all(text.startswith(("paper", "code", "corrbench")) for text in provenance.values())
    train = data["train"]
    needed = set(train.get("settings", {}))
    needed |= {f"{method}.{key}" for method, params in train.get("method_params", {}).items() for key in params}
    assert needed <= set(provenance), sorted(needed - set(provenance))


def test_the_recipe_being_run_decides_its_rows():
    """NoisyMix's WRN rows train the code's WRN-28-4 by default; `run … --set arch=wrn_28_2` (the paper's
    text) makes the table show those runs instead, and a smoke override only its smoke runs."""
    bundled = table_expectations("noisymix_table3")
    key, expected = bundled.find("cifar10", "wrn-28-2", "noisymix")
    assert key == ("cifar10", "wrn_28_4_noisymix", "noisymix") and expected.config["epochs"] == 200
    recipe = load_recipe("noisymix_table3")
    text = table_expectations("noisymix_table3", recipe, ["arch=wrn_28_2", "epochs=3"])
    key, expected = text.find("cifar10", "wrn-28-2", "noisymix")
    assert key == ("cifar10", "wrn_28_2", "noisymix") and expected.config["epochs"] == 3
