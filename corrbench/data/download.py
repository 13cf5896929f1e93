"""`corrbench data download`: fetch the published -C / -P sets, and the clean sets they are evaluated
against, into the data root — resumable, checksum-verified, unpacked atomically.

A set is one or more archives from the sources the README names (Zenodo records of the -C / -P papers,
torchvision's CIFAR URLs, cs231n's Tiny ImageNet). Each archive is fetched to
`<data root>/downloads/<file>.part`; a cut connection is resumed with an HTTP Range request (a few times
in the same run, or by running the command again). The complete file is checked against its published
MD5 (`corrbench.data.verify.PUBLISHED_ARCHIVES`) and SHA-256 where known, renamed to
`downloads/<file>`, unpacked into a hidden temp folder inside the data root and its top-level folders
renamed into place — a set's folder appears complete or not at all — and then deleted (unless kept).
A download that fails for any other reason (checksum mismatch, an HTML page instead of the archive, no
space left, a wrong size) removes what it wrote. An archive already in `downloads/` (put there by hand,
e.g. on a machine without network) is checked and unpacked without a connection.

`CORRBENCH_DOWNLOAD_MIRROR` (or `mirror=`) replaces every archive's URL by `<mirror>/<file name>`.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Sequence
from urllib.parse import urlparse

from corrbench.atomic import sweep_temps, temp_name, write_error
from corrbench.data.datasets import resolve_data_root
from corrbench.data.verify import PUBLISHED_ARCHIVES
from corrbench.errors import LayoutError, MissingDataError, UnknownNameError, UserError, WriteError
from corrbench.progress import ProgressLike, null_progress

DOWNLOADS = "downloads"                       # folder under the data root for archives in transit
MIRROR_ENV = "CORRBENCH_DOWNLOAD_MIRROR"
CHUNK = 1 << 20
TIMEOUT_S = 30.0
RETRIES = 3                                   # resumptions after a cut connection within one run
RETRY_WAIT_S = 1.0                            # × attempt number
PART_SUFFIX = ".part"


def zenodo(record: int, file: str) -> str:
    return f"https://zenodo.org/records/{record}/files/{file}?download=1"


def _md5(file: str) -> str | None:
    known = PUBLISHED_ARCHIVES.get(file)
    return known.md5 if known else None


@dataclass(frozen=True)
class Archive:
    file: str
    url: str | None               # None: no direct link (the file must be fetched by hand)
    members: tuple[str, ...]      # the top-level folders it unpacks to
    into: str = ""                # folder under the data root that receives them ("" = the root)
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None       # bytes, where published


@dataclass(frozen=True)
class DownloadSet:
    name: str                     # the suite or dataset name it provides
    folder: str                   # its folder under the data root
    archives: tuple[Archive, ...]
    source: str                   # one line: where it is published
    manual: str = ""              # for archives without a URL: where a person gets the file


def _imagenet_c(file: str, corruptions: tuple[str, ...]) -> Archive:
    return Archive(file, zenodo(2235448, file), corruptions, into="ImageNet-C", md5=_md5(file))


# SHA-256 and sizes: TensorFlow Datasets' url_checksums (cifar10_corrupted, cifar100_corrupted,
# mnist_corrupted). CIFAR-10/100 URL and MD5: torchvision.datasets.CIFAR10/CIFAR100 (url, tgz_md5).
CATALOG: dict[str, DownloadSet] = {s.name: s for s in (
    DownloadSet("cifar10-c", "CIFAR-10-C", (
        Archive("CIFAR-10-C.tar", zenodo(2535967, "CIFAR-10-C.tar"), ("CIFAR-10-C",), md5=_md5("CIFAR-10-C.tar"),
                sha256="c72763e101c723b7c507b96205f7e938912a5d587376173b825850cf3cb876a7", size=2918471680),),
        "Zenodo record 2535967"),
    DownloadSet("cifar100-c", "CIFAR-100-C", (
        Archive("CIFAR-100-C.tar", zenodo(3555552, "CIFAR-100-C.tar"), ("CIFAR-100-C",),
                md5=_md5("CIFAR-100-C.tar"),
                sha256="30ee6543a1bfd049fa33834b7c1ada301e7064b7fbe8fc38340eb8b62ced4b33", size=2918473216),),
        "Zenodo record 3555552"),
    DownloadSet("cifar10-p", "CIFAR-10-P", (
        Archive("CIFAR-10-P.tar", zenodo(2535967, "CIFAR-10-P.tar"), ("CIFAR-10-P",), md5=_md5("CIFAR-10-P.tar")),),
        "Zenodo record 2535967"),
    DownloadSet("cifar100-p", "CIFAR-100-P", (Archive("CIFAR-100-P.tar", None, ("CIFAR-100-P",)),),
                "Google Drive (the link in the hendrycks/robustness README)",
                manual="CIFAR-100-P is published only on Google Drive (the link in the hendrycks/robustness "
                       "README), which needs a browser"),
    DownloadSet("tinyimagenet-c", "Tiny-ImageNet-C", (
        Archive("Tiny-ImageNet-C.tar", zenodo(2536630, "Tiny-ImageNet-C.tar"), ("Tiny-ImageNet-C",)),),
        "Zenodo record 2536630"),
    DownloadSet("imagenet-c", "ImageNet-C", (
        _imagenet_c("blur.tar", ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur")),
        _imagenet_c("digital.tar", ("contrast", "elastic_transform", "jpeg_compression", "pixelate")),
        _imagenet_c("noise.tar", ("gaussian_noise", "impulse_noise", "shot_noise")),
        _imagenet_c("weather.tar", ("brightness", "fog", "frost", "snow")),
        _imagenet_c("extra.tar", ("gaussian_blur", "saturate", "spatter", "speckle_noise"))),
        "Zenodo record 2235448"),
    DownloadSet("mnist-mnistc", "mnist_c", (
        Archive("mnist_c.zip", zenodo(3239543, "mnist_c.zip"), ("mnist_c",), md5=_md5("mnist_c.zip"),
                sha256="af9ee8c6a815870c7fdde5af84c7bf8db0bcfa1f41056db83871037fba70e493", size=246661575),),
        "Zenodo record 3239543"),
    DownloadSet("cifar10", "cifar-10-batches-py", (
        Archive("cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                ("cifar-10-batches-py",), md5="c58f30108f718f92721af3b95e74349a"),),
        "www.cs.toronto.edu/~kriz (torchvision's source)"),
    DownloadSet("cifar100", "cifar-100-python", (
        Archive("cifar-100-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                ("cifar-100-python",), md5="eb9058c3a382ffc7106e4002c42a8d85"),),
        "www.cs.toronto.edu/~kriz (torchvision's source)"),
    DownloadSet("tinyimagenet", "tiny-imagenet-200", (
        Archive("tiny-imagenet-200.zip", "http://cs231n.stanford.edu/tiny-imagenet-200.zip", ("tiny-imagenet-200",),
                md5="90528d7ca1a48142e341f4ef8d21d0de", size=248100043),),
        "cs231n.stanford.edu"),
)}


def get_set(name: str) -> DownloadSet:
    if name not in CATALOG:
        raise UnknownNameError("downloadable set", name, CATALOG)
    return CATALOG[name]


# ---------------------------------------------------------------------------------------------------
# Errors a user meets (one line each)

class DownloadError(UserError):
    """The server did not deliver the archive (HTTP error, HTML page, wrong size, cut too often)."""


class OfflineError(DownloadError):
    """The server cannot be reached: say which URL to fetch by hand and where to put the file."""


class ChecksumError(DownloadError):
    """The complete file does not have the published checksum (it was removed)."""


# ---------------------------------------------------------------------------------------------------
# Results

@dataclass(frozen=True)
class Fetched:
    file: str
    bytes: int
    sha256: str
    checked: str          # which published checksums it matched, or why none
    origin: str           # the URL, or the file that was already in downloads/


@dataclass
class SetResult:
    name: str
    folder: Path
    status: str           # 'downloaded' | 'present'
    archives: list[Fetched] = field(default_factory=list)
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------------------
# Front door

def download(names: Sequence[str], data_root: str | Path | None = None, *, mirror: str | None = None,
             keep_archives: bool = False, progress: ProgressLike | None = None) -> list[SetResult]:
    """Download and unpack each named set that is not in the data root yet; sets already there are
    reported 'present'. Every name is checked before anything is fetched."""
    if not names:
        raise UserError(f"name the sets to download, e.g. corrbench data download cifar10-c "
                        f"(downloadable: {', '.join(CATALOG)})")
    sets = [get_set(name) for name in dict.fromkeys(names)]
    root = resolve_data_root(data_root)
    if mirror is None:
        mirror = os.environ.get(MIRROR_ENV) or None
    progress = progress or null_progress()
    return [_fetch_set(spec, root, mirror, keep_archives, progress) for spec in sets]


def ensure_downloaded(suite: str, data_root: str | Path | None = None, *,
                      progress: ProgressLike | None = None) -> list[SetResult]:
    """`eval --download`: fetch the suite and its clean dataset where corrbench knows how; others are
    left to the readers (generated suites, torchvision's own downloads, folders the user supplies)."""
    from corrbench.data.suites import SUITES
    dataset = SUITES.get(suite).dataset if suite in SUITES else None
    names = [name for name in (suite, dataset) if name in CATALOG]
    return download(names, data_root, progress=progress) if names else []


def installed(archive: Archive, root: Path) -> bool:
    return all((root / archive.into / member).exists() for member in archive.members)


def archive_url(archive: Archive, mirror: str | None) -> str | None:
    return f"{mirror.rstrip('/')}/{archive.file}" if mirror else archive.url


def _fetch_set(spec: DownloadSet, root: Path, mirror: str | None, keep: bool, progress: ProgressLike) -> SetResult:
    started = time.perf_counter()
    result = SetResult(spec.name, root / spec.folder, "present")
    for archive in spec.archives:
        if installed(archive, root):
            continue
        result.status = "downloaded"
        downloads = root / DOWNLOADS
        sweep_temps(root / archive.into)   # temp folders of unpackings that were killed
        path, fetched = _obtain(spec, archive, downloads, mirror, progress)
        _unpack(archive, path, root, progress)
        if not keep:
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                downloads.rmdir()      # only when empty
        result.archives.append(fetched)
    result.seconds = time.perf_counter() - started
    return result


# ---------------------------------------------------------------------------------------------------
# Getting a complete, verified archive into downloads/

class _Digests:
    """The MD5 and SHA-256 of the bytes written so far."""

    def __init__(self) -> None:
        self.md5, self.sha256 = hashlib.md5(), hashlib.sha256()

    def update(self, data: bytes) -> None:
        self.md5.update(data)
        self.sha256.update(data)

    def read(self, path: Path, length: int, progress: ProgressLike, label: str) -> None:
        task = progress.add_task(label, total=length)
        with open(path, "rb") as handle:
            left = length
            while left and (block := handle.read(min(CHUNK * 4, left))):
                self.update(block)
                left -= len(block)
                progress.advance(task, len(block))


def _check(archive: Archive, digests: _Digests, path: Path, origin: str) -> Fetched:
    """Compare with the published checksums; a mismatch removes the file."""
    md5, sha256 = digests.md5.hexdigest(), digests.sha256.hexdigest()
    for kind, published, actual in (("md5", archive.md5, md5), ("sha256", archive.sha256, sha256)):
        if published and actual != published:
            path.unlink(missing_ok=True)
            raise ChecksumError(f"{archive.file} from {origin}: {kind} {actual} differs from the published "
                                f"{published}; the file was damaged or is another one, and was removed — run the "
                                f"command again")
    matched = [kind for kind, published in (("md5", archive.md5), ("sha256", archive.sha256)) if published]
    checked = " + ".join(matched) if matched else "no published checksum known"
    return Fetched(archive.file, path.stat().st_size, sha256, checked, origin)


def _obtain(spec: DownloadSet, archive: Archive, downloads: Path, mirror: str | None,
            progress: ProgressLike) -> tuple[Path, Fetched]:
    final = downloads / archive.file
    if final.is_file():          # fetched by hand, or kept from an earlier run
        digests = _Digests()
        digests.read(final, final.stat().st_size, progress, f"check {archive.file}")
        return final, _check(archive, digests, final, str(final))
    url = archive_url(archive, mirror)
    if url is None:
        raise MissingDataError(f"{spec.manual}: download {archive.file} by hand and put it in {downloads}, then run "
                               f"`corrbench data download {spec.name}` again to check and unpack it")
    part = downloads / (archive.file + PART_SUFFIX)
    digests = _transfer(spec, archive, url, part, downloads, progress)
    fetched = _check(archive, digests, part, url)
    try:
        os.replace(part, final)
    except OSError as error:
        raise write_error(final, error) from None
    return final, fetched


class _Cut(Exception):
    """The connection ended before the whole file arrived."""


NETWORK_ERRORS = (http.client.HTTPException, OSError)   # OSError covers resets, timeouts, refused connections


def _transfer(spec: DownloadSet, archive: Archive, url: str, part: Path, downloads: Path,
              progress: ProgressLike) -> _Digests:
    """Fetch `url` into `part`, resuming what is there; returns the digests of the complete file."""
    host = urlparse(url).hostname or url
    digests = _Digests()
    attempt = 0
    handle: BinaryIO | None = None
    task = None
    try:
        while True:
            offset = part.stat().st_size if part.is_file() else 0
            if archive.size is not None and offset > archive.size:
                part.unlink()
                offset = 0
            try:
                response = _request(url, offset)
            except _RangeNotSatisfiable:
                if archive.size is not None and offset == archive.size and handle is None:
                    handle = _open_part(part, downloads)
                    digests.read(part, offset, progress, f"check {part.name}")
                    return digests
                _truncate(part, handle, digests)
                continue
            except NETWORK_ERRORS as error:
                if handle is None:       # no connection yet in this run: offline, or the host is down
                    kept = f" ({offset / 1e6:,.1f} MB already there are kept)" if offset else ""
                    raise OfflineError(f"cannot reach {host} ({_reason(error)}): download {url} yourself and put "
                                       f"{archive.file} in {downloads}{kept}, then run `corrbench data download "
                                       f"{spec.name}` again") from None
                attempt = _next_attempt(attempt, archive, part, error)
                continue
            with response:
                try:
                    resumed, total = _accept(response, offset, archive, url, part, handle)
                except _RangeNotSatisfiable:
                    _truncate(part, handle, digests)
                    continue
                if handle is None:
                    handle = _open_part(part, downloads)
                    if resumed:
                        digests.read(part, offset, progress, f"check {part.name}")
                if not resumed and offset:
                    _truncate(part, handle, digests)
                    offset = 0
                if task is None:
                    task = progress.add_task(f"download {archive.file}", total=total)
                progress.update(task, total=total, completed=offset)
                try:
                    _stream(response, handle, digests, progress, task, part, offset,
                            total - offset if total else None)
                except _Cut as cut:
                    attempt = _next_attempt(attempt, archive, part, cut.__cause__ or cut)
                    continue
            return digests
    finally:
        if handle is not None:
            handle.close()


def _reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or error
    return " ".join(str(reason).split()) or type(error).__name__


def _next_attempt(attempt: int, archive: Archive, part: Path, error: BaseException) -> int:
    attempt += 1
    if attempt > RETRIES:
        have = part.stat().st_size if part.is_file() else 0
        raise DownloadError(f"the connection for {archive.file} broke {attempt} times ({_reason(error)}); "
                            f"{have / 1e6:,.1f} MB are kept in {part} — run the same command again to resume")
    time.sleep(RETRY_WAIT_S * attempt)
    return attempt


class _RangeNotSatisfiable(Exception):
    """The server cannot continue the partial file where it ends."""


def _request(url: str, offset: int) -> http.client.HTTPResponse:
    headers = {"User-Agent": "corrbench", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as error:
        error.close()
        if error.code == 416 and offset:
            raise _RangeNotSatisfiable() from None
        if error.code >= 500 or error.code == 429:
            raise ConnectionError(f"HTTP {error.code} {error.reason}") from None
        raise DownloadError(f"{url} answered HTTP {error.code} {error.reason}; the file may have moved — check "
                            f"the source or set {MIRROR_ENV}") from None
    except urllib.error.URLError as error:
        reason = error.reason if isinstance(error.reason, OSError) else OSError(str(error.reason))
        raise reason from None


def _accept(response: http.client.HTTPResponse, offset: int, archive: Archive, url: str, part: Path,
            handle: BinaryIO | None) -> tuple[bool, int | None]:
    """(whether the server continues at `offset`, the full file size if stated); refuses HTML pages and
    sizes other than the published one — removing the partial file, which cannot be trusted then."""
    def refuse(message: str) -> DownloadError:
        if handle is not None:
            handle.close()
        part.unlink(missing_ok=True)
        return DownloadError(message)

    content_type = response.headers.get("Content-Type", "")
    if "html" in content_type.lower():
        raise refuse(f"{url} answered an HTML page ({content_type}) instead of {archive.file}; the link may have "
                     f"moved or need a browser — download the file by hand into {part.parent}")
    resumed = response.status == 206 and offset > 0
    total = None
    if resumed:
        span = response.headers.get("Content-Range", "")       # bytes START-END/TOTAL
        try:
            start = int(span.split()[1].split("-")[0])
            total = int(span.rsplit("/", 1)[1]) if not span.endswith("/*") else None
        except (IndexError, ValueError):
            start = -1
        if start != offset:
            raise _RangeNotSatisfiable()      # a range other than the one asked for: start over
        resumed = True
    if not resumed:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
    if total is not None and archive.size is not None and total != archive.size:
        raise refuse(f"{url} offers {total:,} bytes but the published {archive.file} has {archive.size:,}; it is "
                     f"another file — check the source or set {MIRROR_ENV}")
    return resumed, total if total is not None else archive.size


def _open_part(part: Path, downloads: Path) -> BinaryIO:
    """The partial file, opened for appending and locked against a second corrbench fetching it."""
    try:
        downloads.mkdir(parents=True, exist_ok=True)
        handle = open(part, "ab", buffering=0)
    except OSError as error:
        raise write_error(part, error) from None
    try:
        import fcntl
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:        # no fcntl (Windows): no lock
        pass
    except OSError:
        handle.close()
        raise DownloadError(f"another corrbench is downloading {part.name} into {downloads}; wait for it to "
                            f"finish") from None
    return handle


def _truncate(part: Path, handle: BinaryIO | None, digests: _Digests) -> None:
    """Start over: the server ignored the range, or the partial file does not fit the published size."""
    if handle is not None:
        handle.truncate(0)
        handle.seek(0)
    elif part.is_file():
        part.unlink()
    digests.__init__()


def _write_all(handle: BinaryIO, data: bytes) -> None:
    # An unbuffered write may be short (a disk filling up); the next one then raises ENOSPC.
    view = memoryview(data)
    while view:
        view = view[handle.write(view):]


def _stream(response: http.client.HTTPResponse, handle: BinaryIO, digests: _Digests, progress: ProgressLike,
            task, part: Path, offset: int, expected: int | None) -> None:
    received = 0
    first = offset == 0
    while True:
        try:
            chunk = response.read(CHUNK)
        except NETWORK_ERRORS as error:
            raise _Cut() from error
        if not chunk:
            break
        if first and chunk.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
            handle.close()
            part.unlink(missing_ok=True)
            raise DownloadError(f"the server answered an HTML page instead of {part.name[:-len(PART_SUFFIX)]}; "
                                f"the link may have moved or need a browser — download the file by hand into "
                                f"{part.parent}")
        first = False
        try:
            _write_all(handle, chunk)
        except OSError as error:
            handle.close()
            part.unlink(missing_ok=True)
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise WriteError(f"no space left in {part.parent} while downloading {part.name[:-len(PART_SUFFIX)]}; "
                                f"the partial file was removed — free some space (or choose another --data-root) "
                                f"and run again") from None
            raise write_error(part, error) from None
        digests.update(chunk)
        received += len(chunk)
        progress.advance(task, len(chunk))
    if expected is not None and received < expected:
        raise _Cut() from ConnectionError(f"{received:,} of {expected:,} bytes arrived")
    try:
        os.fsync(handle.fileno())
    except OSError as error:
        raise write_error(part, error) from None


# ---------------------------------------------------------------------------------------------------
# Unpacking: a hidden temp folder inside the data root, then one rename per top-level folder

def _unpack(archive: Archive, path: Path, root: Path, progress: ProgressLike) -> None:
    # The temp folder lies inside the destination, so the final renames never cross filesystems (an
    # ImageNet-C that is a link to another disk); a destination made here and left empty is removed.
    destination = root / archive.into
    made = not destination.exists()
    temp = destination / temp_name(destination / archive.file.split(".")[0])
    unpacked = False
    try:
        destination.mkdir(parents=True, exist_ok=True)
        temp.mkdir()
        _extract(path, temp, progress)
        missing = [member for member in archive.members if not (temp / member).is_dir()]
        if missing:
            held = sorted(entry.name for entry in temp.iterdir())
            raise LayoutError(f"{path} does not hold {missing[0]}/ (it holds {', '.join(held[:6]) or 'nothing'}); "
                              f"it is not the published {archive.file} — remove it and download again")
        for member in archive.members:
            if not (destination / member).exists():   # a folder already there (by hand) is kept
                os.replace(temp / member, destination / member)
        unpacked = True
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise WriteError(f"no space left in {destination} while unpacking {archive.file}; nothing was unpacked — "
                             f"free some space and run again (the verified {path.name} stays in {path.parent})") from None
        raise write_error(destination, error) from None
    finally:
        shutil.rmtree(temp, ignore_errors=True)
        if made and not unpacked:
            with contextlib.suppress(OSError):
                destination.rmdir()


def _safe_member(name: str) -> bool:
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts


def _extract(path: Path, into: Path, progress: ProgressLike) -> None:
    size = path.stat().st_size
    task = progress.add_task(f"unpack {path.name}", total=size)
    if path.suffix == ".zip":
        try:
            with zipfile.ZipFile(path) as archive:
                for member in archive.infolist():
                    if not _safe_member(member.filename):
                        raise LayoutError(f"{path} holds a path outside its folder ({member.filename}); not unpacked")
                    archive.extract(member, into)
                    progress.advance(task, member.compress_size)
        except zipfile.BadZipFile as error:
            raise LayoutError(f"{path} is not a readable zip archive ({error}); remove it and download again") from None
        return
    data_filter = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with open(path, "rb") as raw:
        try:
            with tarfile.open(fileobj=raw, mode="r|*") as archive:
                for member in archive:
                    if not _safe_member(member.name) or (member.issym() or member.islnk()) and not _safe_member(
                            member.linkname):
                        raise LayoutError(f"{path} holds a path outside its folder ({member.name}); not unpacked")
                    archive.extract(member, into, **data_filter)
                    progress.update(task, completed=raw.tell())
        except (tarfile.TarError, EOFError) as error:
            raise LayoutError(f"{path} is not a readable tar archive ({_reason(error)}); remove it and download "
                              f"again") from None
    progress.update(task, completed=size)
