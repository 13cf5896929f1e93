"""The model zoo: named archs, the ≤64 px resolution rule, the stem/stages/head split, timm registration."""
from __future__ import annotations

import copy

import pytest
import timm
import torch
import torch.nn as nn

from corrbench.errors import InvalidValueError, LayoutError, UnknownNameError, UserError
from corrbench.models import (
    Classifier, Normalize, count_parameters, create_model, list_archs, resolve_arch,
)

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
NAMED_ARCHS = ["resnet18", "preact_resnet18", "preact_resnet50", "wrn_28_2", "wrn_28_4", "wrn_28_4_noisymix",
               "wrn_40_2", "densenet121", "mnist_cnn", "cnn_rony2019"]


def build(arch: str, image_size: int = 32, num_classes: int = 10, **kwargs) -> Classifier:
    return create_model(arch, num_classes=num_classes, image_size=image_size, mean=CIFAR_MEAN, std=CIFAR_STD,
                        **kwargs).eval()


def images(batch: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(autouse=True)
def _keep_global_rng():
    # Model init draws from the global RNG; keep this file from disturbing other tests' state.
    with torch.random.fork_rng():
        torch.manual_seed(0)
        yield


def test_list_archs_names_the_eight_archs_and_what_they_resolve_to():
    infos = {info.name: info for info in list_archs()}
    assert sorted(infos) == sorted(NAMED_ARCHS)
    assert (infos["resnet18"].small, infos["resnet18"].large) == ("cifar_resnet18", "resnet18")
    assert (infos["densenet121"].small, infos["densenet121"].large) == ("cifar_densenet121", "densenet121")
    assert (infos["wrn_40_2"].small, infos["wrn_40_2"].large) == ("wrn_40_2", "wrn_40_2")
    for info in infos.values():
        assert timm.is_model(info.small) and timm.is_model(info.large)
        assert info.description


@pytest.mark.parametrize("arch", NAMED_ARCHS)
def test_each_named_arch_maps_a_32px_batch_to_logits(arch):
    batch = 1 if arch in ("densenet121", "preact_resnet50") else 2
    model = build(arch, num_classes=7)
    with torch.no_grad():
        logits = model(images(batch))
    assert logits.shape == (batch, 7)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("image_size, expected", [(32, "cifar_resnet18"), (64, "cifar_resnet18"),
                                                  (65, "resnet18"), (224, "resnet18")])
def test_resnet18_means_the_cifar_variant_up_to_64px(image_size, expected):
    assert resolve_arch("resnet18", image_size) == expected


def test_resolution_rule_for_densenet_and_names_that_map_to_themselves():
    assert resolve_arch("densenet121", 32) == "cifar_densenet121"
    assert resolve_arch("densenet121", 224) == "densenet121"
    for name in ("wrn_28_2", "mnist_cnn", "preact_resnet50", "cifar_resnet18", "resnet10t", "resnet18.a1_in1k"):
        assert resolve_arch(name, 32) == name
        assert resolve_arch(name, 224) == name


def test_resnet18_at_32px_has_the_cifar_stem():
    model = build("resnet18", image_size=32)
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert (first_conv.kernel_size, first_conv.stride) == ((3, 3), (1, 1))
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    with torch.no_grad():
        assert model.forward_features(images(1), 0).shape == (1, 64, 32, 32)  # the stem keeps 32×32


def test_resnet18_at_224px_is_timms_imagenet_resnet18():
    model = build("resnet18", image_size=224)
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert (first_conv.kernel_size, first_conv.stride) == ((7, 7), (2, 2))
    assert any(isinstance(m, nn.MaxPool2d) for m in model.stem.modules())
    assert count_parameters(model) == count_parameters(timm.create_model("resnet18", num_classes=10))


@pytest.mark.parametrize("arch, image_size, num_stages", [
    ("mnist_cnn", 32, 3),
    ("cnn_rony2019", 32, 3),
    ("resnet18", 32, 4),              # cifar_resnet18
    ("wrn_28_2", 32, 3),
    ("resnet10t", 64, 4),             # timm ResNet family: conv1/bn1/act1/maxpool, layer1..4
    ("test_efficientnet", 32, 1),     # generic timm fallback: forward_features + forward_head
])
def test_forward_equals_forward_from_features_at_every_stage(arch, image_size, num_stages):
    model = build(arch, image_size=image_size)
    assert model.num_stages == num_stages
    x = images(2, image_size)
    with torch.no_grad():
        logits = model(x)
        for k in range(num_stages + 1):
            h = model.forward_features(x, k)
            torch.testing.assert_close(model.forward_from(h, k), logits, rtol=1e-5, atol=1e-5)
        # forward_features(x, N) really ran every stage: the head alone maps it to the logits
        torch.testing.assert_close(model.head(model.forward_features(x, num_stages)), logits,
                                   rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model.forward_from_normalized(model.normalize(x)), logits,
                                   rtol=1e-5, atol=1e-5)


def test_stage_index_out_of_range_is_a_user_error():
    model = build("mnist_cnn")
    with pytest.raises(InvalidValueError, match="between 0 and 3"):
        model.forward_features(images(1), 4)
    with pytest.raises(InvalidValueError):
        model.forward_from(torch.zeros(1, 16, 32, 32), -1)


def test_generic_split_registers_the_timm_model_once():
    model = build("test_efficientnet")
    keys = list(model.state_dict())
    assert all(k.startswith(("normalize.", "stages.0.")) for k in keys)
    assert len(keys) == len(set(keys))
    assert count_parameters(model) == count_parameters(timm.create_model("test_efficientnet", num_classes=10))


def test_fixed_input_size_timm_model_is_built_for_the_dataset_size():
    model = build("test_vit", image_size=32)  # a ViT's position grid is fixed at build time
    with torch.no_grad():
        assert model(images(2)).shape == (2, 10)


@pytest.mark.parametrize("arch, expected", [
    ("resnet18", 11_173_962),      # Kuang Liu pytorch-cifar ResNet18
    ("wrn_28_2", 1_467_610),       # WRN-28-2, 1.5M in Zagoruyko & Komodakis
    ("wrn_40_2", 2_243_546),       # WRN-40-2 of AugMix, 2.2M
    ("densenet121", 6_956_298),    # Kuang Liu pytorch-cifar DenseNet121
])
def test_parameter_counts_match_the_published_cifar_models(arch, expected):
    assert count_parameters(build(arch, num_classes=10)) == expected


def test_mnist_cnn_is_small():
    assert count_parameters(build("mnist_cnn")) < 300_000


def test_rony_cnn_has_the_ddn_layout():
    # conv 3·32·9+32, 32·32·9+32, 32·64·9+64, 64·64·9+64; fc 64·5·5·200+200, 200·200+200, 200·10+10
    expected = (3 * 32 * 9 + 32) + (32 * 32 * 9 + 32) + (32 * 64 * 9 + 64) + (64 * 64 * 9 + 64) \
        + (64 * 25 * 200 + 200) + (200 * 200 + 200) + (200 * 10 + 10)
    model = build("cnn_rony2019")
    assert count_parameters(model) == expected
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in model.modules())


def test_our_archs_are_in_timms_registry():
    assert {"cifar_resnet18", "preact_resnet18", "preact_resnet50", "wrn_28_2", "wrn_28_4", "wrn_40_2",
            "cifar_densenet121", "mnist_cnn", "cnn_rony2019"} <= set(timm.list_models())
    net = timm.create_model("cifar_resnet18", num_classes=5).eval()
    assert net.num_classes == 5 and net.get_classifier().out_features == 5
    with torch.no_grad():
        assert net(images(2)).shape == (2, 5)
        torch.testing.assert_close(net.forward_head(net.forward_features(images(2))), net(images(2)))


def test_pretrained_weights_for_our_archs_are_a_clear_error():
    with pytest.raises(InvalidValueError, match="no pretrained weights exist for 'wrn_28_2'"):
        timm.create_model("wrn_28_2", pretrained=True)
    with pytest.raises(InvalidValueError, match="cifar_resnet18"):
        build("resnet18", image_size=32, pretrained=True)


def test_unknown_arch_names_the_closest_match():
    with pytest.raises(UnknownNameError) as caught:
        build("preact_resnt18")
    error = caught.value
    assert isinstance(error, UserError)
    message = str(error)
    assert "\n" not in message
    assert message.startswith("unknown arch 'preact_resnt18'. Did you mean 'preact_resnet18'?")
    assert "wrn_40_2" in message and "timm" in message
    assert "resnet50" in error.valid and "mnist_cnn" in error.valid
    with pytest.raises(UnknownNameError, match="Did you mean 'resnet10t'"):
        resolve_arch("resnet10tt", 32)


def test_normalize_subtracts_mean_and_divides_by_std_per_channel():
    normalize = Normalize(mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 2.0))
    x = torch.tensor([1.0, 0.0, 0.5]).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    expected = torch.tensor([(1.0 - 0.5) / 0.5, (0.0 - 0.25) / 0.25, (0.5 - 0.0) / 2.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(normalize(x), expected.expand(2, 3, 2, 2))
    assert set(normalize.state_dict()) == {"mean", "std"}  # checkpoints carry the normalisation


def test_normalize_rejects_what_is_not_a_float_image_batch():
    normalize = Normalize(mean=CIFAR_MEAN, std=CIFAR_STD)
    with pytest.raises(LayoutError, match="float"):
        normalize(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(LayoutError):
        normalize(torch.zeros(1, 1, 4, 4))
    with pytest.raises(InvalidValueError):
        Normalize(mean=(0.5,), std=(0.0,))
    with pytest.raises(InvalidValueError, match="3 values"):
        create_model("mnist_cnn", num_classes=10, image_size=32, mean=(0.5,), std=(0.5,))


def test_channels_last_gives_the_same_logits():
    for arch in ("mnist_cnn", "resnet18"):
        model = build(arch)
        x = images(2)
        with torch.no_grad():
            expected = model(x)
            model = model.to(memory_format=torch.channels_last)
            got = model(x.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_mnist_cnn_runs_under_cpu_bfloat16_autocast():
    model = build("mnist_cnn").to(memory_format=torch.channels_last)
    x = images(4).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = model(x)
    assert got.dtype == torch.bfloat16
    assert ((got.float() - expected).norm() / expected.norm()).item() < 0.05


def test_same_seed_gives_the_same_initial_weights():
    torch.manual_seed(1)
    first = build("wrn_28_2").state_dict()
    torch.manual_seed(1)
    second = build("wrn_28_2").state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_deepcopy_of_a_generic_split_model_uses_its_own_weights():
    # EMA / teacher copies must run the copy's weights in every part, head included.
    model = build("test_efficientnet")
    twin = copy.deepcopy(model)
    assert twin.head._features[0] is twin.stages[0]
    with torch.no_grad():
        twin.stages[0].model.get_classifier().bias.add_(1.0)
        torch.testing.assert_close(twin(images(2)), model(images(2)) + 1.0)


def test_wrn_28_4_noisymix_is_the_noisymix_codes_wide_resnet():
    # erichson/NoisyMix wide_resnet.py: WRN-28-4, dropout 0.1, every conv with a bias, final BN momentum 0.9
    def conv(cin: int, cout: int, k: int) -> int:
        return cin * cout * k * k + cout

    expected, cin = conv(3, 16, 3), 16
    for group, width in enumerate((64, 128, 256)):
        for block in range(4):
            expected += 2 * cin + conv(cin, width, 3) + 2 * width + conv(width, width, 3)
            expected += conv(cin, width, 1) if cin != width or (group > 0 and block == 0) else 0
            cin = width
    expected += 2 * 256 + 256 * 10 + 10
    model = build("wrn_28_4_noisymix")
    assert count_parameters(model) == expected
    blocks = [m for m in model.modules() if type(m).__name__ == "WideBlock"]
    assert len(blocks) == 12 and all(b.drop_rate == 0.1 and b.conv1.stride == (1, 1) for b in blocks)
    assert [b.conv2.stride for b in blocks if b.conv2.stride != (1, 1)] == [(2, 2), (2, 2)]
    last = model.stages[2]
    assert last[last.num_blocks].momentum == 0.9
