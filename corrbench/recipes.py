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

Unknown tables and keys are refused with the valid ones listed, and every value's type is checked
(SCHEMA below), before any job starts and before torch is imported (`check_recipe`).
"""
from __future__ import annotations

import dataclasses
import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from corrbench.bundled import bundled_recipe, recipe_names
from corrbench.config import RunConfig, apply_overrides
from corrbench.errors import InvalidValueError, MissingDataError, UnknownNameError, UserError, closest
from corrbench.names import METHODS as METHOD_NAMES, SEVERITIES, SOURCES, check_corruption_names, check_name
from corrbench.values import parse_value

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, as the tomli package (a dependency there)
    import tomli as tomllib

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
    """A recipe from a TOML path, or a bundled one by name (`magn_table1`; `recipes/magn_table1.toml` too)."""
    path = Path(path)
    if not path.is_file():
        # A bare name, or the source tree's former recipes/NAME.toml, names a bundled recipe.
        if path.parts[:-1] not in ((), ("recipes",)):
            raise MissingDataError(f"recipe {path} not found; give an existing TOML file or a bundled recipe "
                                   f"name: {', '.join(recipe_names())}")
        bundled = bundled_recipe(path.stem)
        if bundled is None:
            raise UnknownNameError("recipe", path.stem, recipe_names())
        path = bundled
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{path} is not valid TOML: {error}") from None
    _check_schema(data, path)
    head, train, evaluation = data.get("recipe", {}), data.get("train", {}), data.get("eval", {})
    missing = [key for key in ("datasets", "archs", "methods") if key not in train]
    if missing:
        raise UserError(f"{path}: [train] needs {', '.join(missing)}; see the format in corrbench/recipes.py")
    return Recipe(
        name=head.get("name", path.stem), title=head.get("title", path.stem), table=head.get("table", ""),
        rows=list(head.get("rows", ["dataset", "arch", "method"])),
        columns=list(head.get("columns", ["suite", "corruption", "metric"])), cost=head.get("cost", ""),
        datasets=list(train["datasets"]), archs=list(train["archs"]), methods=list(train["methods"]),
        augments=list(train.get("augments", ["none"])), seeds=list(train.get("seeds", [0])),
        settings=dict(train.get("settings", {})), method_params=dict(train.get("method_params", {})),
        eval={"suites": ["c"], "source": "auto", **evaluation}, path=path)


# What a recipe may contain: table -> key -> the kind of value. Anything else is refused, with the valid keys.
TEXT, TEXTS, INTS, INT, TABLE = "text", "list of text", "list of integers", "integer", "table"
TABLES = "list of tables"
SCHEMA: dict[str, dict[str, str]] = {
    # arch_names: the paper's arch ids -> corrbench archs; checkpoints: rows evaluated from public checkpoints
    # ([[recipe.checkpoints]] method, dataset, arch, model, weights, label, origin) — both read by report/paper.py;
    # engine/run.py turns the checkpoints into eval jobs.
    "recipe": {"name": TEXT, "title": TEXT, "table": TEXT, "rows": TEXTS, "columns": TEXTS, "cost": TEXT,
               "arch_names": TABLE, "checkpoints": TABLES},
    "train": {"datasets": TEXTS, "archs": TEXTS, "methods": TEXTS, "augments": TEXTS, "seeds": INTS,
              "settings": TABLE, "method_params": TABLE},
    "eval": {"suites": TEXTS, "source": TEXT, "corruptions": TEXTS, "severities": INTS, "seed": INT},
}
_EXAMPLES = {TEXT: '"text"', TEXTS: '["a", "b"]', INTS: "[0, 1]", INT: "0", TABLE: "a [table]",
             TABLES: "[[recipe.checkpoints]] tables"}
# [provenance]: setting -> "paper: …" | "code: …" | "corrbench: …", where each value of the recipe comes from.
PROVENANCE = "provenance"


def _check_schema(data: dict[str, Any], path: Path) -> None:
    """Unknown tables and keys, and values of the wrong type, are one-line errors naming the valid ones."""
    _refuse_unknown(f"{path}: unknown table", data, [*SCHEMA, PROVENANCE], "tables")
    if not isinstance(data.get(PROVENANCE, {}), dict) or not all(
            isinstance(v, str) for v in data.get(PROVENANCE, {}).values()):
        raise UserError(f"{path}: [provenance] maps settings to text, e.g. epochs = \"paper §4: 150 epochs\"")
    misplaced = sorted(set(data.get("train", {})) & set(RunConfig.settings()) - set(SCHEMA["train"]))
    if misplaced:
        raise UserError(f"{path}: {', '.join(misplaced)} in [train] is a training setting; put it under "
                        f"[train.settings]")
    for table, keys in SCHEMA.items():
        values = data.get(table, {})
        if not isinstance(values, dict):
            raise UserError(f"{path}: '{table}' must be a [{table}] table")
        _refuse_unknown(f"{path}: unknown key in [{table}]:", values, keys, f"[{table}] keys")
        for key, value in values.items():
            if not _has_kind(value, keys[key]):
                raise InvalidValueError(f"{path}: [{table}] {key} must be a {keys[key]}, e.g. {key} = "
                                        f"{_EXAMPLES[keys[key]]}; got {_toml_text(value)}")
    train = data.get("train", {})
    fields = sorted(RunConfig.settings())
    _refuse_unknown(f"{path}: unknown key in [train.settings]:", train.get("settings", {}), fields, "settings")
    for method, params in train.get("method_params", {}).items():
        check_name("method", method, METHOD_NAMES)
        if not isinstance(params, dict):
            raise UserError(f"{path}: [train.method_params.{method}] must be a table of hyperparameters")


def _refuse_unknown(what: str, values: dict[str, Any], valid: Any, label: str) -> None:
    unknown = sorted(set(values) - set(valid))
    if unknown:
        hint = closest(unknown[0], valid)
        suggestion = f" (did you mean '{hint}'?)" if hint else ""
        raise UserError(f"{what} {', '.join(unknown)}{suggestion}; valid {label}: {', '.join(valid)}")


def _has_kind(value: Any, kind: str) -> bool:
    if kind == TEXT:
        return isinstance(value, str)
    if kind == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == TABLE:
        return isinstance(value, dict)
    if kind == TABLES:
        return isinstance(value, list) and all(isinstance(item, dict) for item in value)
    if not isinstance(value, list):
        return False
    return all(_has_kind(item, TEXT if kind == TEXTS else INT) for item in value)


def _toml_text(value: Any) -> str:
    if isinstance(value, str):
        return f'the text "{value}"'
    return f"{value!r}" if not isinstance(value, dict) else "a table"


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
            if not values:
                raise InvalidValueError(f"--set {key}= lists no values; give comma-separated values")
            setattr(recipe, LIST_KEYS[key], [parse_value(v, int, f"--set {key}") for v in values] if key == "seed"
                    else values)
        elif key.startswith("eval."):
            option = key[5:]
            if option not in EVAL_KEYS:
                raise UserError(f"--set {key}: valid eval options are {', '.join('eval.' + k for k in EVAL_KEYS)}")
            items = [v.strip() for v in value.split(",") if v.strip()]
            if not items:
                raise InvalidValueError(f"--set {key}= lists no values; give comma-separated values")
            recipe.eval[option] = (items if option in ("suites", "corruptions") else
                                   [parse_value(v, int, f"--set {key}") for v in items] if option == "severities" else
                                   parse_value(value, int, f"--set {key}") if option == "seed" else value)
        else:
            training.append(assignment)
    return recipe, training


def expand(recipe: Recipe, assignments: Sequence[str] = (), only: Sequence[str] = (), *,
           data_root: str | None = None, device: str = "auto") -> tuple[list[TrainJob], list[EvalJob]]:
    """The recipe's train and eval jobs after `--set` overrides and `--only` filters."""
    recipe, configs = check_recipe(recipe, assignments, only, data_root=data_root, device=device)
    train_jobs: list[TrainJob] = []
    for config in configs:
        config.resolved()   # validate now (with the method's recipe): a bad recipe fails before any work
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
    return train_jobs, eval_jobs


def check_recipe(recipe: Recipe, assignments: Sequence[str] = (), only: Sequence[str] = (), *,
                 data_root: str | None = None, device: str = "auto") -> tuple[Recipe, list[RunConfig]]:
    """Everything about a recipe that needs no torch: overrides, filters, names, numbers and eval options.
    Returns the recipe after `--set` and the training configs of the jobs `--only` keeps."""
    recipe, training = apply_recipe_overrides(recipe, assignments)
    filters = _parse_only(only)
    _check_eval_options(recipe)
    configs: list[RunConfig] = []
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
        config.check()
        configs.append(config)
    if filters and not configs:
        for key, wanted in filters.items():   # name the filter value that matches nothing, with the closest
            present = [str(v) for v in getattr(recipe, LIST_KEYS[key])]
            for value in sorted(wanted - set(present)):
                hint = closest(value, present)
                raise InvalidValueError(f"--only {key}={value} matches no job of recipe {recipe.name}."
                                        f"{f' Did you mean {hint!r}?' if hint else ''} Its {LIST_KEYS[key]}: "
                                        f"{', '.join(present)}")
        raise InvalidValueError(f"--only {' '.join(only)} matches no job of recipe {recipe.name}")
    return recipe, configs


def _check_eval_options(recipe: Recipe) -> None:
    options = recipe.eval
    check_name("source", options.get("source", "auto"), SOURCES)
    if not any(":" in suite for suite in options.get("suites", ())):   # cfolder:/cnpy: suites: any file names
        check_corruption_names(options.get("corruptions", ()))
    for severity in options.get("severities", ()):
        if severity not in SEVERITIES:
            raise InvalidValueError(f"eval severities must be between {SEVERITIES[0]} and {SEVERITIES[-1]}, "
                                    f"got {severity}")


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
