"""SiamAttn (official `SiamMaskTracker`) as two pure, jittable functions: `tracker_fns(config)`.

    fns = tracker_fns(config)                       # SiamAttnFns(init, step), a TrackerFns
    state = fns.init(variables, frame, frame_hw, box_xywh)
    state, out = fns.step(variables, state, frame, frame_hw)
    polygon = fns.region(jax.device_get(out), frame_wh)   # host: [4, 2] float32 VOT polygon

frame: [Hp, Wp, 3] uint8 RGB padded bottom/right; frame_hw: [2] int32 real (height, width).
The crops, the channel average, the anchor scores and decoding and the float64 state scope are
SiamRPN++'s (`siam.functional`); what differs (/work/shared/specs/siamattn_port.md section 6):

1. RPN box: the pysot score / scale-ratio penalty / cosine window picks one anchor (penalty in
   float32, the window blend in float64, as NumPy 1 runs the official tracker); its box goes to
   crop coordinates (+ search_size / 2, float32) and is clipped to [0, X-1] (centre) and
   [10, X-1] (size), X = search_size.
2. Box refinement: RoI (cx - w/2 + 0.5, cy - h/2 + 0.5, cx + w/2 - 0.5, cy + h/2 - 0.5) (float64,
   then float32), the box head's deltas * bbox_stds + bbox_means, cx' = dx w + cx,
   cy' = dy h + cy, w' = exp(dw) w, h' = exp(dh) h.
3. State: the new centre is the refined centre, unsmoothed: c = c'/scale_z + (center - s_x/2)
   (s_x the rounded search window side); the size is smoothed with lr = penalty * score * LR;
   then SiamAttn's clip: centre to [0, W-1] x [0, H-1], size to [10, W-1] x [10, H-1].
4. Mask (config.test.mask): RoI = the updated box in crop coordinates (no +-0.5), the mask
   head's 64x64 logits, and `mask_box` (x, y, w, h) frame pixels that the 64x64 mask covers
   (official sub_box: corner + (pb_c - pb_w/2) s, side s pb_w, s = s_x / X). The polygon is made
   on the host from these (`siam.polygon.mask_polygon`, OpenCV), as the official tracker does.

State (a dict pytree, as SiamRPN++'s): center [2] (cx, cy), size [2] (w, h) in the state dtype
(float64 by default; pysot's center_pos / size; a caller may replace them between frames with
arrays of that dtype), channel_average [3] uint8, template (the neck's 3 template maps, each
[7, 7, C] float32, no batch axis; the DSA re-runs on them every frame).

out (step): box [4] float32 (x, y, w, h) = (cx - w/2, cy - h/2, w, h); score [] float32 (the
chosen anchor's foreground score); box_exact [4] the same box in the state dtype; rpn_roi [5]
and mask_roi [5] float32 (batch index 0, x1, y1, x2, y2 in search-crop pixels, as given to the
heads); box_deltas [4] float32 (head output, before stds/means); and with config.test.mask:
mask_logits [M, M] float32 (M = 64) and mask_box [4] in the state dtype.

Limits, not checked under jit (the adapter `siam.tracker.SiamAttnTracker` checks them): the box
must be finite with w, h > 0 and overlap the frame; frame_hw within the padded shape.
"""
from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from siam.functional import (Geometry, box_of, context_size, decode_boxes, first_argmax,
                             foreground_scores, geometry, search_crop, state_scope, template_crop)
from siam.siamattn import SiamAttn, build_model, is_siamattn
from tracking.api import TrackerFns


class RefineParams(NamedTuple):
    """SiamAttn's tracker values beyond SiamRPN++'s (config.test)."""
    stds: tuple            # BBOX_NORMALIZE_STDS (0.1, 0.1, 0.2, 0.2)
    means: tuple           # BBOX_NORMALIZE_MEANS (0, 0, 0, 0)
    mask: bool             # compute the mask (VOT polygon)
    mask_threshold: float  # MASK_THERSHOLD 0.2, on the sigmoid


def refine_params(config) -> RefineParams:
    test = config.test
    stds = tuple(float(v) for v in test.bbox_stds)
    means = tuple(float(v) for v in test.bbox_means)
    if len(stds) != 4 or len(means) != 4:
        raise ValueError(f'configs: test.bbox_stds / test.bbox_means need 4 values each, got '
                         f'{stds} / {means}')
    return RefineParams(stds, means, bool(test.get('mask', True)),
                        float(test.get('mask_threshold', 0.2)))


class SiamAttnFns(TrackerFns):
    """`TrackerFns(init, step)` whose step reports a mask; `region(out, frame_wh)` turns one
    frame's (host) out into the VOT polygon [4, 2] float32, or None when the config computes no
    mask (config.test.mask False). The batched VOT runner calls it when present."""

    def region(self, out, frame_wh):
        if 'mask_logits' not in out:
            return None
        from siam.polygon import mask_polygon   # Host only: OpenCV.
        return mask_polygon(out['mask_logits'], out['mask_box'], frame_wh, out['box_exact'],
                            float(out['mask_threshold']))


# ------------------------------------------------------------------ pieces (pure, jittable)

def select_anchor(geo: Geometry, cls, loc, size, scale_z):
    """The official choice of one anchor from cls [S, S, 2A] / loc [S, S, 4A] and the state
    (size [2], scale_z [] in the state dtype).

    Returns (best [] int32, box [4] float32 (cx, cy, w, h) relative to the crop centre,
    penalty [] float32, score [] float32). Scale and ratio penalties are float32 (NumPy 1 keeps
    a float32 array divided by a float64 scalar in float32, the scalar rounded first), the
    window blend float64 (state dtype). Non-finite anchors are never chosen (if none is finite,
    index 0 is returned; `step` then keeps the state)."""
    dtype = size.dtype
    score = foreground_scores(cls, geo.anchor_num)
    boxes = decode_boxes(loc, geo.anchors)
    f32 = jnp.float32
    target = context_size(size[0] * scale_z, size[1] * scale_z, geo.context_amount).astype(f32)
    scale_change = context_size(boxes[2], boxes[3], geo.context_amount) / target
    ratio_change = (size[0] / size[1]).astype(f32) / (boxes[2] / boxes[3])
    scale_change = jnp.maximum(scale_change, 1 / scale_change)
    ratio_change = jnp.maximum(ratio_change, 1 / ratio_change)
    penalty = jnp.exp(-(ratio_change * scale_change - 1) * f32(geo.penalty_k))
    blend = (penalty * score * f32(1 - geo.window_influence)).astype(dtype)
    pscore = blend + jnp.asarray(geo.window, dtype) * geo.window_influence
    valid = jnp.isfinite(pscore) & jnp.all(jnp.isfinite(boxes), axis=0)
    best = first_argmax(jnp.where(valid, pscore, -jnp.inf))
    best = jnp.where(jnp.any(valid), best, 0)
    return best, boxes[:, best], penalty[best], score[best]


def clip_box(cx, cy, w, h, height, width):
    """The official `_bbox_clip` (boundary - 1): cx to [0, W-1], cy to [0, H-1], w to
    [10, W-1], h to [10, H-1]; W, H scalars (the search crop or the frame)."""
    return (jnp.clip(cx, 0, width - 1), jnp.clip(cy, 0, height - 1),
            jnp.maximum(10, jnp.minimum(w, width - 1)), jnp.maximum(10, jnp.minimum(h, height - 1)))


def rpn_roi(rpn_box, search_size: int, dtype):
    """The RPN box (cx, cy, w, h) [4] float32 relative to the crop centre -> (clipped box [4]
    float32 in crop pixels, RoI [5] float32 (0, x1, y1, x2, y2)). The centre shift and the clip
    are float32 (as the official tracker), the RoI corners cx - w/2 + 0.5 ... are computed in
    `dtype` (float64: NumPy 1 scalars) and rounded to float32 (the torch tensor)."""
    half = jnp.float32(search_size / 2)
    box = jnp.stack(clip_box(rpn_box[0] + half, rpn_box[1] + half, rpn_box[2], rpn_box[3],
                             jnp.float32(search_size), jnp.float32(search_size)))
    wide = box.astype(dtype)
    corners = jnp.stack([wide[0] - wide[2] * 0.5 + 0.5, wide[1] - wide[3] * 0.5 + 0.5,
                         wide[0] + wide[2] * 0.5 - 0.5, wide[1] + wide[3] * 0.5 - 0.5])
    return box, jnp.concatenate([jnp.zeros((1,), jnp.float32), corners.astype(jnp.float32)])


def refine(deltas, box, stds, means):
    """deltas [4] float32 (head output), box [4] (cx, cy, w, h) in crop pixels -> the refined
    box [4] in box's dtype: d = deltas * stds + means; (dx w + cx, dy h + cy, exp(dw) w,
    exp(dh) h)."""
    d = deltas.astype(box.dtype) * jnp.asarray(stds, box.dtype) + jnp.asarray(means, box.dtype)
    return jnp.stack([d[0] * box[2] + box[0], d[1] * box[3] + box[1],
                      jnp.exp(d[2]) * box[2], jnp.exp(d[3]) * box[3]])


def corners_roi(center, size):
    """(cx, cy), (w, h) in crop pixels -> RoI [5] float32 (0, cx - w/2, cy - h/2, cx + w/2,
    cy + h/2), corners computed in their dtype (the mask RoI: no +-0.5)."""
    corners = jnp.concatenate([center - size * 0.5, center + size * 0.5])
    return jnp.concatenate([jnp.zeros((1,), jnp.float32), corners.astype(jnp.float32)])


# ------------------------------------------------------------------ the tracker


def tracker_fns(config, float64_state: bool = True) -> SiamAttnFns:
    """SiamAttn's `SiamAttnFns(init, step)` for the full config (configs/siamattn.py).

    init(variables, frame, frame_hw, box_xywh) -> state; step(variables, state, frame,
    frame_hw) -> (state, out) (see the module docstring). variables: the SiamAttn model's
    {'params', 'batch_stats'} (e.g. `siam.convert.from_official`). float64_state: the state and
    its arithmetic in float64 (the official dtype; default) or float32.
    """
    if not is_siamattn(config.model):
        raise ValueError("siam.attn_functional.tracker_fns: config.model.arch must be "
                         f"'siamattn', got {config.model.get('arch', None)!r}")
    geo = geometry(config)
    params = refine_params(config)
    model = build_model(config.model)
    dtype = jnp.float64 if float64_state else jnp.float32

    def init(variables, frame, frame_hw, box_xywh):
        state, z_crop = template_crop(geo, frame, frame_hw, box_xywh, float64_state)
        template = model.apply(variables, z_crop[None].astype(jnp.float32),
                               method=SiamAttn.template_features)['neck']
        return dict(state, template=tuple(t[0] for t in template))

    def step(variables, state, frame, frame_hw):
        frame_hw = jnp.asarray(frame_hw, jnp.int32)
        center, size, scale_z, x_side, x_crop = search_crop(geo, state, frame, frame_hw,
                                                            float64_state)
        with state_scope(float64_state):
            crop_origin = center - x_side.astype(dtype) / 2        # official crop_box[:2]
        outputs = model.apply(variables, x_crop[None].astype(jnp.float32),
                              tuple(t[None] for t in state['template']),
                              method=SiamAttn.track_forward)
        cls, loc = outputs['cls'][0], outputs['loc'][0]
        if cls.shape[0] != geo.score_size:
            raise ValueError(f'siam.attn_functional: score map {cls.shape[:2]} but anchors for '
                             f'{geo.score_size}x{geo.score_size}')
        with state_scope(float64_state):
            best, rpn_box, penalty, score = select_anchor(geo, cls, loc, size, scale_z)
            found = jnp.all(jnp.isfinite(rpn_box)) & jnp.isfinite(score)
            rpn_box, box_roi = rpn_roi(rpn_box, geo.search_size, dtype)
        deltas = model.apply(variables, outputs['box_features'], box_roi[None],
                             method=SiamAttn.refine_box)['deltas'][0]
        with state_scope(float64_state):
            refined = refine(deltas, rpn_box.astype(dtype), params.stds, params.means) / scale_z
            rate = (penalty * score).astype(dtype) * geo.lr
            img_h = frame_hw[0].astype(dtype)
            img_w = frame_hw[1].astype(dtype)
            cx, cy, width, height = clip_box(
                refined[0] + crop_origin[0], refined[1] + crop_origin[1],
                size[0] * (1 - rate) + refined[2] * rate,
                size[1] * (1 - rate) + refined[3] * rate, img_h, img_w)
            ok = found & jnp.all(jnp.isfinite(jnp.stack([cx, cy, width, height])))
            new_center = jnp.where(ok, jnp.stack([cx, cy]), center)
            new_size = jnp.where(ok, jnp.stack([width, height]), size)
            box_exact = box_of(new_center, new_size)
            # The mask RoI and the frame region the 64x64 mask covers (official sub_box).
            crop_center = (new_center - crop_origin) * scale_z
            crop_size = new_size * scale_z
            mask_roi = corners_roi(crop_center, crop_size)
            pixel = x_side.astype(dtype) / geo.search_size
            mask_box = jnp.concatenate([crop_origin + (crop_center - crop_size / 2) * pixel,
                                        pixel * crop_size])
        out = dict(box=box_exact.astype(jnp.float32),
                   score=jnp.where(ok, score, 0).astype(jnp.float32), box_exact=box_exact,
                   rpn_roi=box_roi, mask_roi=mask_roi, box_deltas=deltas.astype(jnp.float32))
        if params.mask:
            logits = model.apply(variables, outputs['mask_features'], mask_roi[None],
                                 method=SiamAttn.refine_mask)['logits'][0, ..., 0]
            out.update(mask_logits=logits.astype(jnp.float32), mask_box=mask_box,
                       mask_threshold=jnp.float32(params.mask_threshold))
        return dict(state, center=new_center, size=new_size), out

    return SiamAttnFns(init, step)


__all__ = ['tracker_fns', 'SiamAttnFns', 'RefineParams', 'refine_params', 'select_anchor',
           'clip_box', 'rpn_roi', 'refine', 'corners_roi']
