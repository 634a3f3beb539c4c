"""ROAM's online tracker (tyyyang/ROAM `tracker.Tracker` + `roam.OnlineROAM`) as two pure,
jittable functions: `tracker_fns(config)` -> tracking.api.TrackerFns(init, step).

    fns = tracker_fns(config)                           # config: configs/roam.py
    state = fns.init(variables, frame, frame_hw, box_xywh)
    state, out = fns.step(variables, state, frame, frame_hw)   # out: box [4] f32, score [] f32

variables: {'vgg': VGG pytree, 'theta0', 'lambda0': theta pytrees, 'meta_opt': LSTM params}
(`roam.convert.from_official`), or a meta-training checkpoint's {'params': {...}, 'vgg'}
(`tracker_variables`). frame: [Hp, Wp, 3] uint8 RGB padded bottom/right; frame_hw:
[2] int32 real (height, width). Static shapes everywhere; the filter size is data (int32 [2])
inside the static K x K embedding of `roam.model`.

init (Tracker.initialize): the nine first-frame samples (aspect r in (1, 0.8, 1.2) x scale s in
(1, 0.8, 1.2): the frame resized to (int(W r), int(H / r)) with cv2's uint8 INTER_LINEAR, the box
scaled by (r, 1/r), window int(5/s sqrt(w h)) made odd, the search crop; labels centred, sigma
0.1 ceil(box * 281/window / 4) of the *unresized* box, boxes (0, 0, that size): the official
quirk), frozen VGG features, the filter size of sample 0's box cells, one step
theta1 = theta0 - lambda0 * grad (`roam.optim.meta_sgd_step`; test.n_init_updates > 1 repeats
it on the same samples, a departure: the official loop hard-codes one), ref_score = max
response of theta1 on the nine samples, the motion windows (sigma 0.5 and 1.0 x target cells of the initial box;
fixed for the whole video), the LSTM optimizer state (h = c = 0, previous rate lambda0).

step (Tracker.track): the single-scale crop around the current centre (window
int(5 sqrt(w h)) made odd -> 281), features, response G and deltas R (NaN deltas -> 0) with the
current theta and filter size, boxes decoded from the anchors; the scale/aspect penalty
exp(-(change(scale) change(aspect) - 1) 0.05), the motion window, drift handling (the loose window
when the best score < 0.1 ref_score or the loose flag is on; the flag stays on until the best
score > 0.6 ref_score), the best cell (first maximum), centre += delta / scale, size smoothing
with rate penalty * (G penalty) * 0.6, clamp to the frame (centre in [0, W] x [0, H], size in
[10, W] x [10, H]); the frame's sample (features, the Gaussian label at the estimated position,
the box on the patch) enters the memory when the best score > 0.1 ref_score; every
`update_interval` (5) frames, under `lax.cond`, the filter size is adapted to the current target
size and two LSTM steps run on the mini-batches db[i mod n], i = 0..4 and 5..9 (n samples stored,
oldest first; the official code's order, its permutation commented out).

State (a dict pytree; [D] = test.max_db_size (10), M = map size, C = feature channels):
  center, size [2] (cx, cy), (w, h) px in the state dtype (float64 by default, see below);
  theta: the current tracking model (pytree of roam.model); opt: the LSTM's optax state
      (per-coordinate carries h, c [2, n, 20] and the previous rates: ~66 MB for vgg16);
  filter_size int32 [2] (fs_w, fs_h); ref_score f32 []; loose bool []; frame int32 [] (frames
      tracked so far); motion, motion_loose f32 [M, M];
  db: the sample memory as a ring buffer: feats [D, M, M, C] f32, labels [D, M, M] f32,
      boxes [D, 4] f32 (cx, cy, w, h patch px), count int32 [] (samples saved so far; slot
      count % D is written next, the n = min(count, D) newest are live, oldest at
      (count - n) % D).

Float64 state. The official tracker keeps its box state in NumPy float64 (NumPy 2 promotion:
float32 network outputs meet float64 scalars in float64), and the crop window int(5 sqrt(w h))
and the crop origin floor(c - window/2 + 0.5) turn tiny state differences into whole-pixel
crop changes. With `float64_state=True` (default) that arithmetic runs in float64 inside a
`jax.enable_x64` scope (`siam.functional.state_scope`), in the official order, with float32
exactly where NumPy has float32 (box decoding, w h of the predicted boxes, the label sigmas,
0.1 ref_score); the network, features and LSTM stay float32. `float64_state=False` runs the same
arithmetic in float32 (devices without float64).

Departures (documented, not official): the filter side is clamped to model.max_filter_size
(`roam.model.compute_filter_size`); an update with an empty memory (every sample so far below
0.1 ref_score; the official code raises there) only adapts the filter size. Limits, not checked
under jit (`roam.tracker.ROAMTracker` checks them): box finite with w, h > 0; frames at most
1705 px wide (the 1.2 x aspect resize must stay under 2048 px: `tracking.device_crops.div_rn32`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from roam import model as rm
from roam.crop import RGB_MEAN, _bilinear, _linear_taps
from roam.optim import CoordinatewiseLSTM, meta_sgd_step
from roam.vgg import VGG16Features, feature_size
from siam.functional import first_argmax, state_scope
from tracking import precision as tp
from tracking.api import TrackerFns
from tracking.device_crops import coefficients

# ------------------------------------------------------------------ device crops


def _cv_taps(d, in_size, out_size, clamp: bool):
    """OpenCV uint8 INTER_LINEAR taps of output indices d (int32 [n]) for a resize
    in_size -> out_size (both traced int32): (i0, i1, c0, c1), 11-bit integer coefficients
    (`tracking.device_crops.resize_taps` for traced output indices and size)."""
    i0, i1, _, f = _linear_taps(d, in_size, out_size, clamp)
    return (i0, i1) + coefficients(f)


def resized_pixels(frame, frame_hw, out_hw, rows, cols):
    """Pixels (rows [n], cols [m] int32, inside [0, out) ) of cv2.resize(frame[:H, :W],
    (out_w, out_h)) (uint8, INTER_LINEAR, byte-identical; out_hw traced int32 (h, w)) without
    building the resized image: [n, m, 3] float32 in 0..255."""
    in_h, in_w = frame_hw[0], frame_hw[1]
    r0, r1, b0, b1 = _cv_taps(rows, in_h, out_hw[0], clamp=False)
    q0, q1, a0, a1 = _cv_taps(cols, in_w, out_hw[1], clamp=True)

    def px(r, c):
        return frame[r[:, None], c[None, :]].astype(jnp.int32)

    p00, p01, p10, p11 = px(r0, q0), px(r0, q1), px(r1, q0), px(r1, q1)
    a0, a1 = a0[None, :, None], a1[None, :, None]
    b0, b1 = b0[:, None, None], b1[:, None, None]
    h0 = a0 * p00 + a1 * p01
    h1 = a0 * p10 + a1 * p11
    v = (((b0 * (h0 >> 4)) >> 16) + ((b1 * (h1 >> 4)) >> 16) + 2) >> 2
    area = (p00 + p01 + p10 + p11 + 2) >> 2          # exactly 2x down: INTER_AREA's fast path
    is_area = (in_h == 2 * out_hw[0]) & (in_w == 2 * out_hw[1])
    same = (in_h == out_hw[0]) & (in_w == out_hw[1])  # a plain copy
    out = jnp.where(same, p00, jnp.clip(jnp.where(is_area, area, v), 0, 255))
    return out.astype(jnp.float32)


def search_patch(fetch, img_hw, center, window, out_size: int, pad_value=RGB_MEAN):
    """utils.get_search_patch on a virtual source image.

    fetch(rows [n], cols [m] int32 within the image) -> [n, m, 3] float32 pixels; img_hw int32
    [2] its (H, W); center [2] (cx, cy) in the state dtype; window int32 [] (odd). Inside the
    state scope: the float32 centre (crop_image's cast) and, for a window larger than the image
    (whole image resized by out / window first), the scaled centre center * scale and the resized
    size round(W scale), round(H scale) in the state dtype, as NumPy computes them. Returns
    float32 [out_size, out_size, 3] in 0..255 (mean-colour padding).
    """
    dtype = center.dtype
    img_h, img_w = img_hw[0], img_hw[1]
    pad = jnp.asarray(pad_value, jnp.float32)
    d = jnp.arange(out_size, dtype=jnp.int32)

    def image(r, c):
        inside = ((r >= 0) & (r < img_h))[:, None] & ((c >= 0) & (c < img_w))[None, :]
        px = fetch(jnp.clip(r, 0, img_h - 1), jnp.clip(c, 0, img_w - 1))
        return jnp.where(inside[..., None], px, pad)

    def corner(c32, size):
        return jnp.floor(c32 - jnp.float32(size) / 2 + jnp.float32(0.5)).astype(jnp.int32)

    win32 = window.astype(jnp.float32)
    c32 = center.astype(jnp.float32)
    min_xy = jnp.floor(c32 - win32 / 2 + jnp.float32(0.5)).astype(jnp.int32)
    rows = _linear_taps(d, window, out_size, clamp=False)
    cols = _linear_taps(d, window, out_size, clamp=True)
    direct = _bilinear(lambda r, c: image(r + min_xy[1], c + min_xy[0]), rows, cols)

    scale = jnp.asarray(out_size, dtype) / window.astype(dtype)
    rw = jnp.round(img_w.astype(dtype) * scale).astype(jnp.int32)
    rh = jnp.round(img_h.astype(dtype) * scale).astype(jnp.int32)
    min_s = corner((center * scale).astype(jnp.float32), out_size)
    ry, rx = d + min_s[1], d + min_s[0]
    small = _bilinear(image, _linear_taps(ry, img_h, rh, clamp=False),
                      _linear_taps(rx, img_w, rw, clamp=True))
    inside = ((ry >= 0) & (ry < rh))[:, None] & ((rx >= 0) & (rx < rw))[None, :]
    small = jnp.where(inside[..., None], small, pad)
    return jnp.where(window > jnp.maximum(jnp.maximum(img_h, img_w), 3), small, direct)


def search_window(size, scale: float):
    """utils.get_search_size: int(sqrt(w h) scale) made odd; size [2] in the state dtype ->
    int32 []. (A NaN size gives int(base_target_size scale) in the official code; not here.)"""
    window = jnp.floor(jnp.sqrt(size[0] * size[1]) * scale).astype(jnp.int32)
    return window - window % 2 + 1


def gaussian_map(sigma, map_size: int, center, alpha: float, dtype):
    """utils.gaussian_shaped_labels in `dtype` (NumPy: float64 grid; a float32 sigma is squared
    in float32 first, as np.float32 ** 2), cast to float32: [M, M]."""
    v = jnp.arange(map_size, dtype=dtype)
    xs = (v - center[0].astype(dtype))[None, :]
    ys = (v - center[1].astype(dtype))[:, None]
    s2 = (sigma * sigma).astype(dtype)
    return jnp.exp(-alpha * (xs ** 2 / s2[0] + ys ** 2 / s2[1])).astype(jnp.float32)


def first_frame_samples(config, frame, frame_hw, box):
    """Tracker.initialize's nine training samples (call inside the state scope; box [4]
    (x, y, w, h) in the state dtype). For aspect r (outer) and scale s (inner) of
    config.train.init_aug_ratios / init_aug_scales: the frame resized to (int(W r), int(H / r))
    (cv2 uint8 INTER_LINEAR, `resized_pixels`), the box scaled by (r, 1/r, r, 1/r), the search
    crop of window int(search_scale / s sqrt(w h)) made odd around its x + floor(w/2),
    y + floor(h/2); the label (centred, sigma output_sigma_factor ceil(w', h' / cell)) and box
    (0, 0, w', h') of the *unresized* box scaled by crop_size / window (the official quirk).
    Returns patches [9, S, S, 3] float32 0..255, labels [9, M, M] float32, boxes [9, 4] float32.
    """
    m = config.model
    dtype = box.dtype
    crop, msize, cell = int(m.crop_size), int(m.map_size), float(m.cell_size)
    aug = [(float(r), float(s)) for r in config.train.init_aug_ratios
           for s in config.train.init_aug_scales]
    ratio = jnp.asarray([r for r, _ in aug], dtype)
    box_mult = jnp.asarray([[r, 1 / r, r, 1 / r] for r, _ in aug], dtype)
    search = jnp.asarray([float(m.search_scale) / s for _, s in aug], dtype)
    centre = jnp.full((2,), float(msize // 2), dtype)

    def sample(ratio, box_mult, search):
        out_hw = jnp.stack([jnp.floor(frame_hw[0].astype(dtype) / ratio),
                            jnp.floor(frame_hw[1].astype(dtype) * ratio)]).astype(jnp.int32)
        box_r = box * box_mult
        window = search_window(box_r[2:], search)
        center = box_r[:2] + jnp.floor(box_r[2:] / 2)
        patch = search_patch(lambda r, c: resized_pixels(frame, frame_hw, out_hw, r, c),
                             out_hw, center, window, crop)
        scaled = box * (jnp.asarray(crop, dtype) / window.astype(dtype))
        cells = jnp.ceil(scaled[2:] / cell)
        label = gaussian_map(cells * m.output_sigma_factor, msize, centre, float(m.alpha), dtype)
        return patch, label, jnp.concatenate([jnp.zeros((2,), jnp.float32),
                                              scaled[2:].astype(jnp.float32)])

    return jax.vmap(sample)(ratio, box_mult, search)


def memory_order(count, db_size: int, total: int):
    """Ring-buffer slots of OnlineROAM.meta_update's samples: with n = min(count, db_size) live
    samples (the newest; `count` saved so far, slot count % db_size written next), logical
    index i mod n (0 = the oldest live one) for i = 0..total-1, as int32 [total] slots.
    count == 0 gives slot 0 everywhere (the caller skips that update)."""
    count = jnp.asarray(count, jnp.int32)
    n = jnp.minimum(count, db_size)
    oldest = (count - n) % db_size
    return (oldest + jnp.arange(total, dtype=jnp.int32) % jnp.maximum(n, 1)) % db_size


def tracker_variables(variables) -> dict:
    """{'vgg', 'theta0', 'lambda0', 'meta_opt'} from either layout: `roam.convert.from_official`'s
    (returned as is) or a meta-training checkpoint's {'params': {'theta0', 'lambda0',
    'meta_opt'}, 'vgg': ..., ...} (roam.task). KeyError naming what is missing otherwise."""
    if 'params' in variables:
        if 'vgg' not in variables:
            raise KeyError(f"roam: variables with 'params' need the frozen 'vgg' beside them "
                           f"(have {sorted(variables)})")
        variables = dict(variables['params'], vgg=variables['vgg'])
    missing = [k for k in ('vgg', 'theta0', 'lambda0', 'meta_opt') if k not in variables]
    if missing:
        raise KeyError(f'roam: variables lack {missing} (have {sorted(variables)}); expected '
                       f"roam.convert.from_official's layout or a roam.task checkpoint")
    return variables


# ------------------------------------------------------------------ the tracker


def _features(config):
    """vgg(params, x [N, S, S, 3] float32 0..255) -> [N, M, M, C] float32, frozen, at
    config.test.precision (`tracking.precision`)."""
    m = config.model
    mode = tp.precision_of(config)
    module = VGG16Features(tuple(m.vgg_channels),
                           precision=tp.per_op_precision(mode, m.get('precision', 'highest')))
    call = tp.network_call(lambda p, x: module.apply({'params': p}, x), mode)
    mean = jnp.asarray(m.rgb_mean, jnp.float32)

    def features(params, patches):
        return jax.lax.stop_gradient(call(params, patches - mean))
    return features


def _check_config(config):
    m, t = config.model, config.test
    if feature_size(m.crop_size) != m.map_size:
        raise ValueError(f'roam.tracker_fns: configs/roam.py model.map_size {m.map_size} but a '
                         f'{m.crop_size}-px crop gives {feature_size(m.crop_size)}-cell features')
    if m.crop_size != 2 * (m.base_target_size * m.search_scale // 2) + 1:
        raise ValueError(f'roam.tracker_fns: model.crop_size {m.crop_size} is not '
                         f'base_target_size * search_scale made odd')
    if t.n_update_batch * t.n_online_updates > 0 and t.max_db_size < 1:
        raise ValueError('roam.tracker_fns: test.max_db_size must be >= 1')
    if int(t.get('n_init_updates', 1)) < 1:
        raise ValueError(f'roam.tracker_fns: test.n_init_updates must be >= 1, got '
                         f'{t.n_init_updates}')


def tracker_fns(config, float64_state: bool = True) -> TrackerFns:
    """ROAM's `TrackerFns` for the full config (configs/roam.py: model and test sections).

    init(variables, frame, frame_hw, box_xywh) -> state; step(variables, state, frame,
    frame_hw) -> (state, {'box': [4] float32 (x, y, w, h) px, 'score': [] float32 (the chosen
    value of the penalised, windowed score map), 'saved': [] bool (the sample entered the
    memory), 'updated': [] bool (the model was updated after this frame)}). See the module
    docstring for the state and the float64 scope.
    """
    _check_config(config)
    m, t = config.model, config.test
    crop, msize = int(m.crop_size), int(m.map_size)
    cell, alpha = float(m.cell_size), float(m.alpha)
    scale0 = float(m.search_scale)
    db_size, batch, n_updates = int(t.max_db_size), int(t.n_update_batch), int(t.n_online_updates)
    interval = int(t.update_interval)
    n_init = int(t.get('n_init_updates', 1))
    dtype = jnp.float64 if float64_state else jnp.float32
    lopt = CoordinatewiseLSTM(m.lstm_hidden, m.lstm_layers, p=m.grad_preprocess_p)
    features = _features(config)
    half_cells = float(msize // 2)

    def optimizer(variables):
        return lopt.opt_fn(variables['meta_opt'], stop_carry_gradient=True)

    def optimizer_state(variables, theta):
        # h = c = 0 and previous rate lambda0 (OnlineROAM.initialize), lambda0 as a pytree.
        state = optimizer(variables).init(theta)
        return state._replace(rate=jax.tree_util.tree_map(
            lambda r, p: jnp.broadcast_to(jnp.asarray(r, jnp.float32), p.shape),
            variables['lambda0'], theta))

    def loss_fn(theta, feats, labels, boxes, fs):
        return rm.update_loss(theta, feats, labels, boxes, fs, config)[0]

    # -------------------------------------------------------------- init
    def init(variables, frame, frame_hw, box_xywh):
        variables = tracker_variables(variables)
        frame = jnp.asarray(frame)
        frame_hw = jnp.asarray(frame_hw, jnp.int32)
        with state_scope(float64_state):
            box = jnp.asarray(box_xywh).astype(dtype)
            patches, labels, boxes = first_frame_samples(config, frame, frame_hw, box)
            # motion windows of the initial box (fixed for the video)
            window0 = search_window(box[2:], scale0)
            cells0 = jnp.ceil(box[2:] * (jnp.asarray(crop, dtype) / window0.astype(dtype))
                              / cell)
            centre_map = jnp.full((2,), half_cells, dtype)
            motion = gaussian_map(cells0 * t.motion_sigma_factor, msize, centre_map, alpha,
                                  dtype)
            motion_loose = gaussian_map(cells0 * t.motion_sigma_factor * 2, msize, centre_map,
                                        alpha, dtype)
            center = box[:2] + jnp.floor(box[2:] / 2)
            size = box[2:]
        feats = features(variables['vgg'], patches)
        fs = rm.compute_filter_size(jnp.ceil(boxes[0, 2:] / jnp.float32(cell)), config)
        def init_step(theta, _):
            grads = jax.grad(loss_fn)(theta, feats, labels, boxes, fs)
            return meta_sgd_step(theta, grads, variables['lambda0']), None

        theta, _ = init_step(variables['theta0'], None)
        if n_init > 1:  # more lambda0 steps on the nine samples (official: 1)
            theta, _ = jax.lax.scan(init_step, theta, None, length=n_init - 1)
        g, _ = rm.apply_model(theta, feats, fs, config)
        n_feat = feats.shape[-1]
        db = dict(feats=jnp.zeros((db_size, msize, msize, n_feat), jnp.float32),
                  labels=jnp.zeros((db_size, msize, msize), jnp.float32),
                  boxes=jnp.zeros((db_size, 4), jnp.float32),
                  count=jnp.zeros((), jnp.int32))
        return dict(center=center, size=size, theta=theta, opt=optimizer_state(variables, theta),
                    filter_size=fs, ref_score=jnp.max(g), loose=jnp.ones((), bool),
                    frame=jnp.zeros((), jnp.int32), motion=motion, motion_loose=motion_loose,
                    db=db)

    # -------------------------------------------------------------- step pieces
    def locate(state, g, r, frame_hw, scale):
        """Penalties, motion window, drift handling, position and size (inside the scope).
        Returns (center, size, pred_box f32 [4], score, loose, save)."""
        center, size = state['center'], state['size']
        anchors = rm.make_anchors(state['filter_size'], config)
        pred = rm.decode_boxes(anchors, jnp.where(jnp.isnan(r), jnp.float32(0), r))  # f32
        tsz = size * scale

        def change(x):
            return jnp.maximum(x, 1.0 / x)

        sc = change(jnp.sqrt(pred[:, 2] * pred[:, 3]).astype(dtype) / jnp.sqrt(tsz[0] * tsz[1]))
        rc = change((pred[:, 2] / pred[:, 3]).astype(dtype) / (size[0] / size[1]))
        penalty = jnp.exp(-(sc * rc - 1.0) * t.score_penalty_factor)
        resp = g.reshape(-1).astype(dtype) * penalty
        ref = state['ref_score']
        miss = (jnp.float32(t.miss_thres) * ref).astype(dtype)
        pp = resp * state['motion'].reshape(-1).astype(dtype)
        best = jnp.max(pp)
        loose = state['loose']
        if t.handle_drift:
            use_loose = (best < miss) | loose
            pp_loose = resp * state['motion_loose'].reshape(-1).astype(dtype)
            best_loose = jnp.max(pp_loose)
            reliable = (jnp.float32(t.reliable_thres) * ref).astype(dtype)
            loose = jnp.where(use_loose, ~(best_loose > reliable), loose)
            pp = jnp.where(use_loose, pp_loose, pp)
            best = jnp.where(use_loose, best_loose, best)
            save = best > miss
        else:
            save = jnp.ones((), bool)
        idx = first_argmax(pp)
        pb = pred[idx]
        center = center + pb[:2].astype(dtype) / scale
        decay = penalty[idx] * resp[idx] * t.size_decay
        size = (1 - decay) * size + decay * pb[2:].astype(dtype) / scale
        img_wh = jnp.stack([frame_hw[1], frame_hw[0]]).astype(dtype)
        center = jnp.minimum(jnp.maximum(center, 0), img_wh)
        size = jnp.maximum(jnp.minimum(size, img_wh), t.min_size)
        return center, size, pb, best, loose, save

    def sample(pb, size, scale):
        """The frame's training sample: box on the patch (the predicted offset, the new size
        * scale, float32) and its label (inside the scope)."""
        box = jnp.concatenate([pb[:2], (size * scale).astype(jnp.float32)])
        sigma = jnp.ceil(box[2:] / jnp.float32(cell)) * jnp.float32(m.output_sigma_factor)
        mc = jnp.round(box[:2] / jnp.float32(cell)).astype(dtype) + half_cells
        return box, gaussian_map(sigma, msize, mc, alpha, dtype)

    def save_sample(db, feat, label, box, save):
        slot = db['count'] % db_size

        def put(buf, x):
            return jnp.where(save, buf.at[slot].set(x), buf)
        return dict(feats=put(db['feats'], feat), labels=put(db['labels'], label),
                    boxes=put(db['boxes'], box), count=db['count'] + save.astype(jnp.int32))

    def update(variables, theta, opt_state, db, fs):
        """Two LSTM steps on the memory (db[i mod n], i = 0..9, oldest first)."""
        tx = optimizer(variables)
        order = memory_order(db['count'], db_size, batch * n_updates)

        def lstm_step(carry, idx):
            theta, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(theta, db['feats'][idx], db['labels'][idx],
                                                      db['boxes'][idx], fs)
            updates, opt_state = tx.update(grads, opt_state, theta, value=loss)
            return (jax.tree_util.tree_map(lambda p, u: p + u, theta, updates), opt_state), loss

        (theta, opt_state), _ = jax.lax.scan(lstm_step, (theta, opt_state),
                                             order.reshape(n_updates, batch))
        return theta, opt_state

    # -------------------------------------------------------------- step
    def step(variables, state, frame, frame_hw):
        variables = tracker_variables(variables)
        frame = jnp.asarray(frame)
        frame_hw = jnp.asarray(frame_hw, jnp.int32)
        with state_scope(float64_state):
            center = jnp.asarray(state['center']).astype(dtype)
            size = jnp.asarray(state['size']).astype(dtype)
            state = dict(state, center=center, size=size)
            window = search_window(size, scale0)
            scale = jnp.asarray(crop, dtype) / window.astype(dtype)

            def fetch(r, c):
                return frame[r[:, None], c[None, :]].astype(jnp.float32)
            patch = search_patch(fetch, frame_hw, center, window, crop)
        feat = features(variables['vgg'], patch[None])
        g, r = rm.apply_model(state['theta'], feat, state['filter_size'], config)
        with state_scope(float64_state):
            center, size, pb, best, loose, save = locate(state, g[0], r[0].reshape(-1, 4),
                                                         frame_hw, scale)
            box_s, label = sample(pb, size, scale)
            out_box = jnp.concatenate([center - size / 2, size]).astype(jnp.float32)
            size32 = size.astype(jnp.float32)
        db = save_sample(state['db'], feat[0], label, box_s, save)
        frame_idx = state['frame'] + 1
        do_update = frame_idx % interval == 0

        def updated(operands):
            theta, opt_state, db, fs = operands
            fs = rm.compute_filter_size(size32, config)
            theta, opt_state = jax.lax.cond(
                db['count'] > 0, lambda a: update(variables, *a),
                lambda a: (a[0], a[1]), (theta, opt_state, db, fs))
            return theta, opt_state, fs

        def kept(operands):
            theta, opt_state, _, fs = operands
            return theta, opt_state, fs

        theta, opt_state, fs = jax.lax.cond(do_update, updated, kept,
                                            (state['theta'], state['opt'], db,
                                             state['filter_size']))
        new_state = dict(state, center=center, size=size, theta=theta, opt=opt_state,
                         filter_size=fs, loose=loose, frame=frame_idx, db=db)
        return new_state, dict(box=out_box, score=best.astype(jnp.float32), saved=save,
                               updated=do_update)

    return TrackerFns(init, step)


def init_variables(config, rng, theta_scale: float | None = None) -> dict:
    """Untrained variables for `tracker_fns` (the layout of `roam.convert.from_official`).

    theta_scale None: the meta-training task's initialisation (`roam.task.ROAMTask`: its
    frozen VGG, e.g. the random one with train.random_vgg_gain for tiny, theta0 at
    model.theta_init_scale, lambda0, the LSTM), so the untrained baseline is the model training
    starts from. A float: a self-contained random model for tests and benchmarks (numpy He VGG
    of model.vgg_channels without gain, seed from rng; theta0 at that scale; lambda0 =
    model.meta_lr_init; the LSTM's PyTorch-style init)."""
    m = config.model
    if theta_scale is None:
        from roam.task import ROAMTask
        return tracker_variables(ROAMTask(config).init_variables(rng))
    from roam.vgg import init_params
    k_vgg, k_theta, k_opt = jax.random.split(rng, 3)
    seed = int(jax.random.randint(k_vgg, (), 0, 2 ** 31 - 1))
    lopt = CoordinatewiseLSTM(m.lstm_hidden, m.lstm_layers, bias_init=m.lstm_bias_init,
                              p=m.grad_preprocess_p)
    return {'vgg': jax.tree_util.tree_map(jnp.asarray, init_params(seed, tuple(m.vgg_channels))),
            'theta0': rm.init_theta(k_theta, config, theta_scale),
            'lambda0': rm.init_rates(config, m.meta_lr_init),
            'meta_opt': lopt.init(k_opt)}


__all__ = ['tracker_fns', 'init_variables', 'tracker_variables', 'memory_order',
           'first_frame_samples', 'search_patch', 'resized_pixels', 'search_window',
           'gaussian_map']
