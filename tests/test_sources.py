"""Model sources and the Python API: timm, torchvision, hf-hub, TorchScript, python: factories, nn.Modules and
corrbench runs evaluated on a CIFAR-10-C-layout folder equal an independent loop (torchvision's tensor
transforms + the model), the API equals the CLI, and every bad input is one line, exit 2, nothing written."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
import torchvision.transforms.v2.functional as TF

import corrbench
from corrbench.cli.app import main
from corrbench.engine.sources import Preprocessing, load_class_map

from conftest import write_cifar10
from test_evaluate import build_cifar10_c

CORRUPTIONS = ["gaussian_noise", "contrast"]
MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)


def run_cli(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A data root with the tiny CIFAR-10 (same bytes as conftest's cifar_root) and a CIFAR-10-C folder."""
    root = tmp_path_factory.mktemp("sources-data")
    images, labels = write_cifar10(root)
    folder = build_cifar10_c(root, images, labels, corruptions=CORRUPTIONS)
    return root, folder, labels


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """As `data` with 8 test images (evaluated at severity 1 only): for models run at 224 px on CPU."""
    root = tmp_path_factory.mktemp("sources-small-data")
    images, labels = write_cifar10(root, n_train=50, n_test=8)
    folder = build_cifar10_c(root, images, labels, corruptions=CORRUPTIONS)
    return root, folder, labels


def suite_parts(folder: Path, labels: np.ndarray, severities=(1, 3)):
    """(corruption, severity, uint8 N×3×32×32) of the clean set and the chosen -C blocks, read with numpy."""
    n = len(labels)
    parts = []
    for corruption in CORRUPTIONS:
        data = np.load(folder / f"{corruption}.npy")
        for severity in severities:
            parts.append((corruption, severity, torch.from_numpy(data[(severity - 1) * n:severity * n]).permute(0, 3, 1, 2)))
    return parts


def clean_images(root: Path) -> torch.Tensor:
    from corrbench.data.datasets import load_dataset
    return load_dataset("cifar10", "test", root).tensor()


def reference_errors(model: nn.Module, root: Path, folder: Path, labels: np.ndarray, *, size: int | None = None,
                     resize: int | None = None, interpolation=TF.InterpolationMode.BICUBIC, mean=None, std=None,
                     logit_index=None, severities=(1, 3)) -> dict[tuple[str, int], float]:
    """Per (corruption, severity) error by an independent loop: torchvision's functional transforms on float
    tensors, then the model, one image batch at a time."""
    model = model.eval()
    out = {}
    for corruption, severity, images in [("clean", 0, clean_images(root))] + suite_parts(folder, labels, severities):
        x = images.float() / 255
        if resize is not None:
            x = TF.resize(x, [resize], interpolation=interpolation, antialias=True)
            x = TF.center_crop(x, [size, size])
        if mean is not None:
            x = TF.normalize(x, list(mean), list(std))
        with torch.no_grad():
            logits = model(x)
        if logit_index is not None:
            logits = logits[:, logit_index]
        out[(corruption, severity)] = float(np.mean(logits.argmax(1).numpy() != labels))
    return out


def assert_errors_equal(rows: pd.DataFrame, expected: dict[tuple[str, int], float]) -> None:
    got = {(r.corruption, int(r.severity)): float(r.error) for r in rows.itertuples()}
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


def eval_args(root: Path, results: Path, *extra, severities: str = "1,3") -> list:
    return ["eval", "--suite", "cifar10-c", "--data-root", root, "--source", "files", "--corruptions",
            ",".join(CORRUPTIONS), "--severities", severities, "--device", "cpu", "--results", results, *extra]


def read_rows(results: Path) -> pd.DataFrame:
    files = sorted(results.glob("eval__*.parquet"))
    assert len(files) == 1, files
    return pd.read_parquet(files[0])


def small_cnn(in_channels: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 10))


FACTORY = '''
import torch
import torch.nn as nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 10))


def grey():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))


def not_a_module():
    return 42


def broken():
    raise ValueError("no weights here")
'''


@pytest.fixture(scope="module")
def factory_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("factory") / "my_models.py"
    path.write_text(FACTORY)
    return path


# ------------------------------------------------------------------------------------------ sources

def test_timm_weights_file_matches_an_independent_loop(capsys, small_data, tmp_path):
    import timm
    from safetensors.torch import save_file
    root, folder, labels = small_data
    model = timm.create_model("resnet18", num_classes=10)
    save_file(model.state_dict(), str(tmp_path / "resnet18_c10.safetensors"))
    code, out, err = run_cli(capsys, *eval_args(root, tmp_path / "results", "--model", "timm:resnet18",
                                                "--weights", tmp_path / "resnet18_c10.safetensors", severities="1"))
    assert code == 0, err
    rows = read_rows(tmp_path / "results")
    config = timm.data.resolve_model_data_config(model)   # resnet18.a1_in1k: 224 px, bicubic, crop 0.95
    size = config["input_size"][1]
    expected = reference_errors(model, root, folder, labels, size=size, resize=math.floor(size / config["crop_pct"]),
                                mean=config["mean"], std=config["std"], severities=(1,))
    assert_errors_equal(rows, expected)
    row = rows.iloc[0]
    assert row["model_source"] == "timm:resnet18" and row["label"] == "timm:resnet18"
    assert row["method"] == "external" and row["dataset"] == "cifar10" and row["arch"] == "resnet18"
    assert row["precision"] == "fp32" and row["class_map"] == "" and row["run_config"] == ""
    assert row["run_id"].startswith("timm-resnet18-") and row["weights_sha256"][:8] == row["run_id"][-8:]
    preprocessing = json.loads(row["preprocessing"])
    assert preprocessing["resize"] == 235 and preprocessing["input_size"] == [3, 224, 224]
    assert preprocessing["interpolation"] == "bicubic" and preprocessing["mean"] == list(config["mean"])


def test_torchvision_weights_file_and_enum_from_the_hub_cache(capsys, data, small_data, tmp_path, monkeypatch):
    import torchvision
    root, folder, labels = data
    # a local file: the model's DEFAULT weights' transforms (bilinear, resize 256, crop 224) unless overridden
    model = torchvision.models.resnet18(num_classes=10)
    torch.save(model.state_dict(), tmp_path / "r18.pth")
    code, _, err = run_cli(capsys, *eval_args(root, tmp_path / "results", "--model", "torchvision:resnet18",
                                              "--weights", tmp_path / "r18.pth", "--input-size", "3,32,32",
                                              "--mean", ",".join(map(str, MEAN)), "--std", ",".join(map(str, STD))))
    assert code == 0, err
    expected = reference_errors(model, root, folder, labels, mean=MEAN, std=STD)   # 32 px: no resize
    assert_errors_equal(read_rows(tmp_path / "results"), expected)

    # an enum name, read offline from the torch hub cache; 1000 logits → the dataset's 10 classes by a class map
    root, folder, labels = small_data   # 224 px from here on
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    imagenet_model = torchvision.models.resnet18()
    cache = tmp_path / "torch-home" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(imagenet_model.state_dict(), cache / Path(weights.url).name)
    class_map = tmp_path / "cifar_in_imagenet.txt"
    index = [7, 100, 250, 333, 404, 500, 611, 720, 850, 999]
    class_map.write_text("# made-up map for the test\n" + "".join(f"class{i} {j}\n" for i, j in enumerate(index)))
    result = corrbench.evaluate("torchvision:resnet18", "cifar10-c", weights="IMAGENET1K_V1", class_map=class_map,
                                data_root=root, source="files", corruptions=CORRUPTIONS, severities=[1],
                                device="cpu")
    expected = reference_errors(imagenet_model, root, folder, labels, size=224, resize=256,
                                interpolation=TF.InterpolationMode.BILINEAR, mean=weights.transforms().mean,
                                std=weights.transforms().std, logit_index=index, severities=(1,))
    assert_errors_equal(result.rows, expected)
    assert result.rows["class_map"].iloc[0] == str(class_map) and result.path is None
    assert result.rows["model_source"].iloc[0] == "torchvision:resnet18.IMAGENET1K_V1"


def test_torchscript_and_python_factory_match_an_independent_loop(capsys, data, factory_file, tmp_path):
    root, folder, labels = data
    model = small_cnn()
    scripted = torch.jit.script(model)
    scripted.save(str(tmp_path / "cnn.pt"))
    normalise = ["--mean", ",".join(map(str, MEAN)), "--std", ",".join(map(str, STD))]
    expected = reference_errors(model, root, folder, labels, mean=MEAN, std=STD)
    code, _, err = run_cli(capsys, *eval_args(root, tmp_path / "ts", "--model", f"torchscript:{tmp_path / 'cnn.pt'}",
                                              *normalise))
    assert code == 0, err
    assert_errors_equal(read_rows(tmp_path / "ts"), expected)

    trained = small_cnn()
    with torch.no_grad():
        trained[-1].bias.add_(torch.arange(10.0) / 10)   # weights that differ from the factory's own
    torch.save(trained.state_dict(), tmp_path / "trained.pth")
    code, _, err = run_cli(capsys, *eval_args(root, tmp_path / "py", "--model", f"python:{factory_file}:build",
                                              "--weights", tmp_path / "trained.pth", *normalise, "--label", "mine"))
    assert code == 0, err
    rows = read_rows(tmp_path / "py")
    assert_errors_equal(rows, reference_errors(trained, root, folder, labels, mean=MEAN, std=STD))
    assert set(rows["label"]) == {"mine"} and rows["model_source"].iloc[0] == f"python:{factory_file}:build"

    # the Python API on the same nn.Module gives the CLI's numbers, and writes nothing unless asked
    api = corrbench.evaluate(trained, "cifar10-c", mean=MEAN, std=STD, data_root=root, source="files",
                             corruptions=CORRUPTIONS, severities=[1, 3], device="cpu")
    assert api.path is None
    metrics = ["error", "nll", "ece", "rms_adaptive", "rms_equal_width", "aurra"]
    pd.testing.assert_frame_equal(api.rows[metrics], rows[metrics])
    assert api.rows["model_source"].iloc[0] == "module:Sequential"
    assert set(api.samples) == {(c, s) for c, s in zip(rows["corruption"], rows["severity"])}
    last = api.rows.iloc[-1]
    stats = api.samples[("contrast", 3)]
    assert stats.correct.mean() == pytest.approx(1 - last["error"])
    unpacked = np.unpackbits(np.frombuffer(last["sample_correct"], np.uint8), count=int(last["n"]), bitorder="little")
    assert np.array_equal(unpacked.astype(bool), stats.correct)   # per-image data in the row, suite order
    assert np.array_equal(np.frombuffer(last["sample_confidence"], "<f2"), stats.confidence.astype("<f2"))


def test_hf_hub_model_from_the_local_hub_cache(data, tmp_path, monkeypatch):
    import huggingface_hub.constants as hub
    import timm
    from safetensors.torch import save_file
    root, folder, labels = data
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "models--someone--cifar-cnn"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    config = {"input_size": [3, 32, 32], "interpolation": "bilinear", "mean": list(MEAN), "std": list(STD),
              "crop_pct": 1.0, "num_classes": 10}
    (snapshot / "config.json").write_text(json.dumps({"architecture": "resnet18", "num_classes": 10,
                                                      "pretrained_cfg": config}))
    model = timm.create_model("resnet18", num_classes=10)
    save_file(model.state_dict(), str(snapshot / "model.safetensors"))
    result = corrbench.evaluate("hf-hub:someone/cifar-cnn", "cifar10-c", data_root=root, source="files",
                                corruptions=CORRUPTIONS, severities=[1, 3], device="cpu")
    assert_errors_equal(result.rows, reference_errors(model, root, folder, labels, mean=MEAN, std=STD))
    assert result.rows["model_source"].iloc[0] == "hf-hub:someone/cifar-cnn"


def test_a_run_gives_the_same_numbers_through_checkpoint_and_the_api(capsys, cifar_run, data, tmp_path):
    root, _, _ = data
    code, _, err = run_cli(capsys, *eval_args(root, tmp_path / "results", "--checkpoint", cifar_run))
    assert code == 0, err
    cli_rows = read_rows(tmp_path / "results")
    api = corrbench.evaluate(cifar_run, "cifar10-c", data_root=root, source="files", corruptions=CORRUPTIONS,
                             severities=[1, 3], device="cpu")
    metrics = ["error", "nll", "ece", "rms_adaptive", "aurra"]
    pd.testing.assert_frame_equal(api.rows[metrics], cli_rows[metrics])
    row = cli_rows.iloc[0]
    assert row["model_source"] == f"run:{row['run_id']}" and row["label"] == row["run_id"]
    assert row["checkpoint_epoch"] == 1 and bool(row["checkpoint_complete"]) and len(row["weights_sha256"]) == 64
    assert json.loads(row["preprocessing"])["normalisation"] == "inside the model"
    assert json.loads(row["run_config"])["method"] == row["method"] == "standard"
    assert api.rows["run_config"].iloc[0] == row["run_config"]


def test_calibrate_and_flip_rate_take_model_sources(capsys, data, factory_file, tmp_path):
    root, _, _ = data
    normalise = ["--mean", ",".join(map(str, MEAN)), "--std", ",".join(map(str, STD))]
    code, out, err = run_cli(capsys, "calibrate", "--model", f"python:{factory_file}:build", *normalise,
                             "--suite", "cifar10-c", "--data-root", root, "--source", "files", "--corruptions",
                             "contrast", "--severities", "2", "--fit-images", "100", "--device", "cpu",
                             "--results", tmp_path)
    assert code == 0, err
    rows = pd.read_parquet(next(tmp_path.glob("calibrate__*.parquet")))
    assert len(rows) == 4 and set(rows["method"]) == {"external"}
    assert "cifar10 training images" in out and len(list((tmp_path / "plots").glob("*.png"))) == 4

    code, out, err = run_cli(capsys, "flip-rate", "--model", f"python:{factory_file}:build", *normalise,
                             "--suite", "mnist5k-p", "--source", "generated", "--perturbations", "gaussian_noise",
                             "--limit", "3", "--data-root", tmp_path / "data", "--device", "cpu", "--results", tmp_path)
    assert code == 0, err
    flips = pd.read_parquet(next(tmp_path.glob("flip-rate__*.parquet")))
    assert list(flips["corruption"]) == ["gaussian_noise"] and flips["n"].item() == 3
    assert flips["model_source"].item() == f"python:{factory_file}:build" and 0 <= flips["flip_probability"].item() <= 1


def test_precision_fp32_is_the_default_and_bf16_is_recorded(data):
    root, _, _ = data
    common = dict(data_root=root, source="files", corruptions=["contrast"], severities=[1], device="cpu")
    default = corrbench.evaluate(small_cnn(), "cifar10-c", **common).rows
    fp32 = corrbench.evaluate(small_cnn(), "cifar10-c", precision="fp32", **common).rows
    varying = ["timestamp"]
    pd.testing.assert_frame_equal(default.drop(columns=varying), fp32.drop(columns=varying))
    assert set(default["precision"]) == {"fp32"}
    bf16 = corrbench.evaluate(small_cnn(), "cifar10-c", precision="bf16", **common).rows
    assert set(bf16["precision"]) == {"bf16"} and set(bf16["run_id"]) == set(fp32["run_id"])


# ------------------------------------------------------------------------------------------ preprocessing, maps

def test_preprocessing_resize_rule():
    timm_like = Preprocessing(mean=MEAN, std=STD, input_size=(3, 224, 224), interpolation="bicubic", crop_pct=0.95)
    assert timm_like.resize_for(32, 32) == 235
    assert timm_like.resize_for(224, 224) is None          # ImageNet-C images are already the crop
    images = torch.randint(0, 256, (2, 3, 40, 48), dtype=torch.uint8)
    out = timm_like(images)
    assert out.shape == (2, 3, 224, 224)
    expected = TF.normalize(TF.center_crop(TF.resize(images.float() / 255, [235], antialias=True,
                                                     interpolation=TF.InterpolationMode.BICUBIC), [224, 224]),
                            list(MEAN), list(STD))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_bundled_class_maps():
    imagenet_r = load_class_map("imagenet-r-200")
    tiny = load_class_map("tinyimagenet-200")
    assert len(imagenet_r.classes) == len(tiny.classes) == 200
    assert list(imagenet_r.classes) == sorted(imagenet_r.classes)
    # hendrycks/imagenet-r eval.py lists the first indices of the mask: 1, 2, 4, 6, 8, 9, 11, 13, 22, 23 …
    assert list(imagenet_r.indices[:10]) == [1, 2, 4, 6, 8, 9, 11, 13, 22, 23] and imagenet_r.indices[-1] == 988
    assert tiny.classes[0] == "n02124075" and tiny.indices[0] == 285   # Egyptian cat
    shuffled = list(reversed(tiny.classes))
    assert load_class_map("tinyimagenet-200").index_for(shuffled, "tinyimagenet").tolist() == list(reversed(tiny.indices))


# ------------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("extra, fragments", [
    (["--model", "foo:bar"], ["unknown model source 'foo:bar'", "timm:", "torchscript:"]),
    (["--model", "timm:resnet181"], ["timm has no model 'resnet181'", "did you mean"]),
    (["--model", "timm:resnet18.nonexist"], ["no pretrained tag 'nonexist' for resnet18", "a1_in1k"]),
    (["--model", "torchvision:resnet181", "--weights", "x.pth"], ["torchvision has no model 'resnet181'"]),
    (["--model", "robustbench:Standard"], ["robustbench"]),
    (["--model", "python:nowhere.py:build"], ["no file nowhere.py"]),
    (["--model", "timm:resnet18", "--mean", "0.5,0.5", "--std", "0.2,0.2,0.2"], ["--mean needs 3 values"]),
    (["--model", "timm:resnet18", "--precision", "fp16"], ["--precision must be one of fp32, bf16"]),
    (["--model", "timm:resnet18", "--class-map", "imagenet-r-20"], ["did you mean imagenet-r-200"]),
    ([], ["exactly one of --checkpoint"]),
])
def test_bad_model_options_are_one_line(capsys, data, tmp_path, extra, fragments):
    root, _, _ = data
    code, _, err = run_cli(capsys, *eval_args(root, tmp_path / "results", *extra))
    assert_one_line_error(code, err, *fragments)
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").iterdir())


def test_bad_models_are_one_line(capsys, data, factory_file, tmp_path, monkeypatch, cifar_run):
    import huggingface_hub.constants as hub
    import timm
    import torchvision
    root, _, _ = data
    results = tmp_path / "results"
    torch.save(timm.create_model("resnet18", num_classes=10).state_dict(), tmp_path / "r18.pth")
    (tmp_path / "not_torchscript.pt").write_text("hello")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    cases = [
        (["--model", "timm:resnet34", "--weights", tmp_path / "r18.pth"], ["do not fit timm resnet34"]),
        (["--model", "timm:resnet18"], ["not found in the local cache", "empty-hub", "--weights FILE"]),
        (["--model", "torchvision:resnet18", "--weights", "IMAGENET1K_V1"],
         ["not in the torch hub cache", "empty-torch-home"]),
        (["--model", f"torchscript:{tmp_path / 'not_torchscript.pt'}"], ["is not a TorchScript file"]),
        (["--model", f"python:{factory_file}:not_a_module"], ["returned int, not an nn.Module"]),
        (["--model", f"python:{factory_file}:broken"], ["raised ValueError: no weights here"]),
        (["--model", f"python:{factory_file}:missing"], ["no function 'missing'", "build"]),
        (["--model", f"python:{factory_file}:grey"], ["fails on a batch of cifar10 images"]),
        (["--checkpoint", cifar_run, "--model", "timm:resnet18"], ["exactly one of"]),
        (["--checkpoint", cifar_run, "--mean", "0.5,0.5,0.5"], ["--mean apply to --model sources"]),
    ]
    torchvision_model = torchvision.models.resnet18()
    cache = tmp_path / "tv-home" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(torchvision_model.state_dict(),
               cache / Path(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url).name)
    for extra, fragments in cases:
        code, _, err = run_cli(capsys, *eval_args(root, results, *extra))
        assert_one_line_error(code, err, *fragments)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "tv-home"))
    code, _, err = run_cli(capsys, *eval_args(root, results, "--model", "torchvision:resnet18", "--weights",
                                              "IMAGENET1K_V1"))
    assert_one_line_error(code, err, "has 1000 outputs but cifar10 has 10 classes", "--class-map")
    assert not results.exists() or not list(results.iterdir())
