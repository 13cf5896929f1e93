"""The tilt sequence (spec B.2): a perspective warp, `cv2.warpPerspective(img, Mt, (32, 32))` with
INTER_LINEAR and a constant-0 border, emulated in OpenCV 4.x's integer arithmetic.

OpenCV 4.x maps each destination pixel to a source position quantised to 1/32 px and blends the four
neighbours with integer weights that sum to 2¹⁵; OpenCV 5.0 uses float coordinates and differs by up to
7 levels (spec §0.6). The reference data was made with the 4.x behaviour, which this module reproduces.
"""
from __future__ import annotations

import numpy as np
import torch

from corrbench.perturbations.registry import FRAME_SIZE, register_perturbation

TILT_FRAMES = 31
INTER_BITS = 5                      # OpenCV's INTER_TAB_SIZE = 32 sub-pixel steps
INTER_TAB_SIZE = 1 << INTER_BITS
REMAP_COEF_BITS = 15                # integer bilinear weights sum to 2¹⁵


def tilt_matrix(degrees: float, size: int = FRAME_SIZE) -> np.ndarray:
    """Mt = P2·T·RX(θ)·RY(φ)·P1 with φ = θ = `degrees` (spec B.2), float64 3×3, in the reference's
    NumPy operation order so the bits match."""
    w = h = size
    phi = theta = np.deg2rad(degrees)
    f = np.sqrt(w ** 2 + h ** 2)
    p1 = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1], [0, 0, 1]])
    rx = np.array([[1, 0, 0, 0], [0, np.cos(theta), -np.sin(theta), 0],
                   [0, np.sin(theta), np.cos(theta), 0], [0, 0, 0, 1]])
    ry = np.array([[np.cos(phi), 0, -np.sin(phi), 0], [0, 1, 0, 0],
                   [np.sin(phi), 0, np.cos(phi), 0], [0, 0, 0, 1]])
    t = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, f], [0, 0, 0, 1]])
    p2 = np.array([[f, 0, w / 2, 0], [0, f, h / 2, 0], [0, 0, 1, 0]])
    return p2 @ t @ rx @ ry @ p1


def opencv_invert3(matrix: np.ndarray) -> tuple[float, ...]:
    """`cv::invert(M, DECOMP_LU)` of a float64 3×3 matrix: OpenCV's closed form (adjugate times 1/det, in
    its operation order), as warpPerspective inverts Mt; row-major m0..m8."""
    m = [[float(v) for v in row] for row in np.asarray(matrix, dtype=np.float64)]
    det = (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
           - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
           + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))
    if det == 0:
        raise ValueError("the perspective matrix is singular")
    d = 1.0 / det
    return ((m[1][1] * m[2][2] - m[1][2] * m[2][1]) * d, (m[0][2] * m[2][1] - m[0][1] * m[2][2]) * d,
            (m[0][1] * m[1][2] - m[0][2] * m[1][1]) * d, (m[1][2] * m[2][0] - m[1][0] * m[2][2]) * d,
            (m[0][0] * m[2][2] - m[0][2] * m[2][0]) * d, (m[0][2] * m[1][0] - m[0][0] * m[1][2]) * d,
            (m[1][0] * m[2][1] - m[1][1] * m[2][0]) * d, (m[0][1] * m[2][0] - m[0][0] * m[2][1]) * d,
            (m[0][0] * m[1][1] - m[0][1] * m[1][0]) * d)


def warp_perspective_opencv4(images: torch.Tensor, matrix: np.ndarray) -> torch.Tensor:
    """`cv2.warpPerspective(img, matrix, (S, S))` (INTER_LINEAR, BORDER_CONSTANT 0) of uint8 images
    B×3×S×S, in OpenCV 4.x's integer arithmetic (spec B.2).

    With M = matrix⁻¹: for destination (x, y), W = 32/(m6·x + m7·y + m8), X = rint((m0·x + m1·y + m2)·W),
    Y likewise (float64; the sums in OpenCV's order). The source cell is (X >> 5, Y >> 5), the fraction
    (X & 31, Y & 31)/32; weights (32−fx)(32−fy)·32 … sum to 2¹⁵; out = (Σ w·p + 2¹⁴) >> 15, with
    neighbours outside the image counting as 0.
    """
    size = images.shape[-1]
    m0, m1, m2, m3, m4, m5, m6, m7, m8 = opencv_invert3(matrix)
    grid = torch.arange(size, device=images.device, dtype=torch.float64)
    col, row = grid.view(1, -1), grid.view(-1, 1)
    # OpenCV adds the row terms once per row (X0, Y0, W0), then the column term.
    x_row, y_row, w_row = m1 * row + m2, m4 * row + m5, m7 * row + m8
    w = w_row + m6 * col
    w = torch.where(w != 0, INTER_TAB_SIZE / w, 0.0)
    limit = float(2 ** 31 - 1)
    x_fixed = torch.round(((x_row + m0 * col) * w).clamp(-limit - 1, limit)).long()
    y_fixed = torch.round(((y_row + m3 * col) * w).clamp(-limit - 1, limit)).long()
    sx, sy = x_fixed >> INTER_BITS, y_fixed >> INTER_BITS
    fx, fy = x_fixed & (INTER_TAB_SIZE - 1), y_fixed & (INTER_TAB_SIZE - 1)
    total = torch.zeros((images.shape[0], images.shape[1], size, size), device=images.device, dtype=torch.int64)
    for oy, wy in ((0, INTER_TAB_SIZE - fy), (1, fy)):
        for ox, wx in ((0, INTER_TAB_SIZE - fx), (1, fx)):
            ys, xs = sy + oy, sx + ox
            inside = (xs >= 0) & (xs < size) & (ys >= 0) & (ys < size)
            pixels = images[:, :, ys.clamp(0, size - 1), xs.clamp(0, size - 1)].to(torch.int64)
            weight = wx * wy * INTER_TAB_SIZE * inside
            total += pixels * weight
    return ((total + (1 << (REMAP_COEF_BITS - 1))) >> REMAP_COEF_BITS).to(torch.uint8)


def tilt_degrees(t: int) -> float:
    return 0.75 * (t - 15)


@register_perturbation("tilt", frames=TILT_FRAMES, stochastic=False, clean_first=False,
                       schedule="perspective tilt φ = θ = 0.75·(t − 15) degrees (−11.25…+11.25)")
def tilt(images: torch.Tensor) -> torch.Tensor:
    """B.2: frame t is `cv2.warpPerspective(img, Mt, (32, 32))` with φ = θ = 0.75·(t − 15) degrees."""
    videos = images.new_empty((images.shape[0], TILT_FRAMES, *images.shape[1:]))
    for t in range(TILT_FRAMES):
        videos[:, t] = warp_perspective_opencv4(images, tilt_matrix(tilt_degrees(t)))
    return videos
