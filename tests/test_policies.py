"""TrivialAugment / AutoAugment / RandAugment: torchvision's ops exactly, drawn per image, seeded."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import autoaugment as tv_autoaugment

from corrbench.augment import get_augmentation, policies
from corrbench.errors import InvalidValueError, UnknownNameError

rng = np.random.default_rng(0)
IMAGES = np.cumsum(rng.integers(0, 5, size=(2, 32, 32, 3)), axis=1).clip(0, 255).astype(np.uint8)
BATCH = torch.from_numpy(IMAGES).permute(0, 3, 1, 2).contiguous()


def _torchvision(image: np.ndarray, name: str, magnitude: float) -> np.ndarray:
    """torchvision's own op on a PIL image (nearest, fill None), as its AutoAugment classes call it."""
    return np.asarray(tv_autoaugment._apply_op(Image.fromarray(image), name, magnitude, InterpolationMode.NEAREST, None))


@pytest.mark.parametrize("space_name", ["wide", "standard"])
def test_every_op_bin_and_sign_matches_torchvision_on_pil(space_name):
    if space_name == "wide":
        space = policies.wide_space(31)
        bins = [0, 1, 15, 20, 30]          # bin 20 of the wide rotation is exactly 90°
    else:
        space = policies.standard_space(10, 32, 32, identity=True, invert=True)
        bins = [0, 3, 9]
    table = policies.OpTable(space)
    for op_index, name in enumerate(table.names):
        for bin_index in (bins if space[name] else [0]):
            for negate in (False, True):
                value = space[name][bin_index] if space[name] else 0.0
                magnitude = -value if negate and name in policies.SIGNED else value
                n = len(IMAGES)
                ours = table.apply(BATCH, torch.full((n,), op_index), torch.full((n,), bin_index), torch.full((n,), negate))
                for i in range(n):
                    np.testing.assert_array_equal(ours[i].permute(1, 2, 0).numpy(), _torchvision(IMAGES[i], name, magnitude),
                                                  err_msg=f"{name} bin {bin_index} negated {negate}")


@pytest.mark.parametrize("policy", ["cifar10", "imagenet", "svhn"])
def test_policy_tables_are_torchvisions(policy):
    expected = tv_autoaugment.AutoAugment(tv_autoaugment.AutoAugmentPolicy(policy)).policies
    assert [tuple(map(tuple, sub)) for sub in policies.POLICIES.get(policy)] == [tuple(map(tuple, sub)) for sub in expected]


def test_op_spaces_are_torchvisions():
    assert {k: (v if v is None else len(v)) for k, v in policies.wide_space(31).items()} == {
        name: (None if m.ndim == 0 else len(m)) for name, (m, _) in tv_autoaugment.TrivialAugmentWide()._augmentation_space(31).items()}
    tv_rand = tv_autoaugment.RandAugment()._augmentation_space(31, (32, 32))
    ours = policies.standard_space(31, 32, 32, identity=True, invert=False)
    assert list(ours) == list(tv_rand)
    for name, (magnitudes, signed) in tv_rand.items():
        assert (name in policies.SIGNED) == signed
        if magnitudes.ndim:
            assert ours[name] == [float(v) for v in magnitudes], name


def _same_image_batch(count: int) -> torch.Tensor:
    return BATCH[:1].expand(count, -1, -1, -1).contiguous()


@pytest.mark.parametrize("augment", [policies.trivial_augment_wide, policies.auto_augment, policies.rand_augment])
def test_ops_are_drawn_per_image_and_seeds_reproduce_bytes(augment):
    batch = _same_image_batch(48)
    out = augment(batch, torch.Generator().manual_seed(3))
    assert out.dtype == torch.uint8 and out.shape == batch.shape
    distinct = {bytes(image.numpy()) for image in out}
    assert len(distinct) >= 8      # one op for the whole batch would give a single (or two) results
    assert torch.equal(out, augment(batch, torch.Generator().manual_seed(3)))
    assert not torch.equal(out, augment(batch, torch.Generator().manual_seed(4)))
    channels_last = augment(batch.contiguous(memory_format=torch.channels_last), torch.Generator().manual_seed(3))
    assert channels_last.is_contiguous(memory_format=torch.channels_last) and torch.equal(channels_last, out)


def test_autoaugment_applies_each_step_with_its_probability():
    for name, sub_policy in (("test-invert-half", (("Invert", 0.5, None), ("Invert", 0.0, None))),
                             ("test-invert-twice", (("Invert", 1.0, None), ("Invert", 1.0, None)))):
        if name not in policies.POLICIES:
            policies.POLICIES.register(name, (sub_policy,))
    batch = _same_image_batch(400)
    twice = policies.auto_augment(batch, torch.Generator().manual_seed(0), policy="test-invert-twice")
    assert torch.equal(twice, batch)
    half = policies.auto_augment(batch, torch.Generator().manual_seed(0), policy="test-invert-half")
    inverted = (half == 255 - batch).flatten(1).all(1).float().mean()
    assert 0.42 < float(inverted) < 0.58
    assert bool(((half == batch).flatten(1).all(1) | (half == 255 - batch).flatten(1).all(1)).all())


def test_randaugment_zero_ops_is_identity_and_settings_are_checked():
    assert torch.equal(policies.rand_augment(BATCH, torch.Generator().manual_seed(0), num_ops=0), BATCH)
    with pytest.raises(InvalidValueError, match="bin from 0 to 30"):
        policies.rand_augment(BATCH, torch.Generator(), magnitude=31)
    with pytest.raises(InvalidValueError, match="num_bins"):
        policies.trivial_augment_wide(BATCH, torch.Generator(), num_bins=1)
    with pytest.raises(UnknownNameError, match="Did you mean 'cifar10'"):
        policies.auto_augment(BATCH, torch.Generator(), policy="cifar-10")


@pytest.mark.parametrize("name", ["trivialaugment", "autoaugment", "randaugment"])
def test_registered_augmentations_map_uint8_to_uint8(name):
    out = get_augmentation(name).apply(BATCH, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == BATCH.shape
