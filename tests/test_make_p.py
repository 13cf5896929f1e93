"""`corrbench data make-p` and `corrbench flip-rate --source generated`: the CIFAR-10-P file layout, files equal
to the generated source, and flip rates end to end on mnist5k."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import typer
from typer.testing import CliRunner

from corrbench.cli.app import main
from corrbench.cli.data_p import register
from corrbench.data.datasets import load_dataset
from corrbench.data.psuites import P_GENERATION_CHUNK, generate_p_chunk, open_perturbation_suite
from corrbench.data.suites import SUITES
from corrbench.errors import MissingDataError, UserError

from conftest import train_run, write_cifar10

MNIST_PERTURBATIONS = "gaussian_noise,rotate,tilt"


def make_p(*args: object):
    """`corrbench data make-p ARGS` on a `data` app that has make-p registered."""
    app = typer.Typer()

    @app.callback()
    def data() -> None:
        """The `data` group."""

    register(app)
    return CliRunner().invoke(app, ["make-p", *[str(a) for a in args]])


def run_cli(capsys, *args: object) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def flip_rows(results) -> pd.DataFrame:
    rows = pd.read_parquet(max(results.glob("flip-rate__*.parquet"), key=lambda p: p.stat().st_mtime))
    return rows.sort_values("corruption").reset_index(drop=True)


@pytest.fixture
def mnist5k_p():
    """The mnist5k-p suite: no published files, generated on the fly (or written by make-p)."""
    spec = SUITES.get("mnist5k-p")
    assert not spec.published
    return spec


def test_make_p_writes_the_cifar10_p_layout_that_flip_rate_reads(capsys, tmp_path, cifar_run):
    root = tmp_path / "data"
    test_images, _ = write_cifar10(root)   # the same test split as the run's fixture data
    written = make_p("--dataset", "cifar10", "--data-root", root, "--seed", 3, "--device", "cpu",
                     "--perturbations", "gaussian_noise,translate,rotate,spatter")
    assert written.exit_code == 0, written.output
    folder = root / "CIFAR-10-P"
    clean = load_dataset("cifar10", "test", root)
    for name, frames in (("gaussian_noise", 31), ("translate", 16), ("rotate", 31), ("spatter", 31)):
        videos = np.load(folder / f"{name}.npy")
        assert videos.dtype == np.uint8 and videos.shape == (len(test_images), frames, 32, 32, 3)
        expected = generate_p_chunk(clean, name, 1, 3, torch.device("cpu"), 0).permute(0, 1, 3, 4, 2).numpy()
        assert np.array_equal(videos, expected), name
    assert np.array_equal(np.load(folder / "gaussian_noise.npy")[:, 0], test_images)   # frame 0 is clean
    assert np.array_equal(np.load(folder / "translate.npy")[:, 7], test_images)        # zero shift

    results = {}
    for source in ("files", "generated"):
        out = tmp_path / source
        code, _, err = run_cli(capsys, "flip-rate", "--checkpoint", cifar_run, "--data-root", root, "--source",
                               source, "--seed", 3, "--results", out, "--device", "cpu", "--perturbations",
                               "gaussian_noise,translate,rotate,spatter", "--batch-size", 100)
        assert code == 0, err
        results[source] = flip_rows(out)
    files, generated = results["files"], results["generated"]
    assert files["source"].unique().tolist() == ["files"] and files["generator_seed"].isna().all()
    assert generated["source"].unique().tolist() == ["generated"] and generated["generator_seed"].tolist() == [3] * 4
    for column in ("corruption", "n", "flip_probability", "top5_distance"):
        assert files[column].tolist() == generated[column].tolist(), column

    again = make_p("--dataset", "cifar10", "--data-root", root, "--perturbations", "translate")
    assert isinstance(again.exception, UserError) and "--overwrite" in str(again.exception)
    again = make_p("--dataset", "cifar10", "--data-root", root, "--perturbations", "translate", "--overwrite")
    assert again.exit_code == 0, again.output


def test_flip_rate_generated_on_mnist5k_end_to_end(capsys, tmp_path, mnist5k_p):
    run = train_run(tmp_path / "runs", batch_size=200)
    limit, seed = 30, 1
    code, out, err = run_cli(capsys, "flip-rate", "--checkpoint", run, "--source", "generated", "--seed", seed,
                             "--perturbations", MNIST_PERTURBATIONS, "--limit", limit, "--results", tmp_path / "gen",
                             "--device", "cpu", "--data-root", tmp_path / "data")
    assert code == 0, err
    assert "mnist5k-p (generated)" in out
    generated = flip_rows(tmp_path / "gen")
    assert generated["corruption"].tolist() == ["gaussian_noise", "rotate", "tilt"]
    assert generated["n"].tolist() == [limit] * 3 and generated["generator_seed"].tolist() == [seed] * 3
    assert generated["benchmark"].all()

    # independent computation: noise videos compare every frame with frame 0, the others consecutive frames
    from corrbench.engine.runs import load_run
    model = load_run(run, torch.device("cpu")).model.eval()
    clean = load_dataset("mnist5k", "test", tmp_path / "data")
    for name, noise in (("gaussian_noise", True), ("rotate", False)):
        videos = generate_p_chunk(clean, name, 1, seed, torch.device("cpu"), 0)[:limit]
        with torch.no_grad():
            predictions = model(videos.flatten(0, 1).float() / 255).argmax(1).reshape(limit, -1).numpy()
        reference = predictions[:, :1] if noise else predictions[:, :-1]
        expected = np.mean(predictions[:, 1:] != reference, axis=1).mean()
        got = generated.loc[generated.corruption == name, "flip_probability"].item()
        assert got == pytest.approx(expected), name

    code, _, err = run_cli(capsys, "flip-rate", "--checkpoint", run, "--source", "files", "--device", "cpu",
                           "--data-root", tmp_path / "data", "--results", tmp_path / "gen")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "MNIST5K-P" in lines[0] and "--source generated" in lines[0], err

    # the same bytes as files: make-p into the suite folder, then `auto` reads them
    folder = tmp_path / "data" / mnist5k_p.folder
    written = make_p("--dataset", "mnist5k", "--out", folder, "--perturbations", MNIST_PERTURBATIONS,
                     "--seed", seed, "--limit", limit, "--device", "cpu")
    assert written.exit_code == 0, written.output
    assert np.load(folder / "tilt.npy", mmap_mode="r").shape == (limit, 31, 32, 32, 3)
    code, _, err = run_cli(capsys, "flip-rate", "--checkpoint", run, "--perturbations", MNIST_PERTURBATIONS,
                           "--results", tmp_path / "files", "--device", "cpu", "--data-root", tmp_path / "data")
    assert code == 0, err
    files = flip_rows(tmp_path / "files")
    assert files["source"].unique().tolist() == ["files"]
    for column in ("corruption", "n", "flip_probability", "top5_distance"):
        assert files[column].tolist() == generated[column].tolist(), column


def test_generated_chunks_do_not_depend_on_limit_or_batch(tmp_path, mnist5k_p):
    suite = open_perturbation_suite("mnist5k-p", tmp_path, source="generated", seed=2,
                                    perturbations=["gaussian_noise"], limit=P_GENERATION_CHUNK + 7)
    part = suite.parts[0]
    assert part.n == P_GENERATION_CHUNK + 7 and part.frames == 31
    whole = torch.cat(list(part.batches(P_GENERATION_CHUNK + 7)))
    in_pieces = torch.cat(list(part.batches(60)))
    assert torch.equal(whole, in_pieces)
    short = open_perturbation_suite("mnist5k-p", tmp_path, source="generated", seed=2,
                                    perturbations=["gaussian_noise"], limit=5).parts[0]
    assert torch.equal(next(short.batches(5)), whole[:5])
    other_seed = open_perturbation_suite("mnist5k-p", tmp_path, source="generated", seed=3,
                                         perturbations=["gaussian_noise"], limit=5).parts[0]
    assert not torch.equal(next(other_seed.batches(5)), whole[:5])


def test_p_suite_errors_are_clear(tmp_path, mnist5k_p):
    with pytest.raises(MissingDataError, match="--source generated"):
        open_perturbation_suite("cifar10-p", tmp_path, source="auto")
    with pytest.raises(MissingDataError, match="MNIST5K-P"):
        open_perturbation_suite("mnist5k-p", tmp_path, source="files")
    with pytest.raises(UserError, match="unknown perturbation 'rotat'"):
        open_perturbation_suite("mnist5k-p", tmp_path, source="generated", perturbations=["rotat"])
    with pytest.raises(UserError, match="difficulties 1, 2 and 3"):
        open_perturbation_suite("mnist5k-p", tmp_path, source="generated", difficulty=4)
    for args, message in ((("--dataset", "mnist5k", "--out", tmp_path / "x", "--limit", 0), "limit must be at least 1"),
                          (("--dataset", "tinyimagenet", "--out", tmp_path / "x"), "tiny-imagenet-200"),   # 64 px: test_p_scales
                          (("--dataset", "mnist"), "no -P suite folder is registered for mnist; pass --out")):
        written = make_p(*args)
        assert isinstance(written.exception, UserError) and message in str(written.exception), written.exception
    assert not (tmp_path / "x").exists()
