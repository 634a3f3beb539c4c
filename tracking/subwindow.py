"""pysot's `get_subwindow`: a square crop with average-colour padding, resized bilinearly.

Shared by the Siamese trackers (SiamRPN++, SiamMask, ...). Exact official semantics, including
the uint8 truncation of the padding colour and cv2's default INTER_LINEAR resize.
"""
from __future__ import annotations

import math

import cv2
import numpy as np


def context_size(w, h, context: float = 0.5):
    """Side of the SiamFC context square: sqrt((w + p) (h + p)), p = context (w + h).
    w, h: scalars or arrays (pixels); numpy float arithmetic in the caller's dtype."""
    pad = context * (w + h)
    return np.sqrt((w + pad) * (h + pad))


def subwindow_bounds(center_xy, original_size: int) -> tuple[int, int, int, int]:
    """Inclusive pixel window (x0, y0, x1, y1) of side original_size around center_xy.

    c = (original_size + 1) / 2; x0 = floor(cx - c + 0.5); x1 = x0 + original_size - 1.
    """
    half = (original_size + 1) / 2
    x0 = math.floor(float(center_xy[0]) - half + 0.5)
    y0 = math.floor(float(center_xy[1]) - half + 0.5)
    return x0, y0, x0 + original_size - 1, y0 + original_size - 1


def get_subwindow(image: np.ndarray, center_xy, model_size: int, original_size: int,
                  pad_value) -> np.ndarray:
    """Crops the original_size x original_size window centred at center_xy, resized to model_size.

    image: [H, W, 3] uint8 (any channel order; pad_value uses the same order).
    center_xy: (cx, cy) in pixels. original_size: window side in pixels (int >= 1).
    pad_value: [3] per-channel padding colour (e.g. the image mean, float); it is truncated to
    uint8 as pysot's assignment into a uint8 canvas does (126.76 -> 126).
    Returns [model_size, model_size, 3] uint8.
    Raises ValueError for a non-HWC image or a window side < 1.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.dtype != np.uint8:
        raise ValueError(f'get_subwindow: image must be [H, W, C] uint8, got {image.shape} '
                         f'{image.dtype}')
    original_size = int(original_size)
    if original_size < 1 or not all(math.isfinite(float(v)) for v in center_xy[:2]):
        raise ValueError(f'get_subwindow: bad window: centre {tuple(center_xy)}, side '
                         f'{original_size} px')
    height, width, channels = image.shape
    x0, y0, x1, y1 = subwindow_bounds(center_xy, original_size)
    left, top = max(0, -x0), max(0, -y0)
    right, bottom = max(0, x1 - width + 1), max(0, y1 - height + 1)
    if left or top or right or bottom:
        canvas = np.empty((height + top + bottom, width + left + right, channels), np.uint8)
        canvas[...] = np.asarray(pad_value, np.float64).astype(np.uint8)
        canvas[top:top + height, left:left + width] = image
        patch = canvas[y0 + top:y1 + top + 1, x0 + left:x1 + left + 1]
    else:
        patch = image[y0:y1 + 1, x0:x1 + 1]
    if model_size != original_size:
        patch = cv2.resize(patch, (model_size, model_size))
    return np.ascontiguousarray(patch)
