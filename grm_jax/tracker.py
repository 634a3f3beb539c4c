"""GRM tracker: fixed template, search crop around the previous box, Hann-windowed argmax."""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from grm_jax import head as head_lib
from grm_jax.model import GRM, model_config_of
from tracking.boxes import clip_box_margin, validate_box_xywh
from tracking.crops import normalize_imagenet, sample_target

CLIP_MARGIN = 10
# The official tracker runs in float32; keep XLA from using TF32/bf16 passes for f32 matmuls and
# convolutions on GPU (a no-op on CPU).
MATMUL_PRECISION = 'highest'


def hann2d(size: int) -> np.ndarray:
    """[size, size] float32 outer product of the 'centered' Hann window
    0.5 (1 - cos(2 pi k / (size + 1))), k = 1..size (no zeros at the borders)."""
    k = np.arange(1, size + 1, dtype=np.float32)
    window = 0.5 * (1.0 - np.cos(np.float32(2.0 * math.pi / (size + 1)) * k)).astype(np.float32)
    return (window[:, None] * window[None, :]).astype(np.float32)


def make_forward(config):
    """Jitted forward for a GRM config (full or model section), shared by every tracker with an
    equal model config (cached), so a model compiles once per input shape.

    Returns f(variables, template [B,Ht,Wt,3], search [B,Hs,Ws,3], threshold) -> the GRM output
    dict plus 'window_boxes' [B, 4]: the (cx, cy, w, h) crop-fraction box at the argmax of the
    Hann-weighted score map. threshold is passed as a float32 array, so changing it does not
    recompile. Runs with float32 matmul precision (MATMUL_PRECISION).
    """
    return _cached_forward(model_config_of(config))


@functools.lru_cache(maxsize=8)
def _cached_forward(model_config):
    model = GRM(model_config)
    window = jnp.asarray(hann2d(model_config.search_size // model_config.patch_size))

    @jax.jit
    def forward(variables, template, search, threshold):
        out = model.apply(variables, template, search, threshold)
        out['window_boxes'] = head_lib.decode_boxes(out['score_map'], out['size_map'],
                                                    out['offset_map'], window)
        return out

    def call(variables, template, search, threshold=0.0):
        with jax.default_matmul_precision(MATMUL_PRECISION):
            return forward(variables, jnp.asarray(template, jnp.float32),
                           jnp.asarray(search, jnp.float32), jnp.asarray(threshold, jnp.float32))
    call.jitted = forward
    return call


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
    """

    def __init__(self, config, variables, threshold: float = 0.0):
        self.model_config = model_config_of(config)
        self.variables = jax.device_put(variables)
        self.threshold = float(threshold)
        self._forward = make_forward(self.model_config)
        self._template = None
        self._state = None     # [4] float64 (x, y, w, h) in pixels

    def initialize(self, frame, box_xywh) -> None:
        """frame: [H, W, 3] uint8 RGB; box_xywh: (x, y, w, h) pixels. The template is fixed."""
        frame = _check_frame(frame, 'GRMTracker.initialize')
        box = validate_box_xywh(box_xywh, 'GRMTracker.initialize (init box)')
        if box.shape != (4,):
            raise ValueError(f'GRMTracker.initialize: expected one box (4,), got {box.shape}')
        cfg = self.model_config
        crop, _, _ = sample_target(frame, box, cfg.template_factor, cfg.template_size)
        self._template = jnp.asarray(normalize_imagenet(crop)[None])
        self._state = box.copy()

    def track(self, frame) -> np.ndarray:
        """frame: [H, W, 3] uint8 RGB. Returns [4] float64 (x, y, w, h) in pixels."""
        if self._state is None:
            raise RuntimeError('GRMTracker.track called before initialize')
        frame = _check_frame(frame, 'GRMTracker.track')
        cfg = self.model_config
        crop, resize_factor, _ = sample_target(frame, self._state, cfg.search_factor,
                                               cfg.search_size)
        search = jnp.asarray(normalize_imagenet(crop)[None])
        out = self._forward(self.variables, self._template, search, self.threshold)
        box_norm = np.asarray(out['window_boxes'][0], np.float32)
        # Crop fractions -> crop pixels (float32 as officially), then image pixels via the
        # previous centre.
        cx, cy, w, h = (box_norm * np.float32(cfg.search_size) / np.float32(resize_factor)).tolist()
        x0, y0, w0, h0 = self._state.tolist()
        half_side = 0.5 * cfg.search_size / resize_factor
        cx_img = cx + (x0 + 0.5 * w0 - half_side)
        cy_img = cy + (y0 + 0.5 * h0 - half_side)
        box = np.array([cx_img - 0.5 * w, cy_img - 0.5 * h, w, h], np.float64)
        self._state = np.asarray(clip_box_margin(box, frame.shape[:2], margin=CLIP_MARGIN),
                                 np.float64)
        return self._state.copy()
