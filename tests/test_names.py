"""corrbench.names (the torch-free name lists the CLI checks first) equals the real registries, and a
command line with a wrong name fails without importing torch."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from corrbench import names


def registered() -> dict[str, list[str]]:
    import corrbench.augment  # noqa: F401  (registers the augmentations)
    import corrbench.corruptions  # noqa: F401
    import corrbench.mnistc  # noqa: F401
    import corrbench.models  # noqa: F401
    import corrbench.perturbations  # noqa: F401
    from corrbench.augment.registry import AUGMENTATIONS
    from corrbench.corruptions.registry import CORRUPTIONS
    from corrbench.data import suite_base
    from corrbench.data.datasets import DATASETS
    from corrbench.engine.run import LAUNCHERS
    from corrbench.methods import METHODS
    from corrbench.mnistc.registry import MNISTC
    from corrbench.models.zoo import ARCHS
    from corrbench.perturbations.registry import PERTURBATIONS
    from corrbench.report.render import FORMATS

    return {"DATASETS": DATASETS.names(), "METHODS": [n for n in METHODS.names() if not n.startswith("test-")],
            "AUGMENTS": AUGMENTATIONS.names(), "ARCHS": ARCHS.names(), "CORRUPTIONS": CORRUPTIONS.names(),
            "MNISTC_CORRUPTIONS": MNISTC.names(), "PERTURBATIONS": PERTURBATIONS.names(),
            "REPORT_FORMATS": list(FORMATS), "SOURCES": list(suite_base.SOURCES),
            "SEVERITIES": list(suite_base.SEVERITIES), "LAUNCHERS": list(LAUNCHERS)}


@pytest.mark.parametrize("attribute", ["DATASETS", "METHODS", "AUGMENTS", "ARCHS", "CORRUPTIONS",
                                       "MNISTC_CORRUPTIONS", "PERTURBATIONS", "REPORT_FORMATS", "SOURCES",
                                       "SEVERITIES", "LAUNCHERS"])
def test_static_names_equal_the_registries(attribute):
    assert sorted(getattr(names, attribute)) == sorted(registered()[attribute]), (
        f"corrbench/names.py {attribute} is out of date with its registry")


def test_names_module_is_torch_free():
    code = "import sys, corrbench.names, corrbench.config, corrbench.recipes, corrbench.cli.app; " \
           "print(sorted(m for m in ('torch', 'pandas', 'numpy') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("args", [
    ["train", "--dataset", "nosuch"],
    ["train", "--dataset", "mnist5k", "--method", "standrd"],
    ["train", "--dataset", "mnist5k", "--lr", "inf"],
    ["train", "--dataset", "mnist5k", "--set", "seed=abc"],
    ["eval", "--checkpoint", "x", "--corruptions", "gausian_noise"],
    ["eval", "--checkpoint", "x", "--batch-size", "0"],
    ["run", "quickstart", "--set", "eval.severities=x"],
    ["report", "--format", "pdf"],
])
def test_a_user_error_fails_before_torch_is_imported(args, tmp_path):
    """Fast failure: names, paths and numbers are checked before torch (seconds to import) is loaded."""
    code = ("import sys\nfrom corrbench.cli.app import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    print('exit', e.code, 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.stdout.strip().splitlines()[-1] == "exit 2 False", done.stderr
    assert list(tmp_path.iterdir()) == []


def test_names_registered_at_run_time_count_once_their_registry_is_loaded():
    from corrbench.errors import UnknownNameError
    from corrbench.methods.base import METHODS

    with pytest.raises(UnknownNameError, match="Did you mean 'standard'"):
        names.check_name("method", "standrd", names.METHODS)
    METHODS._items["test-late-method"] = object()
    try:
        assert names.check_name("method", "test-late-method", names.METHODS) == "test-late-method"
    finally:
        del METHODS._items["test-late-method"]
