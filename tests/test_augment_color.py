"""Colour jitter and random rotation (MAGN's preprocessing; mollification's RandomRotation(15)),
checked image by image against Pillow with the same draws, and the `preprocess` run setting."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance

from corrbench.augment.color import apply_preprocess, color_jitter, parse_preprocess, random_rotation
from corrbench.config import RunConfig, apply_overrides
from corrbench.errors import UnknownNameError, UserError


def batch(n: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 16, 16), generator=g, dtype=torch.uint8)


def to_pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray(image.permute(1, 2, 0).numpy())


def from_pil(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def test_color_jitter_equals_pillow_enhancements_in_the_drawn_order():
    images = batch()
    out = color_jitter(images, 0.25, torch.Generator().manual_seed(5))
    # the same draws, replayed: factors U(0.75, 1.25) per image and op, then a random order per image
    g = torch.Generator().manual_seed(5)
    factors = 0.75 + 0.5 * torch.rand(6, 3, generator=g, dtype=torch.float64)
    order = torch.argsort(torch.rand(6, 3, generator=g), dim=1)
    enhancers = (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color)
    for i in range(6):
        reference = to_pil(images[i])
        for op in order[i].tolist():
            reference = enhancers[op](reference).enhance(float(factors[i, op]))
        assert torch.equal(out[i], from_pil(reference)), f"image {i}"
    assert len({tuple(o) for o in order.tolist()}) > 1   # the order really varies per image


def test_random_rotation_equals_pillow_rotate_nearest():
    images = batch()
    out = random_rotation(images, 2.0, torch.Generator().manual_seed(9))
    angles = (2 * torch.rand(6, generator=torch.Generator().manual_seed(9), dtype=torch.float64) - 1) * 2.0
    assert float(angles.abs().max()) <= 2.0
    for i in range(6):
        reference = to_pil(images[i]).rotate(float(angles[i]), Image.NEAREST)
        assert torch.equal(out[i], from_pil(reference)), f"image {i}"


def test_steps_are_seeded_and_empty_list_draws_nothing():
    images = batch()
    specs = ["color_jitter:0.25", "rotation:2"]
    first = apply_preprocess(images, specs, torch.Generator().manual_seed(1))
    again = apply_preprocess(images, specs, torch.Generator().manual_seed(1))
    assert torch.equal(first, again) and not torch.equal(first, images)
    g = torch.Generator().manual_seed(1)
    state = g.get_state()
    assert torch.equal(apply_preprocess(images, [], g), images)
    assert torch.equal(g.get_state(), state)


def test_parse_errors_are_user_errors():
    with pytest.raises(UnknownNameError):
        parse_preprocess(["colour_jitter:0.25"])
    with pytest.raises(UserError, match="needs a number"):
        parse_preprocess(["rotation"])


def test_preprocess_setting_round_trips_and_keeps_old_run_ids():
    plain = RunConfig(dataset="mnist5k", arch="mnist_cnn")
    assert "preprocess" not in plain.identity()            # run ids of runs without it are unchanged
    jittered = apply_overrides(plain, ["preprocess=color_jitter:0.25,rotation:2"])
    assert jittered.preprocess == ("color_jitter:0.25", "rotation:2")
    assert jittered.run_id() != plain.run_id()
    assert RunConfig.from_json(jittered.to_json()).run_id() == jittered.run_id()
    with pytest.raises(UnknownNameError):
        apply_overrides(plain, ["preprocess=blur:1"]).resolved()
