"""VOT short-term evaluation: the supervised (reset) protocol, A/R/EAO and VOT result files.

Everything is numpy. The conventions are those of the PySOT toolkit (`tools/test.py`,
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

The reset protocol (`run_supervised`)
------------------------------------
Frame 0 and every re-initialisation frame are recorded as code 1; the tracker is initialised
there on pysot's `get_axis_aligned_bbox` box of the ground-truth polygon (`init_box_from_region`).
On any later frame the tracker's box is compared with the ground truth using the raster overlap
with bounds (W, H) of that frame; overlap > 0 records the box, anything else (0, also for a
box with a NaN value) records code 2 (failure) and the tracker is re-initialised `skip` = 5 frames
later
(PySOT: `frame_counter = idx + 5`); the frames in between are code 0 and are not decoded.

Metrics
-------
* Accuracy: per-frame raster overlaps with bounds (W, H); codes give NaN; after every code 1
  the frame itself and the next 9 frames (burn-in 10) are ignored. A = nanmean over all frames of
  all sequences pooled (not a mean of per-sequence means).
* Robustness (PySOT's, the number in published VOT tables): R = 100 * failures / frames,
  summed over all sequences ("failures per 100 frames"; e.g. SiamRPN++ 0.234 on VOT2018 is
  0.234 failures per 100 frames, printed as is). Lost number = total failures.
  Also given: vot-toolkit-style reliability exp(-30 * failures / frames) on the pooled counts
  (sensitivity 30, as the vot-toolkit AR analysis; its per-sequence weighting is not reproduced).
* EAO (`expected_overlap_curve`, `eao`): overlaps with bounds (W - 1, H - 1) and no burn-in. Each
  sequence is split into segments starting at frame 0 and at failure + 5; a segment that ends in a
  failure is padded with zeros to the longest sequence length, the last segment with NaN (it
  is not observed beyond the sequence end); NaN overlaps inside a segment count as 0 (the init
  code at index 0 never counts). Curve[L] = weighted mean, over the segments observed at index L,
  of the mean of their overlaps 1..L; curve[0] = 1. EAO = mean of the curve over the interval.
  PySOT quirks kept: a failure within the last 4 frames starts no segment (its segment is the
  last one and is NaN-padded); a segment that ends exactly at the sequence end gets weight
  (T - p) / (T - p + 1); a sequence without failure keeps NaN overlaps unzeroed.
* Interval convention: PySOT averages curve[low - 1 .. high - 1] (0-based, inclusive), i.e. it
  treats the interval as 1-based lengths; vot-toolkit's `EAOScore` averages curve[low .. high].
  `eao(..., convention='vot-toolkit')` gives the latter. The curve itself is PySOT's in both.
  Intervals: VOT2016 [108, 371], VOT2017/2018 [100, 356], VOT2019 [46, 291].

Result files
------------
`<out_dir>/<tracker>/baseline/<seq>/<seq>_001.txt`, one line per frame: the integer code, or the
box as comma-separated `%.4f` values (of the value as a C float, like PySOT's `vot_float2str`),
plus `<seq>_001_time.value` (seconds per frame, 0 where not run). The VOT toolkit and PySOT
read these files. Only repetition 001 is written and read.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence as Seq

import numpy as np

from tracking.eval.results import atomic_write_text

CODE_SKIP, CODE_INIT, CODE_FAILURE = 0, 1, 2
SKIP_INITIALIZE = 5
BURNIN = 10
RELIABILITY_SENSITIVITY = 30.0
EAO_INTERVALS = {'vot2016': (108, 371), 'vot2017': (100, 356), 'vot2018': (100, 356),
                 'vot2019': (46, 291)}
DEFAULT_YEAR = 'vot2018'
CONVENTIONS = ('pysot', 'vot-toolkit')

Record = Any  # int code or [4] / [2k] float64 array


# ----------------------------------------------------------------------------------------------
# Regions and overlap.

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


# ----------------------------------------------------------------------------------------------
# The reset protocol.

def ground_truth_regions(sequence) -> np.ndarray:
    """[T, 8] polygons of a Sequence: extra['polygons'] (VOT reader) or the boxes' corners."""
    if 'polygons' in sequence.extra:
        return np.asarray(sequence.extra['polygons'], np.float64)
    boxes = np.asarray(sequence.boxes, np.float64)
    x0, y0, x1, y1 = boxes[:, 0], boxes[:, 1], boxes[:, 0] + boxes[:, 2], boxes[:, 1] + boxes[:, 3]
    return np.stack([x0, y0, x1, y0, x1, y1, x0, y1], axis=1)


def image_size(sequence) -> tuple[int, int]:
    """(W, H): extra['image_size'] if the reader gave it, else the shape of frame 0."""
    if 'image_size' in sequence.extra:
        width, height = sequence.extra['image_size']
        return int(width), int(height)
    frame = sequence.frame(0)
    return int(frame.shape[1]), int(frame.shape[0])


def run_supervised(tracker, sequence, skip: int = SKIP_INITIALIZE, read_frame=None
                   ) -> tuple[list, np.ndarray]:
    """Runs `tracker` over `sequence` with VOT's reset protocol (PySOT tools/test.py).

    read_frame(sequence, i) -> [H, W, 3] uint8 (default sequence.frame(i)).
    Returns:
      records: T entries, 1 (init), 2 (failure), 0 (skipped) or a [4] float64 (x, y, w, h) box.
      times: [T] float64 seconds in `initialize` / `track` (0 for failures' and skipped frames'
        bookkeeping is not counted: a failure frame holds its `track` time, skipped frames 0).
    Failure: raster overlap with the frame's ground-truth polygon, bounds (W, H), not > 0 (a NaN
    box is a failure). Re-initialisation: frame failure + `skip`, on `init_box_from_region` of
    that frame's ground truth. Unusable ground truth at a re-initialisation frame (NaN or zero
    area; PySOT would initialise on a NaN box, VOT2016-2019 have none): that frame is recorded as
    0 and initialisation moves to the next frame with usable ground truth. Frame 0 must be
    usable (ValueError naming the sequence).
    """
    from tracking.tracker import _as_box, _read_frame  # Late: tracker imports the eval package.
    read_frame = read_frame or _read_frame
    regions = ground_truth_regions(sequence)
    num_frames = len(sequence)
    if len(regions) != num_frames:
        raise ValueError(f'sequence {sequence.name}: {len(regions)} ground-truth regions for '
                         f'{num_frames} frames')
    if not usable_region(regions[0]):
        raise ValueError(f'sequence {sequence.name}: frame 0 ground truth is not usable: '
                         f'{regions[0].tolist()}')
    records: list = []
    times = np.zeros(num_frames, np.float64)
    init_at = 0
    for index in range(num_frames):
        if index < init_at:
            records.append(CODE_SKIP)
            continue
        if index == init_at:
            if not usable_region(regions[index]):
                records.append(CODE_SKIP)
                init_at = index + 1
                continue
            frame = read_frame(sequence, index)
            start = _now()
            tracker.initialize(frame, init_box_from_region(regions[index]))
            times[index] = _now() - start
            records.append(CODE_INIT)
            continue
        frame = read_frame(sequence, index)
        start = _now()
        prediction = tracker.track(frame)
        times[index] = _now() - start
        box = _as_box(prediction, sequence, index)
        bounds = (frame.shape[1], frame.shape[0])
        if region_overlap(box, regions[index], bounds) > 0:
            records.append(box)
        else:
            records.append(CODE_FAILURE)
            init_at = index + skip
    return records, times


def _now() -> float:
    import time
    return time.perf_counter()


# ----------------------------------------------------------------------------------------------
# Metrics.

def sequence_overlaps(records: Seq[Record], gt_regions, bounds, burnin: int = 0,
                      method: str = 'raster') -> np.ndarray:
    """[T] float64 overlaps of records with ground truth; NaN for codes and burn-in frames.

    burnin: frames starting at every code 1 (included) that are set unknown (PySOT: 10 for A).
    """
    records = list(records)
    gt_regions = list(gt_regions)
    count = min(len(records), len(gt_regions))
    masked = list(records)
    if burnin > 0:
        for index, record in enumerate(records):
            if is_code(record) and int(np.reshape(record, -1)[0]) == CODE_INIT:
                for j in range(index, min(index + burnin, len(records))):
                    masked[j] = CODE_SKIP
    return np.array([region_overlap(masked[i], gt_regions[i], bounds, method)
                     for i in range(count)], np.float64)


def failure_frames(records: Seq[Record]) -> list[int]:
    """Indices of the frames recorded as failures (code 2)."""
    return [i for i, r in enumerate(records) if is_code(r) and int(np.reshape(r, -1)[0]) == 2]


def score_sequence(records: Seq[Record], gt_regions, image_wh, burnin: int = BURNIN) -> dict:
    """Per-sequence VOT numbers.

    image_wh: (W, H). Returns dict(accuracy (nanmean of `overlaps`, NaN when all are unknown),
      num_failures, failures [indices], num_frames, overlaps [T] (bounds (W, H), burn-in),
      eao_overlaps [T] (bounds (W - 1, H - 1), no burn-in)).
    Raises ValueError when the record count differs from the ground-truth length.
    """
    gt_regions = np.asarray(gt_regions, np.float64)
    if len(records) != len(gt_regions):
        raise ValueError(f'{len(records)} result lines but {len(gt_regions)} ground-truth frames')
    width, height = image_wh
    overlaps = sequence_overlaps(records, gt_regions, (width, height), burnin)
    eao_overlaps = sequence_overlaps(records, gt_regions, (width - 1, height - 1), 0)
    failures = failure_frames(records)
    return {'accuracy': _nanmean(overlaps), 'num_failures': len(failures), 'failures': failures,
            'num_frames': len(records), 'overlaps': overlaps, 'eao_overlaps': eao_overlaps}


def _nanmean(values) -> float:
    values = np.asarray(values, np.float64)
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def accuracy_robustness(per_sequence: Mapping[str, Mapping]) -> dict:
    """Pooled A/R over sequences (PySOT ar_benchmark).

    per_sequence: {name: score_sequence dict}. Returns dict(accuracy = nanmean of all frames'
      overlaps, robustness = 100 * failures / frames, lost_number = failures, num_frames,
      reliability = exp(-30 * failures / frames)).
    """
    if not per_sequence:
        raise ValueError('no sequences to score')
    overlaps = np.concatenate([np.asarray(s['overlaps'], np.float64)
                               for s in per_sequence.values()])
    frames = sum(int(s['num_frames']) for s in per_sequence.values())
    failures = sum(int(s['num_failures']) for s in per_sequence.values())
    return {'accuracy': _nanmean(overlaps), 'robustness': 100.0 * failures / frames,
            'lost_number': failures, 'num_frames': frames,
            'reliability': math.exp(-RELIABILITY_SENSITIVITY * failures / frames)}


def eao_fragments(overlaps_list: Seq, failures_list: Seq, skip: int = SKIP_INITIALIZE
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Segments of PySOT's EAO: (fragments [F, max_len] float64, weights [F]).

    overlaps_list: per sequence [T_s] overlaps (codes NaN, bounds (W - 1, H - 1), no burn-in);
    failures_list: per sequence failure frame indices. See the module docstring for the rules.
    """
    max_len = max(len(o) for o in overlaps_list)
    rows, weights = [], []
    for overlaps, failures in zip(overlaps_list, failures_list):
        overlaps = np.asarray(overlaps, np.float64)
        length = len(overlaps)
        if not len(failures):
            row = np.full(max_len, np.nan)
            row[:length] = overlaps
            rows.append(row)
            weights.append(1.0)
            continue
        points = [0] + [f + skip for f in failures if f + skip <= length]
        for k, start in enumerate(points):
            last = k == len(points) - 1
            if last:
                piece = overlaps[start:].copy()
                row = np.full(max_len, np.nan)
                weight = (length - start) / (length - start + 1e-16)
            else:
                stop = points[k + 1]
                piece = overlaps[start:stop + 1].copy()
                row = np.zeros(max_len)
                weight = (min(stop + 1, length) - start) / (stop - start + 1)
            piece[np.isnan(piece)] = 0.0
            row[:len(piece)] = piece
            rows.append(row)
            weights.append(weight)
    return np.stack(rows), np.asarray(weights, np.float64)


def curve_from_fragments(fragments: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[max_len] float32: curve[0] = 1; curve[L] = weighted mean over the fragments not NaN at
    index L of mean(fragment[1..L]); 0 where no fragment reaches L."""
    fragments = np.asarray(fragments, np.float64)
    max_len = fragments.shape[1]
    curve = np.zeros(max_len, np.float32)
    curve[0] = 1.0
    if max_len < 2:
        return curve
    lengths = np.arange(1, max_len, dtype=np.float64)
    means = np.cumsum(fragments[:, 1:], axis=1) / lengths[None, :]   # [F, max_len - 1]
    alive = ~np.isnan(fragments[:, 1:])
    w = np.where(alive, weights[:, None], 0.0)
    with np.errstate(invalid='ignore'):
        numer = np.where(alive, means * weights[:, None], 0.0).sum(axis=0)
        values = numer / w.sum(axis=0)
    any_alive = alive.any(axis=0)
    curve[1:][any_alive] = values[any_alive]
    return curve


def expected_overlap_curve(overlaps_list: Seq, failures_list: Seq,
                           skip: int = SKIP_INITIALIZE) -> np.ndarray:
    """PySOT's expected-overlap curve [max_len] float32 (see `eao_fragments`)."""
    return curve_from_fragments(*eao_fragments(overlaps_list, failures_list, skip))


def eao_interval(benchmark: str | None) -> tuple[int, int]:
    """(low, high) for 'vot2016' ... 'vot2019'; plain 'vot' or None -> VOT2018's."""
    key = (benchmark or DEFAULT_YEAR).lower().replace('-', '').replace('_', '')
    if key == 'vot':
        key = DEFAULT_YEAR
    if key not in EAO_INTERVALS:
        raise ValueError(f'no EAO interval for {benchmark!r}; known: {sorted(EAO_INTERVALS)}')
    return EAO_INTERVALS[key]


def eao(curve, interval: tuple[int, int], convention: str = 'pysot') -> float:
    """Mean of the expected-overlap curve over `interval` = (low, high).

    convention 'pysot': curve[low - 1 .. high - 1]; 'vot-toolkit': curve[low .. high]
    (0-based, inclusive). Indices past the curve's end are left out; NaN if none remains.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f'convention must be one of {CONVENTIONS}, got {convention!r}')
    low, high = interval
    shift = 1 if convention == 'pysot' else 0
    curve = np.asarray(curve)
    weight = np.zeros(len(curve))
    weight[max(low - shift, 0):high - shift + 1] = 1.0
    valid = ~np.isnan(curve)
    total = weight[valid].sum()
    if total == 0:
        return math.nan
    return float(np.sum(curve[valid] * weight[valid]) / total)


def vot_summary(per_sequence: Mapping[str, Mapping], interval=EAO_INTERVALS[DEFAULT_YEAR],
                convention: str = 'pysot', skip: int = SKIP_INITIALIZE) -> dict:
    """A/R (`accuracy_robustness`) plus eao, eao_curve, eao_interval, eao_convention,
    num_sequences, over {name: score_sequence dict}."""
    summary = accuracy_robustness(per_sequence)
    curve = expected_overlap_curve([s['eao_overlaps'] for s in per_sequence.values()],
                                   [s['failures'] for s in per_sequence.values()], skip)
    summary.update(eao=eao(curve, interval, convention), eao_curve=curve,
                   eao_interval=list(interval), eao_convention=convention,
                   num_sequences=len(per_sequence))
    return summary


# ----------------------------------------------------------------------------------------------
# Result files.

_SPLIT = re.compile(r'\s*,\s*|\s+')


def result_path(out_dir, tracker_name: str, seq_name: str) -> Path:
    """`<out_dir>/<tracker>/baseline/<seq>/<seq>_001.txt`."""
    return Path(out_dir) / tracker_name / 'baseline' / seq_name / f'{seq_name}_001.txt'


def time_path(box_path) -> Path:
    """`<seq>_001.txt` -> `<seq>_001_time.value` beside it."""
    box_path = Path(box_path)
    return box_path.with_name(box_path.stem + '_time.value')


def format_record(record: Record) -> str:
    """One result line: the integer code, or comma-separated %.4f of the values as C floats."""
    if is_code(record):
        return str(int(np.reshape(record, -1)[0]))
    values = np.asarray(record, np.float32).reshape(-1)
    return ','.join('%.4f' % float(v) for v in values)


def write_records(out_dir, tracker_name: str, seq_name: str, records: Seq[Record],
                  times=None) -> Path:
    """Writes the time file, then the box file, each atomically; returns the box file path."""
    path = result_path(out_dir, tracker_name, seq_name)
    times = np.zeros(len(records)) if times is None else np.asarray(times, np.float64)
    if times.shape != (len(records),):
        raise ValueError(f'{seq_name}: times must be [{len(records)}], got {times.shape}')
    atomic_write_text(time_path(path), ''.join('%.6f\n' % t for t in times))
    atomic_write_text(path, ''.join(format_record(r) + '\n' for r in records))
    return path


def parse_records(text: str, source: str = '<string>') -> list:
    """Result lines -> records: an int code for a 1-value line, else a float64 array of 4 or an
    even number >= 6 of values. A line with NaN values stays a region of numbers, as PySOT reads
    it (`list(map(float, line.split(',')))`); its overlap is 0 (`region_overlap`), so it lowers
    A and the EAO instead of being skipped, and it is not a failure. Blank trailing lines are
    ignored; anything else malformed is a ValueError naming `source` and the 1-based line."""
    lines = text.lstrip('\ufeff').splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    records = []
    for number, line in enumerate(lines, start=1):
        fields = [f for f in _SPLIT.split(line.strip()) if f]
        try:
            values = [float(f) for f in fields]
            if len(values) == 1:
                if values[0] != int(values[0]):
                    raise ValueError
                records.append(int(values[0]))
            elif len(values) == 4 or (len(values) >= 6 and len(values) % 2 == 0):
                records.append(np.asarray(values, np.float64))
            else:
                raise ValueError
        except (ValueError, OverflowError):
            raise ValueError(f'{source}, line {number}: expected an integer code or 4 / an even '
                             f'number >= 6 of comma-separated values, got {line!r}') from None
    return records


def read_records(path) -> list:
    """Reads a VOT result file (ours, PySOT's or the VOT toolkit's text format)."""
    path = Path(path)
    return parse_records(path.read_text(), str(path))


def is_done(out_dir, tracker_name: str, seq_name: str, num_frames: int) -> bool:
    """True when the sequence's result file exists with exactly `num_frames` non-empty lines."""
    path = result_path(out_dir, tracker_name, seq_name)
    if not path.is_file():
        return False
    with open(path) as f:
        return sum(1 for line in f if line.strip()) == num_frames


def find_result_file(results_dir, seq_name: str) -> Path | None:
    """A tracker folder's result file for `seq_name`: `baseline/<seq>/<seq>_001.txt` (VOT
    toolkit, PySOT) or `<seq>/<seq>_001.txt`; None if neither exists."""
    results_dir = Path(results_dir)
    for candidate in (results_dir / 'baseline' / seq_name / f'{seq_name}_001.txt',
                      results_dir / seq_name / f'{seq_name}_001.txt'):
        if candidate.is_file():
            return candidate
    return None
