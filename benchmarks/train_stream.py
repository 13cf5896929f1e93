"""Images/s of the RandomResizedCrop training stream alone (decode + crop + resize + flip, no model).

    python benchmarks/train_stream.py                       # CPU: PIL decode in 0 and 2 worker processes
    python benchmarks/train_stream.py --workers 0,4,8 --size 500x375 --images 512
    python benchmarks/train_stream.py --device cuda         # torchvision decoder = nvJPEG on the GPU

Builds an ImageFolder of random-texture JPEGs (quality 90) in a temporary folder, then runs one warm-up epoch
(starts the workers) and `--epochs` timed epochs per setting, for the PIL decoder (in the workers) and the
torchvision decoder (in this process on --device: libjpeg-turbo on the CPU, nvJPEG on CUDA). Then it checks
that the torchvision path gives the PIL path's images up to decoder/interpolation rounding.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from corrbench.data.train_stream import ResizedCropStream


def build_folder(root: Path, images: int, width: int, height: int, classes: int = 3) -> tuple[list[Path], torch.Tensor]:
    rng = np.random.default_rng(0)
    paths, labels = [], []
    y, x = np.mgrid[0:height, 0:width]
    for k in range(images):
        label = k % classes
        folder = root / "train" / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        base = np.stack([x * 255 // width, y * 255 // height, (x + y + 60 * label) % 256], -1)
        pixels = np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"{k:05d}.JPEG"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
        labels.append(label)
    return paths, torch.tensor(labels)


def images_per_second(stream: ResizedCropStream, n: int, epochs: int) -> float:
    order = torch.arange(n)
    for _ in stream.epoch(0, order):   # warm-up: worker start, page cache
        pass
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        for images, _ in stream.epoch(epoch, order):
            pass
    if stream.device.type == "cuda":
        torch.cuda.synchronize()
    return n * epochs / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--size", default="300x260", help="W x H of the JPEGs (ImageNet's median is about 500x375)")
    parser.add_argument("--workers", default="0,2", help="comma-separated worker counts")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.images} JPEGs {width}x{height} "
          f"→ RandomResizedCrop(224) + flip, batch {args.batch_size}")
    with tempfile.TemporaryDirectory() as folder:
        paths, labels = build_folder(Path(folder), args.images, width, height)
        decoders = ["pil", "torchvision"]
        for decoder in decoders:
            for workers in (int(w) for w in args.workers.split(",")):
                stream = ResizedCropStream(paths, labels, (224, 224), seed=0, batch_size=args.batch_size,
                                           device=device, workers=workers, decoder=decoder)
                rate = images_per_second(stream, len(paths), args.epochs)
                stream.close()
                print(f"{decoder:11s} on {device.type}, {workers} workers: {rate:8.1f} images/s")
        order = torch.arange(len(paths))
        reference = torch.cat([b for b, _ in ResizedCropStream(paths, labels, (224, 224), seed=0, batch_size=32,
                                                                device=device, decoder="pil").epoch(0, order)])
        other = torch.cat([b for b, _ in ResizedCropStream(paths, labels, (224, 224), seed=0, batch_size=32,
                                                            device=device, decoder="torchvision").epoch(0, order)])
        difference = (reference.float() - other.float()).abs()
        print(f"torchvision ({device.type}) vs pil: mean |difference| {difference.mean().item():.3f} (of 255), "
              f"max {difference.max().item():.0f}; expect a mean below 2")


if __name__ == "__main__":
    main()
