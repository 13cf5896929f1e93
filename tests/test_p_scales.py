"""Tiny-ImageNet-P (64 px) and ImageNet-P (224 px): the per-scale constants of make_tinyimagenet_p.py and
make_imagenet_p.py, the context-then-crop geometry, the ImageNet-P folder layout (make-p → read back), and
flip-rate end to end on a tiny generated suite."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import typer
from PIL import Image
from skimage.filters import gaussian
from torch import nn
from typer.testing import CliRunner

from corrbench.cli.data_p import register
from corrbench.data.datasets import load_dataset
from corrbench.data.psuites import open_perturbation_suite
from corrbench.data.videop import GeneratedScaledPart, list_videos, read_video
from corrbench.errors import InvalidValueError, LayoutError, MissingDataError, UserError
from corrbench.perturbations import P_PERTURBATIONS
from corrbench.perturbations.geometric import torchvision02_inverse_affine
from corrbench.perturbations.scales import (IMAGENET_P, IMAGENET_P_TEST_PERTURBATIONS, TINY_P, brightness_shift,
                                            drip, gaussian_blur_sigma, generate_scaled_sequences, motion_blur_angle,
                                            scale_factor, snow_angle, tilt_degrees, zoom_factor)

EPS64 = np.finfo(np.float64).eps


def make_p(*args: object):
    app = typer.Typer()

    @app.callback()
    def data() -> None:
        """The `data` group."""

    register(app)
    return CliRunner().invoke(app, ["make-p", *[str(a) for a in args]])


def smooth_images(count: int, size: int, seed: int) -> np.ndarray:
    """Ramps plus mild noise, HWC uint8 (video codecs keep these close; random pixels they do not)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, size)[None, :, None] * rng.uniform(0.3, 1, (count, 1, 1, 3))
    return (ramp + rng.integers(0, 30, (count, size, size, 3))).clip(0, 255).astype(np.uint8)


def write_tiny(root, per_class: int = 2, classes_used: int = 2, seed: int = 0):
    """A Tiny ImageNet (cs231n layout, 200 wnids) with `per_class · classes_used` 64-px val images (PNG
    bytes in .JPEG names are not needed: PNG files, lossless, so pixels are known exactly)."""
    base = root / "tiny-imagenet-200"
    (base / "val" / "images").mkdir(parents=True)
    wnids = [f"n{index:08d}" for index in range(200)]
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    images = smooth_images(per_class * classes_used, 64, seed)
    lines = []
    for index, pixels in enumerate(images):
        name = f"val_{index}.png"
        Image.fromarray(pixels).save(base / "val" / "images" / name)
        lines.append(f"{name}\t{wnids[index // per_class]}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return images


def write_imagenet(root, seed: int = 0) -> list[np.ndarray]:
    """ILSVRC2012 val layout: 1000 wnid folders, two non-square PNG photos (256×320 and 300×256 px)."""
    val = root / "imagenet" / "val"
    for index in range(1000):
        (val / f"n{index:08d}").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    photos = []
    for index, (height, width) in enumerate(((256, 320), (300, 256))):
        ramp = np.linspace(0, 255, width)[None, :, None] * rng.uniform(0.3, 1, 3)
        pixels = (ramp + rng.integers(0, 40, (height, width, 3))).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(val / f"n{index:08d}" / f"ILSVRC2012_val_{index:08d}.png")
        photos.append(pixels)
    return photos


def chw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------------------------------------------
# constants (values read off make_tinyimagenet_p.py / make_imagenet_p.py by hand)

def test_per_scale_constants_match_the_reference_generators():
    assert (TINY_P.frame_size, TINY_P.context_size) == (64, 64)
    assert (IMAGENET_P.frame_size, IMAGENET_P.context_size) == (224, 256)
    assert TINY_P.gaussian_noise == (0.025, 0.05, 0.075) and IMAGENET_P.gaussian_noise == (0.03, 0.05, 0.08)
    assert TINY_P.shot_noise == (500, 250, 125) and IMAGENET_P.shot_noise == (300, 120, 60)
    assert TINY_P.speckle_noise == (0.05, 0.1, 0.15) and IMAGENET_P.speckle_noise == (0.05, 0.10, 0.15)
    assert TINY_P.motion_blur[:2] == (14.0, 3.0) and IMAGENET_P.motion_blur[:2] == (10.0, 3.0)
    assert [motion_blur_angle(TINY_P, t) for t in (0, 29, 30)] == [-150, -5, 0]        # (i - 30) * 5
    assert [motion_blur_angle(IMAGENET_P, t) for t in (0, 29, 30)] == [-120, -4, 0]    # (i - 30) * 4
    assert TINY_P.snow == (0.05, 0.28, 2.0, 10.0, 2.5) and IMAGENET_P.snow == (0.05, 0.3, 3.0, 14.0, 4.0)
    assert [snow_angle(t) for t in (0, 30)] == [-150, -30]
    assert gaussian_blur_sigma(TINY_P, 0) == 0.35 and gaussian_blur_sigma(TINY_P, 30) == pytest.approx(0.77)
    assert gaussian_blur_sigma(IMAGENET_P, 0) == 0.25 and gaussian_blur_sigma(IMAGENET_P, 30) == pytest.approx(1.3)
    assert TINY_P.gaussian_blur[2] == 7.0 and IMAGENET_P.gaussian_blur[2] == 6.0      # truncate
    assert TINY_P.spatter == (0.6, 0.25, 1.75, 0.7) and TINY_P.drip == (0.2, 0.8)
    assert IMAGENET_P.spatter == (0.65, 0.27, 3.7, 0.69) and IMAGENET_P.drip == (0.05, 0.1, 0.15, 0.7)
    assert brightness_shift(0) == pytest.approx(-0.3) and brightness_shift(15) == 0
    assert brightness_shift(30) == pytest.approx(0.3)
    assert scale_factor(0) == 0.4 and scale_factor(24) == 1.0 and scale_factor(30) == 1.15
    assert zoom_factor(0) == 1 and zoom_factor(30) == pytest.approx(1.12)
    assert [tilt_degrees(t) for t in (0, 15, 30)] == [-15, 0, 15]
    for name in P_PERTURBATIONS:
        assert TINY_P.frames(name) == 31, name
        assert IMAGENET_P.frames(name) == (31 if name != "translate" else 41), name


def test_drip_is_numpys_same_mode_convolution_down_each_column():
    rng = np.random.default_rng(3)
    liquid = rng.uniform(0, 1, (2, 9, 5))
    for kernel in (TINY_P.drip, IMAGENET_P.drip):
        expected = np.apply_along_axis(lambda column: np.convolve(column, np.array(kernel), mode="same"), 1, liquid)
        got = drip(torch.from_numpy(liquid), kernel).numpy()
        np.testing.assert_allclose(got, expected, rtol=0, atol=8 * EPS64)


# ---------------------------------------------------------------------------------------------------
# sequences

def test_every_sequence_has_its_shape_frame_rules_and_seeded_bytes():
    images = chw(smooth_images(2, 64, 1))
    for name in P_PERTURBATIONS:
        videos = generate_scaled_sequences(images, name, TINY_P, torch.Generator().manual_seed(5))
        assert videos.dtype == torch.uint8 and tuple(videos.shape) == (2, TINY_P.frames(name), 3, 64, 64), name
        again = generate_scaled_sequences(images, name, TINY_P, torch.Generator().manual_seed(5))
        assert torch.equal(videos, again), name
        if name in ("gaussian_noise", "shot_noise", "speckle_noise", "snow", "spatter"):
            other = generate_scaled_sequences(images, name, TINY_P, torch.Generator().manual_seed(6))
            assert not torch.equal(videos, other), name
        if name in ("gaussian_noise", "shot_noise", "speckle_noise", "zoom_blur"):
            assert torch.equal(videos[:, 0], images), name          # the clean frame first
    identity_frame = {"translate": 15, "rotate": 15, "shear": 15, "scale": 24}
    for name, t in identity_frame.items():
        assert torch.equal(generate_scaled_sequences(images, name, TINY_P)[:, t], images), name
    strong = generate_scaled_sequences(images, "gaussian_noise", TINY_P, torch.Generator().manual_seed(5),
                                       difficulty=3)
    weak = generate_scaled_sequences(images, "gaussian_noise", TINY_P, torch.Generator().manual_seed(5))
    spread = lambda v: (v[:, 1:].float() - images[:, None].float()).abs().mean()   # noqa: E731
    assert spread(strong) > 2 * spread(weak)
    with pytest.raises(InvalidValueError, match="1, 2 or 3"):
        generate_scaled_sequences(images, "shot_noise", TINY_P, torch.Generator(), difficulty=4)
    with pytest.raises(LayoutError, match="square uint8"):
        generate_scaled_sequences(images[..., :60], "rotate", TINY_P)


def test_imagenet_geometric_frames_transform_the_256_context_then_crop_224():
    context = chw(smooth_images(2, 256, 2))
    translate = generate_scaled_sequences(context, "translate", IMAGENET_P)
    assert tuple(translate.shape) == (2, 41, 3, 224, 224)
    # frame 0 shifts by −20 px: the crop shows context columns 36..259 — image content, zeros only past the context
    assert torch.equal(translate[:, 0, :, :, :220], context[:, :, 16:240, 36:256])
    assert not translate[:, 0, :, :, :220].eq(0).all()
    assert torch.equal(translate[:, 20], context[:, :, 16:240, 16:240])
    rotate = generate_scaled_sequences(context, "rotate", IMAGENET_P)
    for t in (0, 7, 30):   # Pillow's own transform of the context, then torchvision CenterCrop(224)
        coefficients = torchvision02_inverse_affine(angle=t - 15, scale=1.0, size=256)
        for b in range(2):
            pillow = np.asarray(Image.fromarray(context[b].permute(1, 2, 0).numpy()).transform(
                (256, 256), Image.AFFINE, coefficients, Image.BILINEAR))[16:240, 16:240]
            assert np.array_equal(rotate[b, t].permute(1, 2, 0).numpy(), pillow), (t, b)
    blur = generate_scaled_sequences(context, "gaussian_blur", IMAGENET_P)
    crop = context[:, :, 16:240, 16:240].permute(0, 2, 3, 1).numpy()
    for t in (0, 30):      # np.uint8(255·gaussian(x/255, σ_t, truncate=6)) on the centre crop
        for b in range(2):
            reference = np.uint8(255 * gaussian(crop[b] / 255.0, sigma=gaussian_blur_sigma(IMAGENET_P, t),
                                                truncate=6.0, channel_axis=-1))
            assert np.array_equal(blur[b, t].permute(1, 2, 0).numpy(), reference), (t, b)


# ---------------------------------------------------------------------------------------------------
# layouts

def test_tiny_make_p_writes_the_imagenet_p_layout_that_reads_back_as_generated(tmp_path):
    root = tmp_path / "data"
    images = write_tiny(root)
    chosen = "gaussian_noise,translate,spatter"
    written = make_p("--dataset", "tinyimagenet", "--data-root", root, "--seed", 4, "--device", "cpu",
                     "--perturbations", chosen, "--difficulty", 2)
    assert written.exit_code == 0, written.output
    folder = root / "Tiny-ImageNet-P"
    assert sorted(p.name for p in folder.iterdir()) == ["gaussian_noise_2", "spatter", "translate"]
    paths, classes = list_videos(folder / "translate")
    assert classes == ["n00000000", "n00000001"]
    assert [p.relative_to(folder).as_posix() for p in paths][:2] == ["translate/n00000000/val_0.npy",
                                                                     "translate/n00000000/val_1.npy"]
    assert read_video(paths[0], 64).shape == (31, 64, 64, 3)
    assert np.array_equal(read_video(paths[0], 64)[15], images[0])            # shift 0 is the clean image
    files = open_perturbation_suite("tinyimagenet-p", root, source="files", perturbations=chosen.split(","),
                                    difficulty=2)
    generated = open_perturbation_suite("tinyimagenet-p", root, source="generated", seed=4,
                                        perturbations=chosen.split(","), difficulty=2)
    for read, made in zip(files.parts, generated.parts):
        assert (read.perturbation, read.n, read.frames) == (made.perturbation, 4, made.frames)
        assert torch.equal(next(read.batches(3)), next(made.batches(3))[:3]), read.perturbation
    assert files.parts[0].folder.name == "gaussian_noise_2"
    again = make_p("--dataset", "tinyimagenet", "--data-root", root, "--perturbations", "translate")
    assert isinstance(again.exception, UserError) and "--overwrite" in str(again.exception)


def test_mp4_videos_round_trip_through_opencv(tmp_path):
    pytest.importorskip("cv2")
    root = tmp_path / "data"
    write_tiny(root, per_class=1)
    out = tmp_path / "TinyP-mp4"
    written = make_p("--dataset", "tinyimagenet", "--data-root", root, "--out", out, "--device", "cpu",
                     "--perturbations", "brightness", "--format", "mp4")
    assert written.exit_code == 0, written.output
    paths, _ = list_videos(out / "brightness")
    assert [p.suffix for p in paths] == [".mp4", ".mp4"]
    part = open_perturbation_suite("tinyimagenet-p", root, source="generated",
                                   perturbations=["brightness"]).parts[0]
    exact = next(part.batches(2)).permute(0, 1, 3, 4, 2).numpy().astype(int)
    for index, path in enumerate(paths):
        frames = read_video(path, 64)
        assert frames.shape == (31, 64, 64, 3)   # every frame comes back, in order, RGB
        # lossy codec: close on these smooth images, not equal
        assert np.abs(frames.astype(int) - exact[index]).mean() < 12


def test_imagenet_make_p_at_224_from_non_square_photos(tmp_path):
    root = tmp_path / "data"
    photos = write_imagenet(root)
    written = make_p("--dataset", "imagenet", "--data-root", root, "--device", "cpu",
                     "--perturbations", "translate,brightness")
    assert written.exit_code == 0, written.output
    paths, _ = list_videos(root / "ImageNet-P" / "translate")
    assert [p.name for p in paths] == ["ILSVRC2012_val_00000000.npy", "ILSVRC2012_val_00000001.npy"]
    frames = read_video(paths[0], 224)
    assert frames.shape == (41, 224, 224, 3)
    # Resize(256) leaves the 256×320 photo as it is: frame 20 (no shift) is its centre 224 crop
    assert np.array_equal(frames[20], photos[0][16:240, 48:272])
    # frame 0 (−20 px): content from outside the crop, within the 256 context, enters
    assert np.array_equal(frames[0][:, :204], photos[0][16:240, 68:272])
    files = open_perturbation_suite("imagenet-p", root, source="files")
    assert [p.perturbation for p in files.parts] == ["brightness", "translate"]     # test perturbations present
    generated = open_perturbation_suite("imagenet-p", root, source="generated", perturbations=["brightness"])
    assert torch.equal(next(files.parts[0].batches(2)), next(generated.parts[0].batches(2)))


def test_npy_dataset_of_another_size_keeps_its_size_with_the_nearest_scales_constants(tmp_path):
    images = smooth_images(2, 100, 4)                 # 100 px: the tiny family (46–119 px)
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "labels.npy", np.array([0, 1]))
    out = tmp_path / "mine-P"
    written = make_p("--dataset", f"npy:{tmp_path / 'images.npy'},{tmp_path / 'labels.npy'}", "--out", out,
                     "--device", "cpu", "--perturbations", "rotate,gaussian_noise")
    assert written.exit_code == 0, written.output
    paths, classes = list_videos(out / "rotate")
    assert classes == ["0", "1"] and [p.name for p in paths] == ["000000.npy", "000001.npy"]
    frames = read_video(paths[1], 100)
    assert frames.shape == (31, 100, 100, 3) and np.array_equal(frames[15], images[1])
    noisy = read_video(list_videos(out / "gaussian_noise")[0][0], 100).astype(int)
    assert np.array_equal(noisy[0], images[0])
    # tiny constants: σ = 0.025, so frame-to-clean differences are a few levels, not CIFAR's 0.02 or ImageNet's 0.03
    middle = (images[0] > 40) & (images[0] < 215)     # away from the clip at 0 and 255
    spread = (noisy[1:] - images[0].astype(int))[:, middle].std()
    assert 0.025 * 255 * 0.9 < spread < 0.025 * 255 * 1.1


def test_video_layout_errors_are_one_clear_line(tmp_path, monkeypatch):
    folder = tmp_path / "ImageNet-P" / "rotate" / "n00000000"
    folder.mkdir(parents=True)
    np.save(folder / "a.npy", np.zeros((31, 224, 224, 3), np.uint8))
    np.save(folder / "b.npy", np.zeros((30, 224, 224, 3), np.uint8))
    part = open_perturbation_suite("imagenet-p", tmp_path, source="files", perturbations=["rotate"]).parts[0]
    with pytest.raises(LayoutError, match="b.npy has 30 frames but a.npy has 31"):
        list(part.batches(2))
    np.save(folder / "b.npy", np.zeros((31, 100, 100, 3), np.uint8))
    with pytest.raises(LayoutError, match="100×100 frames; this suite needs at least 224×224"):
        list(part.batches(2))
    (folder / "c.mp4").write_bytes(b"")
    with pytest.raises(LayoutError, match="mixes .mp4 and .npy"):
        open_perturbation_suite("imagenet-p", tmp_path, source="files", perturbations=["rotate"])
    with pytest.raises(MissingDataError, match="ImageNet-P/tilt not found.*--source generated"):
        open_perturbation_suite("imagenet-p", tmp_path, source="files", perturbations=["tilt"])
    monkeypatch.setitem(__import__("sys").modules, "cv2", None)   # OpenCV not installed
    with pytest.raises(MissingDataError, match="pip install opencv-python"):
        read_video(folder / "c.mp4", 224)
    written = make_p("--dataset", "mnist5k", "--out", tmp_path / "x", "--format", "mp4")
    assert isinstance(written.exception, InvalidValueError) and "64- and 224-px" in str(written.exception)
    written = make_p("--dataset", "mnist5k", "--out", tmp_path / "x", "--format", "avi")
    assert isinstance(written.exception, InvalidValueError) and "npy or mp4" in str(written.exception)
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------------------
# flip-rate

class TinyNet(nn.Module):
    """A fixed random 200-class classifier on 64-px images (weights from a seeded generator)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 6, 8, stride=8)
        self.head = nn.Linear(6 * 8 * 8, 200)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.features(x)).flatten(1))


def reference_flip_prob(predictions: np.ndarray, noise: bool, difficulty: int) -> float:
    """ImageNet-P/test.py's flip_prob, loop for loop."""
    step = 1 if noise else difficulty
    result = 0.0
    for video in predictions:
        flips = []
        for i in range(step):
            previous = video[i]
            for prediction in video[i::step][1:]:
                flips.append(int(previous != prediction))
                if not noise:
                    previous = prediction
        result += np.mean(flips) / len(predictions)
    return result


def reference_top5_distance(logits: np.ndarray, noise: bool, difficulty: int) -> float:
    """ImageNet-P/test.py's ranking_dist(mode='top5') with scipy's ordinal ranks, loop for loop."""
    from scipy.stats import rankdata

    classes = logits.shape[-1]
    cum_sum_top5 = np.cumsum(np.asarray([0] + [1] * 5 + [0] * (classes - 1 - 5)))
    step = 1 if noise else difficulty
    result = 0.0
    for video in logits:
        ranks = [rankdata(-frame, method="ordinal") for frame in video]
        distances = []
        for i in range(step):
            inverse = np.argsort(ranks[i])
            for rank in ranks[i::step][1:]:
                sigma = rank[inverse]
                distances.append(np.sum(np.abs(cum_sum_top5[:5] - cum_sum_top5[sigma - 1][:5])))
                if not noise:
                    inverse = np.argsort(rank)
        result += np.mean(distances) / len(logits)
    return result


def test_flip_rate_on_a_tiny_generated_suite_end_to_end(tmp_path):
    from corrbench.engine.flip_rate import flip_rate

    root = tmp_path / "data"
    write_tiny(root)
    # ImageNet-P's test sequences (snow in, spatter out: the generators' "Test Data"), unlike cifar-p-eval's
    suite = open_perturbation_suite("tinyimagenet-p", root, source="generated")
    assert [part.perturbation for part in suite.parts] == list(IMAGENET_P_TEST_PERTURBATIONS)
    assert "snow" in suite.test_perturbations and "spatter" not in suite.test_perturbations
    model = TinyNet().eval()
    chosen = ["gaussian_noise", "rotate"]
    for difficulty in (1, 2):
        result = flip_rate(model, "tinyimagenet-p", data_root=root, source="generated", seed=1,
                           perturbations=chosen, difficulty=difficulty, device="cpu", results_dir=None)
        rows = result.rows.set_index("corruption")
        assert rows["n"].tolist() == [4, 4] and set(rows["source"]) == {"generated"} and rows["benchmark"].all()
        for name in chosen:
            part = GeneratedScaledPart(load_dataset("tinyimagenet", "test", root), name, difficulty, TINY_P, 1,
                                       torch.device("cpu"))
            videos = next(part.batches(4))
            with torch.no_grad():
                logits = model(videos.flatten(0, 1).float() / 255).reshape(4, 31, -1)
            predictions = logits.argmax(-1).numpy()
            expected = reference_flip_prob(predictions, "noise" in name, difficulty)
            assert rows.loc[name, "flip_probability"] == pytest.approx(expected, rel=0, abs=1e-12), (name, difficulty)
            expected = reference_top5_distance(logits.numpy(), "noise" in name, difficulty)
            assert rows.loc[name, "top5_distance"] == pytest.approx(expected, rel=0, abs=1e-12), (name, difficulty)
    # the same numbers from make-p's files
    written = make_p("--dataset", "tinyimagenet", "--data-root", root, "--seed", 1, "--device", "cpu",
                     "--perturbations", ",".join(chosen))
    assert written.exit_code == 0, written.output
    from_files = flip_rate(model, "tinyimagenet-p", data_root=root, source="files", perturbations=chosen,
                           device="cpu", results_dir=None).rows.set_index("corruption")
    generated = flip_rate(model, "tinyimagenet-p", data_root=root, source="generated", seed=1, perturbations=chosen,
                          device="cpu", results_dir=None).rows.set_index("corruption")
    for column in ("flip_probability", "top5_distance"):
        np.testing.assert_allclose(from_files[column], generated[column], rtol=0, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_scaled_sequences_give_the_cpu_bytes_on_cuda():
    """The per-scale sequences on CUDA (draws from a CPU generator) equal the CPU's bytes."""
    for scale, side in ((TINY_P, 64), (IMAGENET_P, 256)):
        context = chw(smooth_images(2, side, 7))
        for name in P_PERTURBATIONS:
            for difficulty in ((1, 2, 3) if "noise" in name else (1,)):
                cpu = generate_scaled_sequences(context, name, scale, torch.Generator().manual_seed(difficulty),
                                                difficulty=difficulty)
                cuda = generate_scaled_sequences(context.cuda(), name, scale,
                                                 torch.Generator().manual_seed(difficulty), difficulty=difficulty)
                assert torch.equal(cpu, cuda.cpu()), (scale.name, name, difficulty)
