"""Gaussian centre heatmaps for centre-head trackers (OSTrack/GRM `generate_heatmap` rule)."""
from __future__ import annotations

import numpy as np

MIN_OVERLAP = 0.7


def gaussian_radius(wh: np.ndarray, min_overlap: float = MIN_OVERLAP) -> np.ndarray:
    """CornerNet radius for boxes of size wh [..., 2] (w, h in map cells) -> [...] float32.

    The widely used "buggy" form: each of the three quadratic roots a x^2 - b x + c = 0 is taken
    as (b + sqrt(b^2 - 4ac)) / 2 (not divided by 2a), and the smallest is kept:
      1. a = 1,      b = w + h,          c = w h (1 - o) / (1 + o)
      2. a = 4,      b = 2 (w + h),      c = (1 - o) w h
      3. a = 4 o,    b = -2 o (w + h),   c = (o - 1) w h
    Evaluated in float32 with the official order of operations (Python scalars cast to float32).
    """
    wh = np.asarray(wh, np.float32)
    w, h = wh[..., 0], wh[..., 1]
    o = min_overlap
    f32 = np.float32
    b1 = h + w
    c1 = w * h * f32(1 - o) / f32(1 + o)
    r1 = (b1 + np.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = f32(1 - o) * w * h
    r2 = (b2 + np.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * o
    b3 = f32(-2 * o) * (h + w)
    c3 = f32(o - 1) * w * h
    r3 = (b3 + np.sqrt(b3 ** 2 - f32(4 * a3) * c3)) / 2
    return np.minimum(r1, np.minimum(r2, r3)).astype(np.float32)


def gaussian_kernel(radius: int) -> np.ndarray:
    """[2r+1, 2r+1] float64 Gaussian with sigma = (2r+1)/6, peak 1, tiny values (< eps*max) 0."""
    diameter = 2 * radius + 1
    sigma = diameter / 6
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma * sigma))
    kernel[kernel < np.finfo(kernel.dtype).eps * kernel.max()] = 0
    return kernel


def _paste_max(heatmap: np.ndarray, kernel: np.ndarray, cx: int, cy: int) -> None:
    """heatmap = max(heatmap, kernel centred at (cx, cy)), cropped at the borders (in place)."""
    radius = kernel.shape[0] // 2
    height, width = heatmap.shape
    x0, x1 = max(cx - radius, 0), min(cx + radius + 1, width)
    y0, y1 = max(cy - radius, 0), min(cy + radius + 1, height)
    if x1 <= x0 or y1 <= y0:
        return
    patch = kernel[y0 - cy + radius:y1 - cy + radius, x0 - cx + radius:x1 - cx + radius]
    heatmap[y0:y1, x0:x1] = np.maximum(heatmap[y0:y1, x0:x1], patch)


def gaussian_heatmap(boxes_norm_xywh, size: int) -> np.ndarray:
    """Centre heatmaps for boxes given as fractions of the search crop.

    boxes_norm_xywh: [B, 4] (x, y, w, h), fractions of the crop side. size: map side in cells.
    The box is scaled by `size`; centre = round-half-to-even(x + w/2, y + h/2); radius = int(max(0,
    gaussian_radius(w, h))); a Gaussian of diameter 2r+1 and sigma diameter/6 is pasted with
    element-wise max (peak 1 at the centre cell, cropped at the map borders).
    Returns [B, size, size] float32.
    """
    boxes = np.asarray(boxes_norm_xywh, np.float32)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f'gaussian_heatmap: boxes must be [B, 4], got {boxes.shape}')
    if not np.all(np.isfinite(boxes)):
        raise ValueError(f'gaussian_heatmap: boxes have NaN/inf values: {boxes.tolist()}')
    scaled = boxes * np.float32(size)
    wh = scaled[:, 2:]
    centres = np.round(scaled[:, :2] + wh / np.float32(2)).astype(np.int64)
    radii = np.maximum(gaussian_radius(wh), 0).astype(np.int64)
    heatmaps = np.zeros((len(boxes), size, size), np.float64)
    for i in range(len(boxes)):
        _paste_max(heatmaps[i], gaussian_kernel(int(radii[i])), int(centres[i, 0]),
                   int(centres[i, 1]))
    return heatmaps.astype(np.float32)
