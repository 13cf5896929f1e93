"""Recipes: TOML files that name what a table needs — datasets, archs, methods (× augmentations),
seeds, training settings, suites — and how the table is laid out. `corrbench run` expands a recipe
into train / eval / flip-rate jobs.

    [recipe]   name, title, table (published CSV under results/paper, or ""), rows, columns, cost
    [train]    datasets, archs, methods, augments (default ["none"]), seeds
    [train.settings]        any RunConfig field (epochs, schedule, milestones, lr, batch_size, …)
    [train.method_params.M] hyperparameters of method M
    [eval]     suites: kinds ("c", "p", "mnistc") or names; source; corruptions; severities

`--set key=value` overrides: dataset / arch / method / augment / seed replace the lists; `eval.KEY`
sets an eval option; anything else is a training setting (like `corrbench train --set`).
"""
from __future__ import annotations

import dataclasses
import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from corrbench.config import RunConfig, apply_overrides
from corrbench.errors import InvalidValueError, MissingDataError, UserError

LIST_KEYS = {"dataset": "datasets", "arch": "archs", "method": "methods", "augment": "augments", "seed": "seeds"}
EVAL_KEYS = ("suites", "source", "corruptions", "severities", "seed")
SUITE_KINDS = ("c", "p", "mnistc")   # a kind K means the suite `<run's dataset>-K`


@dataclass
class Recipe:
    name: str
    title: str
    table: str
    rows: list[str]
    columns: list[str]
    cost: str
    datasets: list[str]
    archs: list[str]
    methods: list[str]
    augments: list[str]
    seeds: list[int]
    settings: dict[str, Any]
    method_params: dict[str, dict[str, Any]]
    eval: dict[str, Any]
    path: Path | None = None


@dataclass(frozen=True)
class TrainJob:
    config: RunConfig

    @property
    def run_id(self) -> str:
        return self.config.resolved().run_id()

    def describe(self) -> dict[str, Any]:
        c = self.config.resolved()
        return {"dataset": c.dataset, "arch": c.arch, "method": c.method, "augment": c.augment, "seed": c.seed,
                "epochs": c.epochs}


@dataclass(frozen=True)
class EvalJob:
    kind: str                 # 'eval' | 'flip-rate'
    train: TrainJob
    suite: str
    options: tuple = field(default_factory=tuple)   # sorted (key, value) pairs

    @property
    def run_id(self) -> str:
        return self.train.run_id


def load_recipe(path: Path | str) -> Recipe:
    path = Path(path)
    if not path.is_file():
        bundled = Path(__file__).resolve().parents[1] / "recipes" / f"{path.stem}.toml"
        if bundled.is_file():
            path = bundled
        else:
            raise MissingDataError(f"recipe {path} not found; the bundled recipes are in recipes/ "
                                   f"(e.g. recipes/quickstart.toml)")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{path} is not valid TOML: {error}") from None
    head, train, evaluation = data.get("recipe", {}), data.get("train", {}), data.get("eval", {})
    try:
        recipe = Recipe(
            name=head.get("name", path.stem), title=head.get("title", path.stem), table=head.get("table", ""),
            rows=list(head.get("rows", ["dataset", "arch", "method"])),
            columns=list(head.get("columns", ["suite", "corruption", "metric"])), cost=head.get("cost", ""),
            datasets=list(train["datasets"]), archs=list(train["archs"]), methods=list(train["methods"]),
            augments=list(train.get("augments", ["none"])), seeds=[int(s) for s in train.get("seeds", [0])],
            settings=dict(train.get("settings", {})), method_params=dict(train.get("method_params", {})),
            eval={"suites": ["c"], "source": "auto", **evaluation}, path=path)
    except KeyError as missing:
        raise UserError(f"{path}: [train] needs {missing.args[0]}; see the format in corrbench/recipes.py") from None
    unknown = sorted(set(recipe.eval) - set(EVAL_KEYS))
    if unknown:
        raise UserError(f"{path}: unknown [eval] keys {', '.join(unknown)}; valid: {', '.join(EVAL_KEYS)}")
    return recipe


def apply_recipe_overrides(recipe: Recipe, assignments: Sequence[str]) -> tuple[Recipe, list[str]]:
    """Apply `--set` to the recipe's lists and eval options; returns the recipe and the training settings left."""
    recipe = dataclasses.replace(recipe, eval=dict(recipe.eval), settings=dict(recipe.settings))
    training: list[str] = []
    for assignment in assignments:
        if "=" not in assignment:
            raise UserError(f"--set expects key=value, got '{assignment}'")
        key, value = (part.strip() for part in assignment.split("=", 1))
        if key in LIST_KEYS:
            values = [v.strip() for v in value.split(",") if v.strip()]
            setattr(recipe, LIST_KEYS[key], [int(v) for v in values] if key == "seed" else values)
        elif key.startswith("eval."):
            option = key[5:]
            if option not in EVAL_KEYS:
                raise UserError(f"--set {key}: valid eval options are {', '.join('eval.' + k for k in EVAL_KEYS)}")
            items = [v.strip() for v in value.split(",") if v.strip()]
            recipe.eval[option] = (items if option in ("suites", "corruptions") else
                                   [int(v) for v in items] if option == "severities" else
                                   int(value) if option == "seed" else value)
        else:
            training.append(assignment)
    return recipe, training


def expand(recipe: Recipe, assignments: Sequence[str] = (), only: Sequence[str] = (), *,
           data_root: str | None = None, device: str = "auto") -> tuple[list[TrainJob], list[EvalJob]]:
    """The recipe's train and eval jobs after `--set` overrides and `--only` filters."""
    recipe, training = apply_recipe_overrides(recipe, assignments)
    filters = _parse_only(only)
    train_jobs: list[TrainJob] = []
    for dataset, arch, method, augment, seed in itertools.product(recipe.datasets, recipe.archs, recipe.methods,
                                                                  recipe.augments, recipe.seeds):
        values = {"dataset": dataset, "arch": arch, "method": method, "augment": augment, "seed": str(seed)}
        if any(values.get(k) not in allowed for k, allowed in filters.items()):
            continue
        config = RunConfig(dataset=dataset, arch=arch, method=method, augment=augment, seed=int(seed),
                           data_root=data_root, device=device,
                           method_params=dict(recipe.method_params.get(method, {})))
        settings = [f"{k}={_toml_to_text(v)}" for k, v in recipe.settings.items()]
        config = apply_overrides(config, settings + training)
        config.resolved()   # validate now: a bad recipe fails before any work
        train_jobs.append(TrainJob(config))
    eval_jobs: list[EvalJob] = []
    for job in train_jobs:
        for suite in recipe.eval["suites"]:
            name = f"{job.config.dataset}-{suite}" if suite in SUITE_KINDS else suite
            kind = "flip-rate" if name.endswith("-p") else "eval"
            options = {"source": recipe.eval.get("source", "auto")}
            if kind == "eval":
                for key in ("corruptions", "severities", "seed"):
                    if key in recipe.eval:
                        options[key] = tuple(recipe.eval[key]) if isinstance(recipe.eval[key], list) else recipe.eval[key]
            eval_jobs.append(EvalJob(kind, job, name, tuple(sorted(options.items()))))
    if filters and not train_jobs:
        raise InvalidValueError(f"--only {' '.join(only)} matches no job of recipe {recipe.name}")
    return train_jobs, eval_jobs


def _parse_only(only: Sequence[str]) -> dict[str, set[str]]:
    filters: dict[str, set[str]] = {}
    for item in only:
        if "=" not in item:
            raise UserError(f"--only expects KEY=VALUE, got '{item}'")
        key, value = (part.strip() for part in item.split("=", 1))
        if key not in LIST_KEYS:
            raise UserError(f"--only {key}: filter on one of {', '.join(LIST_KEYS)}")
        filters.setdefault(key, set()).update(v.strip() for v in value.split(","))
    return filters


def _toml_to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)
