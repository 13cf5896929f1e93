"""Training batches from image files: RandomResizedCrop + horizontal flip of the full-size images, decoded
by DataLoader worker processes while the model computes (or on the GPU with nvJPEG).

The ImageNet recipes of the papers train on `RandomResizedCrop(224)` (scale 0.08–1, aspect ratio 3/4–4/3)
+ `RandomHorizontalFlip()` of the original images (torchvision's ImageNet example, which AugMix and
NoisyMix `imagenet.py` follow), not on the 224-px centre crops a folder dataset serves for evaluation.

Reproducibility: the crop window and the flip bit of an image come from its own generator, seeded from
(seed, epoch, rank, dataset index). They do not depend on the batch size, on the number of workers, on
which worker decoded the image, on the decoder (PIL or nvJPEG) or on whether the epoch was resumed.
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from corrbench.device import make_generator
from corrbench.errors import LayoutError, UserError

__all__ = ["RRC_SCALE", "RRC_RATIO", "ResizedCropStream", "draw_resized_crop", "draw_image_params",
           "image_files", "default_loader_workers"]

RRC_SCALE = (0.08, 1.0)                   # torchvision RandomResizedCrop defaults (Szegedy et al. 2015, "Inception")
RRC_RATIO = (3.0 / 4.0, 4.0 / 3.0)
RRC_ATTEMPTS = 10
JPEG_SUFFIXES = (".jpg", ".jpeg")


def draw_resized_crop(height: int, width: int, generator: torch.Generator,
                      scale: tuple[float, float] = RRC_SCALE,
                      ratio: tuple[float, float] = RRC_RATIO) -> tuple[int, int, int, int]:
    """(top, left, crop height, crop width) by torchvision's RandomResizedCrop rule, drawn from `generator`.

    Up to 10 tries of an area fraction uniform in `scale` and a log-uniform aspect ratio in `ratio`; the first
    window that fits is placed uniformly. If none fits: the largest centred window whose aspect ratio is
    clamped into `ratio`. The draws (float32 uniforms, then two randints) are torchvision's, in its order, so a
    generator in the same state gives the same window.
    """
    area = height * width
    log_low, log_high = torch.log(torch.tensor(ratio)).tolist()
    for _ in range(RRC_ATTEMPTS):
        fraction = torch.empty(1).uniform_(scale[0], scale[1], generator=generator).item()
        log_aspect = torch.empty(1).uniform_(log_low, log_high, generator=generator)
        aspect = torch.exp(log_aspect).item()
        target = area * fraction
        crop_w = int(round(math.sqrt(target * aspect)))
        crop_h = int(round(math.sqrt(target / aspect)))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            top = int(torch.randint(0, height - crop_h + 1, (1,), generator=generator).item())
            left = int(torch.randint(0, width - crop_w + 1, (1,), generator=generator).item())
            return top, left, crop_h, crop_w
    aspect_in = width / height
    if aspect_in < min(ratio):
        crop_w, crop_h = width, int(round(width / min(ratio)))
    elif aspect_in > max(ratio):
        crop_w, crop_h = int(round(height * max(ratio))), height
    else:
        crop_w, crop_h = width, height
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def draw_image_params(seed: int, epoch: int, rank: int, index: int, height: int, width: int, *, flip: bool,
                      scale: tuple[float, float] = RRC_SCALE,
                      ratio: tuple[float, float] = RRC_RATIO) -> tuple[int, int, int, int, bool]:
    """(top, left, crop height, crop width, flipped) of dataset image `index` in `epoch` on `rank`: the window,
    then (with `flip`) one `rand() < 0.5` draw, all from the image's own generator."""
    generator = make_generator(torch.device("cpu"), seed, epoch, "resized_crop", rank, index)
    top, left, crop_h, crop_w = draw_resized_crop(height, width, generator, scale, ratio)
    flipped = bool(torch.rand(1, generator=generator).item() < 0.5) if flip else False
    return top, left, crop_h, crop_w, flipped


def image_files(images) -> tuple[list[Path], torch.Tensor]:
    """(paths, labels) of a file-backed training set (a LazyImageSet, or a holdout SubsetImages of one)."""
    if hasattr(images, "paths"):
        return list(images.paths), images.labels
    base, indices = getattr(images, "base", None), getattr(images, "indices", None)
    if base is not None and hasattr(base, "paths"):
        return [base.paths[i] for i in indices.tolist()], images.labels
    raise UserError("train_crop=random_resized needs a dataset of image files (imagenet, tinyimagenet, folder:PATH); "
                    "use train_crop=pad for in-memory data such as CIFAR")


def default_loader_workers() -> int:
    """DataLoader workers per training process: the cores of this node shared by its training processes
    (torchrun's LOCAL_WORLD_SIZE), one left for the process itself; at least 1, at most 12."""
    processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(1, min(12, (os.cpu_count() or 1) // processes - 1))


def _open_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError as error:   # PIL.UnidentifiedImageError is an OSError
        raise LayoutError(f"{path} is not a readable image ({error}); remove or replace it") from None


def _image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file header (PIL reads no pixels for this)."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except OSError as error:
        raise LayoutError(f"{path} is not a readable image ({error}); remove or replace it") from None
    return height, width


class _BatchReader(torch.utils.data.Dataset):
    """Item `(epoch, indices)` → one batch. Runs in the DataLoader workers.

    `decode_here`: decode, crop, resize (PIL bilinear, antialiased as torchvision's PIL path) and flip; the
    batch is a uint8 [B,3,H,W] tensor. Otherwise only the file bytes and the drawn parameters come back, for
    the torchvision decoder in the training process.
    Errors come back as text (`error`), not raised: a worker's exception would reach the user as a traceback.
    """

    def __init__(self, paths: Sequence[Path], labels: torch.Tensor, out_hw: tuple[int, int], *, seed: int,
                 rank: int, flip: bool, decode_here: bool, scale: tuple[float, float], ratio: tuple[float, float]):
        self.paths, self.labels, self.out_hw = list(paths), labels, out_hw
        self.seed, self.rank, self.flip, self.decode_here = seed, rank, flip, decode_here
        self.scale, self.ratio = scale, ratio

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: tuple[int, list[int]]) -> dict:
        epoch, indices = item
        try:
            return self._read(epoch, indices)
        except LayoutError as error:
            return {"error": str(error)}

    def _params(self, epoch: int, index: int, height: int, width: int) -> tuple[int, int, int, int, bool]:
        return draw_image_params(self.seed, epoch, self.rank, index, height, width, flip=self.flip,
                                 scale=self.scale, ratio=self.ratio)

    def _read(self, epoch: int, indices: list[int]) -> dict:
        labels = self.labels[torch.tensor(indices, dtype=torch.int64)]
        out_h, out_w = self.out_hw
        if not self.decode_here:
            data, params = [], []
            for index in indices:
                path = self.paths[index]
                params.append(self._params(epoch, index, *_image_size(path)))
                data.append(torch.from_numpy(np.fromfile(path, dtype=np.uint8)))
            return {"data": data, "params": torch.tensor(params, dtype=torch.int64), "labels": labels,
                    "jpeg": [self.paths[i].suffix.lower() in JPEG_SUFFIXES for i in indices],
                    "paths": [str(self.paths[i]) for i in indices]}
        out = np.empty((len(indices), out_h, out_w, 3), dtype=np.uint8)
        flips = torch.zeros(len(indices), dtype=torch.bool)
        for row, index in enumerate(indices):
            image = _open_rgb(self.paths[index])
            top, left, crop_h, crop_w, flips[row] = self._params(epoch, index, image.height, image.width)
            window = image.crop((left, top, left + crop_w, top + crop_h))
            out[row] = np.asarray(window.resize((out_w, out_h), Image.BILINEAR))
        images = torch.from_numpy(out).permute(0, 3, 1, 2)
        images = torch.where(flips[:, None, None, None], images.flip(-1), images).contiguous()
        return {"images": images, "labels": labels}


class _EpochItems(torch.utils.data.Sampler):
    """The current epoch's `(epoch, indices)` items, set by the training process before each epoch (it lives
    there, so persistent workers need not be told)."""

    def __init__(self) -> None:
        self.items: list[tuple[int, list[int]]] = []

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def resized_crop_tensor(image: torch.Tensor, top: int, left: int, crop_h: int, crop_w: int,
                        out_hw: tuple[int, int]) -> torch.Tensor:
    """uint8 [3,H,W] → the window resized to `out_hw` (bilinear, antialiased, as torchvision's tensor path)."""
    window = image[:, top:top + crop_h, left:left + crop_w].unsqueeze(0).float()
    resized = F.interpolate(window, size=out_hw, mode="bilinear", align_corners=False, antialias=True)
    return resized.round_().clamp_(0, 255).to(torch.uint8).squeeze(0)


class ResizedCropStream:
    """Per-step `(uint8 images [B,3,H,W] on device, labels on device)` of RandomResizedCrop + flip.

    `decoder`: 'pil' (decode in the workers, the reference), 'torchvision' (workers read the bytes, the
    training process decodes JPEGs with `torchvision.io.decode_jpeg` on `device`: nvJPEG on CUDA; other
    formats and files nvJPEG refuses are decoded on the CPU), or 'auto' (torchvision on CUDA, else pil). The
    crop windows and flips are the same for both; the pixels differ by the decoders' rounding.
    `workers`: DataLoader worker processes (0: decode in this process, no overlap); they persist across
    epochs and keep `prefetch` batches each in flight.
    """

    def __init__(self, paths: Sequence[Path], labels: torch.Tensor, out_hw: tuple[int, int], *, seed: int,
                 batch_size: int, device: torch.device | str = "cpu", rank: int = 0, flip: bool = True,
                 workers: int = 0, prefetch: int = 4, decoder: str = "auto",
                 scale: tuple[float, float] = RRC_SCALE, ratio: tuple[float, float] = RRC_RATIO):
        if decoder not in ("auto", "pil", "torchvision"):
            raise ValueError(f"decoder must be auto, pil or torchvision, got {decoder!r}")
        self.device = torch.device(device)
        if decoder == "auto":
            decoder = "torchvision" if self.device.type == "cuda" else "pil"
        self.decoder, self.out_hw, self.batch_size = decoder, tuple(out_hw), batch_size
        self._items = _EpochItems()
        reader = _BatchReader(paths, labels.long().cpu(), self.out_hw, seed=seed, rank=rank, flip=flip,
                              decode_here=decoder == "pil", scale=scale, ratio=ratio)
        self._loader = torch.utils.data.DataLoader(
            reader, sampler=self._items, batch_size=None, num_workers=workers,
            pin_memory=self.device.type == "cuda", persistent_workers=workers > 0,
            prefetch_factor=prefetch if workers > 0 else None)

    def epoch(self, epoch: int, indices: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of `epoch`: `indices` (this rank's dataset positions, in order) cut into batches of
        `batch_size` (the last one shorter)."""
        order = indices.tolist()
        self._items.items = [(epoch, order[start:start + self.batch_size])
                             for start in range(0, len(order), self.batch_size)]
        for batch in self._loader:
            if "error" in batch:
                raise LayoutError(batch["error"])
            labels = batch["labels"].to(self.device, non_blocking=True)
            if "images" in batch:
                yield batch["images"].to(self.device, non_blocking=True), labels
            else:
                yield self._decode_on_device(batch), labels

    def _decode_on_device(self, batch: dict) -> torch.Tensor:
        with warnings.catch_warnings():   # torchvision 0.29 deprecates its decoders in favour of TorchCodec
            warnings.simplefilter("ignore", DeprecationWarning)
            return self._decode_batch(batch)

    def _decode_batch(self, batch: dict) -> torch.Tensor:
        from torchvision.io import ImageReadMode, decode_image, decode_jpeg

        data, jpeg = batch["data"], batch["jpeg"]
        decoded: list[torch.Tensor | None] = [None] * len(data)
        on_gpu = [i for i, is_jpeg in enumerate(jpeg) if is_jpeg]
        if on_gpu:
            try:
                for i, image in zip(on_gpu, decode_jpeg([data[i] for i in on_gpu], mode=ImageReadMode.RGB,
                                                        device=self.device)):
                    decoded[i] = image
            except RuntimeError:   # one file the decoder cannot take (e.g. CMYK) fails the batch: one by one
                for i in on_gpu:
                    try:
                        decoded[i] = decode_jpeg(data[i], mode=ImageReadMode.RGB, device=self.device)
                    except RuntimeError:
                        decoded[i] = None
        out = torch.empty((len(data), 3, *self.out_hw), dtype=torch.uint8, device=self.device)
        params = batch["params"].tolist()
        for i, image in enumerate(decoded):
            if image is None:
                try:
                    image = decode_image(data[i], mode=ImageReadMode.RGB).to(self.device)
                except RuntimeError as error:
                    raise LayoutError(f"{batch['paths'][i]} is not a readable image ({error}); remove or "
                                      f"replace it") from None
            top, left, crop_h, crop_w, flipped = params[i]
            crop = resized_crop_tensor(image, top, left, crop_h, crop_w, self.out_hw)
            out[i] = crop.flip(-1) if flipped else crop
        return out

    def close(self) -> None:
        """Stop the worker processes (they also stop when the stream is garbage-collected)."""
        iterator = getattr(self._loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
        self._loader._iterator = None
