"""The GRM tracker as two pure functions (`tracking.api.TrackerFns`), everything on the device.

    fns = grm_jax.tracker_fns(config, threshold=0.0)
    state = fns.init(variables, frame, frame_hw, box_xywh)
    state, out = fns.step(variables, state, frame, frame_hw)
    boxes, scores = jax.jit(tracking.api.track_video, static_argnums=0)(fns, variables, ...)

One step is the official GRM/OSTrack tracking procedure (spec section 6): the search crop
(`tracking.device_crops.sample_target_device`, byte-identical to the host `sample_target`) around
the previous box, ImageNet normalisation (bit-identical to the host's), the network with the fixed template, the Hann-windowed
argmax of the score map, the map back to frame pixels and the 10 px margin clip to the real frame
size `frame_hw` (never the padded one). All shapes are static: jit, scan, vmap and grad apply.

State (a dict pytree):
  'box'       [4] float32 (x, y, w, h) in frame pixels, the previous box;
  'template'  [Ht, Wt, 3] float32, the ImageNet-normalised template crop of frame 0 (the
              network's template input; the network re-embeds its 64 patches each frame, about
              0.14% of a ViT-B forward's multiply-adds: caching the tokens themselves would need
              the ViT's forward split in two);
  'threshold' [] float32, the division threshold (0 = argmax), so one compiled step serves
              every threshold.

Precision. The official tracker keeps its state as Python floats (float64): the crop geometry
(ceil(sqrt(w h) factor), round(x + w/2 - side/2), resize_factor = out / side), the map back
(previous centre - half the crop side + predicted centre) and the clip. The network output and
its scaling to crop pixels (`pred_boxes * search_size / resize_factor`) are float32 torch
tensors. Here the crop geometry is exact whatever the dtype (device_crops reproduces the float64
integer results from float32 boxes), and the map back runs in float32: one rounding of at most
half an ulp (3e-5 px at 256..512 px) per add, adding up over the frames only through the
previous centre. Measured on the 40 `bag` frames of the reference bundle the boxes stay within
0.0006 px (threshold 0) and 0.0010 px (threshold 0.4) of the official ones (the float64 host
path: 0.0007 and 0.0008 px), against a bound of 0.01 px, so the state stays float32 (no x64
mode, no float64 on GPUs). See docs/grm.md (Tracker: pure functions).

Gradients. The box that positions the search crop is `jax.lax.stop_gradient`-ed in `step`
(`_search_crop`): the crop window is integer-valued (its derivative is zero almost everywhere)
and its exact arithmetic bit-casts floats. Gradients reach the model parameters through the
network outputs read at the argmax cell (size, offset) and through the previous box's centre in
the map back; `jax.grad` of a loss on `track_video`'s boxes is finite and non-zero
(tests/test_grm_functional.py).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from grm_jax import head as head_lib
from grm_jax.model import GRM, model_config_of
from tracking import precision as precision_lib
from tracking.api import TrackerFns
from tracking.boxes import clip_box_margin
from tracking.crops import normalize_imagenet
from tracking.device_crops import sample_target_device

CLIP_MARGIN = 10
# The official tracker runs in float32; keep XLA from using TF32/bf16 passes for f32 matmuls and
# convolutions on GPU (a no-op on CPU). Applied while tracing, so it is baked into the program.
MATMUL_PRECISION = 'highest'


def hann2d(size: int) -> np.ndarray:
    """[size, size] float32 outer product of the 'centered' Hann window
    0.5 (1 - cos(2 pi k / (size + 1))), k = 1..size (no zeros at the borders)."""
    k = np.arange(1, size + 1, dtype=np.float32)
    window = 0.5 * (1.0 - np.cos(np.float32(2.0 * math.pi / (size + 1)) * k)).astype(np.float32)
    return (window[:, None] * window[None, :]).astype(np.float32)


# normalize_imagenet of every uint8 value, computed once on the host with IEEE float32 division:
# [256, 3]. Under XLA, (x / 255 - mean) / std becomes multiplications by reciprocals, one ulp
# off the official (torch) values in places; a table lookup gives the official values exactly.
_NORMALIZED_U8 = np.asarray(normalize_imagenet(np.repeat(np.arange(256, dtype=np.uint8)[:, None],
                                                         3, axis=1)), np.float32)


def normalize_u8(crop):
    """ImageNet normalisation of a uint8 [..., 3] RGB crop, bit-identical to the host's
    `tracking.crops.normalize_imagenet` (and the official tracker): float32 [..., 3]."""
    crop = jnp.asarray(crop)
    if crop.dtype != jnp.uint8 or crop.shape[-1:] != (3,):
        raise ValueError(f'normalize_u8: expected a uint8 [..., 3] crop, got {crop.shape} '
                         f'{crop.dtype}')
    return jnp.asarray(_NORMALIZED_U8)[crop.astype(jnp.int32), jnp.arange(3)]


def network_fn(config, precision=None):
    """The network part of a tracking step, unjitted: f(variables, template [B,Ht,Wt,3],
    search [B,Hs,Ws,3] float32 normalised, threshold [] or [B]) -> GRM's output dict plus
    'window_boxes' [B, 4] ((cx, cy, w, h) crop fractions at the argmax of the Hann-weighted score
    map) and 'window_score' [B] (that maximum). config: full GRM config or its model section.
    precision: 'float32' | 'tf32' | 'bfloat16' (`tracking.precision`); None: config.test.precision
    ('float32' for a model section). 'float32' is traced with float32 matmul precision
    (MATMUL_PRECISION); the outputs are float32 in every mode (the windowed argmax runs on them)."""
    mode = precision_lib.precision_of(config) if precision is None else (
        precision_lib.validate(precision, 'grm_jax.network_fn: precision'))
    model_config = model_config_of(config)
    model = GRM(model_config)
    window = hann2d(model_config.search_size // model_config.patch_size)
    apply = precision_lib.network_call(model.apply, mode, float32_matmul=MATMUL_PRECISION)

    def forward(variables, template, search, threshold):
        out = apply(variables, jnp.asarray(template, jnp.float32),
                    jnp.asarray(search, jnp.float32),
                    threshold=jnp.asarray(threshold, jnp.float32))
        win = jnp.asarray(window)
        out['window_boxes'] = head_lib.decode_boxes(out['score_map'], out['size_map'],
                                                    out['offset_map'], win)
        out['window_score'] = jnp.max((out['score_map'] * win).reshape(
            out['score_map'].shape[0], -1), axis=-1)
        return out

    return forward


def map_box_back(window_box, resize_factor, prev_box, search_size: int):
    """Crop-fraction box -> frame pixels, as the official `map_box_back`.

    window_box: [4] float32 (cx, cy, w, h) fractions of the search crop; resize_factor: []
    float32 search_size / crop side; prev_box: [4] (x, y, w, h) px, the box the crop was centred
    on. Returns [4] (x, y, w, h) px, unclipped:
    (cx, cy, w, h) = window_box * search_size / resize_factor (crop px; float32 as officially),
    centre = (cx, cy) + previous centre - search_size / (2 resize_factor).
    """
    scaled = window_box * jnp.float32(search_size) / resize_factor
    cx, cy, w, h = scaled[0], scaled[1], scaled[2], scaled[3]
    prev_box = prev_box.astype(scaled.dtype)
    half_side = 0.5 * jnp.float32(search_size) / resize_factor
    cx_img = cx + (prev_box[0] + 0.5 * prev_box[2] - half_side)
    cy_img = cy + (prev_box[1] + 0.5 * prev_box[3] - half_side)
    return jnp.stack([cx_img - 0.5 * w, cy_img - 0.5 * h, w, h])


def tracker_fns(config, threshold=0.0, precision=None) -> TrackerFns:
    """GRM's `TrackerFns` for a config (full GRM config or its model section).

    threshold: the division threshold (0 = argmax, e.g. config.test.thresholds.lasot); a float or
    a traced [] array, stored in the state by `init`.
    precision: the network's precision (`network_fn`); None: config.test.precision, 'float32'
    for a model section. Crops, map back and state are float32 in every mode.
    init(variables, frame [Hp,Wp,3] uint8, frame_hw [2] int32, box_xywh [4]) -> state (module
    docstring); the template is the exact `sample_target` crop (factor template_factor).
    step(variables, state, frame, frame_hw) -> (state, out): out['box'] [4] float32 (x, y, w, h)
    px, margin-clipped to frame_hw, also the new state's box; out['score'] [] float32, the maximum
    of the Hann-windowed score map (the cell the box is read at).
    Not checked under jit (the adapter `GRMTracker` checks on the host): box w, h > 0, finite;
    frame_hw within the padded frame.
    """
    cfg = model_config_of(config)
    forward = network_fn(cfg, precision_lib.precision_of(config) if precision is None
                         else precision)

    def init(variables, frame, frame_hw, box_xywh):
        del variables          # the template crop needs no weights
        box = jnp.asarray(box_xywh, jnp.float32)
        crop, _, _ = sample_target_device(frame, frame_hw, box, cfg.template_factor,
                                          cfg.template_size)
        return {'box': box, 'template': normalize_u8(crop),
                'threshold': jnp.asarray(threshold, jnp.float32)}

    def step(variables, state, frame, frame_hw):
        frame_hw = jnp.asarray(frame_hw, jnp.int32)
        prev = state['box']
        search, resize_factor = _search_crop(frame, frame_hw, prev, cfg)
        out = forward(variables, state['template'][None], search[None], state['threshold'])
        box = map_box_back(out['window_boxes'][0], resize_factor, prev, cfg.search_size)
        box = clip_box_margin(box, (frame_hw[0], frame_hw[1]), margin=CLIP_MARGIN)
        box = box.astype(prev.dtype)
        return dict(state, box=box), {'box': box.astype(jnp.float32),
                                      'score': out['window_score'][0]}

    return TrackerFns(init, step)


def _search_crop(frame, frame_hw, box, cfg):
    """Normalised search crop [Hs, Ws, 3] float32 and resize_factor [] float32 around `box`.

    The box is held fixed for differentiation here (stop_gradient): the window is integer-valued
    and device_crops computes it with bit-level float arithmetic.
    """
    box = jax.lax.stop_gradient(jnp.asarray(box, jnp.float32))
    crop, resize_factor, _ = sample_target_device(frame, frame_hw, box, cfg.search_factor,
                                                  cfg.search_size)
    return normalize_u8(crop), resize_factor


__all__ = ['CLIP_MARGIN', 'MATMUL_PRECISION', 'hann2d', 'map_box_back', 'network_fn',
           'normalize_u8', 'tracker_fns']
