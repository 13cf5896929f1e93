"""Shards of an evaluation: `--shard i/n` evaluates images [⌊i·N/n⌋, ⌊(i+1)·N/n⌋) of every part of a suite.

Torch-free (the CLI checks `--shard` before torch loads). Every shard sees every corruption × severity, so
results rows stay per (corruption, severity); `corrbench.results` merges the shards of a key back into the
full part (docs/results-schema.md, "Shards").
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from corrbench.errors import InvalidValueError


@dataclass(frozen=True)
class Shard:
    """Shard `index` (0-based) of `count`."""

    index: int
    count: int

    def range(self, n: int) -> tuple[int, int]:
        """(start, stop) of this shard's contiguous image range in a part of `n` images."""
        return self.index * n // self.count, (self.index + 1) * n // self.count

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """`i/n` with 0 ≤ i < n → Shard; anything else is one line (InvalidValueError)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if match is None:
        raise InvalidValueError(f"--shard must be INDEX/COUNT like 0/4 (shard 0 of 4), got '{text}'")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise InvalidValueError(f"--shard {text}: the shard count must be at least 1")
    if index >= count:
        raise InvalidValueError(f"--shard {text}: the index must be below the count (0 to {count - 1} of {count})")
    return Shard(index, count)


def shard_from_environment() -> Shard | None:
    """The shard of this process under torchrun (RANK of WORLD_SIZE), or None outside a group of processes."""
    world_size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world_size <= 1:
        return None
    return Shard(int(os.environ.get("RANK", "0")), world_size)
