"""`corrbench data verify`: check a -C or -P folder (published, or written by `corrbench data make-c`)
and a downloaded archive, and say what is missing or wrong.

The kind of folder is read from its contents:
- **npy -C** (CIFAR-10-C layout, spec §0.1): `<corruption>.npy` uint8 (5·N, S, S, 3) and `labels.npy`
  (5·N integers whose five severity blocks agree);
- **npy -P** (CIFAR-10-P layout, spec B.1): `<perturbation>[_<difficulty>].npy` uint8 (N, T, S, S, 3), with
  T = 31 frames except motion_blur (21) and translate (16) (spec B.2);
- **folder -C** (ImageNet-C layout): `<corruption>/<severity>/<class>/<image>`, the same classes and the
  same number of images per class in every (corruption, severity), all images one square size.

Every file is checked from its header and size (`corrbench.data.readers.validate_npy_header`), so a
truncated download is caught without reading it. A folder named like a published set (CIFAR-10-C,
CIFAR-100-C, Tiny-ImageNet-C, ImageNet-C, CIFAR-10-P, CIFAR-100-P) is also held to that set's sizes
and class counts, and, for CIFAR-10-C and CIFAR-100-C, to the MD5 of each published file.

Published MD5s (each found, identical, in at least two independent public dataset loaders or download
scripts, e.g. torch-uncertainty's dataset classes):
- CIFAR-10-C.tar (Zenodo 2535967) and CIFAR-100-C.tar (Zenodo 3555552), and every .npy inside both;
- ImageNet-C's blur.tar, digital.tar, extra.tar, noise.tar, weather.tar (Zenodo 2235448);
- TinyImageNet-C.tar of Zenodo record 2469796 (an upload that other projects download Tiny-ImageNet-C from);
- CIFAR-10-P.tar (Zenodo 2535967, beside CIFAR-10-C.tar) and mnist_c.zip (MNIST-C, Zenodo 3239543).
Unknown, so not checked: Tiny-ImageNet-C.tar of Zenodo 2536630 (the record the hendrycks/robustness
README links), the files inside the Tiny-ImageNet-C, ImageNet-C and -P archives, and CIFAR-100-P
(Google Drive only). `verify --archive FILE` says so when it meets one of them.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from corrbench.corruptions import ALL_CORRUPTIONS, BENCHMARK_CORRUPTIONS, EXTRA_CORRUPTIONS
from corrbench.data.make_c import PROVENANCE_FILE, read_provenance
from corrbench.data.psuites import P_TEST_PERTURBATIONS, P_VALIDATION_PERTURBATIONS
from corrbench.data.readers import (SEVERITIES, list_class_folders, list_images, read_c_labels,
                                    validate_npy_header)
from corrbench.progress import ProgressLike, null_progress
from corrbench.errors import LayoutError, MissingDataError, UserError

OK, MISSING, WRONG, NOTE = "ok", "missing", "wrong", "note"
PROBLEMS = (MISSING, WRONG)


@dataclass(frozen=True)
class Check:
    """One line of the verdict: what was checked, its status (ok, missing, wrong, note) and why."""

    item: str
    status: str
    detail: str


@dataclass
class VerifyReport:
    target: Path | None
    kind: str            # 'npy-c' | 'npy-p' | 'folder-c' | 'archive'
    description: str     # one line: what the folder was recognised as
    checks: list[Check] = field(default_factory=list)

    @property
    def problems(self) -> list[Check]:
        return [check for check in self.checks if check.status in PROBLEMS]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line: the verdict."""
        where = str(self.target) if self.target is not None else "the archive"
        if self.ok:
            passed = sum(check.status == OK for check in self.checks)
            return f"{where}: {self.description}; all {passed} checks passed"
        counts = Counter(check.status for check in self.problems)
        parts = [f"{counts[status]} {status}" for status in PROBLEMS if counts[status]]
        first = self.problems[0]
        return (f"{where}: {', '.join(parts)} ({first.item}: {first.detail}"
                f"{'' if len(self.problems) == 1 else '; see the table for the rest'})")


# ---------------------------------------------------------------------------------------------------
# What the published sets hold

@dataclass(frozen=True)
class PublishedSet:
    n_per_severity: int | None   # images per (corruption, severity) or videos per -P file
    classes: int | None
    image_size: int


PUBLISHED_C: dict[str, PublishedSet] = {
    "CIFAR-10-C": PublishedSet(10_000, 10, 32),
    "CIFAR-100-C": PublishedSet(10_000, 100, 32),
    "Tiny-ImageNet-C": PublishedSet(None, 200, 64),
    "ImageNet-C": PublishedSet(50_000, 1000, 224),
}
PUBLISHED_P: dict[str, PublishedSet] = {
    "CIFAR-10-P": PublishedSet(10_000, None, 32),
    "CIFAR-100-P": PublishedSet(10_000, None, 32),
}

P_FRAMES: dict[str, int] = {name: 31 for name in P_TEST_PERTURBATIONS + P_VALIDATION_PERTURBATIONS}
P_FRAMES.update(motion_blur=21, translate=16)
"""Frames per -P sequence (spec B.2)."""
P_DIFFICULTY_FILES = tuple(f"{name}_{d}" for name in P_FRAMES if "noise" in name for d in (2, 3))


@dataclass(frozen=True)
class PublishedArchive:
    md5: str
    source: str


PUBLISHED_ARCHIVES: dict[str, PublishedArchive] = {
    "CIFAR-10-C.tar": PublishedArchive("56bf5dcef84df0e2308c6dcbcbbd8499", "CIFAR-10-C, Zenodo record 2535967"),
    "CIFAR-100-C.tar": PublishedArchive("11f0ed0f1191edbf9fa23466ae6021d3", "CIFAR-100-C, Zenodo record 3555552"),
    "blur.tar": PublishedArchive("2d8e81fdd8e07fef67b9334fa635e45c", "ImageNet-C blur, Zenodo record 2235448"),
    "digital.tar": PublishedArchive("89157860d7b10d5797849337ca2e5c03", "ImageNet-C digital, Zenodo record 2235448"),
    "extra.tar": PublishedArchive("d492dfba5fc162d8ec2c3cd8ee672984", "ImageNet-C extra, Zenodo record 2235448"),
    "noise.tar": PublishedArchive("e80562d7f6c3f8834afb1ecf27252745", "ImageNet-C noise, Zenodo record 2235448"),
    "weather.tar": PublishedArchive("33ffea4db4d93fe4a428c40a6ce0c25d", "ImageNet-C weather, Zenodo record 2235448"),
    "TinyImageNet-C.tar": PublishedArchive("3d9c6e89c2609aeb4198f84c8edd1ff0",
                                           "Tiny-ImageNet-C, Zenodo record 2469796"),
    "CIFAR-10-P.tar": PublishedArchive("125d6775afc5846ea84584d7524dedff", "CIFAR-10-P, Zenodo record 2535967"),
    "mnist_c.zip": PublishedArchive("4b34b33045869ee6d424616cd3a65da3", "MNIST-C, Zenodo record 3239543"),
}
UNKNOWN_ARCHIVES: dict[str, str] = {
    "Tiny-ImageNet-C.tar": "Tiny-ImageNet-C of Zenodo record 2536630",
    "Tiny-ImageNet-P.tar": "Tiny-ImageNet-P of Zenodo record 2536630",
    "CIFAR-100-P.tar": "CIFAR-100-P (Google Drive)",
}

PUBLISHED_FILE_MD5: dict[str, dict[str, str]] = {
    "CIFAR-10-C": {
        "brightness": "0a81ef75e0b523c3383219c330a85d48", "contrast": "3c8262171c51307f916c30a3308235a8",
        "defocus_blur": "7d1322666342a0702b1957e92f6254bc", "elastic_transform": "9421657c6cd452429cf6ce96cc412b5f",
        "fog": "7b397314b5670f825465fbcd1f6e9ccd", "frost": "31f6ab3bce1d9934abfb0cc13656f141",
        "gaussian_blur": "c33370155bc9b055fb4a89113d3c559d", "gaussian_noise": "ecaf8b9a2399ffeda7680934c33405fd",
        "glass_blur": "7361fb4019269e02dbf6925f083e8629", "impulse_noise": "2090e01c83519ec51427e65116af6b1a",
        "jpeg_compression": "2b9cc4c864e0193bb64db8d7728f8187", "labels": "c439b113295ed5254878798ffe28fd54",
        "motion_blur": "fffa5f852ff7ad299cfe8a7643f090f4", "pixelate": "0f14f7e2db14288304e1de10df16832f",
        "saturate": "1cfae0964219c5102abbb883e538cc56", "shot_noise": "3a7239bb118894f013d9bf1984be7f11",
        "snow": "bb238de8555123da9c282dea23bd6e55", "spatter": "8a5a3903a7f8f65b59501a6093b4311e",
        "speckle_noise": "ef00b87611792b00df09c0b0237a1e30", "zoom_blur": "6ea8e63f1c5cdee1517533840641641b",
    },
    "CIFAR-100-C": {
        "brightness": "f22d7195aecd6abb541e27fca230c171", "contrast": "322bb385f1d05154ee197ca16535f71e",
        "defocus_blur": "d923e3d9c585a27f0956e2f2ad832564", "elastic_transform": "a0792bd6581f6810878be71acedfc65a",
        "fog": "4efc7ebd5e82b028bdbe13048e3ea564", "frost": "3a39c6823bdfaa0bf8b12fe7004b8117",
        "gaussian_blur": "5204ba0d557839772ef5a4196a052c3e", "gaussian_noise": "ecc4d366eac432bdf25c024086f5e97d",
        "glass_blur": "0bf384f38e5ccbf8dd479d9059b913e1", "impulse_noise": "3b3c210ddfa0b5cb918ff4537a429fef",
        "jpeg_compression": "c851b7f1324e1d2ffddeb76920576d11", "labels": "bb4026e9ce52996b95f439544568cdb2",
        "motion_blur": "732a7e2e54152ff97c742d4c388c5516", "pixelate": "96c00c60f144539e14cffb02ddbd0640",
        "saturate": "c0697e9fdd646916a61e9c312c77bf6b", "shot_noise": "b0a1fa6e1e465a747c1b204b1914048a",
        "snow": "0237be164583af146b7b144e73b43465", "spatter": "12ccf41d62564d36e1f6a6ada5022728",
        "speckle_noise": "e3f215b1a0f9fd9fd6f0d1cf94a7ce99", "zoom_blur": "0204613400c034a81c4830d5df81cb82",
    },
}


# ---------------------------------------------------------------------------------------------------
# Helpers

MD5_BLOCK = 1 << 22


def file_md5(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    """Hex MD5 of a file, read in 4 MiB blocks (`on_bytes(n)` after each, for progress)."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(MD5_BLOCK):
            digest.update(block)
            if on_bytes is not None:
                on_bytes(len(block))
    return digest.hexdigest()


def _problem(item: str, error: UserError) -> Check:
    return Check(item, MISSING if isinstance(error, MissingDataError) else WRONG, str(error))


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(f"{d:,}" if i == 0 else str(d) for i, d in enumerate(shape)) + ")"


def _published_c(directory: Path, recipe: dict | None) -> PublishedSet | None:
    return None if recipe is not None else PUBLISHED_C.get(directory.name)


# ---------------------------------------------------------------------------------------------------
# Detection

def _npy_stems(directory: Path) -> set[str]:
    return {path.stem for path in directory.glob("*.npy") if not path.name.startswith(".")}


def detect_kind(directory: Path) -> str:
    """'npy-c', 'npy-p' or 'folder-c' from what `directory` holds; LayoutError when it is none of them."""
    directory = Path(directory)
    if not directory.is_dir():
        raise MissingDataError(f"{directory} is not a folder; give the -C or -P folder (e.g. data/CIFAR-10-C)")
    stems = _npy_stems(directory)
    p_only = set(P_FRAMES) - set(ALL_CORRUPTIONS)
    if "labels" in stems:
        return "npy-c"
    if stems & p_only or stems & set(P_DIFFICULTY_FILES):
        return "npy-p"
    known = sorted(stems & set(ALL_CORRUPTIONS))
    if known:   # names shared by -C and -P files: a -P file has one more axis (frames)
        return "npy-p" if _npy_ndim(directory / f"{known[0]}.npy") == 5 else "npy-c"
    folders = set(list_class_folders(directory))
    if folders & set(ALL_CORRUPTIONS):
        return "folder-c"
    raise LayoutError(f"{directory} holds no -C or -P data: expected <corruption>.npy + labels.npy "
                      f"(CIFAR-10-C), <perturbation>.npy (CIFAR-10-P) or <corruption>/<severity>/<class>/"
                      f"<image> folders (ImageNet-C)")


def _npy_ndim(path: Path) -> int | None:
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            return len(reader(handle)[0])
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------------
# npy -C (CIFAR-10-C layout)

def _check_c_labels(directory: Path, published: PublishedSet | None, checks: list[Check]) -> int | None:
    """Check labels.npy; return N (images per severity) when it could be read."""
    try:
        labels = read_c_labels(directory)
    except UserError as error:
        checks.append(_problem("labels.npy", error))
        return None
    n = int(labels.numel())
    dtype = np.load(directory / "labels.npy", mmap_mode="r").dtype
    largest = int(labels.max()) if n else -1
    problems = []
    if published is not None and published.n_per_severity is not None and n != published.n_per_severity:
        problems.append(f"{n:,} labels per severity; {directory.name} has {published.n_per_severity:,}")
    if published is not None and published.classes is not None and largest >= published.classes:
        problems.append(f"label {largest} is outside 0..{published.classes - 1}")
    if problems:
        checks.append(Check("labels.npy", WRONG, "; ".join(problems)))
    else:
        note = "" if dtype == np.uint8 or published is None else " (the published file is uint8)"
        checks.append(Check("labels.npy", OK, f"5 × {n:,} labels ({dtype}{note}), severity blocks agree, "
                                              f"classes 0..{largest}"))
    return n


def _check_c_file(path: Path, n: int | None, published: PublishedSet | None,
                  first_shape: list[tuple[int, ...]]) -> Check:
    expected = "a (5·N, S, S, 3) uint8 array (CIFAR-10-C layout)"
    try:
        shape = validate_npy_header(path, ndim=4, trailing=(None, None, 3), expected=expected)
    except UserError as error:
        return _problem(path.name, error)
    problems = []
    if shape[1] != shape[2]:
        problems.append(f"{shape[2]}×{shape[1]} images are not square")
    if n is not None and shape[0] != len(SEVERITIES) * n:
        problems.append(f"{shape[0]:,} rows; 5 severities × {n:,} labels need {5 * n:,}")
    elif n is None and shape[0] % len(SEVERITIES):
        problems.append(f"{shape[0]:,} rows is not 5 severity blocks")
    if published is not None and shape[1] != published.image_size:
        problems.append(f"{shape[1]}-px images; the published set has {published.image_size} px")
    elif first_shape and shape[1] != first_shape[0][1]:
        problems.append(f"{shape[1]}-px images; other files hold {first_shape[0][1]}-px images")
    if problems:
        return Check(path.name, WRONG, f"shape {_shape_text(shape)}: " + "; ".join(problems))
    first_shape.append(shape)
    return Check(path.name, OK, f"uint8 {_shape_text(shape)}")


def _md5_checks(directory: Path, stems: list[str], published_md5: dict[str, str], set_name: str,
                progress: ProgressLike) -> list[Check]:
    paths = [directory / f"{stem}.npy" for stem in stems if (directory / f"{stem}.npy").is_file()]
    task = progress.add_task("md5", total=sum(path.stat().st_size for path in paths))
    checks = []
    for path in paths:
        digest = file_md5(path, lambda size: progress.advance(task, size))
        if digest == published_md5[path.stem]:
            checks.append(Check(f"{path.name} md5", OK, f"{digest} = published {set_name}"))
        else:
            checks.append(Check(f"{path.name} md5", WRONG, f"{digest} differs from the published {set_name} "
                                                           f"file ({published_md5[path.stem]}); it is damaged or "
                                                           f"modified: unpack {set_name}.tar again"))
    return checks


def _published_md5_set(directory: Path, recipe: dict | None) -> str | None:
    """Which published set's per-file MD5s apply: by folder name, else by the labels file's MD5."""
    if recipe is not None:
        return None
    if directory.name in PUBLISHED_FILE_MD5:
        return directory.name
    labels = directory / "labels.npy"
    if labels.is_file():
        digest = file_md5(labels)
        return next((name for name, md5s in PUBLISHED_FILE_MD5.items() if md5s["labels"] == digest), None)
    return None


def verify_npy_c(directory: Path, *, md5: bool = True, progress: ProgressLike | None = None) -> VerifyReport:
    """Checks of a CIFAR-10-C style folder."""
    progress = progress or null_progress()
    recipe = read_provenance(directory)
    published = _published_c(directory, recipe)
    required = list(recipe["corruptions"]) if recipe else list(ALL_CORRUPTIONS)
    checks: list[Check] = []
    n = _check_c_labels(directory, published, checks)
    shapes: list[tuple[int, ...]] = []
    for corruption in required:
        checks.append(_check_c_file(directory / f"{corruption}.npy", n, published, shapes))
    extra = sorted(_npy_stems(directory) - set(required) - {"labels"})
    for stem in extra:
        if stem in ALL_CORRUPTIONS:
            checks.append(_check_c_file(directory / f"{stem}.npy", n, published, shapes))
        else:
            checks.append(Check(f"{stem}.npy", NOTE, "not a corruption name; corrbench ignores it"))
    set_name = _published_md5_set(directory, recipe)
    if recipe is not None:
        checks.append(Check(PROVENANCE_FILE, NOTE, f"written by corrbench make-c from {recipe.get('dataset')} "
                                                   f"(seed {recipe.get('seed')}, {recipe.get('device_type')}); "
                                                   f"no published checksums apply"))
    elif md5 and set_name is not None:
        checks += _md5_checks(directory, [c for c in required + ["labels"]], PUBLISHED_FILE_MD5[set_name],
                              set_name, progress)
    elif set_name is None:
        checks.append(Check("md5", NOTE, f"no published checksums known for a folder named {directory.name!r} "
                                         f"(known: {', '.join(PUBLISHED_FILE_MD5)})"))
    size = f"{shapes[0][1]} px" if shapes else "unknown size"
    what = recipe["dataset"] if recipe else (directory.name if published else "CIFAR-10-C style")
    description = (f"{what} -C folder (npy): {len(required)} corruptions × 5 severities"
                   f"{f' × {n:,} images' if n else ''}, {size}")
    return VerifyReport(directory, "npy-c", description, checks)


# ---------------------------------------------------------------------------------------------------
# npy -P (CIFAR-10-P layout)

def verify_npy_p(directory: Path, *, progress: ProgressLike | None = None) -> VerifyReport:
    """Checks of a CIFAR-10-P style folder: the 10 test perturbations are required, the rest optional."""
    published = PUBLISHED_P.get(directory.name)
    checks: list[Check] = []
    videos: list[int] = []
    present = _npy_stems(directory)
    for stem in list(P_TEST_PERTURBATIONS) + list(P_VALIDATION_PERTURBATIONS) + list(P_DIFFICULTY_FILES):
        path = directory / f"{stem}.npy"
        required = stem in P_TEST_PERTURBATIONS
        if not path.is_file():
            if required:
                checks.append(Check(path.name, MISSING, f"a test perturbation of cifar-p-eval.py; "
                                                        f"expected (N, {P_FRAMES[stem]}, S, S, 3) uint8"))
            elif stem in P_VALIDATION_PERTURBATIONS:
                checks.append(Check(path.name, NOTE, "absent (a validation perturbation; optional)"))
            continue
        checks.append(_check_p_file(path, P_FRAMES[stem.rsplit("_", 1)[0] if stem in P_DIFFICULTY_FILES else stem],
                                    published, videos))
    for stem in sorted(present - set(P_FRAMES) - set(P_DIFFICULTY_FILES)):
        checks.append(Check(f"{stem}.npy", NOTE, "not a perturbation name; corrbench ignores it"))
    checks.append(Check("md5", NOTE, "no published checksums are known for the files inside -P archives; check CIFAR-10-P.tar with --archive"))
    what = directory.name if published else "CIFAR-10-P style"
    count = f" of {videos[0]:,} videos" if videos else ""
    return VerifyReport(directory, "npy-p", f"{what} -P folder (npy){count}", checks)


def _check_p_file(path: Path, frames: int, published: PublishedSet | None, videos: list[int]) -> Check:
    expected = f"a (N, {frames}, S, S, 3) uint8 array (CIFAR-10-P layout)"
    try:
        shape = validate_npy_header(path, ndim=5, trailing=(frames, None, None, 3), expected=expected)
    except UserError as error:
        return _problem(path.name, error)
    problems = []
    if shape[2] != shape[3]:
        problems.append(f"{shape[3]}×{shape[2]} frames are not square")
    if published is not None and shape[2] != published.image_size:
        problems.append(f"{shape[2]}-px frames; the published set has {published.image_size} px")
    if published is not None and published.n_per_severity is not None and shape[0] != published.n_per_severity:
        problems.append(f"{shape[0]:,} videos; the published set has {published.n_per_severity:,}")
    elif videos and shape[0] != videos[0]:
        problems.append(f"{shape[0]:,} videos; other files hold {videos[0]:,}")
    if problems:
        return Check(path.name, WRONG, f"shape {_shape_text(shape)}: " + "; ".join(problems))
    videos.append(shape[0])
    return Check(path.name, OK, f"uint8 {_shape_text(shape)}")


# ---------------------------------------------------------------------------------------------------
# folder -C (ImageNet-C layout)

@dataclass
class _FolderReference:
    where: str
    counts: dict[str, int]


def _image_side(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as image:
            return image.size
    except OSError:
        return None


def _check_severity_folder(folder: Path, published: PublishedSet | None, reference: list[_FolderReference],
                           sizes: list[int]) -> tuple[str | None, int, int]:
    """(problem or None, images, classes) of one `<corruption>/<severity>` folder."""
    classes = list_class_folders(folder)
    counts = {name: len(list_images(folder / name)) for name in classes}
    total = sum(counts.values())
    if not total:
        return "holds no images", 0, len(classes)
    if published is not None and published.classes is not None and len(classes) != published.classes:
        return f"{len(classes)} class folders; the published set has {published.classes}", total, len(classes)
    if published is not None and published.n_per_severity is not None and total != published.n_per_severity:
        return f"{total:,} images; the published set has {published.n_per_severity:,}", total, len(classes)
    if reference:
        ref = reference[0]
        missing = sorted(set(ref.counts) - set(counts))
        extra = sorted(set(counts) - set(ref.counts))
        if missing or extra:
            named = (f"lacks {len(missing)} class folder(s) of {ref.where} (e.g. {missing[0]})" if missing
                     else f"has {len(extra)} class folder(s) that {ref.where} lacks (e.g. {extra[0]})")
            return named, total, len(classes)
        differ = [name for name in counts if counts[name] != ref.counts[name]]
        if differ:
            name = differ[0]
            return (f"{len(differ)} class(es) hold another number of images than in {ref.where} "
                    f"(e.g. {name}: {counts[name]} vs {ref.counts[name]})"), total, len(classes)
    else:
        reference.append(_FolderReference(f"{folder.parent.name}/{folder.name}", counts))
    first = next(list_images(folder / name)[0] for name in classes if counts[name])
    side = _image_side(first)
    if side is None:
        return f"{first} is not a readable image", total, len(classes)
    if side[0] != side[1]:
        return f"{first.name} is {side[0]}×{side[1]}, not square", total, len(classes)
    expected = published.image_size if published is not None else (sizes[0] if sizes else side[0])
    if side[0] != expected:
        return f"{first.name} is {side[0]} px; expected {expected} px", total, len(classes)
    sizes.append(side[0])
    return None, total, len(classes)


def verify_folder_c(directory: Path, *, progress: ProgressLike | None = None) -> VerifyReport:
    """Checks of an ImageNet-C style folder: the 15 benchmark corruptions are required, the 4 extra
    optional (ImageNet-C ships them in a separate extra.tar)."""
    progress = progress or null_progress()
    recipe = read_provenance(directory)
    published = _published_c(directory, recipe)
    required = list(recipe["corruptions"]) if recipe else list(BENCHMARK_CORRUPTIONS)
    optional = [] if recipe else list(EXTRA_CORRUPTIONS)
    severities = list(recipe["severities"]) if recipe else list(SEVERITIES)
    present = set(list_class_folders(directory))
    checks: list[Check] = []
    reference: list[_FolderReference] = []
    sizes: list[int] = []
    chosen = [c for c in required + optional if c in present]
    task = progress.add_task("verify", total=len(chosen) * len(severities))
    per_severity: int | None = None
    for corruption in required + optional:
        if corruption not in present:
            if corruption in required:
                checks.append(Check(f"{corruption}/", MISSING, f"expected {corruption}/<severity>/<class>/<image>"))
            else:
                checks.append(Check(f"{corruption}/", NOTE, "absent (an extra corruption; optional)"))
            continue
        problems, counts = [], []
        for severity in severities:
            folder = directory / corruption / str(severity)
            progress.advance(task, 1)
            if not folder.is_dir():
                problems.append(f"severity folder {severity}/ is missing")
                continue
            problem, total, classes = _check_severity_folder(folder, published, reference, sizes)
            counts.append((total, classes))
            if problem:
                problems.append(f"{severity}/: {problem}")
        if problems:
            status = MISSING if all("is missing" in p for p in problems) else WRONG
            checks.append(Check(f"{corruption}/", status, "; ".join(problems)))
        else:
            per_severity = counts[0][0]
            checks.append(Check(f"{corruption}/", OK, f"{len(severities)} severities × {counts[0][0]:,} images in "
                                                       f"{counts[0][1]} classes, {sizes[0]} px"))
    for name in sorted(present - set(ALL_CORRUPTIONS)):
        checks.append(Check(f"{name}/", NOTE, "not a corruption name; corrbench ignores it"))
    if recipe is not None:
        checks.append(Check(PROVENANCE_FILE, NOTE, f"written by corrbench make-c from {recipe.get('dataset')} "
                                                   f"(seed {recipe.get('seed')}, {recipe.get('device_type')})"))
    else:
        checks.append(Check("md5", NOTE, "no published checksums are known for the files inside the archives; "
                                         "check the downloaded .tar files with --archive"))
    what = recipe["dataset"] if recipe else (directory.name if published else "ImageNet-C style")
    images = f" × {per_severity:,} images" if per_severity else ""
    return VerifyReport(directory, "folder-c", f"{what} -C folder (JPEG folders): {len(chosen)} corruptions × "
                                               f"{len(severities)} severities{images}", checks)


# ---------------------------------------------------------------------------------------------------
# Archives and the front door

def verify_archive(path: Path, *, progress: ProgressLike | None = None) -> Check:
    """MD5 of a downloaded archive against the published one for its file name (or any known one)."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"{path} does not exist; give the downloaded .tar file to --archive")
    progress = progress or null_progress()
    task = progress.add_task(f"md5 {path.name}", total=path.stat().st_size)
    digest = file_md5(path, lambda size: progress.advance(task, size))
    item = f"{path.name} md5"
    known = PUBLISHED_ARCHIVES.get(path.name)
    if known is not None:
        if digest == known.md5:
            return Check(item, OK, f"{digest} = published {known.source}")
        return Check(item, WRONG, f"{digest} differs from the published {known.md5} ({known.source}); the "
                                  f"download is incomplete or damaged: download it again")
    match = next((archive for name, archive in PUBLISHED_ARCHIVES.items() if archive.md5 == digest), None)
    if match is not None:
        return Check(item, OK, f"{digest} = published {match.source} (renamed file)")
    if path.name in UNKNOWN_ARCHIVES:
        return Check(item, NOTE, f"{digest}; the published md5 of {UNKNOWN_ARCHIVES[path.name]} is not known to "
                                 f"corrbench, compare it with the record's listing")
    return Check(item, NOTE, f"{digest}; not a published -C archive corrbench knows "
                             f"({', '.join(PUBLISHED_ARCHIVES)})")


def verify_directory(directory: Path, *, md5: bool = True, progress: ProgressLike | None = None) -> VerifyReport:
    """Detect what `directory` is and check it."""
    directory = Path(directory).expanduser().absolute()
    kind = detect_kind(directory)
    if kind == "npy-c":
        return verify_npy_c(directory, md5=md5, progress=progress)
    if kind == "npy-p":
        return verify_npy_p(directory, progress=progress)
    return verify_folder_c(directory, progress=progress)


def verify(directory: Path | None = None, *, archive: Path | None = None, md5: bool = True,
           progress: ProgressLike | None = None) -> VerifyReport:
    """Check a -C / -P folder, a downloaded archive, or both (the archive's check joins the folder's)."""
    if directory is None and archive is None:
        raise UserError("give a folder to verify (e.g. corrbench data verify data/CIFAR-10-C) or --archive FILE")
    if directory is None:
        check = verify_archive(archive, progress=progress)
        return VerifyReport(None, "archive", f"{Path(archive).name}", [check])
    report = verify_directory(directory, md5=md5, progress=progress)
    if archive is not None:
        report.checks.append(verify_archive(archive, progress=progress))
    return report
