"""SiamRPN training targets (pysot `AnchorTarget`), numpy, drawn with an explicit Generator.

Layouts follow pysot: labels [A, S, S] int32 (1 positive, 0 negative, -1 ignored), deltas
[4, A, S, S] float32 (dx, dy, dw, dh), delta weights [A, S, S] float32.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from siam.anchors import training_anchors


@dataclasses.dataclass(frozen=True)
class TargetParams:
    """pysot cfg.TRAIN thresholds and counts."""
    thr_high: float = 0.6     # IoU above: positive
    thr_low: float = 0.3      # IoU below: negative
    pos_num: int = 16         # at most this many positives
    total_num: int = 64       # at most total_num - pos_num negatives
    neg_num: int = 16         # negatives kept in a negative pair

    @classmethod
    def from_config(cls, config) -> 'TargetParams':
        return cls(thr_high=float(config.thr_high), thr_low=float(config.thr_low),
                   pos_num=int(config.pos_num), total_num=int(config.total_num),
                   neg_num=int(config.neg_num))


def iou_corners(anchors: np.ndarray, box: np.ndarray) -> np.ndarray:
    """IoU of anchors [4, ...] (x1, y1, x2, y2) with one box [4], no +1: [...] float32."""
    x1, y1, x2, y2 = anchors
    ww = np.maximum(0.0, np.minimum(x2, box[2]) - np.maximum(x1, box[0]))
    hh = np.maximum(0.0, np.minimum(y2, box[3]) - np.maximum(y1, box[1]))
    inter = ww * hh
    area = (x2 - x1) * (y2 - y1)
    target_area = (box[2] - box[0]) * (box[3] - box[1])
    return inter / (area + target_area - inter)


def _keep_random(rng: np.random.Generator, mask: np.ndarray, keep: int) -> np.ndarray:
    """A copy of boolean `mask` with at most `keep` True entries, chosen uniformly."""
    where = np.flatnonzero(mask)
    if where.size > keep:
        where = where[rng.permutation(where.size)[:keep]]
    out = np.zeros(mask.size, bool)
    out[where] = True
    return out.reshape(mask.shape)


class AnchorTarget:
    """Labels and regression targets of one search crop for a score map of side `size`."""

    def __init__(self, params: TargetParams = TargetParams(), size: int = 25,
                 search_size: int = 255, stride: int = 8,
                 ratios=(0.33, 0.5, 1.0, 2.0, 3.0), scales=(8.0,)):
        self.params = params
        self.size, self.search_size, self.stride = int(size), int(search_size), int(stride)
        self.corners, self.centres = training_anchors(size, search_size, stride, ratios, scales)
        self.anchor_num = self.corners.shape[1]

    def __call__(self, rng: np.random.Generator, box_xyxy, negative: bool) -> dict:
        """box_xyxy: target corners in the search crop (pixels). Returns dict(label [A, S, S]
        int32, delta [4, A, S, S] float32, delta_weight [A, S, S] float32)."""
        p, size = self.params, self.size
        shape = (self.anchor_num, size, size)
        label = np.full(shape, -1, np.int32)
        delta = np.zeros((4,) + shape, np.float32)
        weight = np.zeros(shape, np.float32)
        box = np.asarray(box_xyxy, np.float64)
        tcx, tcy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        tw, th = box[2] - box[0], box[3] - box[1]
        if negative:
            half = self.search_size // 2
            cx = size // 2 + int(math.ceil((tcx - half) / self.stride + 0.5))
            cy = size // 2 + int(math.ceil((tcy - half) / self.stride + 0.5))
            window = np.zeros(shape, bool)
            window[:, max(0, cy - 3):min(size, cy + 4), max(0, cx - 3):min(size, cx + 4)] = True
            label[_keep_random(rng, window, p.neg_num)] = 0
            return dict(label=label, delta=delta, delta_weight=weight)
        if not (tw > 0 and th > 0 and np.all(np.isfinite(box))):
            raise ValueError(f'AnchorTarget: degenerate target box {box.tolist()} '
                             '(x1, y1, x2, y2) in the search crop')
        cx, cy, w, h = self.centres
        delta[0] = (tcx - cx) / w
        delta[1] = (tcy - cy) / h
        delta[2] = np.log(tw / w)
        delta[3] = np.log(th / h)
        overlap = iou_corners(self.corners, box)
        positive = _keep_random(rng, overlap > p.thr_high, p.pos_num)
        negatives = _keep_random(rng, overlap < p.thr_low, p.total_num - p.pos_num)
        label[positive] = 1
        weight[positive] = 1.0 / (positive.sum() + 1e-6)
        label[negatives] = 0
        return dict(label=label, delta=delta, delta_weight=weight)
