"""Pillow's BOX resize of 8-bit images, emulated in integers on a batch (spec G9)."""
from __future__ import annotations

import functools

import numpy as np
import torch

_PRECISION_BITS = 22  # Pillow's fixed point for 8-bit resampling: 32 − 8 − 2


@functools.lru_cache(maxsize=None)
def box_coefficients(in_size: int, out_size: int) -> np.ndarray:
    """Pillow's fixed-point BOX weights, int64 out_size × in_size (`precompute_coeffs` and
    `normalize_coeffs_8bpc` of Resample.c, same double arithmetic)."""
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    inverse = 1.0 / filterscale
    fixed = np.zeros((out_size, in_size), dtype=np.int64)
    for o in range(out_size):
        center = (o + 0.5) * scale
        lo = max(0, int(center - support + 0.5))
        hi = min(in_size, int(center + support + 0.5))
        weights = [1.0 if -0.5 < (j - center + 0.5) * inverse <= 0.5 else 0.0 for j in range(lo, hi)]
        total = 0.0
        for w in weights:
            total += w
        for j, w in zip(range(lo, hi), weights):
            normalised = w / total if total != 0.0 else w
            fixed[o, j] = int(0.5 + normalised * (1 << _PRECISION_BITS))
    fixed.setflags(write=False)
    return fixed


@functools.lru_cache(maxsize=None)
def box_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The nonzero weights of `box_coefficients` as taps: (index int64 out×T, weight int32 out×T), rows
    padded with zero weights; T is the most inputs one output averages (1 to ⌈in/out⌉ + 1)."""
    fixed = box_coefficients(in_size, out_size)
    nonzero = [np.flatnonzero(row) for row in fixed]
    taps = max(1, max(len(n) for n in nonzero))
    index = np.zeros((out_size, taps), dtype=np.int64)
    weight = np.zeros((out_size, taps), dtype=np.int32)
    for o, columns in enumerate(nonzero):
        index[o, :len(columns)], weight[o, :len(columns)] = columns, fixed[o, columns]
        index[o, len(columns):] = columns[0] if len(columns) else 0
    index.setflags(write=False)
    weight.setflags(write=False)
    return index, weight


@functools.lru_cache(maxsize=None)
def _device_taps(in_size: int, out_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
    """`box_taps` on `device`, built once per (in, out, device) rather than per call and tap: (index int64
    T×out, weight int32 T×out×1, or None when every output copies one input with weight 2²² (then
    (2²²·p + 2²¹) >> 22 = p and the pass is a pure selection), whether the 8-bit clip can be skipped)."""
    index, weight = box_taps(in_size, out_size)
    rows = torch.from_numpy(index.T.copy()).to(device)
    if index.shape[1] == 1 and bool((weight == 1 << _PRECISION_BITS).all()):
        return rows, None, True
    # Weights are ≥ 0, so Σ K·p + 2²¹ ≤ 255·max ΣK + 2²¹; below 256·2²² the clip to [0, 255] is a no-op.
    in_range = 255 * int(weight.astype(np.int64).sum(axis=1).max()) + (1 << (_PRECISION_BITS - 1)) < 256 << _PRECISION_BITS
    return rows, torch.from_numpy(weight.T.copy()).to(device).unsqueeze(-1), in_range


def _resample_front(x: torch.Tensor, in_size: int, out_size: int) -> torch.Tensor:
    """One Pillow pass along dim 1 of int32 N×in×M images (resampled axis in the middle: whole rows are
    selected, which is several times faster than gathering along the last axis): clip8((Σ K·p + 2²¹) >> 22),
    int32 N×out×M.

    Σ K·p ≤ 255·ΣK ≈ 255·2²² < 2³¹, so int32 is exact; the same integers on every device.
    """
    index, weight, in_range = _device_taps(in_size, out_size, x.device)
    if weight is None:  # nearest: a copy
        return x.index_select(1, index[0])
    total = x.index_select(1, index[0]).mul_(weight[0])
    for tap in range(1, index.shape[0]):
        total.addcmul_(x.index_select(1, index[tap]), weight[tap])
    total.add_(1 << (_PRECISION_BITS - 1)).bitwise_right_shift_(_PRECISION_BITS)
    return total if in_range else total.clamp_(0, 255)


def box_resize(images: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """`PIL.Image.resize((width, height), BOX)` of every uint8 image B×C×H×W, `size` = side or (height,
    width): horizontal pass first, the intermediate rounded and clipped to 8 bits, then the vertical
    pass. Returns uint8 B×C×height×width (contiguous).

    A pass that copies one input per output (upscaling) selects uint8 values directly; a weighted pass
    works in int32 with the resampled axis in the middle, so the horizontal one runs on a transposed
    copy (made together with the int32 cast) and the vertical one selects whole rows.
    """
    height, width = (size, size) if isinstance(size, int) else size
    batch, channels, in_height, in_width = images.shape
    x = images.reshape(batch * channels, in_height, in_width)
    if _device_taps(in_width, width, x.device)[1] is None:
        x = x.index_select(2, _device_taps(in_width, width, x.device)[0][0])              # N×H×width uint8
    else:
        x = x.transpose(1, 2).to(torch.int32, memory_format=torch.contiguous_format)   # N×W×H
        x = _resample_front(x, in_width, width).transpose(1, 2)                         # N×H×width (view)
    if _device_taps(in_height, height, x.device)[1] is None:
        x = x.index_select(1, _device_taps(in_height, height, x.device)[0][0])
    else:
        x = _resample_front(x.to(torch.int32, memory_format=torch.contiguous_format), in_height, height)
    return x.to(torch.uint8, memory_format=torch.contiguous_format).view(batch, channels, height, width)
