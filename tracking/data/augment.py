"""pysot's training crops and augmentation (SiamRPN++, SiamAttn), numpy + OpenCV.

A training image is first cut SiamFC-style into a 511 x 511 crop centred on the target
(`siamfc_crop`, what pysot's `par_crop.py` stores on disk), then `augment` cuts the 127 / 255
network input from its centre with random shift and scale, colour, blur and flip (pysot's
`Augmentation`, in that order). Boxes are corners (x1, y1, x2, y2) in pixels of the image they
refer to. Every random number comes from the `numpy.random.Generator` passed in.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from tracking.subwindow import context_size

CONTEXT_AMOUNT = 0.5
EXEMPLAR_SIZE = 127
# PCA lighting matrix of pysot's colour augmentation (pixel units; rows act on R, G, B noise).
RGB_VAR = np.array([[-0.55919361, 0.98062831, -0.41940627],
                    [1.72091413, 0.19879334, -1.82968581],
                    [4.64467907, 4.73710203, 4.88324118]], np.float32)
BLUR_SIZES = np.arange(5, 46, 2)


@dataclasses.dataclass(frozen=True)
class AugmentParams:
    """Probabilities and ranges of one crop's augmentation (pysot DATASET.TEMPLATE/SEARCH)."""
    shift: float = 0.0     # max shift of the crop window, pixels of the 511 crop
    scale: float = 0.0     # max relative change of the crop window size, per axis
    blur: float = 0.0      # probability of a motion blur
    flip: float = 0.0      # probability of a horizontal flip
    color: float = 0.0     # probability of the PCA colour offset

    @classmethod
    def from_config(cls, config) -> 'AugmentParams':
        return cls(**{f.name: float(config[f.name]) for f in dataclasses.fields(cls)})


def warp_crop(image: np.ndarray, box_xyxy, out_size: int, fill) -> np.ndarray:
    """Crop of `box_xyxy` resampled to out_size x out_size (bilinear, constant border `fill`).

    The affine map sends box (x1, y1) to 0 and (x2, y2) to out_size - 1, as pysot's
    `crop_hwc`/`_crop_roi`. image: [H, W, C] uint8 or float32. Returns float32 if image is.
    """
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    a = (out_size - 1) / (x2 - x1)
    b = (out_size - 1) / (y2 - y1)
    mapping = np.array([[a, 0, -a * x1], [0, b, -b * y1]], np.float64)
    fill = tuple(float(v) for v in np.broadcast_to(np.asarray(fill, np.float64), (3,)))
    return cv2.warpAffine(image, mapping, (out_size, out_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=fill)


def siamfc_crop(image: np.ndarray, box_xywh, out_size: int = 511,
                context: float = CONTEXT_AMOUNT) -> tuple[np.ndarray, np.ndarray]:
    """The pysot training crop of a frame: side s_z * out_size / 127, centred on the target,
    padded with the image's mean colour.

    image: [H, W, 3] uint8; box_xywh: target (x, y, w, h), pixels. Returns the crop
    [out_size, out_size, 3] uint8 and the target box in it as corners (x1, y1, x2, y2), centred
    at (out_size // 2, out_size // 2) with size (w, h) * 127 / s_z (pysot's `_get_bbox`).
    """
    window, box = siamfc_window(box_xywh, out_size, context)
    crop = warp_crop(image, window, out_size, image.reshape(-1, image.shape[-1]).mean(axis=0))
    return crop, box


def siamfc_window(box_xywh, out_size: int = 511, context: float = CONTEXT_AMOUNT):
    """(window (x1, y1, x2, y2) of the frame that `siamfc_crop` resamples, target corners in
    the crop)."""
    x, y, w, h = (float(v) for v in box_xywh)
    s_z = float(context_size(w, h, context))
    s_x = s_z * out_size / EXEMPLAR_SIZE
    cx, cy = x + w / 2.0, y + h / 2.0
    window = (cx - s_x / 2, cy - s_x / 2, cx + s_x / 2, cy + s_x / 2)
    scale = EXEMPLAR_SIZE / s_z
    c = out_size // 2
    bw, bh = w * scale, h * scale
    box = np.array([c - bw / 2, c - bh / 2, c + bw / 2, c + bh / 2], np.float64)
    return window, box


def siamfc_mask_crop(mask: np.ndarray, box_xywh, out_size: int = 511,
                     context: float = CONTEXT_AMOUNT) -> np.ndarray:
    """The target mask [H, W] (0/1) cut like `siamfc_crop` cuts the frame: [out_size,
    out_size] float32 in [0, 1] (bilinear, zero outside the frame)."""
    window, _ = siamfc_window(box_xywh, out_size, context)
    return warp_crop(np.asarray(mask, np.float32), window, out_size, 0.0)


def _uniform_sym(rng: np.random.Generator) -> float:
    """U(-1, 1), pysot's `Augmentation.random()`."""
    return rng.random() * 2.0 - 1.0


def shift_scale(rng: np.random.Generator, image: np.ndarray, box_xyxy: np.ndarray,
                out_size: int, shift: float, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Crop a window of side out_size - 1 around the image centre, scaled per axis by
    1 + U(-1, 1) scale (at most image/window) and shifted by U(-1, 1) shift pixels per axis
    (clamped inside the image); resample to out_size (zero border). Returns (crop, box)."""
    window, box = shift_scale_window(rng, image.shape[:2], box_xyxy, out_size, shift, scale)
    return warp_crop(image, window, out_size, 0.0), box


def shift_scale_window(rng: np.random.Generator, image_hw, box_xyxy: np.ndarray,
                       out_size: int, shift: float, scale: float):
    """The random window of `shift_scale` (same draws): (window (x1, y1, x2, y2), box)."""
    im_h, im_w = image_hw
    cx, cy = im_w // 2, im_h // 2
    w = h = out_size - 1.0
    scale_x = scale_y = 1.0
    if scale:
        scale_x = min(1.0 + _uniform_sym(rng) * scale, im_w / w)
        scale_y = min(1.0 + _uniform_sym(rng) * scale, im_h / h)
        w, h = w * scale_x, h * scale_y
    x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    if shift:
        sx = _uniform_sym(rng) * shift
        sy = _uniform_sym(rng) * shift
        sx = max(-x1, min(im_w - 1 - x2, sx))
        sy = max(-y1, min(im_h - 1 - y2, sy))
        x1, y1, x2, y2 = x1 + sx, y1 + sy, x2 + sx, y2 + sy
    box = np.asarray(box_xyxy, np.float64) - np.array([x1, y1, x1, y1])
    box = box / np.array([scale_x, scale_y, scale_x, scale_y])
    return (x1, y1, x2, y2), box


def color_offset(rng: np.random.Generator, image_bgr: np.ndarray) -> np.ndarray:
    """Subtracts the PCA lighting offset RGB_VAR @ N(0, I3), in BGR order; float32, no clip."""
    offset = (RGB_VAR @ rng.standard_normal((3, 1)).astype(np.float32))[::-1].reshape(3)
    return image_bgr.astype(np.float32) - offset


def motion_blur_kernel(rng: np.random.Generator) -> np.ndarray:
    """Cross-shaped kernel of odd size in 5..45: centre column wx / size, centre row
    (1 - wx) / size, wx ~ U(0, 1) (the centre pixel gets both)."""
    size = int(rng.choice(BLUR_SIZES))
    kernel = np.zeros((size, size), np.float64)
    c = size // 2
    wx = rng.random()
    kernel[:, c] += wx / size
    kernel[c, :] += (1.0 - wx) / size
    return kernel


def to_gray(image: np.ndarray) -> np.ndarray:
    """BGR -> grey -> BGR (3 equal channels), same dtype."""
    return cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


def augment(rng: np.random.Generator, image_bgr: np.ndarray, box_xyxy: np.ndarray,
            out_size: int, params: AugmentParams,
            gray: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """pysot's `Augmentation.__call__`: grey (if asked) -> shift/scale crop -> colour -> blur
    -> flip. image_bgr: the 511 crop [H, W, 3] uint8 BGR; box_xyxy: target corners in it.
    Returns the network input [out_size, out_size, 3] float32 (raw BGR values, not clipped)
    and the target corners in it."""
    image, box, _ = augment_with_mask(rng, image_bgr, box_xyxy, None, out_size, params, gray)
    return image, box


def augment_with_mask(rng: np.random.Generator, image_bgr: np.ndarray, box_xyxy: np.ndarray,
                      mask: np.ndarray | None, out_size: int, params: AugmentParams,
                      gray: bool = False):
    """`augment` (the same random draws, so the same image and box) that also carries the
    target mask [H, W] (float in [0, 1], aligned with image_bgr, e.g. `siamfc_mask_crop`)
    through the geometric steps (shift/scale window, flip): returns (image, box, mask
    [out_size, out_size] uint8 0/1, bilinear value >= 0.5), mask None when none is given."""
    if gray:
        image_bgr = to_gray(image_bgr)
    window, box = shift_scale_window(rng, image_bgr.shape[:2], box_xyxy, out_size,
                                     params.shift, params.scale)
    image = warp_crop(image_bgr, window, out_size, 0.0).astype(np.float32)
    if mask is not None:
        mask = warp_crop(np.asarray(mask, np.float32), window, out_size, 0.0)
        mask = (mask >= 0.5).astype(np.uint8)
    if params.color > rng.random():
        image = color_offset(rng, image)
    if params.blur > rng.random():
        image = cv2.filter2D(image, -1, motion_blur_kernel(rng))
    if params.flip and params.flip > rng.random():
        image = np.ascontiguousarray(image[:, ::-1])
        width = image.shape[1]
        box = np.array([width - 1 - box[2], box[1], width - 1 - box[0], box[3]])
        if mask is not None:
            mask = np.ascontiguousarray(mask[:, ::-1])
    return image, box, mask
