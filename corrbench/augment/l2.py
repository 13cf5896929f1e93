"""Clipping-aware L2 rescaling (Rauber & Bethge 2020, arXiv 2007.07677), batched.

For each image x (flattened, in [low, high]) and direction δ, find η ≥ 0 with
‖clip(x + η·δ, low, high) − x‖₂ = k exactly. The clipped squared norm is piecewise linear in η²:
coordinate i saturates at η² = f_i = space_i² / δ_i² (space = distance to the bound δ_i points at),
so sorting the f_i gives the breakpoints, and the segment that reaches k² is solved in closed form.
When k exceeds the largest reachable norm (every moving coordinate saturated), η is the last
breakpoint and the achieved norm is that maximum. Used by ESP and the L2-noise baseline.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from corrbench.errors import InvalidValueError, LayoutError


def precise_dtype(device: torch.device) -> torch.dtype:
    """float64 where the device has it (exact norms over thousands of coordinates), else float32."""
    return torch.float32 if device.type == "mps" else torch.float64


def clipping_aware_rescaling(x: torch.Tensor, delta: torch.Tensor, norm: float | torch.Tensor, *,
                             low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """η per image (shape B) such that ‖clip(x + η·δ, low, high) − x‖₂ = norm (or its maximum).

    `x` and `delta` are B×… tensors of the same shape; `norm` is a number or a length-B tensor.
    The result is in `precise_dtype(x.device)`.
    """
    if x.shape != delta.shape or x.ndim < 2:
        raise LayoutError(f"x and delta must be batches of the same shape B×…, got {tuple(x.shape)} "
                          f"and {tuple(delta.shape)}")
    batch = x.shape[0]
    dtype = precise_dtype(x.device)
    flat_x = x.reshape(batch, -1).to(dtype)
    flat_delta = delta.reshape(batch, -1).to(dtype)
    target = torch.as_tensor(norm, dtype=dtype, device=x.device).expand(batch)
    if bool((target < 0).any()) or not bool(torch.isfinite(target).all()):
        raise InvalidValueError("the L2 norm to rescale to must be finite and ≥ 0")
    target_sq = (target * target)[:, None]

    delta_sq = flat_delta * flat_delta
    space = torch.where(flat_delta >= 0, high - flat_x, flat_x - low).clamp_min(0)
    # η² at which each coordinate hits its bound; coordinates with δ_i = 0 never do (huge but finite).
    saturation = space * space / delta_sq.clamp_min(1e-20)
    breakpoints, order = saturation.sort(dim=1)
    sorted_delta_sq = delta_sq.gather(1, order)
    # slope of the clipped squared norm in η² on segment j: Σ δ_i² over coordinates not yet saturated
    slope = sorted_delta_sq.flip(1).cumsum(1).flip(1)
    steps = torch.diff(breakpoints, dim=1, prepend=breakpoints.new_zeros(batch, 1))
    norm_sq_at_breakpoints = (slope * steps).cumsum(1)   # non-decreasing, so searchsorted applies

    segment = torch.searchsorted(norm_sq_at_breakpoints.contiguous(), target_sq.contiguous())
    reachable = segment < breakpoints.shape[1]
    segment = segment.clamp(max=breakpoints.shape[1] - 1)
    # solve on segment j from its start (breakpoint j − 1; 0 for j = 0): no cancellation for small norms
    padded_breakpoints = F.pad(breakpoints, (1, 0))
    padded_norm_sq = F.pad(norm_sq_at_breakpoints, (1, 0))
    start = padded_breakpoints.gather(1, segment)
    start_norm_sq = padded_norm_sq.gather(1, segment)
    slope_j = slope.gather(1, segment)
    solved = start + (target_sq - start_norm_sq).clamp_min(0) / slope_j.clamp_min(torch.finfo(dtype).tiny)
    # unreachable: the η² at which the last moving coordinate saturates (all of them at their bounds)
    last_moving = torch.where(sorted_delta_sq > 0, breakpoints, torch.zeros_like(breakpoints)).amax(1, keepdim=True)
    eta_sq = torch.where(reachable, solved, last_moving)
    eta_sq = torch.where(slope[:, :1] > 0, eta_sq, torch.zeros_like(eta_sq))   # δ = 0: nothing moves
    return eta_sq.clamp_min(0).sqrt().squeeze(1)


def l2_perturb(x: torch.Tensor, direction: torch.Tensor, norm: float | torch.Tensor, *,
               low: float = 0.0, high: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """clip(x + η·direction) with η from `clipping_aware_rescaling`, and the achieved L2 norm per image.

    `x` is a float batch. The perturbed batch has x's dtype; the achieved norm ‖x' − x‖₂ (shape B) equals
    `norm` wherever it is reachable within [low, high] and is the largest reachable norm elsewhere.
    """
    eta = clipping_aware_rescaling(x, direction, norm, low=low, high=high)
    dtype = eta.dtype
    shape = (-1,) + (1,) * (x.ndim - 1)
    precise = x.to(dtype)
    perturbed = (precise + eta.view(shape) * direction.to(dtype)).clamp(low, high)
    achieved = (perturbed - precise).reshape(x.shape[0], -1).norm(dim=1)
    return perturbed.to(x.dtype), achieved.to(x.dtype)
