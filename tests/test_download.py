"""`corrbench data download`: small archives in the official layouts served from a local HTTP server
(127.0.0.1, started here, with Range support): success, resume, checksum mismatch, HTML pages, no space
left, unknown names, offline — one-line errors, and nothing half-written left in the data root."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import socket
import subprocess
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from corrbench.cli.app import main
from corrbench.data import download as dl
from corrbench.data.readers import read_c_labels
from corrbench.data.suites import SUITES
from corrbench.errors import UnknownNameError


# ---------------------------------------------------------------------------------------------------
# Archives in the official layouts

def tar_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def jpeg_bytes(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


N = 10   # images per severity in the small CIFAR-10-C


def cifar10c_tar() -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = np.tile(rng.integers(0, 10, N, dtype=np.uint8), 5)
    files = {"CIFAR-10-C/labels.npy": npy_bytes(labels)}
    for corruption in ("gaussian_noise", "contrast"):
        files[f"CIFAR-10-C/{corruption}.npy"] = npy_bytes(rng.integers(0, 256, (5 * N, 32, 32, 3), dtype=np.uint8))
    return tar_bytes(files), labels


def imagenet_c_tar(corruptions: tuple[str, ...]) -> bytes:
    files = {f"{c}/{s}/n01440764/ILSVRC2012_val_00000293.JPEG": jpeg_bytes(10 * i + s)
             for i, c in enumerate(corruptions) for s in range(1, 6)}
    return tar_bytes(files)


def mnist_c_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mnist_c/identity/test_images.npy", npy_bytes(np.zeros((4, 28, 28, 1), np.uint8)))
        archive.writestr("mnist_c/identity/test_labels.npy", npy_bytes(np.arange(4, dtype=np.uint8)))
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------
# The local server

class ArchiveServer:
    """Serves `files` by name; can cut a response after some bytes, answer HTML, or pretend to be gone."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_after: dict[str, int] = {}      # name -> bytes sent before the connection drops (once)
        self.html: dict[str, str] = {}           # name -> the Content-Type of the HTML page served instead
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []
        self.sent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                name = self.path.lstrip("/").split("?")[0]
                server.requests.append((name, self.headers.get("Range")))
                if name in server.html:
                    page = b"<!DOCTYPE html><html><body>Please sign in</body></html>"
                    self.send_response(200)
                    self.send_header("Content-Type", server.html[name])
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                    return
                if name not in server.files:
                    self.send_error(404)
                    return
                data = server.files[name]
                start = 0
                ranged = None if server.ignore_range else self.headers.get("Range")
                if ranged:
                    start = int(ranged.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Type", "application/x-tar")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = server.cut_after.pop(name, None)
                if cut is not None:
                    body = body[:cut]
                self.wfile.write(body)
                server.sent += len(body)
                self.wfile.flush()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    served = ArchiveServer()
    monkeypatch.setenv(dl.MIRROR_ENV, served.url)
    monkeypatch.setattr(dl, "RETRY_WAIT_S", 0.01)
    yield served
    served.close()


def publish(monkeypatch, server: ArchiveServer, name: str, archives: dict[str, bytes]) -> None:
    """Serve `archives` and make the catalogue's published checksums and sizes theirs."""
    spec = dl.CATALOG[name]
    replaced = []
    for archive in spec.archives:
        data = archives[archive.file]
        server.files[archive.file] = data
        replaced.append(dataclasses.replace(archive, md5=hashlib.md5(data).hexdigest(),
                                            sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
    monkeypatch.setitem(dl.CATALOG, name, dataclasses.replace(spec, archives=tuple(replaced)))


def run_cli(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def one_error_line(err: str) -> str:
    """The command's error: one line, no traceback (progress lines may come before it when not a TTY)."""
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert err.strip().splitlines()[-1] == errors[0]
    return errors[0]


def entries(root: Path) -> list[str]:
    """Everything under the data root, relative, sorted (hidden temp files included)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


# ---------------------------------------------------------------------------------------------------
# Success

def test_download_unpacks_the_official_layout_and_is_idempotent(server, monkeypatch, tmp_path):
    data, labels = cifar10c_tar()
    publish(monkeypatch, server, "cifar10-c", {"CIFAR-10-C.tar": data})
    root = tmp_path / "data"
    (result,) = dl.download(["cifar10-c"], root)
    assert result.status == "downloaded" and result.folder == root / "CIFAR-10-C"
    (fetched,) = result.archives
    assert fetched.checked == "md5 + sha256" and fetched.bytes == len(data)
    assert fetched.sha256 == hashlib.sha256(data).hexdigest()
    assert entries(root) == ["CIFAR-10-C", "CIFAR-10-C/contrast.npy", "CIFAR-10-C/gaussian_noise.npy",
                             "CIFAR-10-C/labels.npy"]      # no archive, no downloads/, no temp folder
    assert np.array_equal(read_c_labels(root / "CIFAR-10-C").numpy(), labels[:N])
    served = len(server.requests)
    (again,) = dl.download(["cifar10-c"], root)
    assert again.status == "present" and len(server.requests) == served


def test_without_names_the_catalogue_says_what_is_there(tmp_path, capsys):
    (tmp_path / "CIFAR-10-C").mkdir()
    code, out, _ = run_cli(capsys, "data", "download", "--data-root", tmp_path)
    assert code == 0
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("│ ") and line.split()[1] in dl.CATALOG}
    assert set(rows) == set(dl.CATALOG)
    assert "present" in rows["cifar10-c"] and "missing" in rows["cifar100-c"]


def test_imagenet_c_archives_unpack_into_one_folder_from_the_cli(server, monkeypatch, tmp_path, capsys):
    tars = {archive.file: imagenet_c_tar(archive.members) for archive in dl.CATALOG["imagenet-c"].archives}
    publish(monkeypatch, server, "imagenet-c", tars)
    root = tmp_path / "data"
    code, out, err = run_cli(capsys, "data", "download", "imagenet-c", "--data-root", root, "--keep-archives")
    assert code == 0, err
    corruptions = sorted(p.name for p in (root / "ImageNet-C").iterdir())
    assert len(corruptions) == 19 and "gaussian_blur" in corruptions
    image = root / "ImageNet-C" / "frost" / "3" / "n01440764" / "ILSVRC2012_val_00000293.JPEG"
    weather = next(a for a in dl.CATALOG["imagenet-c"].archives if a.file == "weather.tar")
    assert image.read_bytes() == jpeg_bytes(10 * weather.members.index("frost") + 3)
    assert sorted(p.name for p in (root / "downloads").iterdir()) == sorted(tars)   # kept, and verified
    assert "blur.tar" in out and "md5 + sha256" in out
    assert "download blur.tar" in err                      # plain progress lines: stderr is not a terminal


def test_zip_archive_and_eval_download_fetch(server, monkeypatch, tmp_path):
    publish(monkeypatch, server, "mnist-mnistc", {"mnist_c.zip": mnist_c_zip()})
    root = tmp_path / "data"
    (result,) = dl.ensure_downloaded("mnist-mnistc", root)  # what `eval --download` calls; mnist is not ours
    assert result.status == "downloaded"
    assert np.array_equal(np.load(root / "mnist_c" / "identity" / "test_labels.npy"), np.arange(4))
    assert dl.ensure_downloaded("mnist5k-c", root) == []    # a generated suite: nothing to download


# ---------------------------------------------------------------------------------------------------
# Resuming

def test_resume_after_a_cut_connection(server, monkeypatch, tmp_path):
    data, _ = cifar10c_tar()
    publish(monkeypatch, server, "cifar10-c", {"CIFAR-10-C.tar": data})
    server.cut_after["CIFAR-10-C.tar"] = 100_000
    root = tmp_path / "data"
    (result,) = dl.download(["cifar10-c"], root, keep_archives=True)
    assert server.requests == [("CIFAR-10-C.tar", None), ("CIFAR-10-C.tar", "bytes=100000-")]
    assert server.sent == len(data)                         # nothing fetched twice
    assert (root / "downloads" / "CIFAR-10-C.tar").read_bytes() == data
    assert result.archives[0].checked == "md5 + sha256"


def test_resume_a_partial_file_left_by_an_earlier_run(server, monkeypatch, tmp_path, capsys):
    data, _ = cifar10c_tar()
    publish(monkeypatch, server, "cifar10-c", {"CIFAR-10-C.tar": data})
    root = tmp_path / "data"
    (root / "downloads").mkdir(parents=True)
    (root / "downloads" / "CIFAR-10-C.tar.part").write_bytes(data[:150_000])
    code, _, err = run_cli(capsys, "data", "download", "cifar10-c", "--data-root", root)
    assert code == 0, err
    assert server.requests == [("CIFAR-10-C.tar", "bytes=150000-")]
    assert (root / "CIFAR-10-C" / "labels.npy").is_file() and not (root / "downloads").exists()


def test_a_server_ignoring_ranges_restarts_from_the_first_byte(server, monkeypatch, tmp_path):
    data, _ = cifar10c_tar()
    publish(monkeypatch, server, "cifar10-c", {"CIFAR-10-C.tar": data})
    server.ignore_range = True
    root = tmp_path / "data"
    (root / "downloads").mkdir(parents=True)
    (root / "downloads" / "CIFAR-10-C.tar.part").write_bytes(data[:150_000])
    (result,) = dl.download(["cifar10-c"], root, keep_archives=True)
    assert server.requests == [("CIFAR-10-C.tar", "bytes=150000-")] and server.sent == len(data)
    assert (root / "downloads" / "CIFAR-10-C.tar").read_bytes() == data


def test_a_complete_partial_file_is_checked_without_fetching_again(server, monkeypatch, tmp_path):
    data, _ = cifar10c_tar()
    publish(monkeypatch, server, "cifar10-c", {"CIFAR-10-C.tar": data})
    root = tmp_path / "data"
    (root / "downloads").mkdir(parents=True)
    (root / "downloads" / "CIFAR-10-C.tar.part").write_bytes(data)      # killed before its rename
    (result,) = dl.download(["cifar10-c"], root)
    assert server.sent == 0 and result.archives[0].checked == "md5 + sha256"
    assert (root / "CIFAR-10-C" / "labels.npy").is_file()


def test_a_second_process_on_the_same_file_is_refused(server, monkeypatch, tmp_path, capsys):
    fcntl = pytest.importorskip("fcntl")
    data, _ = cifar10c_tar()
    publish(monkeypatch, server, "cifar10-c", {"CIFAR-10-C.tar": data})
    root = tmp_path / "data"
    (root / "downloads").mkdir(parents=True)
    part = root / "downloads" / "CIFAR-10-C.tar.part"
    part.write_bytes(data[:1000])
    with open(part, "ab") as other:                                    # another download holds the lock
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)
        code, _, err = run_cli(capsys, "data", "download", "cifar10-c", "--data-root", root)
    assert code == 2 and "another corrbench is downloading" in one_error_line(err)
    assert part.read_bytes() == data[:1000]                            # its partial file is untouched


def test_connection_cut_too_often_keeps_the_partial_file_for_later(server, monkeypatch, tmp_path, capsys):
    data, _ = cifar10c_tar()
    publish(monkeypatch, server, "cifar10-c", {"CIFAR-10-C.tar": data})
    monkeypatch.setattr(dl, "RETRIES", 0)
    server.cut_after["CIFAR-10-C.tar"] = 50_000
    root = tmp_path / "data"
    code, _, err = run_cli(capsys, "data", "download", "cifar10-c", "--data-root", root)
    assert code == 2
    assert "run the same command again to resume" in one_error_line(err)
    assert entries(root) == ["downloads", "downloads/CIFAR-10-C.tar.part"]
    assert (root / "downloads" / "CIFAR-10-C.tar.part").read_bytes() == data[:50_000]
    code, _, err = run_cli(capsys, "data", "download", "cifar10-c", "--data-root", root)   # resumes
    assert code == 0, err
    assert server.requests[-1] == ("CIFAR-10-C.tar", "bytes=50000-")
    assert (root / "CIFAR-10-C" / "contrast.npy").is_file()


# ---------------------------------------------------------------------------------------------------
# Bad input: one line, exit 2, nothing left in the data root

def test_checksum_mismatch_removes_the_download(server, monkeypatch, tmp_path, capsys):
    data, _ = cifar10c_tar()
    publish(monkeypatch, server, "cifar10-c", {"CIFAR-10-C.tar": data})
    server.files["CIFAR-10-C.tar"] = data[:-1] + bytes([data[-1] ^ 1])   # same size, one bit off
    root = tmp_path / "data"
    code, _, err = run_cli(capsys, "data", "download", "cifar10-c", "--data-root", root)
    assert code == 2
    line = one_error_line(err)
    assert "md5" in line and "removed" in line
    assert entries(root) == ["downloads"] or entries(root) == []


def test_a_damaged_partial_file_fails_the_checksum_and_is_removed(server, monkeypatch, tmp_path, capsys):
    data, _ = cifar10c_tar()
    publish(monkeypatch, server, "cifar10-c", {"CIFAR-10-C.tar": data})
    root = tmp_path / "data"
    (root / "downloads").mkdir(parents=True)
    (root / "downloads" / "CIFAR-10-C.tar.part").write_bytes(b"\0" * 150_000)
    code, _, err = run_cli(capsys, "data", "download", "cifar10-c", "--data-root", root)
    assert code == 2 and "md5" in one_error_line(err)
    assert not (root / "downloads" / "CIFAR-10-C.tar.part").exists() and not (root / "CIFAR-10-C").exists()


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/octet-stream"])
def test_an_html_page_instead_of_the_archive(server, monkeypatch, tmp_path, capsys, content_type):
    data, _ = cifar10c_tar()
    publish(monkeypatch, server, "cifar10-c", {"CIFAR-10-C.tar": data})
    monkeypatch.setitem(dl.CATALOG, "cifar10-c", dataclasses.replace(   # no published size to give it away
        dl.CATALOG["cifar10-c"], archives=(dataclasses.replace(dl.CATALOG["cifar10-c"].archives[0], size=None),)))
    server.html["CIFAR-10-C.tar"] = content_type
    root = tmp_path / "data"
    code, _, err = run_cli(capsys, "data", "download", "cifar10-c", "--data-root", root)
    assert code == 2 and "HTML page" in one_error_line(err)
    assert [e for e in entries(root) if e != "downloads"] == []


def test_http_error_is_one_line(server, monkeypatch, tmp_path, capsys):
    data, _ = cifar10c_tar()
    publish(monkeypatch, server, "cifar10-c", {"CIFAR-10-C.tar": data})
    del server.files["CIFAR-10-C.tar"]
    code, _, err = run_cli(capsys, "data", "download", "cifar10-c", "--data-root", tmp_path / "data")
    assert code == 2 and "HTTP 404" in one_error_line(err)
    assert entries(tmp_path / "data") == []


def test_an_archive_that_is_not_the_expected_one_is_not_unpacked(server, monkeypatch, tmp_path, capsys):
    wrong = tar_bytes({"something-else/labels.npy": npy_bytes(np.zeros(5, np.uint8))})
    publish(monkeypatch, server, "cifar10-c", {"CIFAR-10-C.tar": wrong})
    root = tmp_path / "data"
    code, _, err = run_cli(capsys, "data", "download", "cifar10-c", "--data-root", root)
    assert code == 2 and "does not hold CIFAR-10-C/" in one_error_line(err)
    assert [e for e in entries(root) if not e.startswith("downloads")] == []   # no temp folder, no set


def test_a_wrong_archive_leaves_no_imagenet_c_folder(server, monkeypatch, tmp_path, capsys):
    tars = {archive.file: imagenet_c_tar(archive.members) for archive in dl.CATALOG["imagenet-c"].archives}
    tars["blur.tar"] = imagenet_c_tar(("defocus_blur",))          # lacks glass, motion and zoom blur
    publish(monkeypatch, server, "imagenet-c", tars)
    root = tmp_path / "data"
    code, _, err = run_cli(capsys, "data", "download", "imagenet-c", "--data-root", root)
    assert code == 2 and "does not hold glass_blur/" in one_error_line(err)
    assert not (root / "ImageNet-C").exists()


def test_unknown_name_lists_the_closest_and_fetches_nothing(server, capsys, tmp_path):
    code, _, err = run_cli(capsys, "data", "download", "cifar10-c", "cifar10c", "--data-root", tmp_path / "data")
    assert code == 2
    line = one_error_line(err)
    assert "'cifar10c'" in line and "Did you mean 'cifar10-c'" in line and "imagenet-c" in line
    assert server.requests == [] and not (tmp_path / "data").exists()
    with pytest.raises(UnknownNameError):
        dl.get_set("imagenet-p")


def test_offline_names_the_url_and_the_folder(monkeypatch, tmp_path, capsys):
    with socket.socket() as probe:             # a port on 127.0.0.1 that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(dl.MIRROR_ENV, f"http://127.0.0.1:{port}")
    root = tmp_path / "data"
    code, out, err = run_cli(capsys, "data", "download", "cifar10-c", "--data-root", root)
    assert code == 2 and err.count("\n") == 1
    line = one_error_line(err)
    assert f"http://127.0.0.1:{port}/CIFAR-10-C.tar" in line and str(root / "downloads") in line
    assert not root.exists()


def test_a_set_without_a_download_link_is_unpacked_from_a_file_put_by_hand(tmp_path, capsys):
    root = tmp_path / "data"
    code, _, err = run_cli(capsys, "data", "download", "cifar100-p", "--data-root", root)
    assert code == 2
    assert "Google Drive" in one_error_line(err) and str(root / "downloads") in err
    video = np.zeros((2, 31, 32, 32, 3), np.uint8)
    (root / "downloads").mkdir(parents=True)
    (root / "downloads" / "CIFAR-100-P.tar").write_bytes(tar_bytes({"CIFAR-100-P/rotate.npy": npy_bytes(video)}))
    code, out, err = run_cli(capsys, "data", "download", "cifar100-p", "--data-root", root)
    assert code == 0, err
    assert np.load(root / "CIFAR-100-P" / "rotate.npy").shape == video.shape
    assert "no published checksum" in out and "sha256" in out


@pytest.mark.parametrize("size_kb, phase, left", [(128, "downloading", []),
                                                   (400, "unpacking", ["downloads/CIFAR-10-C.tar"])])
def test_no_space_left(server, monkeypatch, tmp_path, capsys, size_kb, phase, left):
    """A data root on a small tmpfs: full while downloading (the partial file goes) or while unpacking
    (the temp folder goes, the verified archive stays for the next run)."""
    data, _ = cifar10c_tar()
    publish(monkeypatch, server, "cifar10-c", {"CIFAR-10-C.tar": data})
    root = tmp_path / "small"
    root.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(root)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root) to fill a disk")
    try:
        assert size_kb * 1024 < 2 * len(data) and (phase == "unpacking") == (size_kb * 1024 > len(data))
        code, _, err = run_cli(capsys, "data", "download", "cifar10-c", "--data-root", root)
        line = one_error_line(err)
        assert code == 2 and "no space left" in line and phase in line
        assert [e for e in entries(root) if e != "downloads"] == left
    finally:
        subprocess.run(["umount", str(root)], check=True)


# ---------------------------------------------------------------------------------------------------
# The catalogue agrees with the suites and with torchvision

def test_catalogue_agrees_with_suites_and_torchvision():
    import torchvision.datasets as tvd

    for name, spec in dl.CATALOG.items():
        if name in SUITES:
            assert SUITES.get(name).folder == spec.folder, name
        assert all(archive.into == "" or archive.into == spec.folder for archive in spec.archives)
    for name, reference in (("cifar10", tvd.CIFAR10), ("cifar100", tvd.CIFAR100)):
        (archive,) = dl.CATALOG[name].archives
        assert (archive.url, archive.file, archive.md5, archive.members[0]) == \
            (reference.url, reference.filename, reference.tgz_md5, reference.base_folder)
    published = {name for name, spec in SUITES.items() if spec.published}
    assert {"cifar10-c", "cifar100-c", "tinyimagenet-c", "imagenet-c", "cifar10-p", "cifar100-p",
            "mnist-mnistc"} <= published & set(dl.CATALOG)
