"""The fused per-image augmentation path (`corrbench.augment.fused`, used on accelerators) gives the
grouped path's bytes, on edge-case images too, and (on CUDA) never waits for the device."""
from __future__ import annotations

import functools

import pytest
import torch

from corrbench.augment import augmix as augmix_module
from corrbench.augment import ops, per_image, policies
from corrbench.augment.augmix import ROTATION_ANGLES, augmix
from corrbench.augment.policies import auto_augment, rand_augment, trivial_augment_wide

SIZE = 32


def edge_images() -> torch.Tensor:
    """Constant black / grey / white, one bright pixel on black, one dark pixel on white, a checkerboard,
    two halves, two adjacent levels, and noise: where min/max, histograms and divisions degenerate."""
    def constant(value: int) -> torch.Tensor:
        return torch.full((3, SIZE, SIZE), value, dtype=torch.uint8)

    one_bright, one_dark, two_levels = constant(0), constant(255), constant(254)
    one_bright[:, 5, 7], one_dark[:, 5, 7], two_levels[:, 0, 0] = 255, 0, 255
    checker = ((torch.arange(SIZE)[:, None] + torch.arange(SIZE)[None]) % 2 * 255).to(torch.uint8).expand(3, -1, -1)
    halves = constant(0)
    halves[:, :, SIZE // 2:] = 255
    noise = torch.randint(0, 256, (3, SIZE, SIZE), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    return torch.stack([constant(0), constant(128), constant(255), one_bright, one_dark, checker, halves, two_levels,
                        noise])


def magnitudes_for(names: list[str], op: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A valid random magnitude per image for the op it drew (ranges of AugMix and the policies)."""
    n = op.shape[0]
    unit = torch.rand(n, generator=generator, dtype=torch.float64)
    by_op = {
        "posterize": torch.randint(0, 9, (n,), generator=generator).double(),
        "solarize": torch.randint(0, 257, (n,), generator=generator).double(),
        "rotate": torch.randint(-30, 31, (n,), generator=generator).double(),
        "translate_x": torch.randint(-SIZE, SIZE + 1, (n,), generator=generator).double(),
        "translate_y": (unit - 0.5) * 20,
        "shear_x": (unit - 0.5) * 2, "shear_y": (unit - 0.5) * 0.6,
    }
    magnitude = 2 * unit    # enhance factors 0..2; ignored by magnitude-free ops
    for index, name in enumerate(names):
        if name in by_op:
            magnitude = torch.where(op == index, by_op[name], magnitude)
    return magnitude


@pytest.mark.parametrize("resample", ["nearest", "bilinear"])
def test_fused_path_gives_the_grouped_paths_bytes_for_every_op_mix(resample):
    generator = torch.Generator().manual_seed(1)
    images = torch.cat([edge_images(), torch.randint(0, 256, (60, 3, SIZE, SIZE), generator=generator,
                                                     dtype=torch.uint8)])
    names = list(ops.OP_NAMES)
    for _ in range(3):
        op = torch.randint(-1, len(names), (images.shape[0],), generator=generator)
        magnitude = magnitudes_for(names, op, generator)
        grouped = per_image.apply_per_image(images, op, magnitude, names, resample, fused=False)
        assert torch.equal(per_image.apply_per_image(images, op, magnitude, names, resample, fused=True,
                                               rotation_angles=ROTATION_ANGLES), grouped)
        assert torch.equal(per_image.apply_per_image(images, op, magnitude, names, resample, fused=True), grouped)


@pytest.mark.parametrize("augment", [
    functools.partial(augmix, all_ops=True), functools.partial(augmix, severity=10),
    trivial_augment_wide, auto_augment, rand_augment])
def test_every_augmentation_gives_the_same_bytes_on_the_fused_path(augment, monkeypatch):
    images = edge_images().repeat(6, 1, 1, 1)
    grouped = augment(images, torch.Generator().manual_seed(3))
    fused = functools.partial(per_image.apply_per_image, fused=True)
    monkeypatch.setattr(augmix_module, "apply_per_image", fused)
    monkeypatch.setattr(policies, "apply_per_image", fused)
    assert torch.equal(augment(images, torch.Generator().manual_seed(3)), grouped)


def test_augmix_views_of_edge_images_are_finite_and_in_unit_range():
    images = edge_images().repeat(20, 1, 1, 1)
    for severity in (3, 10):
        view = augmix(images, torch.Generator().manual_seed(severity), severity=severity, all_ops=True)
        assert bool(torch.isfinite(view).all()) and float(view.min()) >= 0 and float(view.max()) <= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("augment", [augmix, trivial_augment_wide, auto_augment, rand_augment])
def test_augmentations_on_cuda_never_wait_for_the_device_and_match_the_grouped_path(augment, monkeypatch):
    images = edge_images().repeat(8, 1, 1, 1).cuda()
    augment(images, torch.Generator("cuda").manual_seed(5))      # warm-up: lazy CUDA init, cached tables
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        fused = augment(images, torch.Generator("cuda").manual_seed(5))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    grouped_path = functools.partial(per_image.apply_per_image, fused=False)
    monkeypatch.setattr(augmix_module, "apply_per_image", grouped_path)
    monkeypatch.setattr(policies, "apply_per_image", grouped_path)
    assert torch.equal(augment(images, torch.Generator("cuda").manual_seed(5)), fused)
