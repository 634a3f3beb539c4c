"""Box conversions and overlaps on numpy or jax arrays of shape [..., 4].

Formats: `xywh` = (x, y, w, h) top-left + size, `xyxy` = corners (x0, y0, x1, y1), `cxcywh` =
centre + size. Every function picks its array module from the input: jax arrays (and tracers)
give jax results, anything else gives numpy. No "+1 pixel" convention anywhere: a box's width is
x1 - x0.
"""
from __future__ import annotations

import sys

import numpy as np


def array_module(*arrays):
    """`jnp` if any input is a jax array (or tracer), else `np`.

    JAX is not imported here: an input can only be a jax array once jax is loaded, so numpy-only
    users of this module (benchmark readers, metrics, eval.py scoring) never pay for importing it.
    """
    jax = sys.modules.get('jax')
    if jax is not None and any(isinstance(a, jax.Array) for a in arrays):
        return jax.numpy
    return np


def _as_array(xp, box):
    box = xp.asarray(box)
    if not xp.issubdtype(box.dtype, xp.floating):
        box = box.astype(xp.float32)
    if box.shape[-1:] != (4,):
        raise ValueError(f'boxes must have shape [..., 4], got {box.shape}')
    return box


def _split(xp, box):
    box = _as_array(xp, box)
    return box[..., 0], box[..., 1], box[..., 2], box[..., 3]


def xywh_to_xyxy(box):
    """[..., 4] (x, y, w, h) -> [..., 4] (x0, y0, x1, y1)."""
    xp = array_module(box)
    x, y, w, h = _split(xp, box)
    return xp.stack([x, y, x + w, y + h], axis=-1)


def xyxy_to_xywh(box):
    """[..., 4] (x0, y0, x1, y1) -> [..., 4] (x, y, w, h)."""
    xp = array_module(box)
    x0, y0, x1, y1 = _split(xp, box)
    return xp.stack([x0, y0, x1 - x0, y1 - y0], axis=-1)


def cxcywh_to_xyxy(box):
    """[..., 4] (cx, cy, w, h) -> [..., 4] (x0, y0, x1, y1)."""
    xp = array_module(box)
    cx, cy, w, h = _split(xp, box)
    return xp.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)


def xyxy_to_cxcywh(box):
    """[..., 4] (x0, y0, x1, y1) -> [..., 4] (cx, cy, w, h)."""
    xp = array_module(box)
    x0, y0, x1, y1 = _split(xp, box)
    return xp.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], axis=-1)


def xywh_to_cxcywh(box):
    """[..., 4] (x, y, w, h) -> [..., 4] (cx, cy, w, h)."""
    xp = array_module(box)
    x, y, w, h = _split(xp, box)
    return xp.stack([x + 0.5 * w, y + 0.5 * h, w, h], axis=-1)


def cxcywh_to_xywh(box):
    """[..., 4] (cx, cy, w, h) -> [..., 4] (x, y, w, h)."""
    xp = array_module(box)
    cx, cy, w, h = _split(xp, box)
    return xp.stack([cx - 0.5 * w, cy - 0.5 * h, w, h], axis=-1)


def _safe_divide(xp, num, den):
    """num / den where den > 0, else 0 (gradient-safe: never divides by zero)."""
    positive = den > 0
    return xp.where(positive, num / xp.where(positive, den, 1), 0)


def _overlap(xp, a, b):
    """Intersection and union areas of xyxy boxes a and b (broadcast)."""
    ax0, ay0, ax1, ay1 = _split(xp, a)
    bx0, by0, bx1, by1 = _split(xp, b)
    inter_w = xp.maximum(xp.minimum(ax1, bx1) - xp.maximum(ax0, bx0), 0)
    inter_h = xp.maximum(xp.minimum(ay1, by1) - xp.maximum(ay0, by0), 0)
    inter = inter_w * inter_h
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter, union


def iou(a, b):
    """Elementwise IoU of xyxy boxes a [..., 4] and b [..., 4] (broadcasting) -> [...].

    0 where the union is 0.
    """
    xp = array_module(a, b)
    inter, union = _overlap(xp, a, b)
    return _safe_divide(xp, inter, union)


def giou(a, b):
    """Elementwise generalised IoU of xyxy boxes (broadcasting) -> (giou [...], iou [...]).

    giou = iou - (enclosing - union) / enclosing; iou is 0 where the union is 0 and giou equals
    iou where the enclosing box has no area.
    """
    xp = array_module(a, b)
    inter, union = _overlap(xp, a, b)
    overlap = _safe_divide(xp, inter, union)
    ax0, ay0, ax1, ay1 = _split(xp, a)
    bx0, by0, bx1, by1 = _split(xp, b)
    enclose_w = xp.maximum(xp.maximum(ax1, bx1) - xp.minimum(ax0, bx0), 0)
    enclose_h = xp.maximum(xp.maximum(ay1, by1) - xp.minimum(ay0, by0), 0)
    enclose = enclose_w * enclose_h
    return overlap - _safe_divide(xp, enclose - union, enclose), overlap


def clip_box_margin(box_xywh, image_hw, margin=10):
    """Keeps a box inside the image, as the GRM/OSTrack tracker's `clip_box`.

    box_xywh: [..., 4] (x, y, w, h) in pixels; image_hw: (H, W).
    x1 is clamped to [0, W - margin], x2 = x + w (from the unclipped x) to [margin, W]; same for
    y; then w = max(margin, x2 - x1), h = max(margin, y2 - y1).
    Returns [..., 4] (x, y, w, h).
    """
    xp = array_module(box_xywh)
    height, width = image_hw
    x, y, w, h = _split(xp, box_xywh)
    x2, y2 = x + w, y + h
    x1 = xp.minimum(xp.maximum(x, 0), width - margin)
    x2 = xp.minimum(xp.maximum(x2, margin), width)
    y1 = xp.minimum(xp.maximum(y, 0), height - margin)
    y2 = xp.minimum(xp.maximum(y2, margin), height)
    w = xp.maximum(x2 - x1, margin)
    h = xp.maximum(y2 - y1, margin)
    return xp.stack([x1, y1, w, h], axis=-1)


def polygon_to_xywh(polygons):
    """[..., 8] polygons (x1, y1, ..., x4, y4) -> [..., 4] axis-aligned bounding box (x, y, w, h).

    Min/max of the corners (the simple benchmark convention).
    """
    xp = array_module(polygons)
    polygons = xp.asarray(polygons)
    if polygons.shape[-1:] != (8,):
        raise ValueError(f'polygons must have shape [..., 8], got {polygons.shape}')
    if not xp.issubdtype(polygons.dtype, xp.floating):
        polygons = polygons.astype(xp.float32)
    xs, ys = polygons[..., 0::2], polygons[..., 1::2]
    x0, y0 = xs.min(axis=-1), ys.min(axis=-1)
    return xp.stack([x0, y0, xs.max(axis=-1) - x0, ys.max(axis=-1) - y0], axis=-1)


def validate_box_xywh(box, where: str) -> np.ndarray:
    """Checks a concrete (x, y, w, h) box [..., 4]; returns it as a float64 numpy array.

    Raises ValueError naming `where` if any value is NaN/inf or any w <= 0 or h <= 0.
    """
    arr = np.asarray(box, dtype=np.float64)
    if arr.shape[-1:] != (4,):
        raise ValueError(f'{where}: box must have shape [..., 4], got {arr.shape}')
    if not np.all(np.isfinite(arr)):
        raise ValueError(f'{where}: box has NaN or inf values: {arr.tolist()}')
    if np.any(arr[..., 2] <= 0) or np.any(arr[..., 3] <= 0):
        raise ValueError(f'{where}: box must have positive width and height: {arr.tolist()}')
    return arr
