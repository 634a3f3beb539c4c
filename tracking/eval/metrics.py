"""Benchmark metrics computed the way the official toolkits compute them (numpy only).

All boxes are `[T, 4]` (x, y, w, h) in pixels, exactly as the result / annotation files write
them. All reported numbers are fractions in [0, 1] (multiply by 100 for the "percent" tables).

Three families, each with a per-sequence function and a summary over sequences:

* OPE (OTB-2015, UAV123, NfS, LaSOT, LaSOT_ext, TNL2K, synthetic). Default rules='pysot', the
  PySOT toolkit (`toolkit/utils/statistics.py`, `toolkit/evaluation/ope_benchmark.py`), which is
  how most published Siamese-tracker numbers are computed:
  - everything in float64: ground truth as the annotation file writes it (the readers keep
    float64; a float32 cast moves non-integer values and flips frames that sit exactly on a
    threshold, e.g. IoU exactly 0.5 or a centre error of exactly 20 px).
  - IoU without the "+1 pixel" (right = x + w), clipped to [0, 1].
  - success curve: fraction of frames with IoU strictly greater than each of the 21 thresholds
    linspace(0, 1, 21); AUC = mean of the curve.
  - precision curve: fraction of frames whose centre error is <= each of arange(0, 51) px;
    precision = value at 20 px. Centre = (x + (w - 1) / 2, y + (h - 1) / 2).
  - normalised precision, PySOT definition: both centres are divided per axis by the GT (w, h)
    (+1e-16), the Euclidean distance of the normalised centres is compared with thresholds
    arange(0, 51) / 100 (<=); the reported value is the one at 0.20 (not the got10k-toolkit
    mean over the curve, not TrackingNet's area).
  - frame 0: the result's first line (the init box) is used as written.
  - absent frames exist for LaSOT / LaSOT_ext / TNL2K / synthetic only (`ope_sequence`'s
    `visible`, PySOT's `LaSOTVideo.absent`): dropped before counting, but the denominator stays
    the full sequence length, so they count as failures. OTB, UAV123 and NfS are scored on every
    frame (`ope_sequence_all_frames`; PySOT's UAV/NFS videos have no absent field), whatever the
    reader's `visible` says.
  - invalid GT, exactly as PySOT: success keeps GT rows with w > 0 and h > 0 (`success_overlap`;
    x or y <= 0 is fine), others get IoU -1 (always a failure); the precision curves keep rows
    whose GT centre is > 0 on both axes, others get distance -1, which PySOT counts as a
    *success* at every threshold. A NaN GT row (UAV123 out of view) therefore fails in success
    and succeeds in both precisions; we keep this quirk so numbers match published ones.
  - NaN predictions give NaN IoU / error and count as failures.
  - summary: curves are averaged over sequences first, then AUC / P@20 / NormP@0.2 are read.
  rules='matlab' (`metric_fns(name, rules='matlab')`): the official MATLAB toolkits, OTB
  `calcSeqErrRobust`, LaSOT `utils/calc_seq_err_robust.m` + `eval_tracker.m` +
  `plot_draw_save.m` (TNL2K's toolkit is a copy of LaSOT's). They differ from PySOT in:
  a prediction with NaN or w/h <= 0 is replaced by the previous frame's; frame 0 is replaced by
  the GT; a GT row is valid only when all of x, y, w, h are > 0 (for success and precision);
  "+1 pixel" overlap (`matlab_rect_int`); normalised centres without the 1e-16; denominator
  T + eps; the summary drops sequences whose curve is all zero. Material for trackers that
  output NaN / empty boxes, and for GT touching the left or top image edge (x or y = 0).

* GOT-10k (got-10k/toolkit `ExperimentGOT10k.report`, `utils/metrics.rect_iou`):
  frames 1..T-1 only; both boxes clipped to the image (x in [0, W], w in [0, W - x], same for y/h)
  when the image size is known; IoU without "+1", union + eps; only frames with cover > 0 kept.
  The summary pools the IoUs of all frames of all sequences (not a per-sequence mean):
  AO = mean IoU, SR_t = fraction of IoU > t, success curve over linspace(0, 1, 101) (IoU > thr).

* TrackingNet (official devkit `metrics.py`): boxes and GT rounded to integers (numpy
  round-half-to-even), frame 0 replaced by the GT, "+1 pixel" intersection (right = x + w - 1,
  areas w * h), centre = x + (w + 1) / 2, success uses IoU >= threshold; 21-point curves over
  IoU linspace(0, 1, 21), precision linspace(0, 50, 21) px, normalised precision
  linspace(0, 0.5, 21); each number is the trapezoid area of the sequence-averaged curve with
  x = linspace(0, 1, 21). Intersection corners use pandas' NaN-skipping max/min (numpy
  fmax/fmin); a NaN anywhere else gives NaN IoU / distance, a failure at every threshold; a
  zero-size GT gives IoU 0 and an inf/NaN normalised distance (a failure), as in the devkit.
"""
from __future__ import annotations

import functools
import inspect
from typing import Callable, Mapping

import numpy as np

from tracking.data.benchmarks import canonical_benchmark

# OPE (PySOT). In float64 linspace(0, 1, 21) equals PySOT's arange(0, 1.05, 0.05) bit for bit.
SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)
PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64)
NORM_PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64) / 100.0
PRECISION_INDEX = 20  # 20 px, and 0.20 for the normalised curve.

# GOT-10k.
GOT10K_THRESHOLDS = np.linspace(0.0, 1.0, 101)

# TrackingNet devkit.
TRACKINGNET_SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)
TRACKINGNET_PRECISION_THRESHOLDS = np.linspace(0.0, 50.0, 21)
TRACKINGNET_NORM_PRECISION_THRESHOLDS = np.linspace(0.0, 0.5, 21)
TRACKINGNET_AREA_X = np.linspace(0.0, 1.0, 21)

_trapezoid = getattr(np, 'trapezoid', None) or getattr(np, 'trapz')


def _as_boxes(boxes, what: str) -> np.ndarray:
    """Returns boxes as a float64 [T, 4] copy; raises ValueError naming `what` otherwise."""
    arr = np.array(boxes, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f'{what}: expected [T, 4] (x, y, w, h) boxes, got shape {arr.shape}')
    return arr


def _check_pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    pred = _as_boxes(pred, 'prediction')
    gt = _as_boxes(gt, 'ground truth')
    if len(pred) != len(gt):
        raise ValueError(f'prediction has {len(pred)} frames but ground truth has {len(gt)}')
    if len(gt) == 0:
        raise ValueError('empty sequence: no frames to evaluate')
    return pred, gt


def _per_frame_mask(values, length: int, what: str) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.asarray(values)
    if arr.shape != (length,):
        raise ValueError(f'{what}: expected shape ({length},), got {arr.shape}')
    return arr


# ----------------------------------------------------------------------------------------------
# OPE (OTB / UAV123 / NfS / LaSOT / LaSOT_ext / TNL2K / synthetic).

OPE_RULES = ('pysot', 'matlab')


def overlap_ratio(boxes1, boxes2) -> np.ndarray:
    """PySOT IoU of [N, 4] xywh boxes, no "+1 pixel"; returns [N] in [0, 1] (NaN stays NaN)."""
    b1 = np.asarray(boxes1, np.float64)
    b2 = np.asarray(boxes2, np.float64)
    left = np.maximum(b1[:, 0], b2[:, 0])
    right = np.minimum(b1[:, 0] + b1[:, 2], b2[:, 0] + b2[:, 2])
    top = np.maximum(b1[:, 1], b2[:, 1])
    bottom = np.minimum(b1[:, 1] + b1[:, 3], b2[:, 1] + b2[:, 3])
    inter = np.maximum(0.0, right - left) * np.maximum(0.0, bottom - top)
    union = b1[:, 2] * b1[:, 3] + b2[:, 2] * b2[:, 3] - inter
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = inter / union
    return np.maximum(np.minimum(1.0, iou), 0.0)


def matlab_rect_int(boxes1, boxes2) -> np.ndarray:
    """OTB/LaSOT MATLAB `calcRectInt` / `calc_rect_int`: [N, 4] xywh pairs -> [N] IoU.

    "+1 pixel" form: right = x + w - 1, intersection side max(0, min(right) - max(left) + 1);
    areas w * h; not clipped to [0, 1]. MATLAB's min/max skip NaN (numpy fmin/fmax).
    """
    a = np.asarray(boxes1, np.float64)
    b = np.asarray(boxes2, np.float64)
    right_a, top_a = a[:, 0] + a[:, 2] - 1, a[:, 1] + a[:, 3] - 1
    right_b, top_b = b[:, 0] + b[:, 2] - 1, b[:, 1] + b[:, 3] - 1
    inter = (np.fmax(0.0, np.fmin(right_a, right_b) - np.fmax(a[:, 0], b[:, 0]) + 1)
             * np.fmax(0.0, np.fmin(top_a, top_b) - np.fmax(a[:, 1], b[:, 1]) + 1))
    with np.errstate(divide='ignore', invalid='ignore'):
        return inter / (a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter)


def ope_centers(boxes) -> np.ndarray:
    """[N, 4] xywh -> [N, 2] centres (x + (w - 1) / 2, y + (h - 1) / 2), as PySOT / OTB."""
    b = np.asarray(boxes, np.float64)
    return np.stack([b[:, 0] + (b[:, 2] - 1) / 2, b[:, 1] + (b[:, 3] - 1) / 2], axis=1)


def _count_curve(values, thresholds, denominator: float, above: bool) -> np.ndarray:
    """Fraction of frames with value > thr (above) or <= thr (not above), over `denominator`."""
    hits = (values[:, None] > thresholds[None, :]) if above else \
        (values[:, None] <= thresholds[None, :])
    return hits.sum(0) / denominator


def _pysot_curves(pred, gt, num_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PySOT `toolkit/utils/statistics.py` (`success_overlap`, `success_error`) and
    `toolkit/evaluation/ope_benchmark.py` (`eval_success`, `eval_precision`,
    `eval_norm_precision`) on the frames kept; the denominator is `num_frames`."""
    # Success: pysot `success_overlap` keeps GT rows with w > 0 and h > 0 only
    # (`mask = np.sum(gt_bb[:, 2:] > 0, axis=1) == 2`; its all-four-values line
    # `np.sum(gt_bb > 0, axis=1) == 4` is commented out). x or y <= 0 is a normal frame here;
    # the OTB/LaSOT MATLAB rule (all four > 0) is rules='matlab'. Other rows get IoU -1 (fail).
    iou = np.full(len(gt), -1.0)
    valid = (gt[:, 2] > 0) & (gt[:, 3] > 0)
    iou[valid] = overlap_ratio(gt[valid], pred[valid])
    success = _count_curve(iou, SUCCESS_THRESHOLDS, float(num_frames), above=True)
    # Precision: pysot `success_error` keeps rows whose GT centre is > 0 on both axes; the
    # others get distance -1, which is <= every threshold (a success). A NaN GT row therefore
    # fails in success and succeeds in both precisions (UAV123 NaN rows).
    gt_c, pred_c = ope_centers(gt), ope_centers(pred)
    precision = _pysot_error_curve(gt_c, pred_c, PRECISION_THRESHOLDS, num_frames)
    # Normalised precision: `convert_bb_to_norm_center` divides both centres by GT (w, h) + 1e-16;
    # the > 0 mask is then tested on the normalised GT centre.
    with np.errstate(divide='ignore', invalid='ignore'):
        gt_wh = gt[:, 2:4] + 1e-16
        norm = _pysot_error_curve(gt_c / gt_wh, pred_c / gt_wh, NORM_PRECISION_THRESHOLDS,
                                  num_frames)
    return success, precision, norm


def _pysot_error_curve(gt_centers, pred_centers, thresholds, num_frames: int) -> np.ndarray:
    dist = np.full(len(gt_centers), -1.0)
    valid = np.all(gt_centers > 0, axis=1)
    diff = gt_centers[valid] - pred_centers[valid]
    dist[valid] = np.sqrt(np.sum(diff ** 2, axis=1))
    return _count_curve(dist, thresholds, float(num_frames), above=False)


def matlab_carry_forward(pred, gt) -> np.ndarray:
    """OTB `calcSeqErrRobust` / LaSOT `calc_seq_err_robust` result repair, in frame order 1..T-1:
    a prediction with a NaN value or w <= 0 or h <= 0 is replaced by the (already repaired)
    previous row, unless the GT row holds a NaN. Returns a repaired [T, 4] copy."""
    out = np.array(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    for i in range(1, len(out)):
        r = out[i]
        bad = bool(np.isnan(r).any() or r[2] <= 0 or r[3] <= 0)
        if bad and not np.isnan(gt[i]).any():
            out[i] = out[i - 1]
    return out


def _matlab_curves(pred, gt, keep, num_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OTB MATLAB `calcSeqErrRobust` and LaSOT/TNL2K `utils/calc_seq_err_robust.m` +
    `eval_tracker.m`: repaired predictions (`matlab_carry_forward`), frame 0 replaced by the GT,
    absent frames removed, GT rows valid only when all of x, y, w, h are > 0 (NaN is not), for
    success *and* both precisions; invalid rows get overlap -1 (fail) and centre error -1
    (success at every threshold). Overlap: `matlab_rect_int`. Normalised centres: divided by
    GT (w, h) without an epsilon. Denominator: all frames + eps (`len_all + eps`)."""
    pred = matlab_carry_forward(pred, gt)
    pred[0] = gt[0]
    if keep is not None:
        pred, gt = pred[keep], gt[keep]
    valid = np.all(gt > 0, axis=1)
    iou = np.full(len(gt), -1.0)
    iou[valid] = matlab_rect_int(pred[valid], gt[valid])
    gt_c, pred_c = ope_centers(gt), ope_centers(pred)
    denominator = num_frames + np.finfo(np.float64).eps
    with np.errstate(divide='ignore', invalid='ignore'):
        dist = np.sqrt(np.sum((pred_c - gt_c) ** 2, axis=1))
        ndist = np.sqrt(np.sum((pred_c / gt[:, 2:4] - gt_c / gt[:, 2:4]) ** 2, axis=1))
    dist[~valid] = -1.0
    ndist[~valid] = -1.0
    return (_count_curve(iou, SUCCESS_THRESHOLDS, denominator, above=True),
            _count_curve(dist, PRECISION_THRESHOLDS, denominator, above=False),
            _count_curve(ndist, NORM_PRECISION_THRESHOLDS, denominator, above=False))


def _check_rules(rules: str) -> str:
    if rules not in OPE_RULES:
        raise ValueError(f'rules must be one of {OPE_RULES}, got {rules!r}')
    return rules


def ope_sequence(pred_xywh, gt_xywh, visible=None, rules: str = 'pysot') -> dict:
    """OPE metrics of one sequence with absent frames (LaSOT, LaSOT_ext, TNL2K, synthetic).

    pred_xywh: [T, 4] result boxes, first row = init box.
    gt_xywh: [T, 4] ground truth (float64, as the annotation file writes it).
    visible: [T] bool or None; False frames (absent) are removed before counting but the
      denominator stays T, so they count as failures (PySOT `eval_*`: `gt_traj[video.absent ==
      1]` with `n_frame = len(gt_traj)`; LaSOT `eval_tracker.m`: `len_all = size(anno, 1)`).
    rules: 'pysot' (default; PySOT toolkit) or 'matlab' (official LaSOT / TNL2K / OTB MATLAB
      toolkits), see the module docstring for where they differ.
    Returns dict(success_curve [21], precision_curve [51], norm_precision_curve [51],
      auc, precision (at 20 px), norm_precision (at 0.20), num_frames, rules).
    """
    pred, gt = _check_pair(pred_xywh, gt_xywh)
    num_frames = len(gt)
    keep = _per_frame_mask(visible, num_frames, 'visible')
    keep = None if keep is None else keep.astype(bool)
    if _check_rules(rules) == 'matlab':
        curves = _matlab_curves(pred, gt, keep, num_frames)
    else:
        if keep is not None:
            pred, gt = pred[keep], gt[keep]
        curves = _pysot_curves(pred, gt, num_frames)
    return _ope_numbers(*curves) | {'num_frames': num_frames, 'rules': rules}


def ope_sequence_all_frames(pred_xywh, gt_xywh, rules: str = 'pysot') -> dict:
    """OPE metrics of one sequence where the toolkit has no notion of absent frames (OTB,
    UAV123, NfS): every frame is scored, whatever the reader's `visible` says.

    PySOT's UAV123 and NfS datasets carry no `absent` field (only `LaSOTVideo` has one), so a
    UAV123 NaN row fails in success and succeeds in both precisions (see `_pysot_curves`), and
    an NfS frame flagged lost is scored against its box. `evaluate` / the runner drop the
    `visible` input because this function does not take it. Same return as `ope_sequence`.
    """
    return ope_sequence(pred_xywh, gt_xywh, None, rules)


def _ope_numbers(success, precision, norm) -> dict:
    return {
        'success_curve': success,
        'precision_curve': precision,
        'norm_precision_curve': norm,
        'auc': float(np.mean(success)),
        'precision': float(precision[PRECISION_INDEX]),
        'norm_precision': float(norm[PRECISION_INDEX]),
    }


def _require_sequences(per_sequence: Mapping) -> list:
    if not per_sequence:
        raise ValueError('no sequences to summarise')
    return list(per_sequence.values())


def _matlab_mean_curve(curves) -> np.ndarray:
    """LaSOT `plot_draw_save.m` (as OTB's plot code): sequences whose whole curve sums to <= eps
    are dropped (`aa = aa(sum(aa, 2) > eps, :)`) before the mean over sequences."""
    curves = np.asarray(curves, np.float64)
    kept = curves[curves.sum(axis=1) > np.finfo(np.float64).eps]
    return kept.mean(axis=0) if len(kept) else np.full(curves.shape[1], np.nan)


def ope_summary(per_sequence: Mapping[str, dict]) -> dict:
    """Averages the per-sequence curves over sequences, then reads AUC / P@20 / NormP@0.2.

    per_sequence: {sequence name: ope_sequence(...) dict}, all with the same `rules`.
    'matlab' results drop, per curve, the sequences whose curve is all zero (`_matlab_mean_curve`).
    Returns dict(auc, precision, norm_precision, success_curve, precision_curve,
      norm_precision_curve, the three *_thresholds arrays, num_sequences, rules).
    """
    results = _require_sequences(per_sequence)
    rules = {r.get('rules', 'pysot') for r in results}
    if len(rules) != 1:
        raise ValueError(f'cannot summarise sequences scored with different rules: {sorted(rules)}')
    rules = rules.pop()
    if rules == 'matlab':
        mean_curve = {k: _matlab_mean_curve([r[k] for r in results])
                      for k in ('success_curve', 'precision_curve', 'norm_precision_curve')}
    else:
        mean_curve = _mean_curves(results)
    out = _ope_numbers(mean_curve['success_curve'], mean_curve['precision_curve'],
                       mean_curve['norm_precision_curve'])
    out.update(success_thresholds=SUCCESS_THRESHOLDS,
               precision_thresholds=PRECISION_THRESHOLDS,
               norm_precision_thresholds=NORM_PRECISION_THRESHOLDS,
               num_sequences=len(results), rules=rules)
    return out


# ----------------------------------------------------------------------------------------------
# GOT-10k.

def clip_to_image(boxes_xywh, image_wh) -> np.ndarray:
    """got10k toolkit bound: x in [0, W], y in [0, H], w in [0, W - x], h in [0, H - y]."""
    b = np.array(boxes_xywh, np.float64)
    width, height = float(image_wh[0]), float(image_wh[1])
    b[:, 0] = np.clip(b[:, 0], 0, width)
    b[:, 1] = np.clip(b[:, 1], 0, height)
    b[:, 2] = np.clip(b[:, 2], 0, width - b[:, 0])
    b[:, 3] = np.clip(b[:, 3], 0, height - b[:, 1])
    return b


def got10k_iou(boxes1, boxes2, image_wh=None) -> np.ndarray:
    """got10k `rect_iou`: [N, 4] xywh pairs -> [N] IoU in [0, 1], union + float eps."""
    b1 = np.asarray(boxes1, np.float64)
    b2 = np.asarray(boxes2, np.float64)
    if image_wh is not None:
        b1, b2 = clip_to_image(b1, image_wh), clip_to_image(b2, image_wh)
    inter_w = np.maximum(np.minimum(b1[:, 0] + b1[:, 2], b2[:, 0] + b2[:, 2])
                         - np.maximum(b1[:, 0], b2[:, 0]), 0)
    inter_h = np.maximum(np.minimum(b1[:, 1] + b1[:, 3], b2[:, 1] + b2[:, 3])
                         - np.maximum(b1[:, 1], b2[:, 1]), 0)
    inter = inter_w * inter_h
    union = b1[:, 2] * b1[:, 3] + b2[:, 2] * b2[:, 3] - inter
    return np.clip(inter / (union + np.finfo(float).eps), 0.0, 1.0)


def _got10k_numbers(ious: np.ndarray) -> dict:
    if len(ious) == 0:
        return {'ao': float('nan'), 'sr50': float('nan'), 'sr75': float('nan')}
    return {'ao': float(np.mean(ious)),
            'sr50': float(np.mean(ious > 0.5)),
            'sr75': float(np.mean(ious > 0.75))}


def got10k_sequence(pred_xywh, gt_xywh, cover=None, image_wh=None) -> dict:
    """GOT-10k metrics of one sequence (one repetition).

    pred_xywh, gt_xywh: [T, 4]; frame 0 (the init frame) is excluded.
    cover: [T] ints (cover.label, 0 = fully occluded) or None; frames with cover == 0 dropped.
    image_wh: (W, H) from meta_info.ini or None (no clipping).
    Returns dict(ious [n] float64 of the kept frames 1..T-1, ao, sr50, sr75, num_frames).
    A NaN prediction gives a NaN IoU and thus a NaN AO, as in the toolkit.
    """
    pred, gt = _check_pair(pred_xywh, gt_xywh)
    cover = _per_frame_mask(cover, len(gt), 'cover')
    ious = got10k_iou(pred[1:], gt[1:], image_wh)
    if cover is not None:
        ious = ious[np.asarray(cover)[1:] > 0]
    return {'ious': ious, **_got10k_numbers(ious), 'num_frames': int(len(ious))}


def got10k_summary(per_sequence: Mapping[str, dict]) -> dict:
    """Pools the IoUs of all frames of all sequences (toolkit `report`), not a per-sequence mean.

    Returns dict(ao, sr50, sr75, success_curve [101] over linspace(0, 1, 101) with IoU > thr,
      success_thresholds, num_frames, num_sequences).
    """
    results = _require_sequences(per_sequence)
    ious = np.concatenate([np.asarray(r['ious'], np.float64) for r in results])
    curve = (np.mean(ious[:, None] > GOT10K_THRESHOLDS[None, :], axis=0) if len(ious)
             else np.full(len(GOT10K_THRESHOLDS), np.nan))
    return {**_got10k_numbers(ious), 'success_curve': curve,
            'success_thresholds': GOT10K_THRESHOLDS, 'num_frames': int(len(ious)),
            'num_sequences': len(results)}


def mean_fps(times_s) -> float:
    """got10k speed: mean of 1 / t over frames with a finite time t > 0; -1 when none."""
    t = np.asarray(times_s, np.float64).ravel()
    t = t[np.isfinite(t) & (t > 0)]
    return float(np.mean(1.0 / t)) if len(t) else -1.0


# ----------------------------------------------------------------------------------------------
# TrackingNet devkit.

def _trackingnet_per_frame(pred, gt) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rounded boxes, frame 0 = GT -> (IoU, centre distance, normalised distance), each [T]."""
    gt = np.round(gt)
    pred = np.round(pred)
    pred[0] = gt[0]
    gx2, gy2 = gt[:, 0] + gt[:, 2] - 1.0, gt[:, 1] + gt[:, 3] - 1.0
    px2, py2 = pred[:, 0] + pred[:, 2] - 1.0, pred[:, 1] + pred[:, 3] - 1.0
    # The devkit takes the intersection corners with pandas `df[[a, b]].max(axis=1)` /
    # `.min(axis=1)`, which skip NaN (numpy fmax / fmin), and clips with `.clip(lower=0)`,
    # which keeps NaN. A NaN in a prediction's x (or y) alone thus leaves a finite IoU.
    inter_w = np.clip(np.round(np.fmin(gx2, px2) - np.fmax(gt[:, 0], pred[:, 0]) + 1), 0, None)
    inter_h = np.clip(np.round(np.fmin(gy2, py2) - np.fmax(gt[:, 1], pred[:, 1]) + 1), 0, None)
    inter = inter_w * inter_h
    dx = (gt[:, 0] + (gt[:, 2] + 1.0) / 2.0) - (pred[:, 0] + (pred[:, 2] + 1.0) / 2.0)
    dy = (gt[:, 1] + (gt[:, 3] + 1.0) / 2.0) - (pred[:, 1] + (pred[:, 3] + 1.0) / 2.0)
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = inter / (gt[:, 2] * gt[:, 3] + pred[:, 2] * pred[:, 3] - inter)
        ndist = np.sqrt(dx / gt[:, 2] * dx / gt[:, 2] + dy / gt[:, 3] * dy / gt[:, 3])
    return iou, np.sqrt(dx * dx + dy * dy), ndist


def _trackingnet_numbers(success, precision, norm) -> dict:
    return {
        'success_curve': success,
        'precision_curve': precision,
        'norm_precision_curve': norm,
        'auc': float(_trapezoid(success, x=TRACKINGNET_AREA_X)),
        'precision': float(_trapezoid(precision, x=TRACKINGNET_AREA_X)),
        'norm_precision': float(_trapezoid(norm, x=TRACKINGNET_AREA_X)),
    }


def trackingnet_sequence(pred_xywh, gt_xywh) -> dict:
    """TrackingNet devkit metrics of one sequence.

    Returns dict(success_curve [21] (IoU >= thr), precision_curve [21] (0..50 px, <=),
      norm_precision_curve [21] (0..0.5, <=), auc / precision / norm_precision = trapezoid
      areas of those curves with x = linspace(0, 1, 21), num_frames).
    The denominator is every frame (frame 0 included, always a success since it is the GT).
    """
    pred, gt = _check_pair(pred_xywh, gt_xywh)
    iou, dist, ndist = _trackingnet_per_frame(pred, gt)
    success = np.mean(iou[:, None] >= TRACKINGNET_SUCCESS_THRESHOLDS[None, :], axis=0)
    precision = np.mean(dist[:, None] <= TRACKINGNET_PRECISION_THRESHOLDS[None, :], axis=0)
    norm = np.mean(ndist[:, None] <= TRACKINGNET_NORM_PRECISION_THRESHOLDS[None, :], axis=0)
    return _trackingnet_numbers(success, precision, norm) | {'num_frames': len(gt)}


def _mean_curves(results) -> dict:
    """The three curves averaged over sequences (the toolkits average curves, not scores)."""
    return {k: np.mean([r[k] for r in results], axis=0)
            for k in ('success_curve', 'precision_curve', 'norm_precision_curve')}


def trackingnet_summary(per_sequence: Mapping[str, dict]) -> dict:
    """Averages the 21-point curves over sequences, then takes the trapezoid areas."""
    results = _require_sequences(per_sequence)
    mean_curve = _mean_curves(results)
    out = _trackingnet_numbers(mean_curve['success_curve'], mean_curve['precision_curve'],
                               mean_curve['norm_precision_curve'])
    out.update(success_thresholds=TRACKINGNET_SUCCESS_THRESHOLDS,
               precision_thresholds=TRACKINGNET_PRECISION_THRESHOLDS,
               norm_precision_thresholds=TRACKINGNET_NORM_PRECISION_THRESHOLDS,
               num_sequences=len(results))
    return out


# ----------------------------------------------------------------------------------------------
# Benchmark name -> (sequence function, summary function).

_OPE = (ope_sequence, ope_summary)
_OPE_ALL_FRAMES = (ope_sequence_all_frames, ope_summary)
METRICS_FOR: dict[str, tuple[Callable[..., dict], Callable[[Mapping[str, dict]], dict]]] = {
    'otb': _OPE_ALL_FRAMES,
    'uav123': _OPE_ALL_FRAMES,   # PySOT: no absent frames; NaN rows keep the toolkit quirk.
    'nfs': _OPE_ALL_FRAMES,      # PySOT NFSVideo / got10k ExperimentNfS: every frame scored.
    'lasot': _OPE,
    'lasot_ext': _OPE,           # LaSOT's rules (same toolkit, absent flags).
    'tnl2k': _OPE,               # TNL2K toolkit = LaSOT toolkit copy; PySOT-style by default.
    'synthetic': _OPE,
    'got10k': (got10k_sequence, got10k_summary),
    'trackingnet': (trackingnet_sequence, trackingnet_summary),
}


def _metrics_key(benchmark: str) -> str:
    """The METRICS_FOR key of a benchmark name: canonical_benchmark(benchmark) when the reader
    registry knows the name, else the name itself; matched ignoring '-' and '_' ('LaSOT-ext',
    'lasotext' -> 'lasot_ext'). Raises canonical_benchmark's ValueError when nothing matches."""
    try:
        key, error = canonical_benchmark(benchmark), None
    except ValueError as e:
        key, error = benchmark.lower(), e
    squashed = key.replace('-', '').replace('_', '')
    for name in METRICS_FOR:
        if name.replace('_', '') == squashed:
            return name
    if error is not None:
        raise error
    return key


def metric_fns(benchmark: str, rules: str | None = None):
    """(sequence_fn, summary_fn) for a benchmark name (case/dash insensitive).

    rules: None (default, PySOT for every OPE benchmark) or 'pysot' / 'matlab' (OPE benchmarks
      only: the official OTB / LaSOT / TNL2K MATLAB toolkits' rules); the sequence function is
      then bound to it.
    Raises KeyError for VOT, whose A/R/EAO are not one-pass metrics, and ValueError for rules
    on a benchmark without OPE metrics.
    """
    key = _metrics_key(benchmark)
    if key not in METRICS_FOR:
        raise KeyError(f'no OPE/GOT-10k/TrackingNet metrics for benchmark {benchmark!r} '
                       f'(known: {sorted(METRICS_FOR)}; VOT A/R/EAO is computed elsewhere)')
    sequence_fn, summary_fn = METRICS_FOR[key]
    if rules is None:
        return sequence_fn, summary_fn
    if summary_fn is not ope_summary:
        raise ValueError(f'rules={rules!r} applies to OPE benchmarks only, not {benchmark!r}')
    return functools.partial(sequence_fn, rules=_check_rules(rules)), summary_fn


def evaluate(benchmark: str, per_sequence_inputs: Mapping[str, Mapping],
             rules: str | None = None) -> tuple[dict, dict]:
    """Evaluates several sequences of one tracker.

    per_sequence_inputs: {name: {'pred': [T,4], 'gt': [T,4], optional 'visible', 'cover',
      'image_wh'}}; keys the benchmark's sequence function does not take are ignored (OTB,
      UAV123 and NfS ignore 'visible').
    rules: see `metric_fns`.
    Returns (per_sequence {name: metrics dict}, summary dict).
    """
    sequence_fn, summary_fn = metric_fns(benchmark, rules)
    accepted = set(list(inspect.signature(sequence_fn).parameters)[2:]) - {'rules'}
    per_sequence = {}
    for name, inputs in per_sequence_inputs.items():
        extra = {k: v for k, v in inputs.items() if k in accepted}
        try:
            per_sequence[name] = sequence_fn(inputs['pred'], inputs['gt'], **extra)
        except (ValueError, KeyError) as e:
            raise ValueError(f'sequence {name}: {e}') from e
    return per_sequence, summary_fn(per_sequence)
