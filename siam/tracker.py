"""SiamRPN++ tracker (pysot `SiamRPNTracker`) with the `initialize` / `track` protocol: a thin
adapter over the pure functions of `siam.functional.tracker_fns` (one implementation); and
SiamAttn's (`SiamAttnTracker`, over `siam.attn_functional.tracker_fns`, with the VOT polygon).

Frames come in as RGB uint8 [H, W, 3] (grey [H, W] / [H, W, 1] is repeated to 3 channels) and
are checked here; the jitted `init` / `step` do the rest on the device (BGR conversion, crops,
network, post-processing, float64 state). Nothing is padded: frame_hw is the frame's own size,
so a new frame size compiles a new step.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from siam.functional import cosine_window, geometry, prepare_variables, state_scope, tracker_fns
from siam.model import SiamRPN, build_model
from tracking.boxes import validate_box_xywh

__all__ = ['SiamRPNTracker', 'SiamAttnTracker', 'cosine_window']


class _SiamAdapter:
    """What both Siamese adapters share: the jitted `init` / `step` of `self.fns` over
    `self.variables`, frame and box checks, and pysot's state `center` / `size` ([2] float64,
    settable between frames). Subclasses set `name`, `fns`, `variables` and define `track`."""

    name = 'SiamTracker'

    def _jit_fns(self, fns):
        self.fns = fns
        self._init = jax.jit(fns.init)
        self._step = jax.jit(fns.step)
        self.state = None
        self.best_score = float('nan')

    @property
    def center(self):
        """pysot's center_pos (cx, cy): [2] float64, or None before initialize."""
        return None if self.state is None else np.asarray(self.state['center'], np.float64)

    @center.setter
    def center(self, value):
        self._set_state('center', value)

    @property
    def size(self):
        """pysot's size (w, h): [2] float64, or None before initialize."""
        return None if self.state is None else np.asarray(self.state['size'], np.float64)

    @size.setter
    def size(self, value):
        self._set_state('size', value)

    def _set_state(self, key, value):
        if self.state is None:
            raise RuntimeError(f'{self.name}: set {key} after initialize')
        value = np.asarray(value, np.float64).reshape(-1)
        if value.shape != (2,) or not np.all(np.isfinite(value)):
            raise ValueError(f'{self.name}: {key} must be 2 finite numbers, got {value}')
        with state_scope(True):
            self.state = dict(self.state, **{key: jnp.asarray(value, jnp.float64)})

    def initialize(self, frame: np.ndarray, box_xywh) -> None:
        """frame [H, W, 3] uint8 RGB; box_xywh (x, y, w, h) in 0-based pixels."""
        frame = _rgb(frame, self.name)
        x, y, w, h = validate_box_xywh(np.asarray(box_xywh, np.float64).reshape(-1),
                                       f'{self.name}.initialize').tolist()
        img_h, img_w = frame.shape[:2]
        if x >= img_w or y >= img_h or x + w <= 0 or y + h <= 0:
            raise ValueError(f'{self.name}.initialize: box {[x, y, w, h]} (x, y, w, h) lies '
                             f'entirely outside the {img_w}x{img_h} frame')
        with state_scope(True):
            box = jnp.asarray([x, y, w, h], jnp.float64)
        self.state = self._init(self.variables, frame, _hw(frame), box)
        self.best_score = 1.0

    def _track_step(self, frame: np.ndarray):
        """One jitted step on a checked frame -> (frame, out)."""
        if self.state is None:
            raise RuntimeError(f'{self.name}.track called before initialize')
        frame = _rgb(frame, self.name)
        self.state, out = self._step(self.variables, self.state, frame, _hw(frame))
        return frame, out


class SiamRPNTracker(_SiamAdapter):
    """config: the full config (configs/siamrpn.py); variables: {'params', 'batch_stats'} of the
    'xla' model (for test.conv_impl='winograd' they are transformed once, here).

    `initialize(frame, box_xywh)` then `track(frame) -> [4] float64 xywh`; `best_score` holds the
    last frame's foreground score of the chosen anchor; `center` / `size` are pysot's state
    ([2] float64, settable between frames).
    """

    name = 'SiamRPNTracker'

    def __init__(self, config, variables):
        self.config = config
        self.test = config.test
        geo = geometry(config)
        self.template_size, self.search_size = geo.template_size, geo.search_size
        self.anchor_num, self.score_size = geo.anchor_num, geo.score_size
        self.anchors, self.window = geo.anchors, geo.window
        self.variables = jax.device_put(prepare_variables(config, variables))
        self._jit_fns(tracker_fns(config))
        model = build_model(config.model, self.test.get('conv_impl', 'xla'))
        self._template_fn = jax.jit(
            lambda v, z: model.apply(v, z, method=SiamRPN.template_outputs))
        self._track_fn = jax.jit(
            lambda v, x, zf: model.apply(v, x, zf, method=SiamRPN.track_forward))

    # -- network alone (parity tests, benchmarks) ----------------------------------------------
    def run_template(self, z_crops):
        """z_crops [B, 127, 127, 3] float32 (BGR 0..255) -> dict(backbone, neck) (NHWC tuples)."""
        return self._template_fn(self.variables, np.asarray(z_crops, np.float32))

    def run_track(self, x_crops, zf):
        """x_crops [B, X, X, 3] float32 (X = search_size) -> dict(cls [B,S,S,2A],
        loc [B,S,S,4A], neck_x)."""
        return self._track_fn(self.variables, np.asarray(x_crops, np.float32), zf)

    @property
    def _zf(self):
        """The template features with a batch axis (tuple of [1, 7, 7, C]), for run_track."""
        return None if self.state is None else tuple(t[None] for t in self.state['template'])

    def track(self, frame: np.ndarray) -> np.ndarray:
        """frame [H, W, 3] uint8 RGB -> [4] float64 (x, y, w, h) in pixels."""
        _, out = self._track_step(frame)
        self.best_score = float(out['score'])
        center, size = self.center, self.size
        return np.concatenate([center - size / 2, size])


def _hw(frame: np.ndarray) -> np.ndarray:
    return np.asarray(frame.shape[:2], np.int32)


def _rgb(frame: np.ndarray, owner: str = 'SiamRPNTracker') -> np.ndarray:
    """[H, W, 3] uint8 RGB, or grey [H, W] / [H, W, 1] repeated to 3 channels -> [H, W, 3]."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] not in (1, 3) \
            or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f'{owner}: frame must be [H, W, 3] (RGB) or [H, W] (grey) '
                         f'uint8, got {frame.shape} {frame.dtype}')
    if frame.shape[2] == 1:
        return np.repeat(frame, 3, axis=2)
    return frame


class SiamAttnTracker(_SiamAdapter):
    """SiamAttn (official `SiamMaskTracker`) with the `initialize` / `track` protocol: a thin
    adapter over `siam.attn_functional.tracker_fns` (jitted init/step) plus the host polygon
    (`siam.polygon.mask_polygon`, OpenCV).

    config: the full config (configs/siamattn.py); variables: the SiamAttn model's
    {'params', 'batch_stats'}. `initialize(frame, box_xywh)` then `track(frame) -> [4] float64
    (x, y, w, h)` (the axis-aligned box, what one-pass benchmarks score). After `track`:
    `polygon` is the frame's VOT polygon [4, 2] float32 (None when config.test.mask is False, or
    after `initialize`), `best_score` the chosen anchor's foreground score, `out` the step's
    host outputs (RoIs, deltas, mask logits). `state` is the functional state; `center` / `size`
    ([2] float64, pysot's center_pos / size) can be set between frames.
    """

    name = 'SiamAttnTracker'

    def __init__(self, config, variables):
        from siam.attn_functional import tracker_fns as attn_tracker_fns
        self.config = config
        self.variables = jax.device_put(variables)
        self._jit_fns(attn_tracker_fns(config))
        self.polygon = None
        self.out = None

    def initialize(self, frame: np.ndarray, box_xywh) -> None:
        """frame [H, W, 3] uint8 RGB; box_xywh (x, y, w, h) in 0-based pixels."""
        super().initialize(frame, box_xywh)
        self.polygon = None
        self.out = None

    def track(self, frame: np.ndarray) -> np.ndarray:
        """frame [H, W, 3] uint8 RGB -> [4] float64 (x, y, w, h) in pixels; sets `polygon`."""
        frame, out = self._track_step(frame)
        self.out = jax.device_get(out)
        self.best_score = float(self.out['score'])
        self.polygon = self.fns.region(self.out, (frame.shape[1], frame.shape[0]))
        return np.asarray(self.out['box_exact'], np.float64)
