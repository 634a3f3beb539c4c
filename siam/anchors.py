"""pysot anchors: base boxes per ratio/scale and the tracker's anchor grid."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def base_anchors(stride: int = 8, ratios: Sequence[float] = (0.33, 0.5, 1, 2, 3),
                 scales: Sequence[float] = (8,)) -> np.ndarray:
    """Anchors centred at 0, one per (ratio, scale), ratio-major: [A, 4] float32 (x0, y0, x1, y1).

    ratio = h / w; ws = int(sqrt(stride**2 / ratio)), hs = int(ws * ratio) (both truncated),
    then w = ws * scale, h = hs * scale. For the defaults (w, h) = (104, 32), (88, 40), (64, 64),
    (40, 80), (32, 96).
    """
    area = stride * stride
    boxes = []
    for ratio in ratios:
        ws = int(math.sqrt(area * 1.0 / ratio))
        hs = int(ws * ratio)
        for scale in scales:
            w, h = ws * scale, hs * scale
            boxes.append((-w * 0.5, -h * 0.5, w * 0.5, h * 0.5))
    return np.asarray(boxes, np.float32)


def score_size(instance_size: int = 255, exemplar_size: int = 127, stride: int = 8,
               base_size: int = 8) -> int:
    """Side of the tracker's score map: (instance - exemplar) // stride + 1 + base_size."""
    return (instance_size - exemplar_size) // stride + 1 + base_size


def tracker_anchors(size: int = 25, stride: int = 8, ratios: Sequence[float] = (0.33, 0.5, 1, 2, 3),
                    scales: Sequence[float] = (8,)) -> np.ndarray:
    """The tracker's anchor grid (pysot `SiamRPNTracker.generate_anchor`).

    Returns [A * size * size, 4] float32 rows (cx, cy, w, h) in search-patch pixels relative to
    the patch centre; row a * size**2 + y * size + x has cx = -(size // 2) * stride + stride * x,
    cy likewise with y.
    """
    corners = base_anchors(stride, ratios, scales)
    widths = corners[:, 2] - corners[:, 0]
    heights = corners[:, 3] - corners[:, 1]
    offsets = (-(size // 2) * stride + stride * np.arange(size)).astype(np.float32)
    grid_y, grid_x = np.meshgrid(offsets, offsets, indexing='ij')
    num = len(corners)
    anchors = np.empty((num, size, size, 4), np.float32)
    anchors[..., 0] = grid_x[None]
    anchors[..., 1] = grid_y[None]
    anchors[..., 2] = widths[:, None, None]
    anchors[..., 3] = heights[:, None, None]
    return anchors.reshape(num * size * size, 4)


def training_anchors(size: int = 25, search_size: int = 255, stride: int = 8,
                     ratios: Sequence[float] = (0.33, 0.5, 1, 2, 3),
                     scales: Sequence[float] = (8,)) -> tuple[np.ndarray, np.ndarray]:
    """The training anchor grid (pysot `Anchors.generate_all_anchors(search_size // 2, size)`).

    Returns (corners, centres), each [4, A, size, size] float32, in absolute search-crop pixels:
    corners (x1, y1, x2, y2), centres (cx, cy, w, h) with cx = c0 + stride * x,
    c0 = search_size // 2 - (size // 2) * stride (31 for 255 / 25 / 8), cy likewise with y.
    """
    base = base_anchors(stride, ratios, scales)
    origin = np.float32(search_size // 2 - (size // 2) * stride)
    shifted = base + origin
    x1, y1, x2, y2 = (shifted[:, i].reshape(-1, 1, 1) for i in range(4))
    cx, cy = (x1 + x2) * 0.5, (y1 + y2) * 0.5
    w, h = x2 - x1, y2 - y1
    disp = (np.arange(size) * stride).astype(np.float32)
    zero = np.zeros((len(base), size, size), np.float32)
    cx = cx + disp.reshape(1, 1, -1) + zero
    cy = cy + disp.reshape(1, -1, 1) + zero
    w, h = w + zero, h + zero
    centres = np.stack([cx, cy, w, h]).astype(np.float32)
    corners = np.stack([cx - w * 0.5, cy - h * 0.5, cx + w * 0.5, cy + h * 0.5]).astype(np.float32)
    return corners, centres
