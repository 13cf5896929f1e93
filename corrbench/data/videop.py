"""ImageNet-P and Tiny-ImageNet-P: the official video layout, corrbench's lossless variant of it, and
generation at 64 and 224 px (hendrycks/robustness ImageNet-P/create_p, `utils/video_loader.py`).

Layout (the reference's `VideoFolder`, a torchvision DatasetFolder over `.mp4`):

    <suite folder>/<perturbation>[_<difficulty>]/<wnid>/<image name>.mp4

one video per validation image, frames in order; noise sequences of difficulty 2 and 3 live in
`gaussian_noise_2/`, `shot_noise_3/` … Videos are listed as DatasetFolder lists them (sorted class
folders, then sorted file names). The official videos are H.264 (libx264, `-crf 20`, or `-tune grain` for
noise) and are decoded with OpenCV, as the reference's loader does (opencv-python comes with the
imagecorruptions dependency; without it, reading an .mp4 is one line saying what to install).

`corrbench data make-p` writes the same tree with `<image name>.npy` files, uint8 (T, S, S, 3) each: the
exact generated frames, no codec. `--format mp4` writes `.mp4` through OpenCV instead; its only encoder
here is MPEG-4 Part 2 ('mp4v'), not the reference's H.264, so such files are small but lossy — their
frames (and hence flip rates) differ from the generated ones, and from the published videos' artefacts.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from corrbench.atomic import atomic_path
from corrbench.data.imageset import (ImageSet, LazyImageSet, decode_resize_center_crop, default_workers,
                                     resize_center_crop)
from corrbench.data.readers import list_class_folders
from corrbench.data.suite_base import slice_chunks
from corrbench.device import make_generator
from corrbench.errors import InvalidValueError, LayoutError, MissingDataError, UserError
from corrbench.perturbations.scales import PScale, STOCHASTIC, generate_scaled_sequences
from corrbench.progress import ProgressLike, null_progress

VIDEO_SUFFIXES = (".mp4", ".npy")
VIDEO_FORMATS = ("npy", "mp4")
# Videos per generated chunk, fixed per scale because the chunk seeds depend on it (~50–100 MB of frames).
SCALED_GENERATION_CHUNK = {"tiny": 128, "imagenet": 16}
IMAGENET_CONTEXT_RESIZE = 256   # make_imagenet_p.py: trn.Resize(256) before every sequence


def video_folder_name(perturbation: str, difficulty: int = 1) -> str:
    """`<perturbation>`, or `<perturbation>_<d>` for noise of difficulty d > 1 (ImageNet-P's test.py)."""
    return f"{perturbation}_{difficulty}" if difficulty > 1 and "noise" in perturbation else perturbation


# ---------------------------------------------------------------------------------------------------
# reading

def _cv2():
    try:
        import cv2
    except ImportError:
        raise MissingDataError("reading or writing ImageNet-P .mp4 videos needs OpenCV (the reference's loader "
                               "uses it): pip install opencv-python") from None
    return cv2


def list_videos(folder: Path) -> tuple[list[Path], list[str]]:
    """Video files of `folder/<class>/*` in DatasetFolder order, and the class names; one suffix only."""
    paths: list[Path] = []
    classes = list_class_folders(folder)
    for name in classes:
        paths += sorted((p for p in (folder / name).iterdir()
                         if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".")),
                        key=lambda p: p.name)
    if not paths:
        raise MissingDataError(f"no videos found under {folder} (expected <wnid>/<name>.mp4 or .npy, the "
                               f"ImageNet-P layout)")
    suffixes = {p.suffix.lower() for p in paths}
    if len(suffixes) > 1:
        raise LayoutError(f"{folder} mixes .mp4 and .npy videos; keep one kind per perturbation folder")
    return paths, classes


def _crop_frames(frames: np.ndarray, size: int, path: Path) -> np.ndarray:
    """Frames (T, H, W, 3) centre-cropped to size × size (CenterCrop's rounding); smaller is a LayoutError."""
    height, width = frames.shape[1:3]
    if height < size or width < size:
        raise LayoutError(f"{path} has {width}×{height} frames; this suite needs at least {size}×{size}")
    top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    return frames[:, top:top + size, left:left + size]


def read_video(path: Path, frame_size: int) -> np.ndarray:
    """uint8 frames (T, S, S, 3) RGB of one video: a .npy array as stored, or every frame of an .mp4 decoded
    by OpenCV (BGR → RGB, as `VideoFolder`); frames larger than S are centre-cropped."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        try:
            frames = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as error:
            raise LayoutError(f"{path} is not a readable .npy video ({error}); remove or regenerate it") from None
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3 or frames.shape[0] == 0:
            raise LayoutError(f"{path} holds {frames.dtype} {frames.shape}; expected uint8 (T, S, S, 3) frames")
        return np.ascontiguousarray(_crop_frames(frames, frame_size, path))
    cv2 = _cv2()
    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise LayoutError(f"{path} has no decodable frames; download it again")
    return np.ascontiguousarray(_crop_frames(np.stack(frames), frame_size, path))


class VideoPerturbationPart:
    """One perturbation folder of ImageNet-P / Tiny-ImageNet-P (or make-p's .npy variant), streamed."""

    def __init__(self, perturbation: str, difficulty: int, folder: Path, frame_size: int,
                 limit: int | None = None, workers: int | None = None):
        self.perturbation, self.difficulty, self.folder = perturbation, difficulty, Path(folder)
        self.frame_size = frame_size
        self.paths, self.classes = list_videos(self.folder)
        self.n = len(self.paths) if limit is None else min(len(self.paths), limit)
        self.frames = int(read_video(self.paths[0], frame_size).shape[0])
        self._workers = workers or default_workers()

    def _read(self, path: Path) -> np.ndarray:
        frames = read_video(path, self.frame_size)
        if frames.shape[0] != self.frames:
            raise LayoutError(f"{path} has {frames.shape[0]} frames but {self.paths[0].name} has {self.frames}; "
                              f"every video of {self.folder.name} must have the same length")
        return frames

    def videos(self, start: int, stop: int) -> torch.Tensor:
        """uint8 B×T×3×S×S videos start..stop in listing order."""
        paths = self.paths[start:stop]
        if len(paths) <= 2 or self._workers == 1:
            arrays = [self._read(p) for p in paths]
        else:
            with ThreadPoolExecutor(min(self._workers, len(paths))) as pool:   # cv2 and np.load release the GIL
                arrays = list(pool.map(self._read, paths))
        return torch.from_numpy(np.stack(arrays)).permute(0, 1, 4, 2, 3).contiguous()

    def batches(self, videos_per_batch: int) -> Iterator[torch.Tensor]:
        for start in range(0, self.n, videos_per_batch):
            yield self.videos(start, min(start + videos_per_batch, self.n))


def open_video_parts(directory: Path, perturbations: Sequence[str], difficulty: int, frame_size: int,
                     limit: int | None, how_to_get: str) -> list[VideoPerturbationPart]:
    """One part per perturbation from `<directory>/<perturbation>[_<d>]/`; MissingDataError for a missing one."""
    parts = []
    for perturbation in perturbations:
        folder = directory / video_folder_name(perturbation, difficulty)
        if not folder.is_dir():
            raise MissingDataError(f"{folder} not found; {how_to_get}, or use --source generated")
        parts.append(VideoPerturbationPart(perturbation, difficulty, folder, frame_size, limit))
    return parts


# ---------------------------------------------------------------------------------------------------
# generation

def _decode_context(path: Path) -> np.ndarray:
    """The file as uint8 256×256×3: Resize(256), then the centred 256 square (make_imagenet_p.py's image,
    cut to a square so that a batch has one shape)."""
    try:
        with Image.open(path) as image:
            return np.asarray(resize_center_crop(image.convert("RGB"), IMAGENET_CONTEXT_RESIZE,
                                                 IMAGENET_CONTEXT_RESIZE))
    except OSError as error:
        raise LayoutError(f"{path} is not a readable image ({error}); remove or replace it") from None


def context_set(clean: ImageSet) -> ImageSet:
    """The images the sequences start from: for sets served as Resize(256) → CenterCrop(224) (ImageNet,
    large-image `folder:` sets) the 256×256 centre of the resized image; otherwise the served images."""
    if isinstance(clean, LazyImageSet) and clean._decode is decode_resize_center_crop:
        return LazyImageSet(clean.paths, clean.labels, clean.classes, IMAGENET_CONTEXT_RESIZE, _decode_context)
    height, width = getattr(clean, "image_hw", None) or tuple(clean.images(slice(0, 1)).shape[-2:])
    if height != width:
        raise UserError(f"-P sequences need square images, but these are {width}×{height}; crop them first")
    return clean


def chunk_size(scale: PScale) -> int:
    return SCALED_GENERATION_CHUNK[scale.name]


def generate_scaled_chunk(context: ImageSet, perturbation: str, difficulty: int, scale: PScale, seed: int,
                          device: torch.device, chunk_index: int, frame_size: int) -> torch.Tensor:
    """Videos of chunk `chunk_index` (chunk_size(scale) images in order), uint8 B×T×3×S×S with S =
    `frame_size` (the served image size), seeded by (scale, seed, perturbation, noise level, chunk) — the
    same bytes for any batch size or limit."""
    size = chunk_size(scale)
    start = chunk_index * size
    images = context.images(slice(start, min(start + size, len(context)))).to(device)
    level = difficulty if "noise" in perturbation else 1
    generator = (make_generator(torch.device("cpu"), "corrbench-p", scale.name, seed, perturbation, level,
                                chunk_index) if perturbation in STOCHASTIC else None)
    return generate_scaled_sequences(images, perturbation, scale, generator, difficulty=level,
                                     frame_size=frame_size)


class GeneratedScaledPart:
    """One perturbation of a generated Tiny-ImageNet-P / ImageNet-P style suite, made chunk by chunk."""

    def __init__(self, clean: ImageSet, perturbation: str, difficulty: int, scale: PScale, seed: int,
                 device: torch.device, limit: int | None = None):
        self.context = context_set(clean)
        self.frame_size = clean.image_size          # frames have the size the dataset serves
        self.perturbation, self.difficulty, self.scale = perturbation, difficulty, scale
        self.seed, self.device = seed, device
        self.n = len(clean) if limit is None else min(len(clean), limit)
        self.frames = scale.frames(perturbation)
        self._cache: tuple[int, torch.Tensor] | None = None

    def chunk(self, index: int) -> torch.Tensor:
        if self._cache is None or self._cache[0] != index:
            self._cache = (index, generate_scaled_chunk(self.context, self.perturbation, self.difficulty,
                                                        self.scale, self.seed, self.device, index,
                                                        self.frame_size))
        return self._cache[1]

    def videos(self, start: int, stop: int) -> torch.Tensor:
        return slice_chunks(self.chunk, chunk_size(self.scale), start, stop)

    def batches(self, videos_per_batch: int) -> Iterator[torch.Tensor]:
        for start in range(0, self.n, videos_per_batch):
            yield self.videos(start, min(start + videos_per_batch, self.n))


# ---------------------------------------------------------------------------------------------------
# writing (`corrbench data make-p` at 64 and 224 px)

def video_names(clean: ImageSet) -> list[tuple[str, str]]:
    """(class folder, file stem) of every image, in the set's order: the image's class name and file stem
    (ImageNet-P names videos after the val image), or its index for in-memory sets."""
    classes = list(getattr(clean, "classes", [])) or [str(i) for i in range(int(clean.labels.max()) + 1)]
    labels = clean.labels.tolist()
    paths = getattr(clean, "paths", None)
    stems = [Path(p).stem for p in paths] if paths is not None else [f"{i:06d}" for i in range(len(labels))]
    return [(classes[label], stem) for label, stem in zip(labels, stems)]


def _write_mp4(path: Path, frames: np.ndarray) -> None:
    cv2 = _cv2()
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 1, (width, height))
    if not writer.isOpened():
        raise UserError(f"OpenCV cannot write {path} with the mp4v codec here; use --format npy")
    try:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[..., ::-1]))
    finally:
        writer.release()


def write_scaled_p_suite(clean: ImageSet, out: Path, scale: PScale, perturbations: Sequence[str], *,
                         difficulty: int, seed: int, limit: int | None, device: torch.device,
                         video_format: str = "npy", overwrite: bool = False,
                         progress: ProgressLike | None = None) -> list[Path]:
    """Write `<out>/<perturbation>[_<d>]/<class>/<stem>.<npy|mp4>` for each perturbation (one folder
    written aside and renamed into place when complete); returns the perturbation folders."""
    if video_format not in VIDEO_FORMATS:
        raise InvalidValueError(f"--format must be npy or mp4, got '{video_format}'")
    if video_format == "mp4":
        _cv2()
    progress = progress or null_progress()
    out = Path(out)
    folders = {p: out / video_folder_name(p, difficulty if "noise" in p else 1) for p in perturbations}
    existing = [folder for folder in folders.values() if folder.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise UserError(f"{existing[0]} already exists{more}; pass --overwrite to replace it")
    context = context_set(clean)
    count = len(clean) if limit is None else min(len(clean), limit)
    names = video_names(clean)[:count]
    size = chunk_size(scale)
    written = []
    task = progress.add_task("videos", total=count)
    for perturbation, folder in folders.items():
        progress.reset(task, total=count, description=perturbation)
        with atomic_path(folder) as temp:
            for class_name in sorted({c for c, _ in names}):
                (temp / class_name).mkdir(parents=True)
            for index in range((count + size - 1) // size):
                start = index * size
                videos = generate_scaled_chunk(context, perturbation, difficulty, scale, seed, device, index,
                                               clean.image_size)
                take = min(count - start, videos.shape[0])
                frames = videos[:take].permute(0, 1, 3, 4, 2).cpu().numpy()
                for offset in range(take):
                    class_name, stem = names[start + offset]
                    target = temp / class_name / f"{stem}.{video_format}"
                    if target.exists():
                        raise LayoutError(f"two images of class {class_name} are named {stem}; ImageNet-P names "
                                          f"videos after their image, so names must be unique per class")
                    if video_format == "npy":
                        np.save(target, frames[offset])
                    else:
                        _write_mp4(target, frames[offset])
                progress.advance(task, take)
        written.append(folder)
    return written

