"""Embedded procedural tracking dataset: a generator, its TFDS builder and a loader.

Every sequence is a pure function of an integer seed (numpy `default_rng` only). A sequence shows
one textured target (rectangle or ellipse) over a cluttered, slowly panning textured background,
with 1-3 look-alike distractors (same texture family, slightly different colours), 0-3 occluder
patches drawn above the target, smooth motion towards random way-points (inertia, bounces, speed
bursts, occasional exits through a frame edge), scale and aspect drift, a global illumination
drift (gain and offset) and motion blur along the motion on fast frames.

Box convention (documented choice): `boxes[t]` is the part of the target's extent that lies
inside the frame, (x, y, w, h) in pixels with pixel i covering [i, i + 1); every box, visible or
not, lies inside the frame and has w, h >= 2 (the motion keeps at least 2 px of the target
inside). When the target leaves the frame the box is the thin sliver still inside and
`visible[t]` is False. `visible[t]` is False when less than 10% of the target's pixels can be seen
(outside the frame or covered by occluders), as GOT-10k/LaSOT mark full occlusion / out of view.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np

from tracking.data.sequence import Sequence

FRAME_SIZE = (160, 160)          # (H, W) in pixels
MIN_VISIBLE_FRACTION = 0.1       # below: visible = False
INSIDE_MARGIN = 2                # px of the target kept inside the frame at all times
TEXTURE_SIZE = 48                # side of the canonical object texture, px
PAN_MARGIN = 24                  # background canvas margin for the camera pan, px
SIZE_RANGE = (14.0, 42.0)        # sqrt(w h) of the target, px
ASPECT_RANGE = (0.4, 2.5)        # w / h
BLUR_MIN_SPEED = 3.0             # px/frame from which motion blur is applied
JPEG_QUALITY = 90
# Number of small textured clutter shapes in the background and of look-alike distractors,
# [low, high). Version 1.0.0 had (15, 35) and (1, 4): a tiny GRM trained for minutes on it learnt
# only the centre prior (training IoU 0.38); with (3, 8) and (0, 2) it learns to track.
CLUTTER_RANGE = (3, 8)
DISTRACTOR_RANGE = (0, 2)

# Seeds of the splits are disjoint ranges: split_offset + index.
SPLIT_SEED_OFFSETS = {'train': 0, 'val': 1_000_000, 'test': 2_000_000}


# ------------------------------------------------------------------------------------------------
# Textures and shapes.

def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """[H, W] float32 in [0, 1]: uniform noise on a cells x cells grid, bicubically upsampled."""
    coarse = rng.random((cells, cells)).astype(np.float32)
    return np.clip(cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC), 0, 1)


def _texture_family(rng: np.random.Generator) -> dict:
    """Parameters of a texture family shared by the target and its distractors."""
    return dict(
        kind=int(rng.integers(4)),                  # 0 stripes, 1 checker, 2 rings, 3 blobs
        frequency=float(rng.uniform(2.0, 6.0)),     # periods across the texture
        angle=float(rng.uniform(0, np.pi)),
        noise_weight=float(rng.uniform(0.1, 0.4)),
        colours=rng.uniform(0, 255, (2, 3)).astype(np.float32),
    )


def _pattern(rng: np.random.Generator, family: dict, size: int) -> np.ndarray:
    """[size, size] float32 in [0, 1]: the family's pattern with a random phase plus noise."""
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    yy, xx = np.meshgrid(coords, coords, indexing='ij')
    angle = family['angle'] + rng.normal(0, 0.15)
    freq = family['frequency'] * 2 * np.pi
    phase = rng.uniform(0, 2 * np.pi)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    kind = family['kind']
    if kind == 0:
        base = 0.5 + 0.5 * np.sin(freq * u + phase)
    elif kind == 1:
        base = ((np.sin(freq * u + phase) > 0) ^ (np.sin(freq * v) > 0)).astype(np.float32)
    elif kind == 2:
        base = 0.5 + 0.5 * np.sin(freq * np.sqrt(u * u + v * v) * 1.5 + phase)
    else:
        base = _smooth_noise(rng, (size, size), max(2, int(family['frequency'])))
    noise = _smooth_noise(rng, (size, size), 8)
    w = family['noise_weight']
    return ((1 - w) * base + w * noise).astype(np.float32)


def _shape_alpha(shape_kind: int, size: int) -> np.ndarray:
    """[size, size] float32 alpha: 0 rectangle (all ones), 1 ellipse touching the four edges."""
    if shape_kind == 0:
        return np.ones((size, size), np.float32)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    r2 = coords[:, None] ** 2 + coords[None, :] ** 2
    return np.clip((1.0 - r2) * size * 0.5 + 0.5, 0, 1).astype(np.float32)   # ~1 px soft edge


def _appearance(rng: np.random.Generator, family: dict, colour_shift: float) -> dict:
    """A textured object: dict(rgb [S, S, 3] 0..255, alpha [S, S] 0..1), float32, S = TEXTURE_SIZE.

    colour_shift: the family's two colours move by up to this much per channel (distractors).
    """
    colours = family['colours'] + rng.uniform(-colour_shift, colour_shift, (2, 3))
    pattern = _pattern(rng, family, TEXTURE_SIZE)
    rgb = colours[0] + (colours[1] - colours[0]) * pattern[..., None]
    alpha = _shape_alpha(int(rng.integers(2)), TEXTURE_SIZE)
    return dict(rgb=np.clip(rgb, 0, 255).astype(np.float32), alpha=alpha)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """[H, W, 3] float32 cluttered textured canvas (gradient, noise, stripes, clutter shapes)."""
    base = rng.uniform(40, 215, 3).astype(np.float32)
    noise = np.stack([_smooth_noise(rng, (height, width), int(rng.integers(4, 12)))
                      for _ in range(3)], -1)
    canvas = base + (noise - 0.5) * rng.uniform(60, 160)
    family = _texture_family(rng)
    stripes = _pattern(rng, family, max(height, width))[:height, :width]
    canvas += (stripes[..., None] - 0.5) * rng.uniform(20, 70) * rng.uniform(0.5, 1.0, 3)
    for _ in range(int(rng.integers(*CLUTTER_RANGE))):   # clutter: small textured shapes
        h, w = (int(v) for v in rng.integers(6, 40, 2))
        y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
        fam = _texture_family(rng) if rng.random() < 0.7 else family
        patch = _appearance(rng, fam, 30.0)
        rgb = cv2.resize(patch['rgb'], (w, h), interpolation=cv2.INTER_LINEAR)
        alpha = cv2.resize(patch['alpha'], (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
        canvas[y:y + h, x:x + w] = canvas[y:y + h, x:x + w] * (1 - alpha) + rgb * alpha
    return canvas


# ------------------------------------------------------------------------------------------------
# Motion.

def _smooth_signal(rng: np.random.Generator, num_frames: int, periods=(30, 150)) -> np.ndarray:
    """[T] float32 in about [-1, 1]: a sum of two slow sinusoids with random periods and phases."""
    t = np.arange(num_frames, dtype=np.float32)
    out = np.zeros(num_frames, np.float32)
    for _ in range(2):
        period = rng.uniform(*periods)
        out += 0.5 * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    return out


def _size_track(rng: np.random.Generator, num_frames: int, init_size: float) -> np.ndarray:
    """[T, 2] float32 (w, h) in px: log-size and log-aspect random walks with inertia, bounded."""
    lo_s, hi_s = np.log(SIZE_RANGE[0]), np.log(SIZE_RANGE[1])
    lo_a, hi_a = np.log(ASPECT_RANGE[0]), np.log(ASPECT_RANGE[1])
    steps = rng.normal(0, [0.012, 0.01], (num_frames, 2))
    s, a = np.log(init_size), rng.uniform(np.log(0.5), np.log(2.0))
    ds, da = 0.0, 0.0
    out = np.empty((num_frames, 2), np.float32)
    for t in range(num_frames):
        out[t] = np.exp(s + a / 2), np.exp(s - a / 2)
        ds, da = 0.92 * ds + steps[t, 0], 0.92 * da + steps[t, 1]
        s, a = s + ds, a + da
        if not lo_s <= s <= hi_s:
            s, ds = np.clip(s, lo_s, hi_s), -ds
        if not lo_a <= a <= hi_a:
            a, da = np.clip(a, lo_a, hi_a), -da
    return out


def _centre_track(rng: np.random.Generator, sizes: np.ndarray, frame_hw: tuple[int, int],
                  speed: float, exit_prob: float) -> np.ndarray:
    """[T, 2] float32 centres (cx, cy) in px moving towards random way-points.

    Inertia 0.85, a Gaussian wobble, rare speed bursts (5-10 px/frame) and bounces at the bounds.
    The bounds let the object leave the frame except for INSIDE_MARGIN px; with probability
    `exit_prob` per way-point the next way-point is on those outer bounds and the object waits
    there for 5-20 frames (an out-of-view episode).
    """
    height, width = frame_hw
    num_frames = len(sizes)
    half = sizes[0] / 2
    pos = np.array([rng.uniform(half[0], width - half[0]), rng.uniform(half[1], height - half[1])])
    vel = rng.normal(0, speed, 2)
    goal, hold, timer, exiting = pos.copy(), 0, 0, False
    wobble = rng.normal(0, 0.3 * speed + 0.1, (num_frames, 2))
    bursts = rng.random(num_frames) < 0.03
    burst_vel = rng.uniform(5, 10, num_frames)[:, None] * _unit(rng.normal(size=(num_frames, 2)))
    out = np.empty((num_frames, 2), np.float32)
    for t in range(num_frames):
        half = sizes[t] / 2
        lo = INSIDE_MARGIN - half
        hi = np.array([width, height]) - INSIDE_MARGIN + half
        out[t] = np.clip(pos, lo, hi)
        timer -= 1
        arrived = np.hypot(*(goal - pos)) < 4
        if exiting and arrived:   # out-of-view episode: wait outside
            exiting, hold = False, int(rng.integers(5, 21))
        if hold > 0:
            hold -= 1
            desired = np.zeros(2)
        else:
            if arrived or timer <= 0:
                exiting = rng.random() < exit_prob
                if exiting:
                    side = int(rng.integers(4))
                    goal = np.array([rng.uniform(0, width), rng.uniform(0, height)])
                    goal[side % 2] = (lo if side < 2 else hi)[side % 2]
                    timer = 200
                else:
                    goal = np.array([rng.uniform(half[0], width - half[0]),
                                     rng.uniform(half[1], height - half[1])])
                    timer = int(rng.integers(15, 60))
            delta = goal - pos
            desired = delta / max(np.hypot(*delta), 1.0) * min(speed, np.hypot(*delta))
        vel = 0.85 * vel + 0.15 * desired + wobble[t] * 0.3
        if bursts[t]:
            vel = burst_vel[t]
        pos = pos + vel
        outside_lo, outside_hi = pos < lo, pos > hi
        vel = np.where(outside_lo | outside_hi, -vel * 0.5, vel)
        pos = np.clip(pos, lo, hi)
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-6)


def _boxes_from_track(centres: np.ndarray, sizes: np.ndarray, frame_hw: tuple[int, int]
                      ) -> np.ndarray:
    """[T, 4] int64 (x0, y0, w, h) of the rendered object (integer placement, w, h >= 4).

    At least INSIDE_MARGIN px of the object stay inside the frame on both axes.
    """
    wh = np.maximum(np.round(sizes), 4)
    x0y0 = np.round(centres - wh / 2)
    limits = np.array([frame_hw[1], frame_hw[0]]) - INSIDE_MARGIN
    x0y0 = np.clip(x0y0, INSIDE_MARGIN - wh, limits)
    return np.concatenate([x0y0, wh], 1).astype(np.int64)


# ------------------------------------------------------------------------------------------------
# Rendering.

def _render_patch(appearance: dict, w: int, h: int, velocity: np.ndarray):
    """Object resized to (w, h), motion-blurred along its dominant motion axis when fast.

    Returns (premultiplied rgb [h', w', 3], alpha [h', w'], pad_x, pad_y): the blur pads the patch
    by pad px on the motion axis on both sides.
    """
    rgb = cv2.resize(appearance['rgb'], (w, h), interpolation=cv2.INTER_LINEAR)
    alpha = cv2.resize(appearance['alpha'], (w, h), interpolation=cv2.INTER_LINEAR)
    premult = rgb * alpha[..., None]
    speed = float(np.hypot(*velocity))
    if speed < BLUR_MIN_SPEED:
        return premult, alpha, 0, 0
    k = int(min(round(speed), 11)) | 1
    pad = k // 2
    horizontal = abs(velocity[0]) >= abs(velocity[1])
    pad_x, pad_y = (pad, 0) if horizontal else (0, pad)
    ksize = (k, 1) if horizontal else (1, k)
    premult = cv2.copyMakeBorder(premult, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_CONSTANT, value=0)
    alpha = cv2.copyMakeBorder(alpha, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_CONSTANT, value=0)
    premult = cv2.blur(premult, ksize, borderType=cv2.BORDER_CONSTANT)
    alpha = cv2.blur(alpha, ksize, borderType=cv2.BORDER_CONSTANT)
    return premult, alpha, pad_x, pad_y


def _paste_slices(x0: int, y0: int, w: int, h: int, width: int, height: int):
    """Frame and patch slices of a [h, w] patch placed at (x0, y0), clipped to the frame."""
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + w, width), min(y0 + h, height)
    if fx1 <= fx0 or fy1 <= fy0:
        return None
    return ((slice(fy0, fy1), slice(fx0, fx1)),
            (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0)))


def _composite(frame: np.ndarray, premult: np.ndarray, alpha: np.ndarray, x0: int, y0: int):
    """frame = frame (1 - alpha) + premult at (x0, y0), in place; returns the frame slices."""
    height, width = frame.shape[:2]
    slices = _paste_slices(x0, y0, alpha.shape[1], alpha.shape[0], width, height)
    if slices is None:
        return None
    fs, ps = slices
    a = alpha[ps][..., None]
    frame[fs] = frame[fs] * (1 - a) + premult[ps]
    return slices


def _moving_object(rng, family, colour_shift, num_frames, frame_hw, speed, exit_prob,
                   init_size):
    """(appearance, integer boxes [T, 4], velocities [T, 2] px/frame) of one moving object."""
    appearance = _appearance(rng, family, colour_shift)
    sizes = _size_track(rng, num_frames, init_size)
    centres = _centre_track(rng, sizes, frame_hw, speed, exit_prob)
    boxes = _boxes_from_track(centres, sizes, frame_hw)
    velocity = np.diff(centres, axis=0, prepend=centres[:1])
    return appearance, boxes, velocity


def _occluder(rng: np.random.Generator, num_frames: int, frame_hw: tuple[int, int]):
    """An opaque textured rectangle or bar drifting slowly across the frame (bounces)."""
    height, width = frame_hw
    if rng.random() < 0.5:
        size = rng.uniform([20, 20], [70, 70])
    else:
        size = rng.uniform([10, 60], [26, 150])
        if rng.random() < 0.5:
            size = size[::-1]
    family = _texture_family(rng)
    appearance = _appearance(rng, family, 0.0)
    appearance['alpha'] = np.ones_like(appearance['alpha'])
    pos = rng.uniform([0, 0], [width, height])
    vel = _unit(rng.normal(size=2)) * rng.uniform(0.3, 1.5)
    wh = np.round(size).astype(np.int64)
    boxes = np.empty((num_frames, 4), np.int64)
    for t in range(num_frames):
        boxes[t] = int(round(pos[0] - wh[0] / 2)), int(round(pos[1] - wh[1] / 2)), wh[0], wh[1]
        pos = pos + vel
        for axis, limit in ((0, width), (1, height)):
            if not 0 <= pos[axis] <= limit:
                vel[axis] = -vel[axis]
                pos[axis] = np.clip(pos[axis], 0, limit)
    return appearance, boxes


def generate_sequence(seed: int, num_frames: int, frame_size: tuple[int, int] = FRAME_SIZE
                      ) -> dict:
    """Renders one synthetic tracking sequence, a pure function of (seed, num_frames, frame_size).

    Returns dict(
      frames [T, H, W, 3] uint8 RGB,
      boxes [T, 4] float32 (x, y, w, h) px: the target's extent clipped to the frame (see module
        doc), always inside the frame with w, h >= 2,
      visible [T] bool: False where < 10% of the target's pixels can be seen,
      visible_fraction [T] float32: fraction of the target's pixels that can be seen,
      occluded_fraction [T] float32: fraction of its in-frame pixels covered by occluders,
      masks [T, H, W] uint8: the target's visible pixels (1): its rendered alpha (motion blur
        included) >= 0.5 and not under an occluder; look-alike distractors are drawn below it).
    Computing the masks draws no random number: frames, boxes and visible flags are the same as
    without them (version 1.1.0's, bit for bit).
    """
    if num_frames < 1:
        raise ValueError(f'generate_sequence(seed={seed}): num_frames must be >= 1, '
                         f'got {num_frames}')
    height, width = (int(v) for v in frame_size)
    if height < 64 or width < 64:
        raise ValueError(f'generate_sequence(seed={seed}): frame_size {frame_size} is below '
                         f'64 x 64 px')
    rng = np.random.default_rng(seed)
    frame_hw = (height, width)
    canvas = _background(rng, height + 2 * PAN_MARGIN, width + 2 * PAN_MARGIN)
    pan = PAN_MARGIN + PAN_MARGIN * np.stack([_smooth_signal(rng, num_frames),
                                              _smooth_signal(rng, num_frames)], 1)
    pan = np.clip(np.round(pan), 0, 2 * PAN_MARGIN).astype(np.int64)

    family = _texture_family(rng)
    speed = float(rng.uniform(0.8, 3.0))
    exit_prob = float(rng.choice([0.0, 0.4]))
    init_size = float(np.exp(rng.uniform(np.log(16), np.log(36))))
    target = _moving_object(rng, family, 0.0, num_frames, frame_hw, speed, exit_prob, init_size)
    distractors = [
        _moving_object(rng, family, float(rng.uniform(20, 45)), num_frames, frame_hw,
                       float(rng.uniform(0.8, 3.0)), 0.0,
                       float(init_size * np.exp(rng.normal(0, 0.2))))
        for _ in range(int(rng.integers(*DISTRACTOR_RANGE)))]
    occluders = [_occluder(rng, num_frames, frame_hw) for _ in range(int(rng.integers(0, 4)))]
    gain = np.exp(0.3 * _smooth_signal(rng, num_frames, (20, 120)))
    offset = 25.0 * _smooth_signal(rng, num_frames, (20, 120))

    frames = np.empty((num_frames, height, width, 3), np.uint8)
    visible_fraction = np.empty(num_frames, np.float32)
    occluded_fraction = np.zeros(num_frames, np.float32)
    masks = np.zeros((num_frames, height, width), np.uint8)
    target_app, target_boxes, target_vel = target
    for t in range(num_frames):
        py, px = pan[t]
        frame = canvas[py:py + height, px:px + width].copy()
        for appearance, boxes, velocity in distractors:
            _draw(frame, appearance, boxes[t], velocity[t])
        _draw(frame, target_app, target_boxes[t], target_vel[t])
        occluder_cover = np.zeros((height, width), np.float32)
        for appearance, boxes in occluders:
            x0, y0, w, h = (int(v) for v in boxes[t])
            slices = _composite(frame, _resize_rgb(appearance, w, h), np.ones((h, w), np.float32),
                                x0, y0)
            if slices is not None:
                occluder_cover[slices[0]] = 1.0
        visible_fraction[t], occluded_fraction[t] = _visibility(
            target_app, target_boxes[t], occluder_cover)
        masks[t] = _target_mask(target_app, target_boxes[t], target_vel[t], occluder_cover)
        frame = frame * gain[t] + offset[t]
        frames[t] = np.clip(frame, 0, 255).astype(np.uint8)
    boxes = _clip_boxes(target_boxes, width, height)
    return dict(frames=frames, boxes=boxes, visible=visible_fraction >= MIN_VISIBLE_FRACTION,
                visible_fraction=visible_fraction, occluded_fraction=occluded_fraction,
                masks=masks)


def _resize_rgb(appearance: dict, w: int, h: int) -> np.ndarray:
    return cv2.resize(appearance['rgb'], (w, h), interpolation=cv2.INTER_LINEAR)


def _draw(frame, appearance, box, velocity):
    """Composites an object (motion-blurred by its velocity) with its box at (x0, y0), in place."""
    x0, y0, w, h = (int(v) for v in box)
    premult, alpha, pad_x, pad_y = _render_patch(appearance, w, h, velocity)
    return _composite(frame, premult, alpha, x0 - pad_x, y0 - pad_y)


def _target_mask(appearance, box, velocity, occluder_cover) -> np.ndarray:
    """[H, W] uint8: 1 where the target's drawn alpha (as `_draw` composites it, motion blur
    included) is >= 0.5 and no occluder covers the pixel."""
    height, width = occluder_cover.shape
    x0, y0, w, h = (int(v) for v in box)
    _, alpha, pad_x, pad_y = _render_patch(appearance, w, h, velocity)
    mask = np.zeros((height, width), np.uint8)
    slices = _paste_slices(x0 - pad_x, y0 - pad_y, alpha.shape[1], alpha.shape[0], width, height)
    if slices is not None:
        fs, ps = slices
        mask[fs] = (alpha[ps] >= 0.5) & (occluder_cover[fs] == 0)
    return mask


def _visibility(appearance, box, occluder_cover):
    """(visible fraction of all target pixels, occluded fraction of its in-frame pixels)."""
    height, width = occluder_cover.shape
    x0, y0, w, h = (int(v) for v in box)
    alpha = cv2.resize(appearance['alpha'], (w, h), interpolation=cv2.INTER_LINEAR)
    total = float(alpha.sum())
    slices = _paste_slices(x0, y0, w, h, width, height)
    if slices is None or total <= 0:
        return 0.0, 0.0
    fs, ps = slices
    inside = alpha[ps]
    in_frame = float(inside.sum())
    seen = float((inside * (1 - occluder_cover[fs])).sum())
    occluded = 1 - seen / in_frame if in_frame > 0 else 0.0
    return seen / total, occluded


def _clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """[T, 4] int (x0, y0, w, h) -> [T, 4] float32 clipped to [0, W] x [0, H]."""
    x0 = np.clip(boxes[:, 0], 0, width)
    y0 = np.clip(boxes[:, 1], 0, height)
    x1 = np.clip(boxes[:, 0] + boxes[:, 2], 0, width)
    y1 = np.clip(boxes[:, 1] + boxes[:, 3], 0, height)
    return np.stack([x0, y0, x1 - x0, y1 - y0], 1).astype(np.float32)


# ------------------------------------------------------------------------------------------------
# TFDS builder and loader.

import tensorflow_datasets as tfds  # noqa: E402  (heavy import kept next to its only user)
from etils import epath  # noqa: E402

from tracking.logs import is_terminal  # noqa: E402

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / 'work' / 'tfds'


def sequence_length(seed: int, min_frames: int, max_frames: int) -> int:
    """Number of frames of the sequence with this seed, uniform in [min_frames, max_frames]."""
    return int(np.random.default_rng([seed, 7]).integers(min_frames, max_frames + 1))


def split_seeds(split: str, count: int) -> list[int]:
    """Seeds of the first `count` sequences of a split (disjoint ranges across splits)."""
    if split not in SPLIT_SEED_OFFSETS:
        raise ValueError(f'synthetic: unknown split {split!r}; choose one of '
                         f'{sorted(SPLIT_SEED_OFFSETS)}')
    return [SPLIT_SEED_OFFSETS[split] + i for i in range(count)]


class SyntheticTrackingConfig(tfds.core.BuilderConfig):
    """Sizes of one variant: sequences per split, frame-count range, frame size (H, W)."""

    def __init__(self, *, num_sequences: dict, frame_range: tuple[int, int],
                 frame_size: tuple[int, int], **kwargs):
        super().__init__(**kwargs)
        self.num_sequences = dict(num_sequences)
        self.frame_range = tuple(frame_range)
        self.frame_size = tuple(frame_size)


class SyntheticTracking(tfds.core.GeneratorBasedBuilder):
    """Procedural single-object tracking sequences (see `generate_sequence`); no download."""

    VERSION = tfds.core.Version('1.2.0')
    RELEASE_NOTES = {
        '1.2.0': "Adds 'masks': each frame's visible target mask (PNG, 0/1); frames, boxes and "
                 'visible flags are 1.1.0\'s unchanged.',
        '1.1.0': 'Less background clutter (3-7 shapes instead of 15-34) and 0-1 look-alike '
                 'distractors instead of 1-3, so that a tiny model can learn in minutes; a static '
                 'box still scores a success AUC of 0.14 on the test split.',
        '1.0.0': 'Initial release: textured target, look-alike distractors, occluders, '
                 'out-of-view episodes, scale/aspect drift, illumination drift, motion blur. '
                 'Frames JPEG (quality 90); boxes xywh clipped to the frame.',
    }
    BUILDER_CONFIGS = [
        SyntheticTrackingConfig(
            name='default', description='200/30/30 sequences of 50-90 frames, 160x160 px.',
            num_sequences=dict(train=200, val=30, test=30), frame_range=(50, 90),
            frame_size=FRAME_SIZE),
        SyntheticTrackingConfig(
            name='small', description='For tests: 4/2/2 sequences of 20-24 frames, 96x96 px.',
            num_sequences=dict(train=4, val=2, test=2), frame_range=(20, 24),
            frame_size=(96, 96)),
    ]

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        # This file. Overrides TFDS's lookup through package resources, which needs the optional
        # `importlib_resources` package.
        return epath.Path(__file__)

    def _info(self) -> tfds.core.DatasetInfo:
        height, width = self.builder_config.frame_size
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict({
                'name': tfds.features.Text(),
                'seed': tfds.features.Scalar(np.int64),
                'frames': tfds.features.Video((None, height, width, 3), encoding_format='jpeg'),
                'boxes': tfds.features.Tensor(shape=(None, 4), dtype=np.float32),
                'visible': tfds.features.Tensor(shape=(None,), dtype=np.bool_),
                'masks': tfds.features.Video((None, height, width, 1), encoding_format='png'),
            }),
            homepage=None,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        return {split: self._generate_examples(split)
                for split in self.builder_config.num_sequences}

    def _generate_examples(self, split: str):
        config = self.builder_config
        for index, seed in enumerate(split_seeds(split, config.num_sequences[split])):
            num_frames = sequence_length(seed, *config.frame_range)
            data = generate_sequence(seed, num_frames, config.frame_size)
            yield index, {
                'name': synthetic_name(split, index),
                'seed': seed,
                'frames': [io.BytesIO(_encode_jpeg(f)) for f in data['frames']],
                'boxes': data['boxes'],
                'visible': data['visible'],
                'masks': [io.BytesIO(_encode_png(m)) for m in data['masks']],
            }


def synthetic_name(split: str, index: int) -> str:
    return f'synthetic_{split}_{index:04d}'


def _encode_jpeg(frame: np.ndarray) -> bytes:
    ok, buf = cv2.imencode('.jpg', cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError('synthetic: JPEG encoding failed')
    return buf.tobytes()


def _encode_png(mask: np.ndarray) -> bytes:
    ok, buf = cv2.imencode('.png', mask)
    if not ok:
        raise RuntimeError('synthetic: PNG encoding failed')
    return buf.tobytes()


def default_data_dir() -> str:
    return os.environ.get('TRACKING_DATA_DIR', str(DEFAULT_DATA_DIR))


def load_synthetic(split: str, data_dir: str | None = None, num_sequences: int | None = None,
                   config: str = 'default') -> list[Sequence]:
    """Builds the dataset into data_dir if needed and returns a split as in-memory Sequences.

    split: 'train', 'val' or 'test' (TFDS slicing such as 'train[:10]' is not accepted; use
    num_sequences). data_dir: TFDS data dir, default $TRACKING_DATA_DIR or <repo>/work/tfds.
    num_sequences: keep the first n sequences (by index). config: 'default' or 'small'.
    Returns Sequences sorted by name, frames [T, H, W, 3] uint8 RGB (decoded JPEG), boxes [T, 4]
    float32 xywh, visible [T] bool, extra {'seed': int, 'image_size': (W, H), 'masks': T PNG
    byte strings of the target masks, decoded per use by `tracking.data.masks.sequence_mask`}.
    """
    import tensorflow as tf

    if split not in SPLIT_SEED_OFFSETS:
        raise ValueError(f'load_synthetic: unknown split {split!r}; choose one of '
                         f'{sorted(SPLIT_SEED_OFFSETS)}')
    builder = SyntheticTracking(data_dir=data_dir or default_data_dir(), config=config)
    if not is_terminal():  # TFDS's own bars would write a line per refresh into a log file
        tfds.disable_progress_bar()
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        compute_stats=tfds.download.ComputeStatsMode.SKIP))
    dataset = builder.as_dataset(split=split, shuffle_files=False,
                                 decoders={'frames': tfds.decode.SkipDecoding(),
                                           'masks': tfds.decode.SkipDecoding()})
    examples = sorted(tfds.as_numpy(dataset), key=lambda e: int(e['seed']))
    if num_sequences is not None:
        examples = examples[:num_sequences]
    sequences = []
    for example in examples:
        frames = np.stack([tf.io.decode_jpeg(f, channels=3).numpy() for f in example['frames']])
        sequences.append(Sequence(
            name=example['name'].decode(), frames=frames, boxes=example['boxes'],
            visible=example['visible'],
            extra={'seed': int(example['seed']),
                   'image_size': (frames.shape[2], frames.shape[1]),
                   'masks': [bytes(m) for m in example['masks']]}))
    return sequences
