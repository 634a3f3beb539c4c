"""SiamRPN++ (pysot `SiamRPNTracker`) as two pure, jittable functions: `tracker_fns(config)`.

    fns = tracker_fns(config)                         # tracking.api.TrackerFns(init, step)
    variables = prepare_variables(config, variables)  # Winograd weights if conv_impl='winograd'
    state = fns.init(variables, frame, frame_hw, box_xywh)
    state, out = fns.step(variables, state, frame, frame_hw)  # out: box [4] f32, score [] f32

frame: [Hp, Wp, 3] uint8 RGB padded bottom/right; frame_hw: [2] int32 real (height, width).
Everything runs on the device with static shapes: RGB -> BGR, the channel average of the real
region, pysot's average-colour-padded crops (`tracking.device_crops.get_subwindow_device`,
byte-identical to cv2), the network, anchor decoding, scale/ratio penalty, cosine window, argmax,
size smoothing (lr) and the clip to the real frame size.

State (a dict pytree):
  center [2] (cx, cy) px and size [2] (w, h) px: pysot's center_pos and size, in the state dtype
      (float64 by default, see below); a caller may replace them between frames (keep the dtype:
      a float64 array made under `jax.enable_x64`, or cast, see `state_dtype`).
  channel_average [3] uint8: the BGR mean of frame 0's real region as pysot's crops use it (its
      float64 mean truncated to uint8; computed exactly from integer sums, frames up to 16.8
      Mpixel).
  template: tuple of the neck's template maps, each [7, 7, C] float32 (no batch axis).

Float64 state. pysot keeps its state in float64; the crop origin floor(cx - s/2) and the crop side
round(s_x) turn tiny state differences into whole-pixel crop shifts (on vot/bag frame 20 sits
0.0013 px from such a step). With `float64_state=True` (default) the state and the arithmetic
around it (context size, scale, crop window, penalties, argmax, smoothing, clip) run in float64
inside a `jax.enable_x64` scope, so no global flag is needed; the network and the crops stay
float32/uint8. The crop is handed to the device crop as the exact float32 centre x0 + s/2 of the
window whose origin x0 was computed in float64, so the crop is pysot's. `float64_state=False`
runs the same arithmetic in float32 (for devices without float64, e.g. TPUs); its cost/benefit is
measured in benchmarks/siam_functional.py.

Limits, not checked under jit (the adapter `siam.tracker.SiamRPNTracker` checks them): the box
must be finite with w, h > 0 and overlap the frame; frame_hw within the padded shape.
"""
from __future__ import annotations

import contextlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from siam.anchors import score_size, tracker_anchors
from siam.model import SiamRPN, build_model, winograd_variables
from tracking import precision as precision_lib
from tracking.api import TrackerFns
from tracking.device_crops import get_subwindow_device

_enable_x64 = getattr(jax, 'enable_x64', None)
if _enable_x64 is None or not callable(_enable_x64):                 # older jax
    from jax.experimental import enable_x64 as _enable_x64          # pragma: no cover


def state_scope(float64: bool):
    """The context in which the tracker's float64 state arithmetic is traced/created:
    `jax.enable_x64(True)` for float64, else nothing. Use it to build float64 arrays for a state
    (e.g. `with state_scope(True): center = jnp.asarray(c, jnp.float64)`)."""
    return _enable_x64(True) if float64 else contextlib.nullcontext()


class Geometry(NamedTuple):
    """The static numbers of the tracker (from config.model / config.test)."""
    template_size: int          # TRACK.EXEMPLAR_SIZE (127)
    search_size: int            # TRACK.INSTANCE_SIZE (255; AlexNet 287)
    score_size: int             # side of the score map (25)
    anchor_num: int             # anchors per position (5)
    anchors: np.ndarray         # [A*S*S, 4] float32 (cx, cy, w, h) rel. to the crop centre
    window: np.ndarray          # [A*S*S] float64 cosine window
    context_amount: float
    penalty_k: float
    window_influence: float
    lr: float


def cosine_window(size: int, anchor_num: int) -> np.ndarray:
    """outer(hanning(S), hanning(S)), flattened row-major, tiled per anchor: [A*S*S] float64."""
    hann = np.hanning(size)
    return np.tile(np.outer(hann, hann).flatten(), anchor_num)


def geometry(config) -> Geometry:
    """Geometry from the full config (configs/siamrpn.py). Raises ValueError when the anchor
    ratios x scales do not give rpn.anchor_num."""
    model, test = config.model, config.test
    template = int(model.template_size)
    search = int(test.get('instance_size', None) or model.search_size)
    anchor = model.anchor
    num = int(model.rpn.anchor_num)
    if len(anchor.ratios) * len(anchor.scales) != num:
        raise ValueError(f'SiamRPNTracker: {len(anchor.ratios)} ratios x {len(anchor.scales)} '
                         f'scales != rpn.anchor_num {num}')
    size = score_size(search, template, anchor.stride, test.base_size)
    return Geometry(template, search, size, num,
                    tracker_anchors(size, anchor.stride, tuple(anchor.ratios),
                                    tuple(anchor.scales)),
                    cosine_window(size, num), float(test.context_amount), float(test.penalty_k),
                    float(test.window_influence), float(test.lr))


def prepare_variables(config, variables):
    """The variables `tracker_fns(config)` expects: `winograd_variables` when
    config.test.conv_impl is 'winograd' or 'winograd4' (done once, not per frame), else
    unchanged."""
    impl = config.test.get('conv_impl', 'xla')
    if impl in ('winograd', 'winograd4'):
        return winograd_variables(variables, config.model, impl)
    return variables


# ------------------------------------------------------------------ pieces (pure, jittable)

def to_bgr(frame):
    """[Hp, Wp, 3] uint8 RGB -> BGR (the official weights' channel order)."""
    return frame[..., ::-1]


def channel_average(frame, frame_hw):
    """pysot's padding colour: the per-channel mean of the real frame region, truncated to uint8.

    frame: [Hp, Wp, C] uint8; frame_hw: [2] int32 real (H, W). Returns [C] uint8 =
    floor(sum / (H W)) from exact uint32 sums (equals numpy's float64 mean truncated, for
    H W <= 16.8 M pixels)."""
    hp, wp = frame.shape[:2]
    inside = ((jnp.arange(hp) < frame_hw[0])[:, None] & (jnp.arange(wp) < frame_hw[1])[None, :])
    pixels = jnp.where(inside[..., None], frame, jnp.uint8(0)).astype(jnp.uint32)
    total = jnp.sum(pixels, axis=(0, 1), dtype=jnp.uint32)
    count = (frame_hw[0] * frame_hw[1]).astype(jnp.uint32)
    return (total // count).astype(jnp.uint8)


def context_size(w, h, context: float):
    """sqrt((w + p)(h + p)), p = context (w + h), in the dtype of w and h (pysot's s_z)."""
    pad = context * (w + h)
    return jnp.sqrt((w + pad) * (h + pad))


def round_side(side):
    """max(1, round(side)) (Python's half-to-even round) as int32."""
    return jnp.maximum(jnp.round(side), 1).astype(jnp.int32)


def window_center(center, side):
    """The float32 centre that makes the device crop take pysot's window.

    center: [2] (cx, cy) in the state dtype; side: [] int32 window side. pysot's origin
    x0 = floor(cx - (s + 1)/2 + 0.5) is computed in the state dtype (call inside
    `state_scope(True)` for float64); returns [2] float32 x0 + s/2, exact, for which
    `get_subwindow_device`'s own rule floor(c - s/2) gives back x0."""
    half = (side.astype(center.dtype) + 1) / 2
    origin = jnp.floor(center - half + 0.5)
    return origin.astype(jnp.float32) + side.astype(jnp.float32) * 0.5


def crop(frame_bgr, frame_hw, center, side, out_size: int, average):
    """pysot's get_subwindow of side `side` around `center` (state dtype), resized to out_size:
    `window_center` then `get_subwindow_device`. Returns [out_size, out_size, 3] uint8."""
    return get_subwindow_device(frame_bgr, frame_hw, window_center(center, side), out_size,
                                side, average)


def foreground_scores(cls, anchor_num: int):
    """cls [S, S, 2A] logits (channel k * A + a) -> [A*S*S] float32 foreground softmax,
    index a * S * S + y * S + x."""
    logits = jnp.transpose(cls.astype(jnp.float32), (2, 0, 1)).reshape(2, -1)
    shifted = jnp.exp(logits - jnp.max(logits, axis=0, keepdims=True))
    return shifted[1] / (shifted[0] + shifted[1])


def decode_boxes(loc, anchors):
    """loc [S, S, 4A] deltas (channel coord * A + a), anchors [A*S*S, 4] -> [4, A*S*S] float32
    (cx, cy, w, h) in search-crop pixels relative to the crop centre."""
    delta = jnp.transpose(loc.astype(jnp.float32), (2, 0, 1)).reshape(4, -1)
    anchors = jnp.asarray(anchors, jnp.float32)
    return jnp.stack([delta[0] * anchors[:, 2] + anchors[:, 0],
                      delta[1] * anchors[:, 3] + anchors[:, 1],
                      jnp.exp(delta[2]) * anchors[:, 2],
                      jnp.exp(delta[3]) * anchors[:, 3]])


def _change(ratio):
    return jnp.maximum(ratio, 1.0 / ratio)


def first_argmax(values):
    """numpy's argmax (first index of the maximum) of [N] values without NaN, as int32.

    Not `jnp.argmax`: its lowering builds the reduction's initial value after the
    `jax.enable_x64` scope has closed (float32 -inf against float64 operands), so it fails for
    float64 values traced inside the scope; max + min-index lowers in any dtype."""
    count = values.shape[0]
    index = jnp.arange(count, dtype=jnp.int32)
    return jnp.min(jnp.where(values == jnp.max(values), index, count))


def update_state(geo: Geometry, cls, loc, center, size, scale_z, frame_hw):
    """pysot's post-processing: from one frame's cls [S, S, 2A] / loc [S, S, 4A] and the state
    (center [2], size [2], scale_z [] in the state dtype) to (center, size, score []).

    Anchors with a non-finite box or score are never chosen; if none is finite the state is
    kept and the score is 0. The new centre is clipped to [0, W] x [0, H], the size to
    [10, W] x [10, H] (the real frame size)."""
    dtype = center.dtype
    score = foreground_scores(cls, geo.anchor_num)
    boxes = decode_boxes(loc, geo.anchors)
    scale_change = _change(context_size(boxes[2], boxes[3], geo.context_amount).astype(dtype)
                           / context_size(size[0] * scale_z, size[1] * scale_z,
                                          geo.context_amount))
    ratio_change = _change((size[0] / size[1]) / (boxes[2] / boxes[3]).astype(dtype))
    penalty = jnp.exp(-(ratio_change * scale_change - 1) * geo.penalty_k)
    influence = geo.window_influence
    window = jnp.asarray(geo.window, dtype)
    pscore = penalty * score.astype(dtype) * (1 - influence) + window * influence
    valid = jnp.isfinite(pscore) & jnp.all(jnp.isfinite(boxes), axis=0)
    best = first_argmax(jnp.where(valid, pscore, -jnp.inf))
    box = boxes[:, best].astype(dtype) / scale_z
    rate = penalty[best] * score[best].astype(dtype) * geo.lr
    cx = box[0] + center[0]
    cy = box[1] + center[1]
    width = size[0] * (1 - rate) + box[2] * rate
    height = size[1] * (1 - rate) + box[3] * rate
    img_h = frame_hw[0].astype(dtype)
    img_w = frame_hw[1].astype(dtype)
    new_center = jnp.stack([jnp.clip(cx, 0, img_w), jnp.clip(cy, 0, img_h)])
    new_size = jnp.stack([jnp.maximum(10, jnp.minimum(width, img_w)),
                          jnp.maximum(10, jnp.minimum(height, img_h))])
    found = jnp.any(valid)
    return (jnp.where(found, new_center, center), jnp.where(found, new_size, size),
            jnp.where(found, score[best], jnp.float32(0)))


def box_of(center, size):
    """(cx, cy), (w, h) -> [4] (x, y, w, h) = (cx - w/2, cy - h/2, w, h), in their dtype."""
    return jnp.concatenate([center - size / 2, size])


# ------------------------------------------------------------------ the tracker


def template_crop(geo: Geometry, frame, frame_hw, box_xywh, float64_state: bool = True):
    """pysot's first frame: the state's centre (x + (w - 1) / 2, ...), size and channel average,
    and the template crop. frame: RGB uint8 [Hp, Wp, 3] (real size frame_hw [2] int32);
    box_xywh [4] pixels. Returns (dict(center [2], size [2], channel_average [3]),
    z_crop [Z, Z, 3] float32 BGR)."""
    frame_hw = jnp.asarray(frame_hw, jnp.int32)
    image = to_bgr(jnp.asarray(frame))
    average = channel_average(image, frame_hw)
    with state_scope(float64_state):
        dtype = jnp.float64 if float64_state else jnp.float32
        box = jnp.asarray(box_xywh).astype(dtype)
        center = jnp.stack([box[0] + (box[2] - 1) / 2, box[1] + (box[3] - 1) / 2])
        size = box[2:4]
        side = round_side(context_size(size[0], size[1], geo.context_amount))
        z_center = window_center(center, side)
    z_crop = get_subwindow_device(image, frame_hw, z_center, geo.template_size, side, average)
    return dict(center=center, size=size, channel_average=average), z_crop


def search_crop(geo: Geometry, state, frame, frame_hw, float64_state: bool = True):
    """pysot's search crop around the state: (center [2], size [2] in the state dtype,
    scale_z (template px per frame px), x_side (window side in frame px, integer-valued),
    x_crop [X, X, 3] float32 BGR)."""
    image = to_bgr(jnp.asarray(frame))
    with state_scope(float64_state):
        dtype = jnp.float64 if float64_state else jnp.float32
        center = jnp.asarray(state['center']).astype(dtype)
        size = jnp.asarray(state['size']).astype(dtype)
        side_z = context_size(size[0], size[1], geo.context_amount)
        scale_z = geo.template_size / side_z
        x_side = round_side(side_z * (geo.search_size / geo.template_size))
        x_center = window_center(center, x_side)
    x_crop = get_subwindow_device(image, jnp.asarray(frame_hw, jnp.int32), x_center,
                                  geo.search_size, x_side, state['channel_average'])
    return center, size, scale_z, x_side, x_crop


def tracker_fns(config, float64_state: bool = True) -> TrackerFns:
    """SiamRPN++'s `TrackerFns` for the full config (configs/siamrpn.py).

    init(variables, frame, frame_hw, box_xywh) -> state (see the module docstring);
    step(variables, state, frame, frame_hw) -> (state, {'box': [4] float32 (x, y, w, h) px,
    'score': [] float32 foreground score of the chosen anchor}).
    variables: `prepare_variables(config, v)` of the model's {'params', 'batch_stats'}.
    float64_state: the state and its arithmetic in float64 (pysot's dtype; default) or float32.
    config.test.precision ('float32' default | 'tf32' | 'bfloat16', `tracking.precision`) applies
    to the two network calls only; their outputs (template maps in the state, cls, loc) are float32.
    """
    geo = geometry(config)
    mode = precision_lib.precision_of(config)
    float32_precision = config.model.get('precision', None)
    model_config = config.model
    if mode != 'float32':      # the model fixes per-op precision: the mode's, per op
        model_config = ml_collections.ConfigDict(config.model.to_dict())
        model_config.precision = precision_lib.per_op_precision(mode, float32_precision)
    model = build_model(model_config, config.test.get('conv_impl', 'xla'))
    # float32: ops without a per-op precision (the RPN's level weighting) get the model's too.
    network = precision_lib.network_call(model.apply, mode, float32_matmul=float32_precision)

    def init(variables, frame, frame_hw, box_xywh):
        state, z_crop = template_crop(geo, frame, frame_hw, box_xywh, float64_state)
        template = network(variables, z_crop[None].astype(jnp.float32),
                           method=SiamRPN.template_features)
        return dict(state, template=tuple(t[0] for t in template))

    def step(variables, state, frame, frame_hw):
        frame_hw = jnp.asarray(frame_hw, jnp.int32)
        center, size, scale_z, _, x_crop = search_crop(geo, state, frame, frame_hw,
                                                       float64_state)
        outputs = network(variables, x_crop[None].astype(jnp.float32),
                          tuple(t[None] for t in state['template']),
                          method=SiamRPN.track_forward)
        cls, loc = outputs['cls'][0], outputs['loc'][0]
        if cls.shape[0] != geo.score_size:
            raise ValueError(f'siam.tracker_fns: score map {cls.shape[:2]} but anchors for '
                             f'{geo.score_size}x{geo.score_size}')
        with state_scope(float64_state):
            center, size, score = update_state(geo, cls, loc, center, size, scale_z, frame_hw)
            box = box_of(center, size).astype(jnp.float32)
        new_state = dict(state, center=center, size=size)
        return new_state, dict(box=box, score=score.astype(jnp.float32))

    return TrackerFns(init, step)


__all__ = ['tracker_fns', 'prepare_variables', 'geometry', 'Geometry', 'state_scope',
           'cosine_window', 'to_bgr', 'channel_average', 'context_size', 'round_side',
           'window_center', 'crop', 'foreground_scores', 'decode_boxes', 'first_argmax',
           'update_state', 'box_of', 'template_crop', 'search_crop']
