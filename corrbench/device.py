"""Device choice and the seeding rule shared by training and evaluation."""
from __future__ import annotations

import hashlib
import os

import torch

from corrbench.errors import InvalidValueError


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InvalidValueError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidValueError(f"device '{name}' asked for but CUDA is not available here; use --device cpu")
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{local_rank}")
    return device


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (seed, epoch, stream, …): independent streams, stable across runs."""
    blob = "/".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") & ((1 << 63) - 1)


def make_generator(device: torch.device, *parts: object) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(*parts))
    return generator


def threads_for_load(default: int, cores: int, busy_cores: float) -> int:
    """Intra-op CPU threads for a machine on which other processes keep `busy_cores` cores busy: the
    default, at most the cores left free (rounded), at least 1. An OpenMP thread that is descheduled
    stalls every parallel region of its team, so on a busy machine fewer threads are faster: make-c
    with 2 threads took 1.3–1.9× its one-thread time while another process loaded both cores
    (benchmarks/threads.py)."""
    free = cores - max(0.0, busy_cores)
    return max(1, min(default, int(free + 0.5)))


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat, or None where there is none."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 5:
        return None
    idle = fields[3] + fields[4]                       # idle + iowait
    busy = sum(fields[:8]) - idle                      # user nice system idle iowait irq softirq steal
    return busy, busy + idle


def busy_cores(sample_s: float = 0.1) -> float | None:
    """How many cores other processes keep busy, sampled over `sample_s` while this one sleeps
    (Linux /proc/stat); None where it cannot be read."""
    import time
    first = _cpu_times()
    if first is None:
        return None
    time.sleep(sample_s)
    second = _cpu_times()
    if second is None or second[1] <= first[1]:
        return None
    return (second[0] - first[0]) / (second[1] - first[1]) * (os.cpu_count() or 1)


def fit_cpu_threads_to_load() -> int:
    """Lower torch's intra-op threads to the cores other processes leave free (see `threads_for_load`),
    unless the user pinned them with OMP_NUM_THREADS. Returns the thread count in use."""
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    busy = busy_cores()
    if busy is not None:
        torch.set_num_threads(threads_for_load(torch.get_num_threads(), os.cpu_count() or 1, busy))
    return torch.get_num_threads()
