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


# --------------------------------------------------------------------------------------------
# SiamAttn region refinement targets (JAX: the RoIs come from the network's own RPN output).

BOX_STDS = (0.1, 0.1, 0.2, 0.2)   # BBOX_NORMALIZE_STDS of the box head's deltas (means 0)


def decode_proposals(loc, centres, anchor_num: int):
    """RPN regression on the anchor grid -> proposals.

    loc [B, S, S, 4A] (channel coord * A + a, siam/model.py's layout); centres [4, A, S, S]
    anchor (cx, cy, w, h) in search-crop pixels (`siam.anchors.training_anchors`).
    Returns [B, A * S * S, 4] float32 (cx, cy, w, h) = (dx w_a + cx_a, dy h_a + cy_a,
    exp(dw) w_a, exp(dh) h_a), anchor-major (a, y, x) order.
    """
    import jax.numpy as jnp

    b, h, w, _ = loc.shape
    d = loc.reshape(b, h, w, 4, anchor_num).transpose(0, 3, 4, 1, 2).astype(jnp.float32)
    acx, acy, aw, ah = (jnp.asarray(v, jnp.float32) for v in centres)
    out = jnp.stack([d[:, 0] * aw + acx, d[:, 1] * ah + acy,
                     jnp.exp(jnp.minimum(d[:, 2], 10.0)) * aw,
                     jnp.exp(jnp.minimum(d[:, 3], 10.0)) * ah], -1)
    return out.reshape(b, -1, 4)


def cxcywh_to_corners(boxes):
    """[..., 4] (cx, cy, w, h) -> [..., 4] (x1, y1, x2, y2)."""
    import jax.numpy as jnp

    cx, cy, w, h = (boxes[..., k] for k in range(4))
    return jnp.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def corners_iou(a, b):
    """IoU of corner boxes a [..., 4] and b [..., 4] (broadcast), no +1; 0 for empty unions."""
    import jax.numpy as jnp

    iw = jnp.maximum(jnp.minimum(a[..., 2], b[..., 2]) - jnp.maximum(a[..., 0], b[..., 0]), 0)
    ih = jnp.maximum(jnp.minimum(a[..., 3], b[..., 3]) - jnp.maximum(a[..., 1], b[..., 1]), 0)
    inter = iw * ih
    union = ((a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
             + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]) - inter)
    return jnp.where(union > 0, inter / jnp.where(union > 0, union, 1.0), 0.0)


def sample_rois(rng, proposals, gt_corners, num: int, fg_thresh: float = 0.5,
                search_size: int = 255):
    """The refinement's training RoIs (SiamAttn FG_FRACTION 1, FG_THRESH 0.5): per search image,
    `num` boxes drawn uniformly among the candidates whose IoU with the target is >= fg_thresh,
    without replacement when there are at least `num` of them, with replacement otherwise.
    Candidates: the proposals clipped to the crop [0, search_size] plus the target box itself
    (so there is always one).

    rng: a PRNG key; proposals [B, N, 4] (cx, cy, w, h), treated as constants; gt_corners
    [B, 4] (x1, y1, x2, y2) target in the crop. Returns dict(boxes [B, num, 4] (cx, cy, w, h),
    iou [B, num], index [B, num] int32 (N = the target box), eligible [B] int32 candidates).
    """
    import jax
    import jax.numpy as jnp

    proposals = jax.lax.stop_gradient(jnp.nan_to_num(proposals.astype(jnp.float32)))
    corners = jnp.clip(cxcywh_to_corners(proposals), 0.0, float(search_size))
    gt = gt_corners.astype(jnp.float32)
    candidates = jnp.concatenate([corners, gt[:, None, :]], axis=1)            # [B, N + 1, 4]
    iou = corners_iou(candidates, gt[:, None, :])
    eligible = iou >= fg_thresh
    count = jnp.sum(eligible, axis=1)

    def one(key, ok, n):
        k1, k2 = jax.random.split(key)
        score = jnp.where(ok, jax.random.gumbel(k1, ok.shape), -jnp.inf)
        k = min(num, ok.shape[0])        # num > candidates: the draw is with replacement
        unique = jax.lax.top_k(score, k)[1]
        unique = jnp.concatenate([unique, jnp.zeros(num - k, unique.dtype)])
        repeated = jax.random.categorical(k2, jnp.where(ok, 0.0, -jnp.inf), shape=(num,))
        return jnp.where(n >= num, unique, repeated).astype(jnp.int32)

    index = jax.vmap(one)(jax.random.split(rng, gt.shape[0]), eligible, count)
    chosen = jnp.take_along_axis(candidates, index[..., None], axis=1)
    boxes = jnp.stack([(chosen[..., 0] + chosen[..., 2]) / 2, (chosen[..., 1] + chosen[..., 3]) / 2,
                       chosen[..., 2] - chosen[..., 0], chosen[..., 3] - chosen[..., 1]], -1)
    return dict(boxes=boxes, iou=jnp.take_along_axis(iou, index, axis=1), index=index,
                eligible=count.astype(jnp.int32))


def roi_rows(boxes, half_pixel: bool):
    """[B, K, 4] (cx, cy, w, h) -> [B * K, 5] RoIs (batch index, x1, y1, x2, y2) for the pools.

    half_pixel True: the official box-head RoI (cx - w/2 + 0.5, ..., cx + w/2 - 0.5); False: the
    mask RoI (cx - w/2, ..., cx + w/2) (siamattn_port.md section 6)."""
    import jax.numpy as jnp

    b, k, _ = boxes.shape
    corners = cxcywh_to_corners(boxes)
    if half_pixel:
        corners = corners + jnp.asarray([0.5, 0.5, -0.5, -0.5], corners.dtype)
    index = jnp.repeat(jnp.arange(b, dtype=corners.dtype), k)[:, None]
    return jnp.concatenate([index, corners.reshape(b * k, 4)], axis=1)


def box_refine_targets(boxes, gt_corners, stds=BOX_STDS):
    """Normalised deltas of the target w.r.t. each RoI box, the inverse of the tracker's
    refinement (cx' = dx std_x w + cx, w' = exp(dw std_w) w): boxes [B, K, 4] (cx, cy, w, h),
    gt_corners [B, 4] -> [B, K, 4] (dx, dy, dw, dh) / stds."""
    import jax.numpy as jnp

    gt = gt_corners.astype(jnp.float32)[:, None, :]
    gcx, gcy = (gt[..., 0] + gt[..., 2]) / 2, (gt[..., 1] + gt[..., 3]) / 2
    gw, gh = gt[..., 2] - gt[..., 0], gt[..., 3] - gt[..., 1]
    cx, cy, w, h = (boxes[..., k] for k in range(4))
    w, h = jnp.maximum(w, 1e-3), jnp.maximum(h, 1e-3)
    deltas = jnp.stack([(gcx - cx) / w, (gcy - cy) / h, jnp.log(gw / w), jnp.log(gh / h)], -1)
    return deltas / jnp.asarray(stds, jnp.float32)


def _bilinear_weights(start, length, size: int, extent: int):
    """[..., size, extent] weights sampling a map axis of `extent` pixels (pixel j covers
    [j, j + 1)) at the centres of `size` equal cells of [start, start + length); bilinear
    between pixel centres, zero outside the map."""
    import jax.numpy as jnp

    cells = (jnp.arange(size, dtype=jnp.float32) + 0.5) / size
    u = start[..., None] + cells * length[..., None] - 0.5                   # pixel-index coords
    lo = jnp.floor(u)
    frac = u - lo
    j = jnp.arange(extent, dtype=jnp.float32)
    return ((j == lo[..., None]) * (1 - frac)[..., None]
            + (j == lo[..., None] + 1) * frac[..., None])


def roi_mask_targets(masks, boxes, size: int = 64, threshold: float = 0.5):
    """RoI-aligned ground-truth masks: masks [B, H, W] (0/1) in the search crop, boxes
    [B, K, 4] (cx, cy, w, h) the mask RoIs -> [B, K, size, size] float32 0/1: cell (i, j) is
    the bilinear mask value at the centre of cell (i, j) of the RoI [x1, x2) x [y1, y2)
    divided into size x size cells, >= threshold (zero outside the crop)."""
    import jax.numpy as jnp

    corners = cxcywh_to_corners(boxes.astype(jnp.float32))
    h, w = masks.shape[1:]
    wy = _bilinear_weights(corners[..., 1], corners[..., 3] - corners[..., 1], size, h)
    wx = _bilinear_weights(corners[..., 0], corners[..., 2] - corners[..., 0], size, w)
    values = jnp.einsum('bkih,bhw,bkjw->bkij', wy, masks.astype(jnp.float32), wx)
    return (values >= threshold).astype(jnp.float32)
