"""Tests for grm_jax/losses.py: focal, GIoU, L1 and the combined GRM loss, by hand."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grm_jax import losses
from tracking.data.targets import gaussian_heatmap


def _focal_by_hand(pred, target):
    pos = neg = 0.0
    num_pos = 0
    for p, t in zip(np.ravel(pred).tolist(), np.ravel(target).tolist()):
        p = max(p, 1e-12)
        if t == 1:
            pos += math.log(p) * (1 - p) ** 2
            num_pos += 1
        else:
            neg += math.log(1 - p) * p ** 2 * (1 - t) ** 4
    return -(pos + neg) / num_pos if num_pos else -neg


def test_focal_3x3_by_hand():
    pred = np.array([[[0.1, 0.2, 0.1], [0.3, 0.8, 0.2], [0.0, 0.1, 0.05]]], np.float32)
    target = np.array([[[0.0, 0.5, 0.0], [0.5, 1.0, 0.5], [0.0, 0.5, 0.0]]], np.float32)
    # Written out: positive log(.8) * .2^2; negatives log(1 - p) p^2 (1 - t)^4.
    pos = math.log(0.8) * 0.04
    neg = (math.log(0.9) * 0.01 * 2 + math.log(0.95) * 0.0025  # t = 0 corners; p = 0 adds 0
           + (math.log(0.8) * 0.04 + math.log(0.7) * 0.09 + math.log(0.8) * 0.04
              + math.log(0.9) * 0.01) * 0.5 ** 4)
    expected = -(pos + neg)
    assert _focal_by_hand(pred, target) == pytest.approx(expected, rel=1e-6)
    assert float(losses.focal_loss(pred, target)) == pytest.approx(expected, rel=1e-5)


def test_focal_counts_positives_over_the_batch_and_no_positive_case():
    rng = np.random.default_rng(0)
    pred = rng.uniform(0.01, 0.99, size=(3, 4, 4)).astype(np.float32)
    target = rng.uniform(0, 0.9, size=(3, 4, 4)).astype(np.float32)
    target[0, 1, 1] = target[2, 3, 0] = 1.0
    assert float(losses.focal_loss(pred, target)) == pytest.approx(_focal_by_hand(pred, target),
                                                                    rel=1e-5)
    target[target == 1] = 0.5
    assert float(losses.focal_loss(pred, target)) == pytest.approx(_focal_by_hand(pred, target),
                                                                    rel=1e-5)


def test_focal_finite_for_saturated_prediction():
    pred = jnp.array([[[1.0, 0.0]]])
    target = jnp.array([[[1.0, 0.0]]])
    assert float(losses.focal_loss(pred, target)) == 0.0
    # d/dp log(p)(1-p)^2 = 0 at p = 1; p = 0 is below the 1e-12 clamp (no gradient through it).
    grad = jax.grad(losses.focal_loss)(pred, target)
    np.testing.assert_array_equal(grad, 0.0)


def test_giou_loss_hand_values():
    pred = jnp.array([[0.0, 0.0, 0.2, 0.2], [0.0, 0.0, 0.1, 0.1]])
    gt = jnp.array([[0.1, 0.1, 0.3, 0.3], [0.2, 0.0, 0.3, 0.1]])
    # Box 1: iou 1/7, giou 1/7 - 2/9. Box 2: disjoint, iou 0, giou -1/3.
    loss, iou = losses.giou_loss(pred, gt)
    np.testing.assert_allclose(iou, [1 / 7, 0.0], atol=1e-6)
    assert float(loss) == pytest.approx(((1 - (1 / 7 - 2 / 9)) + (1 + 1 / 3)) / 2, rel=1e-5)


@pytest.mark.parametrize('bad', [[0.3, 0.0, 0.2, 0.1], [0.0, 0.2, 0.1, 0.1],
                                 [np.nan, 0.0, 0.1, 0.1]])
def test_giou_loss_degenerate_batch_gives_zero(bad):
    pred = jnp.array([[0.0, 0.0, 0.2, 0.2], bad], jnp.float32)
    gt = jnp.array([[0.1, 0.1, 0.3, 0.3], [0.0, 0.0, 0.1, 0.1]])
    loss, iou = jax.jit(losses.giou_loss)(pred, gt)
    assert float(loss) == 0.0 and not np.any(iou)
    grad = jax.grad(lambda p: losses.giou_loss(p, gt)[0])(pred)
    assert np.all(grad == 0)


def test_l1_loss():
    assert float(losses.l1_loss(jnp.array([[0.0, 1.0], [2.0, 3.0]]),
                                jnp.array([[1.0, 1.0], [0.0, 3.5]]))) == pytest.approx(3.5 / 4)


def _example():
    pred_cxcywh = jnp.array([[0.5, 0.5, 0.2, 0.2], [0.45, 0.5, 0.3, 0.1]])
    gt_xywh = np.array([[0.42, 0.38, 0.2, 0.25], [0.9, -0.1, 0.3, 0.3]], np.float32)
    heat = gaussian_heatmap(gt_xywh, 16)
    score = jax.nn.sigmoid(jax.random.normal(jax.random.PRNGKey(0), (2, 16, 16)))
    return pred_cxcywh, score, jnp.asarray(gt_xywh), jnp.asarray(heat)


def test_grm_loss_composition_and_gt_clamp():
    pred, score, gt, heat = _example()
    total, metrics = losses.grm_loss(pred, score, gt, heat)
    pred_xyxy = np.array([[0.4, 0.4, 0.6, 0.6], [0.3, 0.45, 0.6, 0.55]])
    # Second GT (0.9, -0.1, 1.2, 0.2) is clamped to (0.9, 0, 1, 0.2).
    gt_xyxy = np.array([[0.42, 0.38, 0.62, 0.63], [0.9, 0.0, 1.0, 0.2]])
    l1 = np.mean(np.abs(pred_xyxy - gt_xyxy))
    # IoU of box 1: intersection (0.42..0.6) x (0.4..0.6) = 0.18 * 0.2; union 0.04 + 0.05 - inter.
    inter = 0.18 * 0.2
    iou1 = inter / (0.04 + 0.05 - inter)
    enclose1 = 0.22 * 0.25  # (0.4..0.62) x (0.38..0.63)
    giou1 = iou1 - (enclose1 - (0.09 - inter)) / enclose1
    # Box 2 is disjoint: enclosing (0.3..1.0) x (0..0.55); union 0.03 + 0.02.
    enclose2 = 0.7 * 0.55
    giou2 = -(enclose2 - 0.05) / enclose2
    giou = ((1 - giou1) + (1 - giou2)) / 2
    focal = _focal_by_hand(np.asarray(score, np.float64), np.asarray(heat, np.float64))
    assert float(metrics['l1']) == pytest.approx(l1, rel=1e-5)
    assert float(metrics['giou']) == pytest.approx(giou, rel=1e-5)
    assert float(metrics['iou']) == pytest.approx(iou1 / 2, rel=1e-5)
    assert float(metrics['focal']) == pytest.approx(focal, rel=1e-5)
    assert float(total) == pytest.approx(2 * giou + 5 * l1 + focal, rel=1e-5)
    assert float(metrics['loss']) == float(total)
    total_w, _ = losses.grm_loss(pred, score, gt, heat, giou_weight=1.0, l1_weight=0.0,
                                 focal_weight=0.0)
    assert float(total_w) == pytest.approx(giou, rel=1e-5)


def test_grm_loss_score_map_gradient_by_hand():
    """d loss / d score is the focal term's derivative, written out per cell:
    positive cells -(1/N) ((1-p)^2 / p - 2 (1-p) log p), negative cells
    -(1/N) (1-t)^4 (2 p log(1-p) - p^2 / (1-p)), N = number of positive cells. (The gradient
    w.r.t. the boxes is checked against PyTorch autograd in tests/test_loss_reference.py.)"""
    pred, score, gt, heat = _example()

    def objective(p, s):
        return losses.grm_loss(p, s, gt, heat)[0]

    grad_score = np.asarray(jax.jit(jax.grad(objective, argnums=1))(pred, score), np.float64)
    p, t = np.asarray(score, np.float64), np.asarray(heat, np.float64)
    positive = t == 1
    num_pos = positive.sum()
    assert num_pos == 1      # the second GT's centre cell (x 16.8 -> 17) is off the 16 x 16 map
    expected = np.where(positive, -((1 - p) ** 2 / p - 2 * (1 - p) * np.log(p)),
                        -(1 - t) ** 4 * (2 * p * np.log(1 - p) - p ** 2 / (1 - p))) / num_pos
    np.testing.assert_allclose(grad_score, expected, rtol=1e-5,
                               atol=1e-6 * np.abs(expected).max())
