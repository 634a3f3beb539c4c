"""Object masks of the training sets: COCO segmentations (RLE, polygons) and label PNGs.

Written from the formats' definitions (no pycocotools):
- COCO RLE: run lengths over the image flattened in column-major (Fortran) order, alternating
  background and object runs, starting with background. `counts` is either a list of ints
  (uncompressed, crowd annotations) or pycocotools' compressed string: each count is written
  in 5-bit groups (least significant first) as characters 48 + group, bit 0x20 of a group
  meaning "more groups follow", the last group's bit 0x10 the sign; from the fourth count on
  (index 3) the stored value is the difference to the count two places before.
- COCO polygons: a list of [x1, y1, x2, y2, ...] rings in continuous pixel coordinates (pixel
  (i, j) covers [j, j + 1) x [i, i + 1)); a pixel is inside when its centre is (numpy scanlines,
  even-odd within a ring, the union of the rings).
- Label PNGs (YouTube-VOS, DAVIS): palette images whose pixel values are object ids (0 is the
  background); read through PIL as the raw palette indices, never as colours.
Every mask returned here is [H, W] uint8 with values 0 / 1.
"""
from __future__ import annotations

import os

import cv2
import numpy as np


class MaskError(ValueError):
    """A segmentation that cannot be decoded; the message names its source."""


def rle_string_to_counts(text: str | bytes) -> np.ndarray:
    """pycocotools' compressed RLE string -> [K] int64 run lengths (see the module docstring)."""
    data = text.encode('ascii') if isinstance(text, str) else bytes(text)
    counts: list[int] = []
    p = 0
    while p < len(data):
        value, k, more = 0, 0, True
        while more:
            if p >= len(data):
                raise MaskError(f'RLE string ends inside a count: {data[:40]!r}...')
            c = data[p] - 48
            if not 0 <= c < 64:
                raise MaskError(f'RLE string has a character outside 48..111 at {p}: '
                                f'{data[:40]!r}...')
            value |= (c & 0x1f) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                value |= -1 << (5 * k)
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return np.asarray(counts, np.int64)


def rle_decode(counts, height: int, width: int) -> np.ndarray:
    """Run lengths (list/array of ints or a compressed string) -> [H, W] uint8 mask."""
    if isinstance(counts, (str, bytes)):
        counts = rle_string_to_counts(counts)
    counts = np.asarray(counts, np.int64).reshape(-1)
    if np.any(counts < 0):
        raise MaskError(f'RLE has a negative run length: {counts[:10].tolist()}...')
    total = int(counts.sum())
    if total != height * width:
        raise MaskError(f'RLE covers {total} pixels, the mask has {height} x {width} = '
                        f'{height * width}')
    values = np.repeat((np.arange(len(counts)) % 2).astype(np.uint8), counts)
    return np.ascontiguousarray(values.reshape(width, height).T)


def polygons_to_mask(polygons, height: int, width: int) -> np.ndarray:
    """COCO polygons (list of flat [x1, y1, x2, y2, ...] rings) -> [H, W] uint8 mask: the
    union of the rings, each filled even-odd by scanlines through the pixel centres (pixel
    (i, j) is set when (j + 0.5, i + 0.5) is inside; an edge crossing counts on [lo, hi) in y,
    a span covers centres in [x_a, x_b))."""
    height, width = int(height), int(width)
    mask = np.zeros((height, width), np.uint8)
    for ring in polygons:
        xy = np.asarray(ring, np.float64).reshape(-1)
        if xy.size < 6 or xy.size % 2:
            continue   # fewer than 3 points: no area (COCO has a few such rings)
        x0, y0 = xy[0::2], xy[1::2]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)
        first = max(int(np.ceil(lo.min() - 0.5)), 0)
        last = min(int(np.ceil(hi.max() - 0.5)), height)
        for row in range(first, last):
            y = row + 0.5
            crossing = (lo <= y) & (y < hi)
            if not crossing.any():
                continue
            t = (y - y0[crossing]) / (y1[crossing] - y0[crossing])
            xs = np.sort(x0[crossing] + t * (x1[crossing] - x0[crossing]))
            for a, b in zip(xs[0::2], xs[1::2]):
                j0 = max(int(np.ceil(a - 0.5)), 0)
                j1 = min(int(np.ceil(b - 0.5)), width)
                if j1 > j0:
                    mask[row, j0:j1] = 1
    return mask


def coco_segmentation_to_mask(segmentation, height: int, width: int) -> np.ndarray:
    """A COCO annotation's `segmentation` (polygons list, or RLE dict with `counts` and
    `size` [H, W]) -> [H, W] uint8 mask of the image size (height, width)."""
    if isinstance(segmentation, dict):
        size = segmentation.get('size', [height, width])
        if [int(size[0]), int(size[1])] != [int(height), int(width)]:
            raise MaskError(f'RLE size {list(size)} differs from the image size '
                            f'{[height, width]}')
        return rle_decode(segmentation['counts'], int(height), int(width))
    if isinstance(segmentation, (list, tuple)):
        return polygons_to_mask(segmentation, height, width)
    raise MaskError(f'unknown segmentation type {type(segmentation).__name__}')


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """A palette (or grey) label PNG -> [H, W] uint8 object ids (raw palette indices)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.mode not in ('P', 'L'):
                raise MaskError(f'{path}: label PNG mode {image.mode!r}, expected a palette '
                                "('P') or grey ('L') image of object ids")
            return np.array(image, np.uint8)
    except FileNotFoundError:
        raise MaskError(f'mask file not found: {path}') from None
    except OSError as e:
        raise MaskError(f'cannot read mask {path}: {e}') from None


def box_of_mask(mask: np.ndarray) -> np.ndarray:
    """[4] float32 (x, y, w, h) of the pixels set in [H, W] mask (pixel j covers [j, j + 1));
    NaNs for an empty mask."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return np.full(4, np.nan, np.float32)
    x0, y0 = xs.min(), ys.min()
    return np.array([x0, y0, xs.max() + 1 - x0, ys.max() + 1 - y0], np.float32)


def decode_png_mask(data: bytes) -> np.ndarray:
    """PNG bytes of a 0/1 (or 0/255) mask -> [H, W] uint8 0/1."""
    mask = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise MaskError('cannot decode a PNG mask')
    return (mask > 0).astype(np.uint8)


def sequence_mask(sequence, i: int) -> np.ndarray | None:
    """Mask of frame i of a `Sequence`, or None when it has none: extra['masks'] is a
    [T, H, W] array, or a list of T PNG byte strings (None entries: no mask) decoded here, one
    frame at a time; or extra['mask_paths'] (T label PNG paths) with extra['object_id']
    (YouTube-VOS), read here."""
    paths = sequence.extra.get('mask_paths')
    if paths is not None:
        try:
            return (read_label_png(paths[i]) == int(sequence.extra['object_id'])).astype(np.uint8)
        except MaskError as e:
            raise MaskError(f'sequence {sequence.name}, frame {i}: {e}') from None
    masks = sequence.extra.get('masks')
    if masks is None:
        return None
    mask = masks[i]
    if mask is None:
        return None
    if isinstance(mask, (bytes, bytearray, memoryview)):
        return decode_png_mask(bytes(mask))
    return (np.asarray(mask) > 0).astype(np.uint8)
