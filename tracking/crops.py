"""Square crops around a target: the official host-side crop, a jittable crop, normalisation."""
from __future__ import annotations

import functools
import math

import cv2
import jax
import jax.numpy as jnp
import numpy as np

from tracking.boxes import array_module, validate_box_xywh

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def crop_window(box_xywh, factor: float) -> tuple[int, int, int]:
    """Square crop window of the official `sample_target`: (x1, y1, crop_sz) in pixels.

    crop_sz = ceil(sqrt(w * h) * factor); x1 = round(x + w/2 - crop_sz/2) with Python's round
    (half to even); same for y1. The window is [x1, x1 + crop_sz) x [y1, y1 + crop_sz).
    """
    x, y, w, h = (float(v) for v in validate_box_xywh(box_xywh, 'sample_target'))
    crop_sz = math.ceil(math.sqrt(w * h) * factor)
    if crop_sz < 1:
        raise ValueError(f'sample_target: box {[x, y, w, h]} with factor {factor} gives a crop '
                         f'of {crop_sz} px (< 1 px)')
    x1 = round(x + 0.5 * w - crop_sz * 0.5)
    y1 = round(y + 0.5 * h - crop_sz * 0.5)
    return int(x1), int(y1), int(crop_sz)


def sample_target(image: np.ndarray, box_xywh, factor: float, out_size: int):
    """Crops a square of side ceil(sqrt(w h) factor) around the box centre, as GRM/OSTrack do.

    image: [H, W, 3] uint8 RGB. box_xywh: (x, y, w, h) in pixels. out_size: output side in px.
    Parts of the window outside the image are zero (black). As in the official code, the
    right/bottom padding is one pixel wider than needed when the window reaches the right/bottom
    edge (x1 + crop_sz >= W), so the image's last column/row is then replaced by padding.
    Returns (crop [out, out, 3] uint8, resize_factor = out_size / crop_sz, pad_mask [out, out]
    bool, True = padding; the official att_mask: the full-size mask resized bilinearly and any
    non-zero value counted as padding).
    Raises ValueError for NaN/inf or non-positive boxes and crops under 1 px.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f'sample_target: image must be [H, W, C], got {image.shape}')
    x1, y1, crop_sz = crop_window(box_xywh, factor)
    height, width = image.shape[:2]
    x2, y2 = x1 + crop_sz, y1 + crop_sz
    pad_left, pad_top = max(0, -x1), max(0, -y1)
    pad_right, pad_bottom = max(x2 - width + 1, 0), max(y2 - height + 1, 0)

    # The part of the window inside the image (after the +1 quirk), in image and crop coordinates.
    src_x0, src_x1 = x1 + pad_left, x2 - pad_right
    src_y0, src_y1 = y1 + pad_top, y2 - pad_bottom
    padded = np.zeros((crop_sz, crop_sz, image.shape[2]), image.dtype)
    mask = np.ones((crop_sz, crop_sz), np.float64)
    if src_x1 > src_x0 and src_y1 > src_y0:
        inside = image[src_y0:src_y1, src_x0:src_x1]
        padded = cv2.copyMakeBorder(inside, pad_top, pad_bottom, pad_left, pad_right,
                                    cv2.BORDER_CONSTANT, value=0)
        if padded.ndim == 2:  # cv2 drops a single channel axis
            padded = padded[..., None]
        mask[pad_top:crop_sz - pad_bottom, pad_left:crop_sz - pad_right] = 0.0

    crop = cv2.resize(padded, (out_size, out_size), interpolation=cv2.INTER_LINEAR)
    if crop.ndim == 2:
        crop = crop[..., None]
    pad_mask = cv2.resize(mask, (out_size, out_size), interpolation=cv2.INTER_LINEAR) != 0
    return crop, out_size / crop_sz, pad_mask


def normalize_imagenet(x):
    """[..., 3] RGB images, uint8 0..255 or float 0..255 -> float32 (x/255 - mean)/std."""
    xp = array_module(x)
    x = xp.asarray(x).astype(xp.float32) / 255.0
    mean = xp.asarray(IMAGENET_MEAN, xp.float32)
    std = xp.asarray(IMAGENET_STD, xp.float32)
    return (x - mean) / std


def _sample_coords(lo, hi, out_size, limit):
    """Bilinear taps along one axis for every output pixel.

    lo, hi: [] crop edges in source pixels. Output pixel i samples lo + (i + 0.5)(hi - lo)/out
    - 0.5 (cv2's half-pixel rule). Returns (i0, i1 [out] int32 clipped indices, w0, w1 [out]
    float32 weights that are 0 for taps outside [0, limit)).
    """
    pos = lo + (jnp.arange(out_size, dtype=jnp.float32) + 0.5) * (hi - lo) / out_size - 0.5
    i0 = jnp.floor(pos)
    frac = pos - i0
    i0 = i0.astype(jnp.int32)
    i1 = i0 + 1
    w0 = jnp.where((i0 >= 0) & (i0 < limit), 1.0 - frac, 0.0)
    w1 = jnp.where((i1 >= 0) & (i1 < limit), frac, 0.0)
    return jnp.clip(i0, 0, limit - 1), jnp.clip(i1, 0, limit - 1), w0, w1


def _crop_one(image, box, out_size):
    height, width = image.shape[:2]
    ry0, ry1, wy0, wy1 = _sample_coords(box[1], box[3], out_size, height)
    cx0, cx1, wx0, wx1 = _sample_coords(box[0], box[2], out_size, width)
    rows = image[ry0] * wy0[:, None, None] + image[ry1] * wy1[:, None, None]   # [out, W, C]
    return rows[:, cx0] * wx0[None, :, None] + rows[:, cx1] * wx1[None, :, None]


def crop_and_resize(images, boxes_xyxy, out_size: int):
    """Jittable bilinear crop-and-resize with zero padding outside the image.

    images: [B, H, W, C] uint8 or float. boxes_xyxy: [B, 4] float, (x0, y0, x1, y1) in pixels,
    the region to crop (pixel i covers [i, i + 1)). Output pixel i samples source coordinate
    x0 + (i + 0.5)(x1 - x0)/out_size - 0.5, as cv2.resize does; taps outside the image read 0.
    Returns [B, out_size, out_size, C] float32.
    """
    images = jnp.asarray(images).astype(jnp.float32)
    boxes = jnp.asarray(boxes_xyxy, jnp.float32)
    return jax.vmap(functools.partial(_crop_one, out_size=out_size))(images, boxes)
