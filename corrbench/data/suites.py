"""-C suites: which suite a name means, and opening it (corruptions × severities of a clean test set).

Names (`resolve_suite`):
- a registered suite: `cifar10-c`, `cifar100-c`, `tinyimagenet-c`, `imagenet-c`, `mnist5k-c`, the MNIST-C
  suites `mnist-mnistc`, `mnist5k-mnistc`, and the -P suites (corrbench.data.psuites);
- `<dataset>-c` for any other registered dataset (`fashion-mnist-c`, `mnist-c`, …) and `c:DATASET` or
  `c` with `dataset=` for any dataset, your own `npy:` / `folder:` data included: the 19 corruptions
  generated from its test split by corrbench's engine, or read from the folder `corrbench data make-c`
  writes for it (`<data root>/<DATASET>-C`; beside the data for `npy:` / `folder:`);
- `cfolder:PATH` (ImageNet-C layout `PATH/<corruption>/<severity>/<class>/<image>`) and `cnpy:PATH`
  (CIFAR-10-C layout `PATH/<corruption>.npy` + `labels.npy`) with `dataset=` the clean set: files only,
  any corruption names (ImageNet-C-bar, 3D Common Corruptions, your own); names outside the 15
  benchmark corruptions count as non-benchmark.

Generated suites use the scale family (severity constants) of the clean images' size,
`corrbench.corruptions.scale_family_for`: the family nearest to the shorter side. A suite is streamed
part by part, batch by batch: never held in memory whole. Openers are registered by layout in
`corrbench.data.suite_base.SUITE_OPENERS` (here: 'npy' and 'folders'; MNIST-C's in corrbench.data.mnistc).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch

import corrbench.data.mnistc  # noqa: F401  (registers the 'mnistc' opener)
from corrbench.corruptions import ALL_CORRUPTIONS, list_corruptions, scale_family_note
from corrbench.data.datasets import DATASETS, ImageSet, dataset_info, dataset_locations, load_dataset, resolve_data_root
from corrbench.data.generate import (GENERATION_CHUNK, GeneratedImages, generate_chunk,  # noqa: F401 (re-exported)
                                     layout_for_scale, read_provenance)
from corrbench.data.readers import FolderSeverity, NpySeverityBlocks, list_class_folders, read_c_labels
from corrbench.data.suite_base import (SEVERITIES, SOURCES, SUITE_OPENERS, SUITES, Part,  # noqa: F401
                                       SuiteSpec, check_severities, choose_source, register_opener, slice_chunks)
from corrbench.errors import InvalidValueError, LayoutError, MissingDataError, UserError, not_available

PATH_DATASET_PREFIXES = ("npy:", "folder:")
FILE_SUITES = {"cfolder:": ("folders", "PATH/<corruption>/<severity>/<class>/<image> (ImageNet-C layout)"),
               "cnpy:": ("npy", "PATH/<corruption>.npy of 5 stacked severities + PATH/labels.npy (CIFAR-10-C layout)")}
SUITE_FORMS = ("<dataset>-c", "c (with --dataset)", "c:DATASET", "cfolder:PATH", "cnpy:PATH")


# ---------------------------------------------------------------------------------------------------
# Names → specs

def resolve_suite(name: str, dataset: str | None = None) -> SuiteSpec:
    """The spec `name` means, for the clean set `dataset` where the name needs one (`c`, `cfolder:`,
    `cnpy:`). A registered name, or `<dataset>-c` / `c:DATASET`, must agree with `dataset` if given."""
    for prefix, (layout, expected) in FILE_SUITES.items():
        if name.startswith(prefix):
            return _file_suite_spec(name, prefix, layout, expected, dataset)
    if name in SUITES:
        return _agreeing(SUITES.get(name), dataset)
    clean = _c_suite_dataset(name, dataset)
    if clean is None:
        SUITES.get(name)   # UnknownNameError listing the registered suites
    return _agreeing(c_suite_spec(clean), dataset)


def get_suite_spec(name: str, dataset: str | None = None) -> SuiteSpec:
    return resolve_suite(name, dataset)


def suite_dataset(name: str, dataset: str | None = None) -> str:
    """The clean dataset suite `name` is built on (nothing is loaded)."""
    return resolve_suite(name, dataset).dataset


def _agreeing(spec: SuiteSpec, dataset: str | None) -> SuiteSpec:
    if dataset is not None and dataset != spec.dataset:
        raise UserError(f"suite {spec.name} is built from {spec.dataset}, not {dataset}; use --suite c (or "
                        f"{dataset}-c) for the -C suite of {dataset}")
    return spec


def _c_suite_dataset(name: str, dataset: str | None) -> str | None:
    """The clean dataset of a `c`, `c:DATASET` or `<dataset>-c` name; None when `name` is none of them."""
    if name == "c":
        if not dataset:
            raise UserError("--suite c is the -C suite of --dataset; pass --dataset (e.g. --dataset "
                            "npy:IMAGES.npy,LABELS.npy --suite c), or name the suite, e.g. cifar10-c")
        return dataset
    if name.startswith("c:"):
        if not name[2:]:
            raise InvalidValueError("c: needs a dataset, e.g. --suite c:fashion-mnist or c:npy:IMAGES.npy,LABELS.npy")
        return name[2:]
    if name.endswith("-c") and (name[:-2] in DATASETS or name.startswith(PATH_DATASET_PREFIXES)):
        return name[:-2]
    return None


def default_c_location(dataset: str) -> str:
    """Where the -C suite of `dataset` lives: a folder name under the data root for registered datasets
    (e.g. FASHION-MNIST-C), an absolute path beside the data for your own (`IMAGES-C` beside
    IMAGES.npy for npy:, `PATH-C` beside PATH for folder:)."""
    if dataset.startswith("npy:"):
        images = dataset_locations(dataset)[0]
        return str(images.parent / f"{images.stem}-C")
    if dataset.startswith("folder:"):
        folder = dataset_locations(dataset)[0]
        return str(folder.parent / f"{folder.name}-C")
    return f"{dataset.upper()}-C"


def c_suite_spec(dataset: str) -> SuiteSpec:
    """The -C suite of any dataset: its registered suite (e.g. cifar10-c) if it has one, else a suite
    generated at the scale family of its images (or read from where make-c writes it)."""
    for _, spec in SUITES.items():
        if spec.kind == "c" and spec.dataset == dataset and spec.layout != "mnistc":
            return spec
    info = dataset_info(dataset)   # UnknownNameError / MissingDataError / LayoutError for a bad dataset
    registered = dataset in DATASETS
    folder = default_c_location(dataset)
    where = f"--out <data root>/{folder}" if registered else f"(it writes {folder})"
    return SuiteSpec(f"{dataset}-c" if registered else f"c:{dataset}", dataset, "c", folder,
                     layout_for_scale(info.scale),
                     f"generated on the fly from the {dataset} test split, or written by "
                     f"`corrbench data make-c --dataset {dataset}` {where}", published=False)


def _file_suite_spec(name: str, prefix: str, layout: str, expected: str, dataset: str | None) -> SuiteSpec:
    text = name[len(prefix):]
    if not text:
        raise InvalidValueError(f"{prefix} needs a folder: --suite {prefix}PATH with {expected}")
    if not dataset:
        raise UserError(f"--suite {prefix}PATH holds corrupted copies of a clean test set; name that set with "
                        f"--dataset (e.g. --dataset imagenet, --dataset folder:PATH)")
    path = Path(text).expanduser().absolute()
    return SuiteSpec(f"{prefix}{path}", dataset, "c", str(path), layout, f"expected {expected}",
                     published=True, generated=False)


# ---------------------------------------------------------------------------------------------------
# Opened suites

@dataclass
class CorruptionSuite:
    spec: SuiteSpec
    source: str                  # 'files' | 'generated'
    clean: ImageSet
    corruptions: list[str]
    severities: list[int]
    seed: int | None             # generator seed for 'generated'; None for files
    directory: Path | None
    device: torch.device
    scale_family: str | None     # severity constants: 'cifar' | 'tiny' | 'imagenet'; None: files of unknown make
    scale_note: str              # one line saying which family and why (printed by eval and make-c)

    @property
    def name(self) -> str:
        """The canonical suite name (what results rows record)."""
        return self.spec.name

    @property
    def dataset(self) -> str:
        return self.spec.dataset

    def __len__(self) -> int:
        return 1 + len(self.corruptions) * len(self.severities)

    def parts(self, include_clean: bool = True) -> Iterator[Part]:
        if include_clean:
            yield Part("clean", 0, self.clean.labels, self.clean.images)
        for corruption in self.corruptions:
            if self.source == "files":
                yield from self._file_parts(corruption)
            else:
                for severity in self.severities:
                    images = GeneratedImages(self.clean, corruption, severity, self.seed, self.scale_family,
                                             self.device)
                    yield Part(corruption, severity, self.clean.labels, images)

    def _file_parts(self, corruption: str) -> Iterator[Part]:
        assert self.directory is not None
        if self.spec.layout == "npy":
            blocks = NpySeverityBlocks(self.directory / f"{corruption}.npy", n_per_severity=len(self.clean))
            if blocks.image_hw != self.clean.image_hw:
                raise LayoutError(f"{blocks.path} holds {blocks.image_hw[0]}×{blocks.image_hw[1]} (H×W) images but "
                                  f"the clean {self.spec.dataset} test set has {self.clean.image_hw[0]}×"
                                  f"{self.clean.image_hw[1]}; it is not a -C set of this dataset")
            for severity in self.severities:
                yield Part(corruption, severity, self.clean.labels,
                           lambda index, s=severity: blocks.images(s, index))
        else:
            folder = FolderSeverity(self.directory / corruption, self.clean_classes())
            for severity in self.severities:
                images = folder.severity(severity)
                yield Part(corruption, severity, images.labels, images.images)

    def clean_classes(self) -> list[str]:
        classes = getattr(self.clean, "classes", None)
        if not classes:
            raise LayoutError(f"the clean {self.spec.dataset} test set has no class-folder names to match "
                              f"{self.directory}'s folders against")
        return list(classes)


def open_corruption_suite(name: str, data_root: Path | str | None = None, *, dataset: str | None = None,
                          source: str = "auto", seed: int = 0, corruptions: Sequence[str] | None = None,
                          severities: Sequence[int] | None = None,
                          device: torch.device | str = "cpu") -> CorruptionSuite:
    """Resolve and open a -C suite (any form of `resolve_suite`): where its data comes from, which
    corruptions and severities it has, which scale family generates it."""
    spec = resolve_suite(name, dataset)
    if spec.kind != "c":
        raise UserError(f"{name} is a perturbation (-P) suite; use `corrbench flip-rate --suite {name}`")
    opener = SUITE_OPENERS.get(spec.layout)
    return opener(spec, resolve_data_root(data_root), source=source, seed=seed, corruptions=corruptions,
                  severities=severities, device=device)


def _known_first(names: list[str]) -> list[str]:
    """The 19 corrbench names in their canonical order, then any others sorted."""
    known = [c for c in ALL_CORRUPTIONS if c in names]
    return known + sorted(n for n in names if n not in ALL_CORRUPTIONS)


def _corruptions_on_disk(spec: SuiteSpec, directory: Path) -> list[str]:
    if spec.generated:   # a -C set of corrbench's 19 corruptions (official or make-c)
        return [c for c in ALL_CORRUPTIONS if _has_corruption(spec, directory, c)]
    if spec.layout == "npy":
        names = [p.stem for p in directory.glob("*.npy") if p.stem != "labels" and not p.name.startswith(".")]
    else:
        names = list_class_folders(directory)
    return _known_first(names)


def _family_of_files(spec: SuiteSpec, directory: Path | None, dataset_family: str) -> str | None:
    if spec.generated:
        return dataset_family
    recipe = read_provenance(directory) if directory is not None else None
    return recipe.get("scale") if recipe else None


@register_opener("npy")
@register_opener("folders")
def open_c_suite(spec: SuiteSpec, data_root: Path, *, source: str = "auto", seed: int = 0,
                 corruptions: Sequence[str] | None = None, severities: Sequence[int] | None = None,
                 device: torch.device | str = "cpu") -> CorruptionSuite:
    """Open a -C suite in the CIFAR-10-C ('npy') or ImageNet-C ('folders') layout, or generate it."""
    chosen_source, directory = choose_source(spec, source, data_root)
    info = dataset_info(spec.dataset)
    clean = load_dataset(spec.dataset, "test", data_root)
    chosen_severities = check_severities(severities)
    if chosen_source == "files":
        available = _corruptions_on_disk(spec, directory)
        if spec.layout == "npy":
            labels = read_c_labels(directory, n_per_severity=len(clean))
            if not torch.equal(labels, clean.labels):
                raise LayoutError(f"{directory / 'labels.npy'} does not match the clean {spec.dataset} test labels in "
                                  f"test-set order; the folder is not a -C set of this test set")
        family = _family_of_files(spec, directory, info.scale)
    else:
        available = list_corruptions("all")
        family = info.scale
    if corruptions:
        for corruption in corruptions:
            if corruption not in available:
                where = f"in {directory}" if directory else "in corrbench's corruption engine"
                raise not_available("corruption", corruption, available, where)
        chosen = list(corruptions)
    elif chosen_source == "generated":
        chosen = available
    else:
        chosen = _expected_on_disk(spec, directory, available)
    height, width = clean.image_hw
    if family is not None:
        note = scale_family_note(height, width, family)
    else:
        note = f"{spec.name}: files made elsewhere, no corrbench scale family ({height}×{width} clean images)"
    return CorruptionSuite(spec=spec, source=chosen_source, clean=clean, corruptions=chosen,
                           severities=chosen_severities, seed=seed if chosen_source == "generated" else None,
                           directory=directory, device=torch.device(device), scale_family=family, scale_note=note)


def _expected_on_disk(spec: SuiteSpec, directory: Path, available: list[str]) -> list[str]:
    """The corruptions a files suite holds: all it has for cfolder:/cnpy:; for a -C set of corrbench's
    corruptions the 19 (official) or those its make-c recipe lists — LayoutError if any is missing."""
    if not available:
        example = _expected_name(spec, ALL_CORRUPTIONS[0])
        if not spec.generated:
            kind = "files" if spec.layout == "npy" else "folders"
            raise LayoutError(f"{directory} has no corruption {kind}; {spec.how_to_get}")
        raise LayoutError(f"{directory} has none of the {len(ALL_CORRUPTIONS)} corruption files; expected e.g. {example}")
    if not spec.generated:
        return available
    recipe = read_provenance(directory)
    expected = [c for c in recipe.get("corruptions", ())] if recipe else list(ALL_CORRUPTIONS)
    missing = [c for c in expected if c not in available]
    if missing:
        raise LayoutError(f"{directory} is missing {', '.join(_expected_name(spec, c) for c in missing)}; "
                          f"re-download it or choose a subset with --corruptions")
    return [c for c in available if c in expected]


def _expected_name(spec: SuiteSpec, corruption: str) -> str:
    return f"{corruption}.npy" if spec.layout == "npy" else f"{corruption}/<severity>/<class>/<image>"


def _has_corruption(spec: SuiteSpec, directory: Path, corruption: str) -> bool:
    if spec.layout == "npy":
        return (directory / f"{corruption}.npy").is_file()
    return (directory / corruption).is_dir()


__all__ = ["SUITES", "SUITE_FORMS", "SuiteSpec", "Part", "CorruptionSuite", "GENERATION_CHUNK", "GeneratedImages",
           "generate_chunk", "slice_chunks", "resolve_suite", "get_suite_spec", "suite_dataset", "c_suite_spec",
           "default_c_location", "open_corruption_suite", "choose_source", "check_severities"]
