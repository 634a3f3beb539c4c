"""ROAM's search crop (utils.get_search_size / crop_image / get_search_patch), host and device.

The official crop: a square window of side int(scale * sqrt(w h)) made odd (`search_window`),
centred on (x + floor(w/2), y + floor(h/2)) (`crop_center`), cut from the frame as float32 with
the pixels outside the frame set to the mean colour (`crop_image`), then resized to the base
window (281) by cv2.resize -- whose INTER_AREA argument lands in the `dst` slot, so the default
INTER_LINEAR runs, on float32 (not uint8) pixels. When the window is larger than the frame's
longer side, the whole frame is first resized by 281 / window (to round(W s) x round(H s)) and
the 281 window is cut from that around the scaled centre.

`get_search_patch` is the host version (numpy + cv2, the official arithmetic).
`search_patch_device` is a jittable version with the frame padded to a static shape and the
centre / window traced: OpenCV's float INTER_LINEAR taps (source positions as the float32
nearest to the exact quotient, `tracking.device_crops.div_rn32`; column reset at the edges,
rows clipped; coefficients (1 - f, f) in float32), on a virtual source (no intermediate image).
It matches the host crop to float32 rounding (tests/test_roam_model.py measures it).
"""
from __future__ import annotations

import cv2
import jax.numpy as jnp
import numpy as np

from tracking.device_crops import div_rn32, floor_frac

RGB_MEAN = (123.68, 116.779, 103.939)


def search_window(target_wh, scale: float) -> int:
    """utils.get_search_size: int(sqrt(w h) * scale), made odd (an even value + 1)."""
    window = np.sqrt(np.prod(np.asarray(target_wh, np.float64))) * scale
    window = int(window)
    return int(window - (window % 2) + 1)


def crop_center(box_xywh) -> np.ndarray:
    """The tracker's crop centre (x + floor(w/2), y + floor(h/2)), float64 [2]."""
    box = np.asarray(box_xywh, np.float64)
    return box[:2] + np.floor(box[2:] / 2)


def crop_image(img, center, size, pad_value) -> np.ndarray:
    """utils.crop_image: img [H, W, 3] float32, centre (cx, cy), size (w, h) -> float32 crop
    [h', w', 3] from floor(c - s/2 + 0.5) to floor(c + s/2 + 0.5) (float32 arithmetic), the
    part outside the frame filled with pad_value."""
    cx, cy = np.array(center, dtype='float32')
    w, h = np.array(size, dtype='float32')
    half_w, half_h = w / 2, h / 2
    img_h, img_w, _ = img.shape
    min_x = int(np.floor(cx - half_w + 0.5))
    min_y = int(np.floor(cy - half_h + 0.5))
    max_x = int(np.floor(cx + half_w + 0.5))
    max_y = int(np.floor(cy + half_h + 0.5))
    if min_x >= 0 and min_y >= 0 and max_x <= img_w and max_y <= img_h:
        return np.asarray(img[min_y:max_y, min_x:max_x, :], np.float32)
    max_x_val = max(1, min(img_w, max_x))
    max_y_val = max(1, min(img_h, max_y))
    min_x_val = min(max(0, min_x), max_x_val - 1)
    min_y_val = min(max(0, min_y), max_y_val - 1)
    out = np.empty((max_y - min_y, max_x - min_x, 3), np.float32)
    out[...] = np.asarray(pad_value, np.float32)
    out[min_y_val - min_y:max_y_val - min_y, min_x_val - min_x:max_x_val - min_x, :] = \
        img[min_y_val:max_y_val, min_x_val:max_x_val, :]
    return out


def get_search_patch(img, center, window: int, out_size: int = 281, pad_value=RGB_MEAN
                     ) -> np.ndarray:
    """utils.get_search_patch: frame [H, W, 3] (uint8 or float, RGB) -> float32 [out, out, 3]
    in 0..255 (subtract the mean afterwards: roam.vgg.preprocess)."""
    img = np.asarray(img, np.float32)
    if window > max(img.shape):
        scale = out_size / window
        resized = cv2.resize(img, (int(round(img.shape[1] * scale)),
                                   int(round(img.shape[0] * scale))))
        return crop_image(resized, np.asarray(center, np.float64) * scale, (out_size, out_size),
                          pad_value)
    patch = crop_image(img, center, (window, window), pad_value)
    return cv2.resize(patch, (out_size, out_size))


# ---------------------------------------------------------------- device version

def _linear_taps(d, in_size, out_size, clamp: bool):
    """OpenCV INTER_LINEAR source taps of output indices d (int32, traced) for a resize
    in_size -> out_size (both traced int32): (i0, i1, w0, w1), w float32, indices clipped."""
    s, f = floor_frac(div_rn32((2 * d + 1) * in_size - out_size, 2 * out_size), in_size, clamp)
    i0 = jnp.clip(s, 0, in_size - 1)
    i1 = jnp.clip(s + 1, 0, in_size - 1)
    return i0, i1, jnp.float32(1) - f, f


def _bilinear(fetch, rows, cols):
    """HResizeLinear then VResizeLinear on float32: fetch(r [n], c [m]) -> [n, m, 3]."""
    r0, r1, b0, b1 = rows
    c0, c1, a0, a1 = cols
    a0, a1 = a0[None, :, None], a1[None, :, None]
    h0 = fetch(r0, c0) * a0 + fetch(r0, c1) * a1
    h1 = fetch(r1, c0) * a0 + fetch(r1, c1) * a1
    return h0 * b0[:, None, None] + h1 * b1[:, None, None]


def search_patch_device(frame, frame_hw, center, window, out_size: int = 281,
                        pad_value=RGB_MEAN):
    """Jittable get_search_patch. frame [Hp, Wp, 3] (uint8/float, padded bottom/right),
    frame_hw int32 [2] real (H, W), center float32 [2] (cx, cy), window int32 [] (odd, from
    search_window). Returns float32 [out_size, out_size, 3] in 0..255."""
    frame = jnp.asarray(frame, jnp.float32)
    img_h, img_w = jnp.asarray(frame_hw, jnp.int32)[0], jnp.asarray(frame_hw, jnp.int32)[1]
    window = jnp.asarray(window, jnp.int32)
    pad = jnp.asarray(pad_value, jnp.float32)
    d = jnp.arange(out_size, dtype=jnp.int32)

    def image(r, c):
        inside = ((r >= 0) & (r < img_h))[:, None] & ((c >= 0) & (c < img_w))[None, :]
        px = frame[jnp.clip(r, 0, frame.shape[0] - 1)][:, jnp.clip(c, 0, frame.shape[1] - 1)]
        return jnp.where(inside[..., None], px, pad)

    def corner(c_xy, size):
        half = jnp.asarray(size, jnp.float32) / 2
        return jnp.floor(c_xy - half + 0.5).astype(jnp.int32)

    # Window inside the frame's longer side: crop (mean padding), then resize window -> out.
    c32 = jnp.asarray(center, jnp.float32)
    min_xy = corner(c32, window)
    rows = _linear_taps(d, window, out_size, clamp=False)
    cols = _linear_taps(d, window, out_size, clamp=True)
    direct = _bilinear(lambda r, c: image(r + min_xy[1], c + min_xy[0]), rows, cols)

    # Larger window: resize the whole frame by out / window, then crop out x out (mean padding).
    scale = jnp.float32(out_size) / window.astype(jnp.float32)
    rw = jnp.round(img_w.astype(jnp.float32) * scale).astype(jnp.int32)
    rh = jnp.round(img_h.astype(jnp.float32) * scale).astype(jnp.int32)
    min_s = corner(c32 * scale, out_size)
    ry, rx = d + min_s[1], d + min_s[0]
    rows_s = _linear_taps(ry, img_h, rh, clamp=False)
    cols_s = _linear_taps(rx, img_w, rw, clamp=True)
    small = _bilinear(image, rows_s, cols_s)
    inside = ((ry >= 0) & (ry < rh))[:, None] & ((rx >= 0) & (rx < rw))[None, :]
    small = jnp.where(inside[..., None], small, pad)
    return jnp.where(window > jnp.maximum(img_h, img_w), small, direct)
