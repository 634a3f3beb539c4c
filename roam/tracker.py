"""ROAM tracker (tyyyang/ROAM `tracker.Tracker`) with the `initialize` / `track` protocol: a thin
adapter over the jitted pure functions of `roam.functional.tracker_fns` (one implementation).

Frames come in as RGB uint8 [H, W, 3] (grey [H, W] / [H, W, 1] is repeated to 3 channels) and
are checked here, with the box; the jitted `init` / `step` do the rest (crops, frozen VGG,
first-frame step, localisation, sample memory, LSTM updates, float64 box state). Nothing is
padded: frame_hw is the frame's own size, so a new frame size compiles a new step.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from roam.functional import tracker_fns
from siam.functional import state_scope
from tracking.boxes import validate_box_xywh

__all__ = ['ROAMTracker']

# resized_pixels' long division needs 2 * (1.2 W) < 4096 (tracking.device_crops.div_rn32)
MAX_FRAME_SIDE = 1705


class ROAMTracker:
    """config: the full config (configs/roam.py); variables: {'vgg', 'theta0', 'lambda0',
    'meta_opt'} (`roam.convert.from_official`, or a meta-training checkpoint).

    `initialize(frame, box_xywh)` then `track(frame) -> [4] float64 (x, y, w, h)`; `best_score`
    holds the last frame's chosen score (frame 0: the reference score ref_score); `state` is the
    functional state (see roam.functional), `center` / `size` its float64 box.
    """

    def __init__(self, config, variables, float64_state: bool = True):
        self.config = config
        self.float64_state = float64_state
        self.variables = jax.device_put(variables)
        self.fns = tracker_fns(config, float64_state)
        self._init = jax.jit(self.fns.init)
        self._step = jax.jit(self.fns.step)
        self.state = None
        self.best_score = float('nan')
        self.last = {}

    @property
    def center(self):
        """(cx, cy) [2] float64, or None before initialize."""
        return None if self.state is None else np.asarray(self.state['center'], np.float64)

    @property
    def size(self):
        """(w, h) [2] float64, or None before initialize."""
        return None if self.state is None else np.asarray(self.state['size'], np.float64)

    def initialize(self, frame: np.ndarray, box_xywh) -> None:
        """frame [H, W, 3] uint8 RGB; box_xywh (x, y, w, h) in 0-based pixels."""
        frame = _rgb(frame)
        x, y, w, h = validate_box_xywh(np.asarray(box_xywh, np.float64).reshape(-1),
                                       'ROAMTracker.initialize').tolist()
        img_h, img_w = frame.shape[:2]
        if x >= img_w or y >= img_h or x + w <= 0 or y + h <= 0:
            raise ValueError(f'ROAMTracker.initialize: box {[x, y, w, h]} (x, y, w, h) lies '
                             f'entirely outside the {img_w}x{img_h} frame')
        with state_scope(self.float64_state):
            box = jnp.asarray([x, y, w, h], jnp.float64 if self.float64_state else jnp.float32)
        self.state = self._init(self.variables, frame, _hw(frame), box)
        self.best_score = float(self.state['ref_score'])

    def track(self, frame: np.ndarray) -> np.ndarray:
        """frame [H, W, 3] uint8 RGB -> [4] float64 (x, y, w, h) in pixels."""
        if self.state is None:
            raise RuntimeError('ROAMTracker.track called before initialize')
        frame = _rgb(frame)
        self.state, self.last = self._step(self.variables, self.state, frame, _hw(frame))
        self.best_score = float(self.last['score'])
        center, size = self.center, self.size
        return np.concatenate([center - size / 2, size])


def _hw(frame: np.ndarray) -> np.ndarray:
    return np.asarray(frame.shape[:2], np.int32)


def _rgb(frame: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 RGB, or grey [H, W] / [H, W, 1] repeated to 3 channels -> [H, W, 3]."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] not in (1, 3) \
            or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f'ROAMTracker: frame must be [H, W, 3] (RGB) or [H, W] (grey) uint8, '
                         f'got {frame.shape} {frame.dtype}')
    if max(frame.shape[:2]) > MAX_FRAME_SIDE:
        raise ValueError(f'ROAMTracker: frame {frame.shape[1]}x{frame.shape[0]} is larger than '
                         f'{MAX_FRAME_SIDE} px on a side (the first-frame aspect resize to '
                         f'1.2 x the width must stay under 2048 px; resize the video)')
    if frame.shape[2] == 1:
        return np.repeat(frame, 3, axis=2)
    return frame
