"""`corrbench data make-p`: write generated -P suites (CIFAR-10-P files, or the ImageNet-P folder layout)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from corrbench.cli.common import console, progress_bars, split_names

HELP = """Write -P perturbation sequences of a dataset's test split.

32-px datasets (cifar10, mnist5k, …) get CIFAR-10-P files: <out>/<perturbation>.npy, uint8 (N, T, 32, 32, 3), noise of difficulty d > 1 as <name>_<d>.npy.

64-px (tinyimagenet) and 224-px (imagenet, large folder:/npy: images) datasets get Tiny-ImageNet-P / ImageNet-P sequences (the constants of make_tinyimagenet_p.py / make_imagenet_p.py) in the ImageNet-P folder layout <out>/<perturbation>[_<d>]/<class>/<image name>.npy, one uint8 (T, S, S, 3) array per video. --format mp4 writes .mp4 instead: OpenCV's MPEG-4 Part 2, lossy and not the published sets' H.264, so its frames differ from the generated ones.

The .npy bytes are those `corrbench flip-rate --source generated --seed S` evaluates.

Example: corrbench data make-p --dataset tinyimagenet --perturbations rotate,tilt --limit 100
"""


def make_p(
    dataset: str = typer.Option(..., "--dataset", help="The dataset whose test split is perturbed: cifar10, mnist5k, tinyimagenet, imagenet, folder:PATH, npy:IMAGES.npy,LABELS.npy …"),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder [default: <data root>/<the dataset's -P folder>, e.g. CIFAR-10-P]."),
    perturbations: Optional[str] = typer.Option(None, help="Comma-separated subset [default: all 14, test and validation]."),
    difficulty: int = typer.Option(1, help="Noise level 1-3 of the noise sequences (<name>_<d>.npy files, or <name>_<d>/ folders, for d > 1)."),
    seed: int = typer.Option(0, help="Seed of the random draws (noise, snow and spatter layers)."),
    limit: Optional[int] = typer.Option(None, help="Only the first N test images (videos)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Data folder [default: $CORRBENCH_DATA or ./data]."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N (bytes match `flip-rate` on the same device type)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing <perturbation>.npy files (or folders)."),
    video_format: str = typer.Option("npy", "--format", help="npy (exact frames) or mp4 (lossy; 64/224-px datasets only)."),
) -> None:
    """Write generated -P suites (CIFAR-10-P layout); the command's help is HELP."""
    import numpy as np

    from corrbench.data.datasets import resolve_data_root
    from corrbench.data.psuites import default_p_folder, write_p_suite
    from corrbench.device import fit_cpu_threads_to_load, resolve_device

    root = resolve_data_root(data_root)
    folder = out if out is not None else default_p_folder(dataset, root)
    target = resolve_device(device)
    if target.type == "cpu":
        fit_cpu_threads_to_load()   # a busy machine: fewer intra-op threads (OMP_NUM_THREADS wins)
    with progress_bars() as progress:
        written = write_p_suite(dataset, folder, data_root=root, perturbations=split_names(perturbations),
                                difficulty=difficulty, seed=seed, limit=limit, device=target,
                                overwrite=overwrite, progress=progress, video_format=video_format)
    table = Table(title=f"{dataset} -P → {folder} (seed {seed})")
    for column, justify in (("file", "left"), ("videos", "right"), ("frames", "right"), ("MB", "right")):
        table.add_column(column, justify=justify)
    for path in written:
        if path.is_dir():   # ImageNet-P layout: one file per video
            from corrbench.data.videop import list_videos, read_video
            videos, _ = list_videos(path)
            frames = read_video(videos[0], 1).shape[0]
            size = sum(v.stat().st_size for v in videos)
            table.add_row(f"{path.name}/", f"{len(videos):,}", str(frames), f"{size / 1e6:.1f}")
            continue
        videos = np.load(path, mmap_mode="r")
        table.add_row(path.name, f"{videos.shape[0]:,}", str(videos.shape[1]), f"{path.stat().st_size / 1e6:.1f}")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add `make-p` to the `corrbench data` app."""
    app.command("make-p", help=HELP)(make_p)
