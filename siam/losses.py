"""SiamRPN losses (pysot `select_cross_entropy_loss`, `weight_l1_loss`), in JAX.

Network outputs keep the channel layout of siam/model.py: cls [B, S, S, 2A] (channel k * A + a),
loc [B, S, S, 4A] (channel coord * A + a). Targets use pysot's layouts (siam/targets.py):
label [B, A, S, S] int (1 / 0 / -1), delta [B, 4, A, S, S], delta_weight [B, A, S, S].
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def cls_log_probs(cls: jax.Array, anchor_num: int) -> jax.Array:
    """cls [B, S, S, 2A] -> log-softmax over (background, foreground): [B, A, S, S, 2]."""
    b, h, w, _ = cls.shape
    logits = cls.reshape(b, h, w, 2, anchor_num).transpose(0, 4, 1, 2, 3)
    return jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)


def select_cross_entropy(log_probs: jax.Array, label: jax.Array) -> jax.Array:
    """0.5 mean NLL over positives + 0.5 mean NLL over negatives, each over the whole batch.

    log_probs [..., 2]; label [...] (1 positive, 0 negative, anything else ignored). A term
    whose set is empty is 0.
    """
    def mean_nll(mask, klass):
        nll = -log_probs[..., klass]
        count = jnp.sum(mask)
        return jnp.sum(jnp.where(mask, nll, 0.0)) / jnp.maximum(count, 1)

    return 0.5 * mean_nll(label == 1, 1) + 0.5 * mean_nll(label == 0, 0)


def weighted_l1(loc: jax.Array, delta: jax.Array, delta_weight: jax.Array,
                anchor_num: int) -> jax.Array:
    """sum(|loc - delta| summed over the 4 coordinates * delta_weight) / B.

    loc [B, S, S, 4A]; delta [B, 4, A, S, S]; delta_weight [B, A, S, S].
    """
    b, h, w, _ = loc.shape
    pred = loc.reshape(b, h, w, 4, anchor_num).transpose(0, 3, 4, 1, 2).astype(jnp.float32)
    diff = jnp.sum(jnp.abs(pred - delta), axis=1)
    return jnp.sum(diff * delta_weight) / b


def siamrpn_loss(cls, loc, label, delta, delta_weight, anchor_num: int,
                 cls_weight: float = 1.0, loc_weight: float = 1.2):
    """Total = cls_weight * select CE + loc_weight * weighted L1. Returns (total, metrics)."""
    cls_loss = select_cross_entropy(cls_log_probs(cls, anchor_num), label)
    loc_loss = weighted_l1(loc, delta, delta_weight, anchor_num)
    total = cls_weight * cls_loss + loc_weight * loc_loss
    return total, dict(cls_loss=cls_loss, loc_loss=loc_loss)


# --------------------------------------------------------------------------------------------
# SiamAttn region refinement (box deltas, masks).

def smooth_l1(x, beta: float = 1.0):
    """Elementwise smooth L1 (torch, beta 1): 0.5 x^2 / beta where |x| < beta, else |x| - beta/2."""
    ax = jnp.abs(x)
    return jnp.where(ax < beta, 0.5 * x * x / beta, ax - 0.5 * beta)


def refine_box_loss(deltas, targets, weight):
    """torch smooth_l1_loss(mean) over the RoIs of the weighted images.

    deltas, targets [B, K, 4]; weight [B] (1: positive pair, 0: no box loss). Returns
    sum_b weight_b sum_{k, c} smoothL1 / (4 K sum_b weight_b) (0 when no weight)."""
    b, k, _ = deltas.shape
    per_image = jnp.sum(smooth_l1(deltas.astype(jnp.float32) - targets), axis=(1, 2))
    w = weight.astype(jnp.float32)
    return jnp.sum(w * per_image) / jnp.maximum(4.0 * k * jnp.sum(w), 1.0)


def bce_with_logits(logits, targets):
    """Elementwise binary cross-entropy of sigmoid(logits) against targets, the stable form
    max(l, 0) - l t + log(1 + exp(-|l|))."""
    logits = logits.astype(jnp.float32)
    return jnp.maximum(logits, 0) - logits * targets + jnp.log1p(jnp.exp(-jnp.abs(logits)))


def mask_loss(logits, targets, weight, ohem: float = 1.0):
    """Mask BCE over the RoIs of the images that have a mask.

    logits, targets [B, K, M, M]; weight [B] (1: positive pair with a ground-truth mask, else 0).
    Per RoI the mean of its largest ceil(ohem * M * M) pixel losses (ohem 1: every pixel; the
    official code's OHEM keeps 0.7); the loss is the weighted mean over RoIs (0 without weight).
    """
    b, k = logits.shape[:2]
    pixels = bce_with_logits(logits, targets).reshape(b, k, -1)
    keep = int(math.ceil(float(ohem) * pixels.shape[-1]))
    if not 0 < keep <= pixels.shape[-1]:
        raise ValueError(f'mask_loss: ohem fraction {ohem} must be in (0, 1]')
    if keep < pixels.shape[-1]:
        pixels = jax.lax.top_k(pixels, keep)[0]
    per_roi = jnp.mean(pixels, axis=-1)
    w = weight.astype(jnp.float32)
    return jnp.sum(w[:, None] * per_roi) / jnp.maximum(k * jnp.sum(w), 1.0)
