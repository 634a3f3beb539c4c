"""GRM training losses (GRMActor): 2 x GIoU + 5 x L1 + 1 x CenterNet focal loss. Jittable."""
from __future__ import annotations

import jax.numpy as jnp

from tracking import boxes as box_ops


def focal_loss(pred, target):
    """CenterNet focal loss (alpha 2, beta 4) summed over the batch -> scalar.

    pred: [B, H, W] probabilities (clamped at min 1e-12). target: [B, H, W] Gaussian heatmaps.
    Positives are cells where target == 1: log(p)(1-p)^2; negatives (target < 1):
    log(1-p) p^2 (1-target)^4. Returns -(pos + neg) / num_pos, or -neg if there is no positive.
    """
    pred = jnp.maximum(pred.astype(jnp.float32), 1e-12)
    target = target.astype(jnp.float32)
    positive = target == 1
    negative = target < 1
    pos_loss = jnp.sum(jnp.where(positive, jnp.log(pred) * (1 - pred) ** 2, 0.0))
    # Where a cell is not negative its term is 0 (the official code would give NaN for p == 1
    # there); p is replaced by 0 so that the unused log(1 - p) stays finite for gradients.
    neg_pred = jnp.where(negative, pred, 0.0)
    neg_loss = jnp.sum(jnp.log(1 - neg_pred) * neg_pred ** 2 * (1 - target) ** 4)
    num_pos = jnp.sum(positive.astype(jnp.float32))
    return jnp.where(num_pos > 0, -(pos_loss + neg_loss) / jnp.maximum(num_pos, 1), -neg_loss)


def _well_formed(boxes_xyxy):
    """True if every box has x1 >= x0 and y1 >= y0 (False for NaN, like the official assert)."""
    return jnp.all(boxes_xyxy[:, 2:] >= boxes_xyxy[:, :2])


def giou_loss(pred_xyxy, gt_xyxy):
    """mean(1 - GIoU) over the batch -> (scalar, iou [B]).

    pred_xyxy, gt_xyxy: [B, 4] (x0, y0, x1, y1). If any box of either set is malformed (x1 < x0
    or y1 < y0, or NaN), the official assertion fires and the actor falls back to loss 0 and
    iou 0: reproduced here with a where (and safe stand-in boxes so that gradients stay finite).
    """
    ok = _well_formed(pred_xyxy) & _well_formed(gt_xyxy)
    unit = jnp.array([0.0, 0.0, 1.0, 1.0], jnp.float32)
    pred_safe = jnp.where(ok, pred_xyxy, unit)
    gt_safe = jnp.where(ok, gt_xyxy, unit)
    generalised, overlap = box_ops.giou(pred_safe, gt_safe)
    loss = jnp.where(ok, jnp.mean(1 - generalised), 0.0)
    return loss, jnp.where(ok, overlap, 0.0)


def l1_loss(pred, target):
    """Mean absolute error over all elements -> scalar (torch F.l1_loss, reduction 'mean')."""
    return jnp.mean(jnp.abs(pred - target))


def grm_loss(pred_boxes_cxcywh, score_map, gt_box_norm_xywh, gt_heatmap,
             giou_weight=2.0, l1_weight=5.0, focal_weight=1.0):
    """The GRM objective.

    pred_boxes_cxcywh: [B, 4] predicted (cx, cy, w, h), fractions of the search crop.
    score_map: [B, H, W] predicted centre probabilities. gt_box_norm_xywh: [B, 4] search
    annotation (x, y, w, h) as fractions of the crop. gt_heatmap: [B, H, W] Gaussian target.
    GT is converted to xyxy and clamped to [0, 1]; the prediction is not clamped.
    Returns (total, {'loss', 'giou', 'l1', 'focal', 'iou' (batch mean)}).
    """
    pred_xyxy = box_ops.cxcywh_to_xyxy(jnp.asarray(pred_boxes_cxcywh, jnp.float32))
    gt_xyxy = jnp.clip(box_ops.xywh_to_xyxy(jnp.asarray(gt_box_norm_xywh, jnp.float32)), 0.0, 1.0)
    giou, iou = giou_loss(pred_xyxy, gt_xyxy)
    l1 = l1_loss(pred_xyxy, gt_xyxy)
    focal = focal_loss(score_map, gt_heatmap)
    total = giou_weight * giou + l1_weight * l1 + focal_weight * focal
    metrics = {'loss': total, 'giou': giou, 'l1': l1, 'focal': focal, 'iou': jnp.mean(iou)}
    return total, metrics
