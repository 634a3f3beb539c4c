"""VOT regions and their overlap: codes, rectangles, polygons, the raster rule.

Everything is numpy. Everything is numpy. The conventions are those of the PySOT toolkit (`tools/test.py`,
`toolkit/evaluation/{ar,eao}_benchmark.py`, `toolkit/utils/statistics.py` and its C `region`
library), which is how SiamRPN++ and most Siamese trackers report VOT numbers.

Regions
-------
A region is an integer code (1 init, 2 failure, 0 skipped/unknown), a rectangle (x, y, w, h) or
a polygon of >= 3 corners (x1, y1, x2, y2, ...). A rectangle is the polygon
(x, y), (x + w, y), (x + w, y + h), (x, y + h) (PySOT's `vot_overlap` turns 4 values into these
corners). Ground truth is kept as the benchmark reader stores it, [T, 8] polygons.

`region_overlap(pred, gt, bounds)` offers two methods:

* 'raster' (default): what the C region library that PySOT calls computes. Both polygons are
  rasterised on a pixel grid and the overlap is (pixels in both) / (pixels in either). The grid
  covers the union of the two polygons' bounding boxes (rounded outwards to whole pixels) clipped
  to the bounds; corners are rounded to whole pixels (half away from zero) after being moved
  into that grid, and every row y gets the pixels between pairs of sorted edge crossings
  (truncated to int), both ends included. If the two clipped bounding boxes do not overlap with
  a positive area, the overlap is 0. This is the number that decides failures and that the
  reported A and EAO average.
* 'exact': geometric areas. Both polygons are clipped to the image rectangle [0, W] x [0, H]
  (Sutherland-Hodgman), then intersected (Sutherland-Hodgman again, which needs one of the two
  polygons to be convex; VOT annotations and boxes are). Differs from 'raster' by pixel
  discretisation (about 1e-2 on a 100 px box).

Bounds: (W, H) is the image rectangle; None means unbounded. Special codes give NaN. A region
holding a NaN value (e.g. a result line `nan,nan,nan,nan`) gives overlap 0 against a region
without NaN, and NaN when both hold one: in the C library a NaN corner never crosses a scan line,
so the region rasterises to no pixels (PySOT `vot_overlap`, checked with the compiled extension:
0.0 for all-NaN and for one-NaN rectangles, with or without bounds; NaN for two NaN regions).
"""
from __future__ import annotations

import math

import numpy as np

CODE_SKIP, CODE_INIT, CODE_FAILURE = 0, 1, 2


def is_code(region) -> bool:
    """True for an integer code (a Python/numpy int or a 1-element sequence)."""
    if isinstance(region, (int, np.integer)):
        return True
    return np.size(region) == 1


def to_polygon(region) -> np.ndarray:
    """Rectangle [4] (x, y, w, h) or polygon [2k] (k >= 3) -> [k, 2] float64 corners.

    Raises ValueError for any other number of values.
    """
    values = np.asarray(region, np.float64).reshape(-1)
    if values.size == 4:
        x, y, w, h = values
        return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
    if values.size >= 6 and values.size % 2 == 0:
        return values.reshape(-1, 2)
    raise ValueError(f'a region needs 4 (x, y, w, h) or an even number >= 6 of polygon values, '
                     f'got {values.size}')


def _c_round(values: np.ndarray) -> np.ndarray:
    """C round(): half away from zero, exactly (no v + 0.5 float error)."""
    whole = np.trunc(values)
    frac = values - whole
    return (whole + np.sign(values) * (np.abs(frac) >= 0.5)).astype(values.dtype)


def _bounds_box(bounds) -> tuple[float, float, float, float]:
    """(W, H) or None -> (top, bottom, left, right) as the C library stores its bounds."""
    if bounds is None:
        return (-math.inf, math.inf, -math.inf, math.inf)
    if len(bounds) != 2:
        raise ValueError(f'bounds must be (W, H) or None, got {bounds!r}')
    return (0.0, float(bounds[1]), 0.0, float(bounds[0]))


def _rounded_clipped_bounds(poly: np.ndarray, box) -> np.ndarray:
    """[top, bottom, left, right] float32: polygon bounding box rounded outwards, then clipped."""
    xs, ys = poly[:, 0], poly[:, 1]
    top, bottom = np.floor(ys.min()), np.ceil(ys.max())
    left, right = np.floor(xs.min()), np.ceil(xs.max())
    return np.array([max(top, box[0]), min(bottom, box[1]), max(left, box[2]),
                     min(right, box[3])], np.float32)


def _ratio(a: float, b: float) -> float:
    """a / b with IEEE semantics (inf / NaN instead of an exception)."""
    with np.errstate(divide='ignore', invalid='ignore'):
        return float(np.float64(a) / np.float64(b))


def _bounds_iou(b1: np.ndarray, b2: np.ndarray) -> float:
    """IoU of two [top, bottom, left, right] boxes with the C library's float semantics."""
    inter = (np.float32(min(b1[3], b2[3]) - max(b1[2], b2[2]))
             * np.float32(min(b1[1], b2[1]) - max(b1[0], b2[0])))
    area1 = (b1[3] - b1[2]) * (b1[1] - b1[0])
    area2 = (b2[3] - b2[2]) * (b2[1] - b2[0])
    value = _ratio(inter, np.float32(area1 + area2 - inter))
    return 0.0 if 0 > value else value


def rasterize(poly: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scan-line raster of a polygon [k, 2] (float32 pixel coordinates) -> [height, width] bool.

    Corners are rounded (half away from zero); for every row y the crossings of the edges whose
    y range contains y (horizontal edges excluded) are truncated to int and sorted; pixels from
    each crossing to the next are set, both included; two equal crossings in a row are a vertex
    touching the row and the first of them is dropped.
    """
    xs, ys = _c_round(poly[:, 0]), _c_round(poly[:, 1])
    xj, yj = np.roll(xs, 1), np.roll(ys, 1)  # edge (i, i - 1), as the C loop pairs them
    rows = np.arange(height, dtype=np.float64)
    dy = (yj - ys).astype(np.float64)
    dx = (xj - xs).astype(np.float64)
    low, high = np.minimum(ys, yj), np.maximum(ys, yj)
    valid = (low[:, None] <= rows) & (rows <= high[:, None]) & (dy != 0)[:, None]
    with np.errstate(divide='ignore', invalid='ignore'):
        nodes = np.trunc(xs[:, None].astype(np.float64)
                         + (rows[None, :] - ys[:, None]) / dy[:, None] * dx[:, None])
    mask = np.zeros((height, width), bool)
    for row in np.flatnonzero(valid.any(axis=0)):
        crossings = sorted(int(v) for v in nodes[valid[:, row], row])
        i = 0
        while i < len(crossings) - 1:
            start, stop = crossings[i], crossings[i + 1]
            if start == stop:
                i += 1
                continue
            if start >= width:
                break
            if stop >= 0:
                mask[row, max(start, 0):min(stop, width - 1) + 1] = True
            i += 2
    return mask


def _raster_overlap(p1: np.ndarray, p2: np.ndarray, bounds) -> float:
    """The C region library's polygon overlap (non-legacy rasterisation), see module docstring."""
    p1, p2 = p1.astype(np.float32), p2.astype(np.float32)
    box = _bounds_box(bounds)
    b1, b2 = _rounded_clipped_bounds(p1, box), _rounded_clipped_bounds(p2, box)
    x0, y0 = np.float32(min(b1[2], b2[2])), np.float32(min(b1[0], b2[0]))
    width = int(np.float32(max(b1[3], b2[3]) - x0)) + 1
    height = int(np.float32(max(b1[1], b2[1]) - y0)) + 1
    area1 = float(np.float32(b1[3] - b1[2]) * np.float32(b1[1] - b1[0]))
    area2 = float(np.float32(b2[3] - b2[2]) * np.float32(b2[1] - b2[0]))
    if (_ratio(area1, area2) < 1e-10 or _ratio(area2, area1) < 1e-10 or width < 1
            or height < 1):
        return 0.0
    if _bounds_iou(b1, b2) == 0:
        return 0.0
    offset = np.array([x0, y0], np.float32)
    mask1 = rasterize(p1 - offset, width, height)
    mask2 = rasterize(p2 - offset, width, height)
    inter = int(np.count_nonzero(mask1 & mask2))
    union = int(np.count_nonzero(mask1 | mask2))
    if union == 0:
        return math.nan
    return float(np.float32(inter) / np.float32(union))


def _signed_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _is_convex(poly: np.ndarray) -> bool:
    edges = np.roll(poly, -1, axis=0) - poly
    cross = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1,
                                                                                   axis=0)[:, 0]
    cross = cross[np.abs(cross) > 1e-12]
    return bool(np.all(cross > 0) or np.all(cross < 0))


def clip_polygon(subject: np.ndarray, clipper: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman: part of polygon `subject` [n, 2] inside convex polygon `clipper`
    [m, 2] (any orientation) -> [k, 2] (k = 0 when they do not intersect)."""
    if _signed_area(clipper) < 0:
        clipper = clipper[::-1]
    output = [tuple(p) for p in subject]
    for a, b in zip(clipper, np.roll(clipper, -1, axis=0)):
        if not output:
            break
        edge = b - a

        def side(p, a=a, edge=edge):
            return edge[0] * (p[1] - a[1]) - edge[1] * (p[0] - a[0])

        points, output = output, []
        for k, current in enumerate(points):
            previous = points[k - 1]
            s_cur, s_prev = side(current), side(previous)
            if s_cur >= 0:
                if s_prev < 0:
                    output.append(_cross_point(previous, current, s_prev, s_cur))
                output.append(current)
            elif s_prev >= 0:
                output.append(_cross_point(previous, current, s_prev, s_cur))
    return np.asarray(output, np.float64).reshape(-1, 2)


def _cross_point(p, q, s_p: float, s_q: float) -> tuple:
    t = s_p / (s_p - s_q)
    return (p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]))


def polygon_area(poly: np.ndarray) -> float:
    """Absolute shoelace area of [k, 2] corners (0 for fewer than 3)."""
    return abs(_signed_area(poly)) if len(poly) >= 3 else 0.0


def _exact_overlap(p1: np.ndarray, p2: np.ndarray, bounds) -> float:
    if bounds is not None:
        width, height = float(bounds[0]), float(bounds[1])
        frame = np.array([[0.0, 0.0], [width, 0.0], [width, height], [0.0, height]])
        p1, p2 = clip_polygon(p1, frame), clip_polygon(p2, frame)
    area1, area2 = polygon_area(p1), polygon_area(p2)
    if area1 <= 0 or area2 <= 0:
        return 0.0
    if _is_convex(p2):
        inter = polygon_area(clip_polygon(p1, p2))
    elif _is_convex(p1):
        inter = polygon_area(clip_polygon(p2, p1))
    else:
        raise ValueError('exact overlap needs at least one convex polygon')
    union = area1 + area2 - inter
    return inter / union if union > 0 else 0.0


def region_overlap(pred, gt, bounds=None, method: str = 'raster') -> float:
    """Overlap (intersection over union) of two regions, each clipped to `bounds`.

    pred, gt: an int code (-> NaN), [4] (x, y, w, h) or [2k] polygon corners.
    bounds: (W, H) of the image or None. method: 'raster' (the C region library PySOT uses,
      the default) or 'exact' (geometric areas). Returns a float in [0, 1] or NaN.
    A region with a NaN value covers no pixel (PySOT's region library, see the module
    docstring): 0.0 against a region without NaN, NaN when both hold a NaN.
    """
    if is_code(pred) or is_code(gt):
        return math.nan
    p1, p2 = to_polygon(pred), to_polygon(gt)
    nan1, nan2 = bool(np.isnan(p1).any()), bool(np.isnan(p2).any())
    if nan1 or nan2:
        return math.nan if nan1 and nan2 else 0.0
    if not (np.all(np.isfinite(p1)) and np.all(np.isfinite(p2))):
        return math.nan
    if method == 'raster':
        return _raster_overlap(p1, p2, bounds)
    if method == 'exact':
        return _exact_overlap(p1, p2, bounds)
    raise ValueError(f"method must be 'raster' or 'exact', got {method!r}")


def init_box_from_region(region) -> np.ndarray:
    """PySOT's `get_axis_aligned_bbox` followed by tools/test.py's conversion -> [4] xywh.

    8-value polygon: centre = mean of the corners; s = sqrt(|p1 - p2| * |p2 - p3| / bbox area)
    (the product of the first two edge lengths, i.e. the area for a rectangle); w = s * bbox
    width + 1, h = s * bbox height + 1. 4-value rectangle: centre (x + w / 2, y + h / 2), same
    w, h. Other polygons: min/max box (+1, as for 8 values with s = 1).
    The tracker gets (cx - (w - 1) / 2, cy - (h - 1) / 2, w, h).
    """
    values = np.asarray(region, np.float64).reshape(-1)
    if values.size == 4:
        x, y, w, h = values
        cx, cy = x + w / 2, y + h / 2
    else:
        corners = to_polygon(values)
        cx, cy = corners.mean(axis=0)
        x1, y1 = corners.min(axis=0)
        x2, y2 = corners.max(axis=0)
        scale = 1.0
        if values.size == 8:
            edges = (np.linalg.norm(corners[0] - corners[1])
                     * np.linalg.norm(corners[1] - corners[2]))
            scale = math.sqrt(edges / ((x2 - x1) * (y2 - y1)))
        w, h = scale * (x2 - x1) + 1, scale * (y2 - y1) + 1
    return np.array([cx - (w - 1) / 2, cy - (h - 1) / 2, w, h], np.float64)


def usable_region(region) -> bool:
    """A finite region with positive area (a ground truth the tracker can start from)."""
    values = np.asarray(region, np.float64).reshape(-1)
    if is_code(values) or not np.all(np.isfinite(values)):
        return False
    return polygon_area(to_polygon(values)) > 0
