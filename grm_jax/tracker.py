"""GRMTracker: the `initialize`/`track` protocol as a thin adapter over `grm_jax.functional`.

The tracking step itself lives in `grm_jax.functional.tracker_fns` (pure, on the device); this
class validates inputs on the host, keeps the functional state between calls and runs the
jitted init/step, compiled once per model config and frame shape (every threshold shares them).
"""
from __future__ import annotations

import functools

import jax
import numpy as np

from grm_jax.functional import CLIP_MARGIN, MATMUL_PRECISION, hann2d, network_fn, tracker_fns
from grm_jax.model import model_config_of
from tracking.boxes import validate_box_xywh
from tracking.precision import precision_of


def make_forward(config):
    """Jitted network forward for a GRM config (full or model section), cached per model config.

    Returns f(variables, template [B,Ht,Wt,3], search [B,Hs,Ws,3], threshold) -> the GRM output
    dict plus 'window_boxes' [B, 4] ((cx, cy, w, h) crop fractions at the argmax of the
    Hann-weighted score map) and 'window_score' [B]; the same network function the tracking step
    runs (`grm_jax.functional.network_fn`). threshold is a float32 array, so changing it does not
    recompile. f.jitted is the jitted function.
    """
    return _cached_forward(model_config_of(config))


@functools.lru_cache(maxsize=8)
def _cached_forward(model_config):
    forward = jax.jit(network_fn(model_config))

    def call(variables, template, search, threshold=0.0):
        return forward(variables, np.asarray(template, np.float32),
                       np.asarray(search, np.float32), np.asarray(threshold, np.float32))
    call.jitted = forward
    return call


def jitted_fns(config):
    """(init, step) of `tracker_fns(config)` (full GRM config or its model section), jitted and
    cached per model config, so every tracker of one model shares their compilations.

    init(variables, frame, frame_hw, box_xywh, threshold) -> state (threshold traced);
    step(variables, state, frame, frame_hw) -> (state, out).
    """
    return _cached_jitted_fns(model_config_of(config), precision_of(config))


@functools.lru_cache(maxsize=8)
def _cached_jitted_fns(model_config, precision):
    step = tracker_fns(model_config, precision=precision).step

    @jax.jit
    def init(variables, frame, frame_hw, box_xywh, threshold):
        return tracker_fns(model_config, threshold, precision).init(variables, frame, frame_hw,
                                                                     box_xywh)

    return init, jax.jit(step)


def _check_frame(frame, where: str) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f'{where}: frame must be [H, W, 3] uint8 RGB, got {frame.shape} '
                         f'{frame.dtype}')
    return frame


class GRMTracker:
    """The official GRM tracking procedure (spec section 6) on the Flax model.

    config: full GRM config (or its model section); variables: {'params', 'batch_stats'};
    threshold: division threshold (0 = argmax), e.g. config.test.thresholds.lasot.
    Each call runs `grm_jax.functional.tracker_fns`'s init/step on the unpadded frame
    (frame_hw = its shape); `state` is that functional state (None before `initialize`).
    """

    def __init__(self, config, variables, threshold: float = 0.0):
        self.model_config = model_config_of(config)
        self.variables = jax.device_put(variables)
        self.threshold = float(threshold)
        self._init, self._step = jitted_fns(self.model_config)
        self.state = None

    def initialize(self, frame, box_xywh) -> None:
        """frame: [H, W, 3] uint8 RGB; box_xywh: (x, y, w, h) pixels. The template is fixed."""
        frame = _check_frame(frame, 'GRMTracker.initialize')
        box = validate_box_xywh(box_xywh, 'GRMTracker.initialize (init box)')
        if box.shape != (4,):
            raise ValueError(f'GRMTracker.initialize: expected one box (4,), got {box.shape}')
        self.state = self._init(self.variables, frame, np.asarray(frame.shape[:2], np.int32),
                                box.astype(np.float32), np.float32(self.threshold))

    def track(self, frame) -> np.ndarray:
        """frame: [H, W, 3] uint8 RGB. Returns [4] float64 (x, y, w, h) in pixels."""
        if self.state is None:
            raise RuntimeError('GRMTracker.track called before initialize')
        frame = _check_frame(frame, 'GRMTracker.track')
        self.state, out = self._step(self.variables, self.state, frame,
                                     np.asarray(frame.shape[:2], np.int32))
        return np.asarray(out['box'], np.float64)


__all__ = ['CLIP_MARGIN', 'MATMUL_PRECISION', 'GRMTracker', 'hann2d', 'jitted_fns',
           'make_forward']
