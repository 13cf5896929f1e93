"""MNIST-C dotted_line and zigzag (spec C rows 13–14, notes (b) and (c)).

Both add anti-aliased line layers that depend only on a few integers per image (dotted_line: the row
pair (r0, r1), 27² cases; zigzag: the start row r0 and the offset r1 − r0, 27 × 10 cases). The layers
are computed once, in float64 NumPy exactly as the reference's `line_from_points` arithmetic runs, and
looked up per image; the per-pixel sums and clips run batched in torch.

Division is Python 3's true division: the reference notebook imports `importlib.reload`, which exists
only in Python 3, so the slope (r1 − r0)/(c1 − c0) is fractional (spec C leaves Py2 floor division open).
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from corrbench.corruptions.convert import divide
from corrbench.mnistc.registry import SIDE, check_draws, register_digit, round_to_uint8

LINE_HALF_WIDTH = 2.3
ROW_HIGH = 27                        # randint(0, 27): rows 0 … 26
ZIGZAG_OFFSETS = tuple(range(-5, 5))  # randint(−5, 5)
ZIGZAG_ARM, ZIGZAG_HEIGHT = 2.0, 2.0  # a, b
ZIGZAG_C0, ZIGZAG_C1 = 2, 25


def line_layer(c0: float, r0: float, c1: float, r1: float) -> np.ndarray:
    """The reference's anti-aliased line through (c0, r0)–(c1, r1), float64 28×28 in [0, 1].

    Vertical distance d = clip(|row − (m(col − c0) + r0)|, 0, 2.3 − 1e-10), value clip(log(1 − d/2.3) + 1, 0, 1);
    columns before floor(c0) and from ceil(c1) on are zeroed, with Python's slice meaning for negative
    bounds; a vertical segment (c1 == c0) gives zeros.
    """
    if c1 == c0:
        return np.zeros((SIDE, SIDE))
    cols = np.linspace(0, SIDE - 1, SIDE)[None, :]
    rows = np.linspace(0, SIDE - 1, SIDE)[:, None]
    slope = (r1 - r0) / (c1 - c0)
    distance = np.clip(np.abs(rows - (slope * (cols - c0) + r0)), 0, LINE_HALF_WIDTH - 1e-10)
    layer = np.clip(np.log(1 - distance / LINE_HALF_WIDTH) + 1, 0, 1)
    layer[:, :int(np.floor(c0))] = 0
    layer[:, int(np.ceil(c1)):] = 0
    return np.clip(layer, 0, 1)


@functools.lru_cache(maxsize=1)
def dotted_layers() -> torch.Tensor:
    """float64 27×27×28×28: the dotted line for rows (r0, r1), with column blocks [0:2), [4:6), …, [24:26) removed."""
    table = np.zeros((ROW_HIGH, ROW_HIGH, SIDE, SIDE))
    for r0 in range(ROW_HIGH):
        for r1 in range(ROW_HIGH):
            layer = line_layer(0, r0, SIDE - 1, r1)
            for start in range(0, 26, 4):
                layer[:, start:start + 2] = 0
            table[r0, r1] = layer
    return torch.from_numpy(table)


def zigzag_vertices(offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns and rows (before adding r0) of the zigzag whose end row is r0 + offset (spec C note (c))."""
    theta = np.arctan(offset / (ZIGZAG_C1 - ZIGZAG_C0))
    length = (ZIGZAG_C1 - ZIGZAG_C0) / np.cos(theta)
    a, b = ZIGZAG_ARM, ZIGZAG_HEIGHT
    vertices = [(0, 0)]
    for i in range(int((length - a) // (2 * a)) + 1):
        last_row = (-1) ** i * b
        vertices.append(((2 * i + 1) * a, last_row))
    whole = (2 * a) * (length // (2 * a))
    if length != whole:
        vertices.append((length, last_row / (2 * (length - whole))))
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    cols, rows = rotation.dot(np.array(vertices).T)
    return cols + ZIGZAG_C0, rows


@functools.lru_cache(maxsize=1)
def zigzag_layers() -> torch.Tensor:
    """float64 27×10×S×28×28: segment s of the zigzag starting at row r0 with offset index k (offset k − 5)."""
    per_offset = [zigzag_vertices(offset) for offset in ZIGZAG_OFFSETS]
    segments = len(per_offset[0][0]) - 1
    if any(len(cols) - 1 != segments for cols, _ in per_offset):
        raise AssertionError("every zigzag offset has the same number of vertices")  # 8 for d ∈ [23, 23.54]
    table = np.zeros((ROW_HIGH, len(ZIGZAG_OFFSETS), segments, SIDE, SIDE))
    for r0 in range(ROW_HIGH):
        for k, (cols, rows) in enumerate(per_offset):
            rows = rows + r0
            for s in range(segments):
                table[r0, k, s] = line_layer(cols[s], rows[s], cols[s + 1], rows[s + 1])
    return torch.from_numpy(table)


def _rows(digits: torch.Tensor, generator, draws, name: str, low: int, high: int) -> torch.Tensor:
    """int64 B×2 integer draws in [low, high) per column (the reference's randint calls), or injected ones."""
    b = digits.shape[0]
    if draws is None:
        first = torch.randint(0, ROW_HIGH, (b, 1), generator=generator, device=generator.device).to(digits.device)
        second = torch.randint(low, high, (b, 1), generator=generator, device=generator.device).to(digits.device)
        return torch.cat([first, second], dim=1)
    draws = check_draws(draws, (b, 2), name, "integer draws").long().to(digits.device)
    if bool((draws[:, 0] < 0).any() or (draws[:, 0] >= ROW_HIGH).any() or (draws[:, 1] < low).any()
            or (draws[:, 1] >= high).any()):
        raise ValueError(f"{name}: draws out of range (column 0 in [0, 27), column 1 in [{low}, {high}))")
    return draws


@register_digit("dotted_line", stochastic=True, parameters="line from (0, r0) to (27, r1), every other 2-px block removed",
                draws="rows (r0, r1), int B×2 in [0, 27)")
def dotted_line(digits: torch.Tensor, *, generator: torch.Generator | None = None,
                draws: torch.Tensor | None = None) -> torch.Tensor:
    """round(255·clip(u/255 + line, 0, 1))."""
    rows = _rows(digits, generator, draws, "dotted_line", 0, ROW_HIGH)
    layers = dotted_layers().to(digits.device)[rows[:, 0], rows[:, 1]]
    return round_to_uint8((divide(digits.to(torch.float64), 255.0) + layers).clamp_(0.0, 1.0) * 255.0)


@register_digit("zigzag", stochastic=True, parameters="zigzag polyline (a = b = 2) from column 2 to 25",
                draws="(r0, r1 − r0), int B×2 with r0 in [0, 27) and r1 − r0 in [−5, 5)")
def zigzag(digits: torch.Tensor, *, generator: torch.Generator | None = None,
           draws: torch.Tensor | None = None) -> torch.Tensor:
    """x ← clip(x + segment, 0, 1) for each segment in order, then round(255·x)."""
    rows = _rows(digits, generator, draws, "zigzag", ZIGZAG_OFFSETS[0], ZIGZAG_OFFSETS[-1] + 1)
    layers = zigzag_layers().to(digits.device)[rows[:, 0], rows[:, 1] - ZIGZAG_OFFSETS[0]]
    x = divide(digits.to(torch.float64), 255.0)
    for s in range(layers.shape[1]):
        x = (x + layers[:, s]).clamp_(0.0, 1.0)
    return round_to_uint8(x * 255.0)
