"""The VOT polygon from a SiamAttn mask, on the host with OpenCV (official `SiamMaskTracker`).

    polygon = mask_polygon(mask_logits, mask_box, (W, H), fallback_box, threshold=0.2)

1. sigmoid of the [M, M] logits (float32);
2. `cv2.warpAffine` (INTER_LINEAR, constant border 0) of that M x M mask onto the W x H frame,
   through the official `_crop_back` affine: with s = M / (w, h) of mask_box (x, y, w, h),
   back = (-x s_w, -y s_h, W s_w, H s_h), the map is [[a, 0, -a back_x], [0, b, -b back_y]],
   a = (W - 1) / back_w, b = (H - 1) / back_h (it maps frame pixels to mask pixels, as the
   official code passes it without WARP_INVERSE_MAP);
3. pixels > threshold, `findContours(RETR_EXTERNAL, CHAIN_APPROX_NONE)`, the contour of the
   largest `contourArea`; if that area is > 100, `boxPoints(minAreaRect(contour))`;
4. otherwise (no contour, or a small one) the corners of the axis-aligned fallback box
   (x, y), (x + w, y), (x + w, y + h), (x, y + h).

OpenCV is called rather than re-implemented: warpAffine's fixed-point interpolation and
minAreaRect's corner order are OpenCV's conventions (the reference used 4.9; compare polygons as
point sets, the first corner can differ for axis-aligned rectangles).
"""
from __future__ import annotations

import cv2
import numpy as np

MIN_CONTOUR_AREA = 100.0


def sigmoid(logits) -> np.ndarray:
    """float32 1 / (1 + exp(-x)) of any array."""
    x = np.asarray(logits, np.float32)
    with np.errstate(over='ignore'):
        return (np.float32(1) / (np.float32(1) + np.exp(-x))).astype(np.float32)


def back_affine(mask_box, mask_size: int, frame_wh) -> np.ndarray:
    """[2, 3] float64 affine that `cv2.warpAffine` uses to put an M x M mask covering
    mask_box (x, y, w, h frame pixels) onto a W x H frame (official `_crop_back`)."""
    x, y, w, h = (float(v) for v in np.asarray(mask_box, np.float64).reshape(4))
    width, height = int(frame_wh[0]), int(frame_wh[1])
    s_w, s_h = mask_size / w, mask_size / h
    back = (-x * s_w, -y * s_h, width * s_w, height * s_h)
    a = (width - 1) / back[2]
    b = (height - 1) / back[3]
    return np.array([[a, 0.0, -a * back[0]], [0.0, b, -b * back[1]]], np.float64)


def mask_in_frame(mask_logits, mask_box, frame_wh) -> np.ndarray:
    """[H, W] float32: the sigmoid of mask_logits [M, M] warped onto the W x H frame."""
    logits = np.asarray(mask_logits, np.float32)
    if logits.ndim != 2 or logits.shape[0] != logits.shape[1]:
        raise ValueError(f'siam.polygon: mask logits must be [M, M], got {logits.shape}')
    width, height = int(frame_wh[0]), int(frame_wh[1])
    if width < 1 or height < 1:
        raise ValueError(f'siam.polygon: frame size (W, H) must be positive, got {frame_wh}')
    box = np.asarray(mask_box, np.float64).reshape(-1)
    if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
        raise ValueError(f'siam.polygon: mask box (x, y, w, h) must be finite with w, h > 0, '
                         f'got {box.tolist()}')
    return cv2.warpAffine(sigmoid(logits), back_affine(box, logits.shape[0], (width, height)),
                          (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def box_corners(box_xywh) -> np.ndarray:
    """(x, y, w, h) -> [4, 2] float32 corners (x, y), (x + w, y), (x + w, y + h), (x, y + h)."""
    x, y, w, h = (float(v) for v in np.asarray(box_xywh, np.float64).reshape(4))
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float32)


def binary_mask_polygon(binary, fallback_box) -> np.ndarray:
    """[H, W] bool/uint8 mask -> [4, 2] float32: boxPoints(minAreaRect) of its largest external
    contour when that contour's area is > 100, else the fallback box's corners."""
    binary = np.ascontiguousarray(np.asarray(binary) > 0, dtype=np.uint8)
    contours = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[-2]
    if len(contours):
        areas = [cv2.contourArea(c) for c in contours]
        best = int(np.argmax(areas))
        if areas[best] > MIN_CONTOUR_AREA:
            rect = cv2.minAreaRect(contours[best].reshape(-1, 2))
            return np.asarray(cv2.boxPoints(rect), np.float32)
    return box_corners(fallback_box)


def mask_polygon(mask_logits, mask_box, frame_wh, fallback_box, threshold: float = 0.2
                 ) -> np.ndarray:
    """The official VOT polygon [4, 2] float32 (OpenCV's boxPoints order) of one frame.

    mask_logits [M, M] (the mask head's logits, before the sigmoid); mask_box (x, y, w, h) the
    frame pixels the mask covers; frame_wh (W, H) the real frame size; fallback_box (x, y, w,
    h) the tracker's box (used when no contour of area > 100 passes `threshold`)."""
    warped = mask_in_frame(mask_logits, mask_box, frame_wh)
    return binary_mask_polygon(warped > np.float32(threshold), fallback_box)


__all__ = ['MIN_CONTOUR_AREA', 'back_affine', 'binary_mask_polygon', 'box_corners',
           'mask_in_frame', 'mask_polygon', 'sigmoid']
