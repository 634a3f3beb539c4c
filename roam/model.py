"""ROAM's resizable tracking model: two branches over frozen features, filters warped to the
target's aspect ratio, the Gaussian label, anchors, box encoding and the update loss.

Model config (`config.model`, configs/roam.py): feat_channels C (512), cf_channels (64),
base_filter_size (fw, fh) = (21, 21), max_filter_size K (static, odd), correlation ('fft' or
'direct'), filter_scale (1.5),
cell_size (4), base_target_size (56), map_size (71), output_sigma_factor (0.1), alpha (0.2),
anchor_pos_num (32).

Parameters theta (the official flat 206,789-vector; `roam.convert` maps it) as a pytree:

    {'cf':  {'conv':   {'kernel': [C, 64], 'bias': [64]},          # 1x1 compression
             'filter': {'kernel': [fh, fw, 64, 1], 'bias': [1]}},  # 21x21 base filter (HWIO)
     'reg': {'conv':   {'kernel': [C, 64], 'bias': [64]},
             'filter': {'kernel': [fh, fw, 64, 4], 'bias': [4]}}}

Filter warping under jit. The official code resizes the base kernel (bilinear,
align_corners=True) to the per-sample filter size (fs_w, fs_h) and correlates with zero padding
(fs_h//2, fs_w//2). Here the resize is A_h W A_w^T with (K x fh) and (K x fw) interpolation
matrices whose fs rows are embedded in the middle of K rows (zeros elsewhere), and the
correlation uses the K x K kernel with padding K//2: the same sums (the extra taps are zero),
with only K static. K = `max_filter_size` (vgg16 config: 71) covers every aspect ratio w/h in
`aspect_range(cfg)` ([1/11.4, 11.4] for 71; [1/4.59, 4.59] for 45). Outside it the filter side
is clamped to K by `compute_filter_size` (the official code has no cap): the model stays
defined, but differs from the official one for such targets.
The correlation (`model.correlation`): 'fft' (default; circular correlation of size
fft_size(M, K) = 108 for M = 71, K = 71, whose cost hardly depends on K) or 'direct' (a K x K
convolution with a hand-written VJP; K^2 / (fs_w fs_h) times the official multiply-adds).

Coordinates: maps are [N, M, M] row-major; anchor 71*i + j has centre (4*(j - 35), 4*(i - 35))
patch px relative to the patch centre; boxes are (cx, cy, w, h) in patch px, centre relative to
the patch centre.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

HIGHEST = jax.lax.Precision.HIGHEST


def _m(config):
    """The `model` section of a full config, or the section itself."""
    return config.model if 'model' in config else config


# ---------------------------------------------------------------- parameters (pytree form)

def theta_shapes(config) -> dict:
    """Shapes of the theta pytree (see the module docstring)."""
    m = _m(config)
    fw, fh = m.base_filter_size
    c, k = m.feat_channels, m.cf_channels

    def branch(out):
        return {'conv': {'kernel': (c, k), 'bias': (k,)},
                'filter': {'kernel': (fh, fw, k, out), 'bias': (out,)}}
    return {'cf': branch(1), 'reg': branch(4)}


def theta_size(config) -> int:
    """Number of entries of theta (206,789 for the official model)."""
    return int(sum(np.prod(s) for s in jax.tree_util.tree_leaves(
        theta_shapes(config), is_leaf=lambda x: isinstance(x, tuple))))


def init_theta(key, config, scale: float = 1e-5):
    """The official MetaCFNet initialisation: biases 0, 1x1 kernels N(0,1)/sqrt(C) * scale, base
    filters N(0,1)/sqrt(64 * (fh//2) * (fw//2)) * scale (official scale 1e-5)."""
    m = _m(config)
    fw, fh = m.base_filter_size
    shapes = theta_shapes(config)
    keys = jax.random.split(key, 4)
    out = {}
    for i, name in enumerate(('cf', 'reg')):
        s = shapes[name]
        out[name] = {
            'conv': {'kernel': jax.random.normal(keys[2 * i], s['conv']['kernel'])
                     / math.sqrt(m.feat_channels) * scale,
                     'bias': jnp.zeros(s['conv']['bias'], jnp.float32)},
            'filter': {'kernel': jax.random.normal(keys[2 * i + 1], s['filter']['kernel'])
                       / math.sqrt(m.cf_channels * (fh // 2) * (fw // 2)) * scale,
                       'bias': jnp.zeros(s['filter']['bias'], jnp.float32)}}
    return out


def init_rates(config, value: float = 1e-6):
    """lambda0 as the official MetaLRNet initialises it: every entry `value` (1e-6)."""
    return jax.tree_util.tree_map(lambda s: jnp.full(s, value, jnp.float32), theta_shapes(config),
                                  is_leaf=lambda x: isinstance(x, tuple))


# ---------------------------------------------------------------- filter size and warping

def compute_filter_size(target_wh, config):
    """utils.compute_filter_size: [..., 2] (w, h) -> int32 [..., 2] (fs_w, fs_h), odd.

    w, h are clamped to >= 1; the box is normalised to area base_target_size^2 with its aspect,
    fs = ceil(side / cell_size * filter_scale), forced odd; then (not official) clamped to
    max_filter_size K. Float32 arithmetic in the official order. Only the aspect matters.
    """
    m = _m(config)
    wh = jnp.maximum(jnp.asarray(target_wh, jnp.float32), 1.0)
    aspect = wh[..., 0] / wh[..., 1]
    cfactor = jnp.sqrt(jnp.float32(m.base_target_size ** 2) / aspect)
    norm = jnp.stack([aspect * cfactor, cfactor], -1)
    fs = jnp.ceil(norm / jnp.float32(m.cell_size) * jnp.float32(m.filter_scale))
    fs = fs - jnp.mod(fs, 2.0) + 1.0
    return jnp.minimum(fs, m.max_filter_size).astype(jnp.int32)


def aspect_range(config) -> tuple[float, float]:
    """(lowest, highest) aspect w/h whose filter fits in K = max_filter_size without clamping
    (the official filter-size formula, searched on a fine logarithmic grid)."""
    m = _m(config)
    aspects = np.exp(np.linspace(np.log(1 / 200), np.log(200), 200001)).astype(np.float32)
    wh = np.stack([aspects, np.ones_like(aspects)], -1)
    c = np.sqrt(np.float32(m.base_target_size ** 2) / aspects)
    fs = np.ceil(np.stack([aspects * c, c], -1) / np.float32(m.cell_size)
                 * np.float32(m.filter_scale))
    fs = fs - fs % 2 + 1
    ok = np.all(fs <= m.max_filter_size, -1)
    del wh
    return float(aspects[ok].min()), float(aspects[ok].max())


def embedded_interp_matrix(out_size, in_size: int, k: int):
    """[k, in_size] float32: rows of the align_corners=True bilinear resize in_size -> out_size
    (out_size traced, odd, <= k), centred in k rows (row r is output tap r - k//2 + out//2);
    rows outside the out_size taps are zero. Weights as PyTorch computes them: src = scale * t
    with scale = (in - 1) / (out - 1) in float32, i0 = floor(src), l1 = src - i0."""
    out_size = jnp.asarray(out_size, jnp.int32)
    t = jnp.arange(k, dtype=jnp.int32) - k // 2 + out_size // 2
    valid = (t >= 0) & (t < out_size)
    denom = jnp.maximum(out_size - 1, 1).astype(jnp.float32)
    scale = jnp.where(out_size > 1, jnp.float32(in_size - 1) / denom, 0.0)
    src = scale * t.astype(jnp.float32)
    i0 = jnp.clip(jnp.floor(src).astype(jnp.int32), 0, in_size - 1)
    l1 = src - i0.astype(jnp.float32)
    i1 = jnp.where(i0 < in_size - 1, i0 + 1, i0)
    rows = (jax.nn.one_hot(i0, in_size, dtype=jnp.float32) * (1.0 - l1)[:, None]
            + jax.nn.one_hot(i1, in_size, dtype=jnp.float32) * l1[:, None])
    return jnp.where(valid[:, None], rows, 0.0)


def warp_filter(kernel, filter_size, k: int):
    """Base kernel [fh, fw, Cin, O] -> [k, k, Cin, O]: resized to filter_size (fs_w, fs_h)
    (int32, traced) with align-corners bilinear interpolation, centred in k x k zeros."""
    fh, fw = kernel.shape[:2]
    a_h = embedded_interp_matrix(filter_size[1], fh, k)
    a_w = embedded_interp_matrix(filter_size[0], fw, k)
    return jnp.einsum('pi,ijco,qj->pqco', a_h, kernel, a_w, precision=HIGHEST)


def exact_warped_filter(kernel, filter_size, k: int) -> np.ndarray:
    """Host helper: the [fs_h, fs_w, Cin, O] resized kernel (the official F.interpolate output),
    cut from `warp_filter`'s embedding; filter_size concrete."""
    fs_w, fs_h = (int(v) for v in np.asarray(filter_size))
    full = np.asarray(warp_filter(kernel, jnp.asarray([fs_w, fs_h]), k))
    r0, c0 = k // 2 - fs_h // 2, k // 2 - fs_w // 2
    return full[r0:r0 + fs_h, c0:c0 + fs_w]


# ---------------------------------------------------------------- forward

def _conv(x, w, padding):
    return jax.lax.conv_general_dilated(x, w, (1, 1), padding,
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                        precision=HIGHEST)


@jax.custom_vjp
def same_correlation(x, w):
    """Cross-correlation (F.conv2d) of x [N, H, W, C] with an odd w [K, K, C, O], zero padding
    K//2: [N, H, W, O]. Its VJP is written as two plain NHWC/HWIO convolutions: XLA's own
    kernel-gradient convolution for this shape takes ~40 s on CPU (measured, K = 45).
    `fft_correlation` is the faster default (docs/roam.md)."""
    k = w.shape[0]
    return _conv(x, w, [(k // 2, k // 2)] * 2)


def _same_correlation_fwd(x, w):
    return same_correlation(x, w), (x, w)


def _same_correlation_bwd(res, dy):
    x, w = res
    k = w.shape[0]
    # dx: dy correlated with the flipped kernel (in/out swapped), same padding.
    dx = _conv(dy, jnp.transpose(w[::-1, ::-1], (0, 1, 3, 2)), [(k // 2, k // 2)] * 2)
    # dw[p, q, c, o] = sum_{n,y,x} xpad[n, y + p, x + q, c] dy[n, y, x, o]: channels as the
    # batch, the batch as the contracted feature, dy as a [H, W, N, O] kernel.
    xp = jnp.pad(x, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)))
    dw = _conv(jnp.transpose(xp, (3, 1, 2, 0)), jnp.transpose(dy, (1, 2, 0, 3)), 'VALID')
    return dx, jnp.transpose(dw, (1, 2, 0, 3))


same_correlation.defvjp(_same_correlation_fwd, _same_correlation_bwd)


def fft_size(map_size: int, k: int) -> int:
    """Smallest 2^a 3^b 5^c >= map_size + k//2: the circular correlation of that size has no
    wrap-around on the map_size outputs (taps reach k//2 beyond the map on each side)."""
    n = map_size + k // 2
    while True:
        r = n
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return n
        n += 1


def fft_correlation(x, w):
    """same_correlation by FFT: x [N, M, M, C], w [K, K, C, O] (K odd) -> [N, M, M, O].

    The kernel is placed at circular offsets (K//2 - p) mod n (a convolution with the flipped
    kernel), the product is summed over C in the frequency domain. Cost hardly depends on K;
    the float32 rounding differs from the direct sum at the 1e-7 relative level (parity test).
    Differentiable to any order with JAX's own FFT rules."""
    k, m = w.shape[0], x.shape[1]
    if x.shape[1] != x.shape[2]:
        raise ValueError(f'fft_correlation: square maps only, got {x.shape}')
    n = fft_size(m, k)
    u = (k // 2 - jnp.arange(k)) % n
    kf = jnp.zeros((n, n) + w.shape[2:], w.dtype).at[u[:, None], u[None, :]].set(w)
    xf = jnp.fft.rfft2(x, s=(n, n), axes=(1, 2))
    kf = jnp.fft.rfft2(kf, axes=(0, 1))
    yf = jnp.einsum('nabc,abco->nabo', xf, kf, precision=HIGHEST)
    return jnp.fft.irfft2(yf, s=(n, n), axes=(1, 2))[:, :m, :m].astype(x.dtype)


CORRELATIONS = {'fft': fft_correlation, 'direct': same_correlation}


def _branch(params, feats, filter_size, k, correlation):
    x = jnp.einsum('nhwc,co->nhwo', feats, params['conv']['kernel'], precision=HIGHEST)
    x = x + params['conv']['bias']
    w = warp_filter(params['filter']['kernel'], filter_size, k)
    return CORRELATIONS[correlation](x, w) + params['filter']['bias']


def apply_model(theta, feats, filter_size, config):
    """utils.adaptable_conv2d for one filter size shared by the batch.

    theta: pytree; feats [N, M, M, C] float32; filter_size int32 [2] (fs_w, fs_h).
    Returns G [N, M, M] (raw response, no sigmoid) and R [N, M, M, 4] (dx, dy, dw, dh)."""
    m = _m(config)
    k, corr = m.max_filter_size, m.get('correlation', 'fft')
    if corr not in CORRELATIONS:
        raise ValueError(f'roam.model: model.correlation must be one of {sorted(CORRELATIONS)}, '
                         f'got {corr!r}')
    g = _branch(theta['cf'], feats, filter_size, k, corr)[..., 0]
    r = _branch(theta['reg'], feats, filter_size, k, corr)
    return g, r


# ---------------------------------------------------------------- labels, anchors, boxes

def gaussian_label(sigma, map_size: int, center=None, alpha: float = 0.2):
    """utils.gaussian_shaped_labels: [M, M] float32, exp(-alpha (x^2/sx^2 + y^2/sy^2)) with
    (x, y) = cell - center; sigma (sx, sy) and center (cx, cy) in cells (default floor(M/2))."""
    sigma = jnp.asarray(sigma, jnp.float32)
    if center is None:
        center = jnp.full((2,), map_size // 2, jnp.float32)
    center = jnp.asarray(center, jnp.float32)
    v = jnp.arange(map_size, dtype=jnp.float32)
    xs = (v - center[0])[None, :]
    ys = (v - center[1])[:, None]
    return jnp.exp(-alpha * (xs ** 2 / sigma[0] ** 2 + ys ** 2 / sigma[1] ** 2))


def box_label(box, config):
    """The label of a training sample as Tracker.track builds it: box (cx, cy, w, h) on the
    patch -> [M, M], sigma = output_sigma_factor * ceil(w/cell, h/cell), centre
    round(cx/cell, cy/cell) + M//2 (round half to even, like np.round)."""
    m = _m(config)
    box = jnp.asarray(box, jnp.float32)
    sigma = jnp.ceil(box[2:] / m.cell_size) * m.output_sigma_factor
    center = jnp.round(box[:2] / m.cell_size) + m.map_size // 2
    return gaussian_label(sigma, m.map_size, center, m.alpha)


def anchor_sizes(filter_size, config):
    """Anchor (w, h) in patch px: filter_size / filter_scale * cell_size, rounded as float32
    does it step by step (61.333332 for 23). Looked up in a host-made table of every odd size
    <= K: XLA on CPU turns a division by a constant into a multiplication by its reciprocal,
    which rounds differently (61.333336)."""
    m = _m(config)
    sizes = np.arange(m.max_filter_size + 1, dtype=np.float32)
    table = sizes / np.float32(m.filter_scale) * np.float32(m.cell_size)
    return jnp.asarray(table)[jnp.asarray(filter_size, jnp.int32)]


def make_anchors(filter_size, config):
    """utils.generate_anchors: [M*M, 4] (cx, cy, w, h), one anchor per cell (see docstring)."""
    m = _m(config)
    n = m.map_size
    shift = (jnp.arange(n, dtype=jnp.float32) - n // 2) * m.cell_size
    cx = jnp.broadcast_to(shift[None, :], (n, n)).reshape(-1)
    cy = jnp.broadcast_to(shift[:, None], (n, n)).reshape(-1)
    wh = jnp.broadcast_to(anchor_sizes(filter_size, config), (n * n, 2))
    return jnp.concatenate([jnp.stack([cx, cy], -1), wh], -1)


def encode_boxes(anchors, boxes):
    """utils.bbox_transform: (dx, dy, log dw, log dh) of boxes w.r.t. anchors, both
    (cx, cy, w, h) [..., 4]; no mean/std normalisation."""
    dx = (boxes[..., 0] - anchors[..., 0]) / anchors[..., 2]
    dy = (boxes[..., 1] - anchors[..., 1]) / anchors[..., 3]
    dw = jnp.log(boxes[..., 2] / anchors[..., 2])
    dh = jnp.log(boxes[..., 3] / anchors[..., 3])
    return jnp.stack([dx, dy, dw, dh], -1)


def decode_boxes(anchors, deltas):
    """utils.bbox_transform_inv: deltas [..., 4] -> boxes (cx, cy, w, h)."""
    cx = deltas[..., 0] * anchors[..., 2] + anchors[..., 0]
    cy = deltas[..., 1] * anchors[..., 3] + anchors[..., 1]
    return jnp.stack([cx, cy, jnp.exp(deltas[..., 2]) * anchors[..., 2],
                      jnp.exp(deltas[..., 3]) * anchors[..., 3]], -1)


def compute_iou(rect1, rect2):
    """utils.compute_iou on (x, y, w, h) boxes [..., 4], float32, in the official operation
    order (so that equal IoUs stay equal)."""
    left = jnp.maximum(rect1[..., 0], rect2[..., 0])
    right = jnp.minimum(rect1[..., 0] + rect1[..., 2], rect2[..., 0] + rect2[..., 2])
    top = jnp.maximum(rect1[..., 1], rect2[..., 1])
    bottom = jnp.minimum(rect1[..., 1] + rect1[..., 3], rect2[..., 1] + rect2[..., 3])
    intersect = jnp.maximum(0.0, right - left) * jnp.maximum(0.0, bottom - top)
    union = rect1[..., 2] * rect1[..., 3] + rect2[..., 2] * rect2[..., 3] - intersect
    return jnp.clip(intersect / union, 0.0, 1.0)


def _corner_form(b):
    return jnp.concatenate([b[..., :2] - b[..., 2:] / 2, b[..., 2:]], -1)


def anchor_iou(anchors, boxes):
    """IoU [T, A] of every anchor [A, 4] with each frame's box [T, 4] (cx, cy, w, h)."""
    return compute_iou(_corner_form(anchors)[None], _corner_form(boxes)[:, None])


def positive_anchors(iou, num: int):
    """Flat indices (frame * A + anchor) of the `num` largest IoUs over the whole batch,
    [T, A] -> int32 [num]; among equal IoUs at the cut the lowest flat index is kept
    (jax.lax.top_k order: the reference bundle's tie rule)."""
    _, idx = jax.lax.top_k(iou.reshape(-1), num)
    return idx


# ---------------------------------------------------------------- losses

def response_loss(pred, label):
    """networks.L2normLoss: sum(exp(M) * [|G - M| >= 0.1] * (G - M)^2) / (#cells counted + 1),
    over every cell of every frame. pred, label: [T, M, M]."""
    diff = pred - label
    mask = (jnp.abs(diff) >= 0.1).astype(pred.dtype)
    return jnp.sum(jnp.exp(label) * mask * diff ** 2) / (jnp.sum(mask) + 1.0)


def smooth_l1(x):
    """PyTorch smooth-L1 with beta = 1, element-wise."""
    ax = jnp.abs(x)
    return jnp.where(ax < 1.0, 0.5 * x * x, ax - 0.5)


def box_loss(pred_deltas, boxes, anchors, num_pos_per_frame: int):
    """networks.SmoothL1Loss: mean smooth-L1 between predicted and target deltas of the top
    num_pos_per_frame * T anchors by IoU over the batch. pred_deltas [T, M, M, 4], boxes [T, 4]
    (cx, cy, w, h) patch px, anchors [A, 4]. Returns (loss, flat positive indices)."""
    t = boxes.shape[0]
    iou = jax.lax.stop_gradient(anchor_iou(anchors, boxes))
    idx = positive_anchors(iou, num_pos_per_frame * t)
    targets = encode_boxes(anchors[None], boxes[:, None]).reshape(-1, 4)
    pred = pred_deltas.reshape(-1, 4)
    return jnp.mean(smooth_l1(pred[idx] - targets[idx])), idx


def update_loss(theta, feats, labels, boxes, filter_size, config):
    """The update/meta loss ell = L_map + L_reg of one batch sharing a filter size.

    feats [T, M, M, C], labels [T, M, M], boxes [T, 4] (cx, cy, w, h patch px),
    filter_size int32 [2]. Returns (loss, aux) with aux = dict(map_loss, bbox_loss, G, R,
    pos_idx)."""
    m = _m(config)
    g, r = apply_model(theta, feats, filter_size, config)
    anchors = make_anchors(filter_size, config)
    map_loss = response_loss(g, labels)
    bbox_loss, idx = box_loss(r, jnp.asarray(boxes, jnp.float32), anchors, m.anchor_pos_num)
    return map_loss + bbox_loss, dict(map_loss=map_loss, bbox_loss=bbox_loss, G=g, R=r,
                                      pos_idx=idx)
