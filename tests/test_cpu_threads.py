"""The CPU thread default of make-c on a busy machine (issue 12): fewer intra-op threads when other
processes keep cores busy, the user's OMP_NUM_THREADS always wins."""
from __future__ import annotations

import pytest
import torch

from corrbench import device


@pytest.mark.parametrize("default, cores, busy, expected", [
    (2, 2, 0.0, 2),     # idle: torch's default
    (2, 2, 0.4, 2),     # a little background work rounds away
    (2, 2, 1.0, 1),     # one core taken: one thread
    (2, 2, 2.0, 1),     # every core taken: still one
    (8, 16, 4.0, 8),    # never more than the default
    (16, 16, 6.4, 10),  # the free cores, rounded
    (4, 4, -0.5, 4),    # a negative sample (counter wrap) counts as idle
])
def test_threads_for_load_takes_the_free_cores(default, cores, busy, expected):
    assert device.threads_for_load(default, cores, busy) == expected


def test_busy_cores_reads_proc_stat(monkeypatch):
    samples = iter([(100, 1000), (150, 1100)])   # 50 of 100 jiffies busy between the samples
    monkeypatch.setattr(device, "_cpu_times", lambda: next(samples))
    monkeypatch.setattr(device.os, "cpu_count", lambda: 4)
    assert device.busy_cores(0.0) == pytest.approx(2.0)


def test_busy_cores_is_none_without_proc_stat(monkeypatch):
    monkeypatch.setattr(device, "_cpu_times", lambda: None)
    assert device.busy_cores(0.0) is None


def test_omp_num_threads_wins(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(device, "busy_cores", lambda: pytest.fail("sampled although OMP_NUM_THREADS is set"))
    assert device.fit_cpu_threads_to_load() == before


def test_a_busy_machine_lowers_the_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(device, "busy_cores", lambda: float(device.os.cpu_count() or 1))
    try:
        assert device.fit_cpu_threads_to_load() == 1
    finally:
        torch.set_num_threads(before)
