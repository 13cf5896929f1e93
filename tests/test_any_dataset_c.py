"""-C suites for any dataset at any image size: the scale-family rule, every corruption on non-square
images, make-c round trips for `npy:` and `folder:` data, generic `cfolder:` / `cnpy:` suites, and
one-line errors for bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from corrbench.cli.app import main
from corrbench.corruptions import SCALES, corrupt, get_corruption, list_corruptions, scale_family_for
from corrbench.corruptions.blur import local_shuffle
from corrbench.data.make_c import PROVENANCE_FILE, make_c
from corrbench.data.suite_base import SUITE_OPENERS
from corrbench.data.suites import open_corruption_suite, resolve_suite, suite_dataset
from corrbench.errors import InvalidValueError, LayoutError, MissingDataError, UnknownNameError, UserError

CLASSES = 3
PER_CLASS = 3


def smooth_images(n: int, height: int, width: int, seed: int) -> np.ndarray:
    """uint8 N×H×W×3: ramps plus noise, so blurs and warps have something to move."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 200, height)[None, :, None, None]
    cols = np.linspace(0, 120, width)[None, None, :, None]
    noise = rng.integers(0, 55, (n, height, width, 3))
    return (rows + cols + noise).clip(0, 255).astype(np.uint8)


def run_cli(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def npy_48x40(tmp_path) -> str:
    """An npy: dataset of 9 images, 48 px high and 40 px wide, 3 classes."""
    np.save(tmp_path / "images.npy", smooth_images(CLASSES * PER_CLASS, 48, 40, seed=1))
    np.save(tmp_path / "labels.npy", np.repeat(np.arange(CLASSES), PER_CLASS))
    return f"npy:{tmp_path / 'images.npy'},{tmp_path / 'labels.npy'}"


def write_folder(base: Path, height: int, width: int, seed: int) -> str:
    images = smooth_images(CLASSES * PER_CLASS, height, width, seed)
    for index, array in enumerate(images):
        path = base / f"class{index // PER_CLASS}" / f"img{index % PER_CLASS}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(path)
    return f"folder:{base}"


@pytest.fixture
def folder_40x48(tmp_path) -> str:
    """A folder: dataset (flat ImageFolder layout) of 9 PNGs, 40 px high and 48 px wide."""
    return write_folder(tmp_path / "mine", 40, 48, seed=2)


def assert_same_parts(first, second) -> None:
    parts_a, parts_b = list(first.parts()), list(second.parts())
    assert [(p.corruption, p.severity) for p in parts_a] == [(p.corruption, p.severity) for p in parts_b]
    for a, b in zip(parts_a, parts_b):
        (images_a, labels_a), = list(a.batches(100))
        (images_b, labels_b), = list(b.batches(100))
        assert torch.equal(labels_a, labels_b), (a.corruption, a.severity)
        assert torch.equal(images_a, images_b), (a.corruption, a.severity)


# ---------------------------------------------------------------------------------------------------
# The scale-family rule and every corruption on non-square images

def test_scale_family_is_nearest_to_the_shorter_side_on_a_log_scale():
    for (height, width), family in (((32, 32), "cifar"), ((48, 40), "cifar"), ((40, 48), "cifar"),
                                    ((45, 500), "cifar"), ((46, 46), "tiny"), ((64, 64), "tiny"),
                                    ((119, 300), "tiny"), ((120, 120), "imagenet"), ((224, 224), "imagenet")):
        assert scale_family_for(height, width) == family, (height, width)


@pytest.mark.parametrize("height, width", [(48, 40), (40, 48)])
@pytest.mark.parametrize("scale", SCALES)
def test_every_corruption_keeps_shape_and_dtype_and_repeats_for_a_seed(height, width, scale):
    images = torch.from_numpy(smooth_images(2, height, width, seed=3)).permute(0, 3, 1, 2).contiguous()
    names = list_corruptions("all")
    assert len(names) == 19
    for name in names:
        first = corrupt(images, name, 4, scale=scale, generator=torch.Generator().manual_seed(7))
        again = corrupt(images, name, 4, scale=scale, generator=torch.Generator().manual_seed(7))
        assert first.shape == images.shape and first.dtype == torch.uint8, name
        assert torch.equal(first, again), name
        if get_corruption(name).stochastic:
            other = corrupt(images, name, 4, scale=scale, generator=torch.Generator().manual_seed(8))
            assert not torch.equal(first, other), f"{name} ignores its generator"


@pytest.mark.parametrize("height, width", [(48, 40), (40, 48)])
def test_pixelate_on_non_square_images_is_pillow_box_down_and_up(height, width):
    array = smooth_images(1, height, width, seed=4)[0]
    images = torch.from_numpy(array).permute(2, 0, 1)[None].contiguous()
    for scale in SCALES:
        factor = get_corruption("pixelate").table[scale][2]
        expected = (Image.fromarray(array).resize((int(width * factor), int(height * factor)), Image.BOX)
                    .resize((width, height), Image.BOX))
        ours = corrupt(images, "pixelate", 3, scale=scale)[0].permute(1, 2, 0).numpy()
        assert np.array_equal(ours, np.asarray(expected)), scale


def test_zoom_blur_on_non_square_images_equals_imagecorruptions():
    # imagecorruptions' clipped_zoom crops and zooms each axis on its own; its constants are ImageNet's
    icc = pytest.importorskip("imagecorruptions.corruptions")
    for height, width in ((48, 40), (40, 48)):
        array = smooth_images(1, height, width, seed=5)[0]
        images = torch.from_numpy(array).permute(2, 0, 1)[None].contiguous()
        for severity in (1, 5):
            theirs = np.uint8(icc.zoom_blur(array, severity))
            assert np.array_equal(corrupt(images, "zoom_blur", severity, scale="imagenet")[0].permute(1, 2, 0).numpy(),
                                  theirs)


def test_glass_blur_shuffle_on_non_square_images_follows_the_reference_loop():
    # the reference's sequential swap loop over rows H−d … d+1 and columns W−d … d+1, written out
    height, width, delta = 13, 10, 2
    rng = np.random.default_rng(6)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    draws = rng.integers(-delta, delta, (1, 1, height - 2 * delta, width - 2 * delta, 2))
    expected = image.copy()
    for i, h in enumerate(range(height - delta, delta, -1)):
        for j, w in enumerate(range(width - delta, delta, -1)):
            dx, dy = draws[0, 0, i, j]
            h_prime, w_prime = h + dy, w + dx
            expected[h, w], expected[h_prime, w_prime] = expected[h_prime, w_prime], expected[h, w]
    ours = local_shuffle(torch.from_numpy(image).permute(2, 0, 1)[None].contiguous(), torch.from_numpy(draws), delta)
    assert np.array_equal(ours[0].permute(1, 2, 0).numpy(), expected)


# ---------------------------------------------------------------------------------------------------
# Names: <dataset>-c, c + --dataset, c:DATASET, and the openers registry

def test_suite_names_resolve_for_every_form(npy_48x40):
    assert resolve_suite("fashion-mnist-c").dataset == "fashion-mnist"
    assert resolve_suite("fashion-mnist-c").folder == "FASHION-MNIST-C"
    assert resolve_suite("c", "cifar10").name == "cifar10-c"          # the official suite of that dataset
    assert resolve_suite("c:imagenet").name == "imagenet-c"
    assert resolve_suite("c:mnist").name == "mnist-c"                  # Hendrycks-style, not MNIST-C
    spec = resolve_suite("c", npy_48x40)
    assert spec.name == f"c:{npy_48x40}" and spec.layout == "npy" and not spec.published
    assert resolve_suite(f"{npy_48x40}-c") == spec == resolve_suite(f"c:{npy_48x40}")
    assert Path(spec.folder).name == "images-C" and Path(spec.folder).is_absolute()
    assert suite_dataset("c", npy_48x40) == npy_48x40
    assert set(SUITE_OPENERS.names()) >= {"npy", "folders", "mnistc"}


def test_registered_dataset_gets_a_generated_suite_with_its_family():
    suite = open_corruption_suite("c", dataset="mnist5k", source="generated", corruptions=["contrast"],
                                  severities=[1])
    assert (suite.name, suite.dataset, suite.scale_family) == ("mnist5k-c", "mnist5k", "cifar")
    assert "32 px" in suite.scale_note


# ---------------------------------------------------------------------------------------------------
# make-c round trips: the files hold exactly what the generated suite serves

SUBSET = ["gaussian_noise", "glass_blur", "snow", "frost", "fog", "elastic_transform", "pixelate"]


def test_npy_48x40_make_c_files_equal_the_generated_suite(npy_48x40, tmp_path):
    result = make_c(npy_48x40, seed=5, corruptions=SUBSET, device="cpu")
    assert result.out == tmp_path / "images-C"          # default: beside the images
    assert result.plan.scale == "cifar" and result.plan.layout == "npy"
    stored = np.load(result.out / "fog.npy", mmap_mode="r")
    assert stored.shape == (5 * CLASSES * PER_CLASS, 48, 40, 3) and stored.dtype == np.uint8
    recipe = json.loads((result.out / PROVENANCE_FILE).read_text())
    assert recipe["scale"] == "cifar" and recipe["image_hw"] == [48, 40]
    files = open_corruption_suite("c", dataset=npy_48x40, source="files")
    generated = open_corruption_suite("c", dataset=npy_48x40, source="generated", seed=5, corruptions=SUBSET)
    assert files.corruptions == SUBSET and files.scale_family == generated.scale_family == "cifar"
    assert_same_parts(files, generated)
    # the generic reader sees the same files, with the family from make-c's recipe
    generic = open_corruption_suite(f"cnpy:{result.out}", dataset=npy_48x40)
    assert generic.scale_family == "cifar" and generic.corruptions == SUBSET
    assert_same_parts(generic, generated)


def test_folder_40x48_make_c_files_equal_the_generated_suite(folder_40x48, tmp_path):
    result = make_c(folder_40x48, seed=2, corruptions=["motion_blur", "zoom_blur", "spatter"], device="cpu")
    assert result.out == tmp_path / "mine-C"
    files = open_corruption_suite(f"{folder_40x48}-c", source="files")
    generated = open_corruption_suite(f"c:{folder_40x48}", source="generated", seed=2,
                                      corruptions=["motion_blur", "zoom_blur", "spatter"])
    assert files.name == generated.name == f"c:{folder_40x48}"
    assert_same_parts(files, generated)


def test_tiny_family_folder_dataset_round_trips_through_jpeg_folders(tmp_path):
    dataset = write_folder(tmp_path / "mid", 56, 60, seed=3)     # shorter side 56 → tiny family, JPEG layout
    result = make_c(dataset, seed=1, corruptions=["shot_noise", "fog"], severities=[2, 5], device="cpu")
    assert result.plan.scale == "tiny" and result.plan.layout == "folders"
    written = sorted(p.relative_to(result.out / "fog" / "2").as_posix() for p in (result.out / "fog" / "2").rglob("*.JPEG"))
    assert written[0] == "class0/img0.JPEG" and len(written) == CLASSES * PER_CLASS
    files = open_corruption_suite("c", dataset=dataset, source="files", severities=[2, 5])
    generated = open_corruption_suite("c", dataset=dataset, source="generated", seed=1, severities=[2, 5],
                                      corruptions=["shot_noise", "fog"])
    assert generated.scale_family == "tiny"
    assert_same_parts(files, generated)


def write_fashion_mnist(root: Path) -> None:
    """FashionMNIST/raw in torchvision's idx layout: 6 train and 4 test 28×28 images."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(10)
    for prefix, n in (("train", 6), ("t10k", 4)):
        digits, labels = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)
        for kind, array in (("images-idx3", digits), ("labels-idx1", labels)):
            header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
            (raw / f"{prefix}-{kind}-ubyte").write_bytes(header + array.tobytes())


def test_registered_dataset_without_official_files_round_trips(tmp_path):
    write_fashion_mnist(tmp_path)
    result = make_c("fashion-mnist", seed=3, corruptions=["impulse_noise", "frost"], device="cpu",
                    data_root=tmp_path)
    assert result.out == tmp_path / "FASHION-MNIST-C"
    files = open_corruption_suite("fashion-mnist-c", tmp_path, source="files")
    generated = open_corruption_suite("c", tmp_path, dataset="fashion-mnist", source="generated", seed=3,
                                      corruptions=["impulse_noise", "frost"])
    assert files.name == generated.name == "fashion-mnist-c" and files.scale_family == "cifar"
    assert_same_parts(files, generated)
    auto = open_corruption_suite("fashion-mnist-c", tmp_path)        # auto: the files, as they are there
    assert auto.source == "files"


def test_make_c_cli_prints_the_scale_family_and_how_to_evaluate(capsys, npy_48x40, tmp_path):
    code, out, err = run_cli(capsys, "data", "make-c", "--dataset", npy_48x40, "--corruptions", "contrast",
                             "--device", "cpu")
    assert code == 0, err
    assert "scale family cifar" in out and "48×40" in out
    assert f"--dataset {npy_48x40} --suite c --source files" in " ".join(out.split())
    assert (tmp_path / "images-C" / "contrast.npy").is_file()
    # make-c takes the suite as eval names it, too
    code, out, err = run_cli(capsys, "data", "make-c", "--suite", f"c:{npy_48x40}", "--corruptions", "contrast",
                             "--device", "cpu", "--out", tmp_path / "again")
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "again" / "contrast.npy"), np.load(tmp_path / "images-C" / "contrast.npy"))


# ---------------------------------------------------------------------------------------------------
# cfolder: and cnpy: — files of any corruption names, the clean set from --dataset

def test_cfolder_reads_any_corruption_names(folder_40x48, tmp_path):
    clean = open_corruption_suite("c", dataset=folder_40x48, source="generated", corruptions=["contrast"]).clean
    root = tmp_path / "my-c"
    expected = {}
    for name in ("warped_glass", "gaussian_noise"):
        for severity in (1, 2, 3, 4, 5):
            shifted = (clean.tensor().int() + 10 * severity + len(name)).clamp(0, 255).to(torch.uint8)
            expected[name, severity] = shifted
            for index, path in enumerate(clean.paths):
                target = root / name / str(severity) / path.parent.name / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(shifted[index].permute(1, 2, 0).numpy()).save(target)
    suite = open_corruption_suite(f"cfolder:{root}", dataset=folder_40x48)
    assert suite.corruptions == ["gaussian_noise", "warped_glass"]     # corrbench's names first, then sorted
    assert suite.source == "files" and suite.scale_family is None
    parts = {(p.corruption, p.severity): p for p in suite.parts()}
    assert parts["warped_glass", 3].benchmark is False and parts["gaussian_noise", 3].benchmark is True
    for key, images in expected.items():
        (got, labels), = list(parts[key].batches(100))
        assert torch.equal(got, images) and torch.equal(labels, clean.labels)


def test_cnpy_reads_any_corruption_names_and_checks_labels(npy_48x40, tmp_path):
    images = smooth_images(5 * CLASSES * PER_CLASS, 48, 40, seed=9)
    labels = np.tile(np.repeat(np.arange(CLASSES), PER_CLASS), 5).astype(np.uint8)
    root = tmp_path / "mine-c"
    root.mkdir()
    np.save(root / "near_focus.npy", images)
    np.save(root / "labels.npy", labels)
    suite = open_corruption_suite(f"cnpy:{root}", dataset=npy_48x40, severities=[4])
    (part,) = [p for p in suite.parts() if p.severity == 4]
    (got, _), = list(part.batches(100))
    assert part.corruption == "near_focus" and part.benchmark is False
    assert torch.equal(got, torch.from_numpy(images[27:36]).permute(0, 3, 1, 2))
    np.save(root / "labels.npy", labels[::-1].copy())
    with pytest.raises(LayoutError, match="does not match the clean"):
        open_corruption_suite(f"cnpy:{root}", dataset=npy_48x40)


# ---------------------------------------------------------------------------------------------------
# Bad input: one-line UserErrors

def test_bad_suite_requests_are_one_line_user_errors(npy_48x40, tmp_path):
    with pytest.raises(UserError, match="pass --dataset"):
        resolve_suite("c")
    with pytest.raises(UserError, match="name that set with --dataset"):
        resolve_suite(f"cfolder:{tmp_path}")
    with pytest.raises(UserError, match="built from cifar10, not mnist5k"):
        resolve_suite("cifar10-c", "mnist5k")
    with pytest.raises(UnknownNameError, match="unknown dataset 'fashion-mnsit'"):
        resolve_suite("c:fashion-mnsit")
    with pytest.raises(MissingDataError, match="is not a folder"):
        open_corruption_suite(f"cfolder:{tmp_path / 'absent'}", dataset=npy_48x40)
    with pytest.raises(InvalidValueError, match="read from its files only"):
        open_corruption_suite(f"cnpy:{tmp_path}", dataset=npy_48x40, source="generated")
    (tmp_path / "empty").mkdir()
    np.save(tmp_path / "empty" / "labels.npy", np.tile(np.repeat(np.arange(CLASSES), PER_CLASS), 5))
    with pytest.raises(LayoutError, match="has no corruption files"):
        open_corruption_suite(f"cnpy:{tmp_path / 'empty'}", dataset=npy_48x40)
    with pytest.raises(MissingDataError, match="images-C files not found|not found at"):
        open_corruption_suite("c", dataset=npy_48x40, source="files")
    np.save(tmp_path / "empty" / "fog.npy", np.zeros((5 * 9, 40, 48, 3), np.uint8))     # transposed images
    with pytest.raises(LayoutError, match="48×40 .*not a -C set of this dataset|not a -C set"):
        list(open_corruption_suite(f"cnpy:{tmp_path / 'empty'}", dataset=npy_48x40).parts())


def test_bad_make_c_input_on_the_command_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "data", "make-c", "--dataset", f"npy:{tmp_path / 'no.npy'},{tmp_path / 'no2.npy'}",
                           "--out", tmp_path / "out")
    assert_one_line_error(code, err, "no.npy does not exist")
    code, _, err = run_cli(capsys, "data", "make-c", "--dataset", f"folder:{tmp_path / 'nothing'}")
    assert_one_line_error(code, err, "is not a folder")
    np.save(tmp_path / "x.npy", np.zeros((3, 8, 8, 3), np.uint8))
    np.save(tmp_path / "y.npy", np.arange(3))
    code, _, err = run_cli(capsys, "data", "make-c", "--dataset", f"npy:{tmp_path / 'x.npy'},{tmp_path / 'y.npy'}",
                           "--corruptions", "contrast")
    assert_one_line_error(code, err, "8×8 images", "at least 16×16 px")
    assert not (tmp_path / "x-C").exists()
    code, _, err = run_cli(capsys, "data", "make-c", "--dataset", "mnist5k", "--suite", f"cnpy:{tmp_path}")
    assert_one_line_error(code, err, "not one (use make-mnistc")
    code, _, err = run_cli(capsys, "data", "make-c")
    assert_one_line_error(code, err, "make-c needs --dataset")


# ---------------------------------------------------------------------------------------------------
# End to end: `data make-c`, then `eval --source files` gives the numbers of `--source generated`

FACTORY = '''import torch


def build():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
                               torch.nn.Flatten(), torch.nn.Linear(24, 3))
'''


@pytest.mark.parametrize("which", ["npy", "folder"])
def test_eval_from_make_c_files_reproduces_the_generated_suite(capsys, tmp_path, npy_48x40, folder_40x48, which,
                                                               monkeypatch):
    import pandas as pd

    monkeypatch.chdir(tmp_path)   # relative paths: the suite name goes into the results file name
    dataset = "npy:images.npy,labels.npy" if which == "npy" else "folder:mine"
    (tmp_path / "model.py").write_text(FACTORY)
    code, _, err = run_cli(capsys, "data", "make-c", "--dataset", dataset, "--seed", 4, "--corruptions",
                           "fog,glass_blur,contrast", "--device", "cpu")
    assert code == 0, err
    frames = {}
    # the documented form, and the one-string form
    suite = ["--dataset", dataset, "--suite", "c"] if which == "npy" else ["--suite", f"c:{dataset}"]
    for source in ("generated", "files"):
        code, out, err = run_cli(capsys, "eval", "--model", "python:model.py:build", *suite,
                                 "--source", source, "--seed", 4, "--corruptions",
                                 "fog,glass_blur,contrast", "--device", "cpu", "--results", tmp_path / source)
        assert code == 0, err
        assert "scale family cifar" in out
        (path,) = list((tmp_path / source).glob("*.parquet"))
        frames[source] = pd.read_parquet(path)
    keep = ["corruption", "severity", "n", "error", "nll", "ece", "rms_adaptive", "aurra"]
    generated, files = (frames[s][keep].sort_values(["corruption", "severity"]).reset_index(drop=True)
                        for s in ("generated", "files"))
    assert len(generated) == 1 + 3 * 5
    pd.testing.assert_frame_equal(generated, files, check_exact=True)
