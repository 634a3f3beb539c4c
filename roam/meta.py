"""ROAM's unrolled meta-objective (roam.ROAM.forward in training mode) as pure functions.

One clip (configs/roam.py `train`: look_ahead tau = 5, time_step T = 6, n_init = 9) holds
n_init + clip_length - 1 = 39 samples: the nine augmented first-frame crops, then frames
1..30. Given the meta-parameters

    meta = {'theta0': theta pytree, 'lambda0': theta pytree, 'meta_opt': LSTM params}

and the clip's frozen features, the objective is (spec section 4; roam.py lines 28-131 of
tyyyang/ROAM 9adedf4, "roam.py:N" below):

  phi0 = theta0 / r                  (Random Filter Scaling; the network always sees phi * r)
  step 0:  fs = filter size of sample 0's box; ell_0 on the 9 first-frame samples;
           phi1 = phi0 - lambda0 * d ell_0 / d phi0   -- second order (create_graph=True,
           roam.py:64-65): jax.grad inside the outer grad, nothing stopped;
           look-ahead loss on sample 9 + delta_0.
  steps k = 1..T-1 (one `jax.lax.scan`):
           fs = filter size of the box of sample n_init + k tau (roam.py:97);
           ell_k on the tau samples of the previous window (roam.py:102-106);
           g = d ell_k / d phi at stop_gradient(phi_k)   -- `autograd.grad` without
               create_graph (roam.py:108): stop_gradient on phi_k (metanets.py:65
               `flat_params.detach()`) and on g and ell_k;
           rate_k, carry = LSTM(inputs(rate_{k-1}, g, phi_k, ell_k), carry) -- the inputs are
               under stop_gradient (metanets.py:66-67 `.detach()` on every column; done in
               `CoordinatewiseLSTM.inputs`), the carry h, c is NOT stopped (training mode:
               metanets.py:61-64 detach only when not self.training) -> BPTT over the 5 steps;
           phi_{k+1} = stop_gradient(phi_k) - rate_k * g   (metanets.py:70);
           look-ahead loss on sample n_init + k tau + delta_k (roam.py:112-117).
  meta loss = (sum of the T look-ahead losses) / T (roam.py:127-130).

So theta0 and lambda0 get gradient only from step 0's look-ahead loss, the LSTM only through
the rates and its carry. The VGG features are computed once per clip (`meta_train_loss`) and
feed every step; they are under stop_gradient (frozen extractor). `train.meta_gradient = 'full'`
(not official; `meta_gradient_mode`) keeps phi_k and g_k unstopped in steps 1..T-1, so the
LSTM's meta-gradient is that of the whole unroll (only its inputs stopped).

Batches of clips: the official code puts 4 clips in one GPU's forward, where they share one
inner problem (one theta updated on the joint loss, one top-k over all of them, one r);
here every clip is its own inner problem (`jax.vmap` over clips) and the meta loss is the mean
over clips. At batch 1 (meta.npz) the two are the same.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from roam import model as rm
from roam.optim import CoordinatewiseLSTM, meta_sgd_step, scale_params, unscale_params
from roam.vgg import preprocess, vgg_features

sg = jax.lax.stop_gradient


class ClipData(NamedTuple):
    """One meta-training clip on device (S samples = n_init + (T - 1) tau + ...; 39 official).

    feats [S, M, M, C] frozen features; labels [S, M, M]; boxes [S, 4] (cx, cy, w, h) patch px,
    centre relative to the patch centre; deltas int32 [T] look-ahead offsets in [0, tau);
    scales: Random Filter Scaling factors r, a pytree like theta."""
    feats: jax.Array
    labels: jax.Array
    boxes: jax.Array
    deltas: jax.Array
    scales: object


def num_init_samples(config) -> int:
    """Samples made from the first frame: len(init_aug_ratios) * len(init_aug_scales) (9)."""
    t = config.train
    return len(t.init_aug_ratios) * len(t.init_aug_scales)


def clip_samples(config) -> int:
    """Samples per clip: n_init + clip_length - 1 (9 + 30 = 39 official)."""
    return num_init_samples(config) + int(config.train.clip_length) - 1


def make_lopt(config) -> CoordinatewiseLSTM:
    m = config.model
    return CoordinatewiseLSTM(m.lstm_hidden, m.lstm_layers, m.lstm_bias_init,
                              m.grad_preprocess_p)


META_GRADIENT_MODES = ('official', 'full')


def meta_gradient_mode(config) -> str:
    """config.train.meta_gradient: where the LSTM steps' meta-gradient is cut.

    'official' (default): stop_gradient on phi_k and on the inner gradient g_k and loss
        (metanets.py:65, roam.py:108): rate_k is scored only by step k's own look-ahead loss.
    'full': nothing stopped inside the LSTM steps but the LSTM's inputs: rate_k is also scored
        by the look-ahead losses of the later steps, through phi_{k+1} and the later inner
        gradients (second order through every g_k).
    In both modes theta0 and lambda0 get gradient from step 0's look-ahead loss only, as in the
    official code (the LSTM steps start from stop_gradient(phi1)), and the forward is the same.
    """
    mode = str(config.train.get('meta_gradient', 'official'))
    if mode not in META_GRADIENT_MODES:
        raise ValueError(f'config.train.meta_gradient: {mode!r} is not one of '
                         f'{META_GRADIENT_MODES}')
    return mode


def _loss(phi, scales, feats, labels, boxes, fs, config):
    """ell(phi * r) on a batch sharing filter size fs: (loss, aux) as rm.update_loss."""
    return rm.update_loss(scale_params(phi, scales), feats, labels, boxes, fs, config)


def _take(x, start, size):
    return jax.lax.dynamic_slice_in_dim(x, start, size, axis=0)


def meta_loss(meta: dict, clip: ClipData, config, lopt: CoordinatewiseLSTM | None = None,
              opt=None):
    """The unrolled meta-objective of one clip.

    meta: {'theta0', 'lambda0', 'meta_opt'}; clip: ClipData. opt: an optax
    GradientTransformationExtraArgs for steps 1..T-1 in place of the learned optimizer (e.g.
    `optax.with_extra_args_support(optax.adam(1e-3))`; called as update(g, state, phi,
    value=loss) with the same stop_gradients); default lopt.opt_fn(meta['meta_opt'],
    initial_rate=lambda0). Returns (meta_loss [], aux) with
    aux: losses [T, 4] (update map, update bbox, look-ahead map, look-ahead bbox), map_loss /
    bbox_loss (look-ahead averages), filter_sizes int32 [T, 2], inner_grads (pytree, leaves
    [T, ...]: the inner gradients w.r.t. phi), rates (pytree, leaves [T - 1, ...]: the LSTM's
    rates of steps 1..T-1), pos_update (step 0 [n_init * P], steps 1.. [T-1, tau * P]),
    pos_look (int32 [T, P]) the positive anchors of every loss evaluation.
    """
    lopt = lopt or make_lopt(config)
    tau, steps = int(config.train.look_ahead), int(config.train.time_step)
    n_init = num_init_samples(config)
    r = clip.scales
    feats, labels, boxes = sg(clip.feats), clip.labels, clip.boxes

    # ---- step 0: Meta-SGD step with lambda0, second order (roam.py:55-65)
    phi0 = unscale_params(meta['theta0'], r)
    fs0 = rm.compute_filter_size(boxes[0, 2:], config)
    (l0, a0), g0 = jax.value_and_grad(_loss, has_aux=True)(
        phi0, r, feats[:n_init], labels[:n_init], boxes[:n_init], fs0, config)
    phi1 = meta_sgd_step(phi0, g0, meta['lambda0'])
    lh = n_init + clip.deltas[0]
    lh0, b0 = _loss(phi1, r, _take(feats, lh, 1), _take(labels, lh, 1), _take(boxes, lh, 1),
                    fs0, config)

    # ---- steps 1..T-1: LSTM steps, one scan (roam.py:95-125)
    if opt is None:
        opt = lopt.opt_fn(meta['meta_opt'], initial_rate=meta['lambda0'])
    dtype = jax.tree_util.tree_leaves(phi1)[0].dtype
    # The optimizer state in phi's dtype (a no-op in float32; float64 runs keep one dtype in
    # the scan carry).
    state0 = jax.tree_util.tree_map(
        lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x,
        opt.init(phi1))

    mode = meta_gradient_mode(config)

    def body(carry, k):
        phi, state = carry
        if mode == 'official':
            phi = sg(phi)                               # metanets.py:65 flat_params.detach()
        first = n_init + k * tau                        # first frame after the window
        fs = rm.compute_filter_size(_take(boxes, first, 1)[0, 2:], config)
        win = first - tau
        (l, a), g = jax.value_and_grad(_loss, has_aux=True)(
            phi, r, _take(feats, win, tau), _take(labels, win, tau), _take(boxes, win, tau),
            fs, config)
        if mode == 'official':
            g, l = sg(g), sg(l)                         # roam.py:108, no create_graph
        updates, state = opt.update(g, state, phi, value=l)   # inputs stopped in lopt.inputs
        new_phi = jax.tree_util.tree_map(jnp.add, phi, updates)   # detach(phi) - rate * g
        j = first + clip.deltas[k]
        lhl, b = _loss(new_phi, r, _take(feats, j, 1), _take(labels, j, 1), _take(boxes, j, 1),
                       fs, config)
        out = dict(losses=jnp.stack([a['map_loss'], a['bbox_loss'], b['map_loss'],
                                     b['bbox_loss']]),
                   look=lhl, fs=fs, grad=g, rate=getattr(state, 'rate', None),
                   pos_update=a['pos_idx'],
                   pos_look=b['pos_idx'])
        return (new_phi, state), out

    # theta0 and lambda0 get gradient from step 0's look-ahead loss only, in every mode: the
    # LSTM steps start from stop_gradient(phi1) (in 'official' mode the body stops it anyway).
    _, outs = jax.lax.scan(body, (sg(phi1), state0), jnp.arange(1, steps))

    first = jnp.stack([a0['map_loss'], a0['bbox_loss'], b0['map_loss'], b0['bbox_loss']])
    losses = jnp.concatenate([first[None], outs['losses']], 0)
    total = (lh0 + jnp.sum(outs['look'])) / steps
    aux = dict(
        losses=losses, meta_loss=total,
        map_loss=jnp.mean(losses[:, 2]), bbox_loss=jnp.mean(losses[:, 3]),
        update_loss=jnp.mean(losses[:, 0] + losses[:, 1]),
        filter_sizes=jnp.concatenate([fs0[None], outs['fs']], 0),
        inner_grads=jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b], 0),
                                           g0, outs['grad']),
        rates=outs['rate'],
        pos_update0=a0['pos_idx'], pos_update=outs['pos_update'],
        pos_look=jnp.concatenate([b0['pos_idx'][None], outs['pos_look']], 0))
    return total, aux


def meta_loss_from_crops(meta: dict, vgg_params, crops, labels, boxes, deltas, scales, config,
                         lopt=None):
    """meta_loss of one clip from its uint8 crops [S, H, W, 3] RGB: the frozen VGG runs once on
    the S crops (one batched call) and its features feed every step."""
    feats = vgg_features(vgg_params, preprocess(crops, config.model.rgb_mean),
                         tuple(config.model.vgg_channels))
    return meta_loss(meta, ClipData(feats, labels, boxes, deltas, scales), config, lopt)


def filter_scale_radius(config) -> dict:
    """Random Filter Scaling radii per branch: {'cf': 1.6, 'reg': 1.3} (configs/roam.py)."""
    return {'cf': float(config.train.rand_scale_radius_cf),
            'reg': float(config.train.rand_scale_radius_reg)}


def batch_meta_loss(meta: dict, vgg_params, batch: dict, config, lopt=None):
    """Mean meta loss over a batch of clips (each its own inner problem; see module doc).

    batch: crops uint8 [B, S, H, W, 3], labels [B, S, M, M], boxes [B, S, 4], deltas int32
    [B, T], scale_key uint32 [B, 2] (the clip's Random Filter Scaling key, `clips.py`).
    Returns (loss, aux) with aux's arrays stacked over clips."""
    from roam.optim import random_filter_scales

    radius = filter_scale_radius(config)

    def one(crops, labels, boxes, deltas, key):
        scales = random_filter_scales(key, meta['theta0'], radius)
        return meta_loss_from_crops(meta, vgg_params, crops, labels, boxes, deltas, scales,
                                    config, lopt)

    losses, aux = jax.vmap(one)(batch['crops'], batch['labels'], batch['boxes'],
                                batch['deltas'], batch['scale_key'])
    return jnp.mean(losses), aux
