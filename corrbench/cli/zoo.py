"""`corrbench zoo`."""
from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from corrbench.cli.common import console

HELP = """List corrbench's architectures and what a name resolves to (any timm model name also works).

For inputs of at most 64 px, resnet18 and densenet121 mean the CIFAR variants (3×3 stride-1 stem, no max-pool).

Example: corrbench zoo resnet18 --image-size 32
"""


def zoo(arch: Optional[str] = typer.Argument(None, help="Show what this name resolves to."),
        image_size: int = typer.Option(32, "--image-size", help="Input size used to resolve ARCH."),
        num_classes: int = typer.Option(10, "--num-classes", help="Classes used to count ARCH's parameters.")) -> None:
    from corrbench.cli.common import check_positive

    check_positive("--image-size", image_size)
    check_positive("--num-classes", num_classes)
    from corrbench.models import count_parameters, create_model, list_archs, resolve_arch

    if arch is None:
        table = Table(title="corrbench architectures")
        for column in ("name", "≤ 64 px resolves to", "> 64 px resolves to", "description"):
            table.add_column(column)
        for info in list_archs():
            table.add_row(info.name, info.small, info.large, info.description)
        console.print(table)
        console.print("Any timm model name (timm.list_models()) also works, e.g. --arch resnet50.")
        return
    resolved = resolve_arch(arch, image_size)
    model = create_model(arch, num_classes=num_classes, image_size=image_size, mean=(0.5,) * 3, std=(0.5,) * 3)
    console.print(f"{arch} at {image_size} px → timm model '{resolved}': {count_parameters(model):,} parameters "
                  f"({num_classes} classes), {model.num_stages} stages exposed for feature mixing", highlight=False)
