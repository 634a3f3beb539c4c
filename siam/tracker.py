"""SiamRPN++ tracker (pysot `SiamRPNTracker`): template once, then per frame one search crop,
anchor decoding, scale/ratio penalty, cosine window, size smoothing and clipping.

Frames come in as RGB uint8 [H, W, 3]; the official weights expect BGR 0..255 crops, so each
frame is converted to BGR here before cropping (the padding colour is the BGR frame mean).
Host-side maths is numpy with pysot's dtypes (float32 network outputs, float64 state).
"""
from __future__ import annotations


import jax
import numpy as np

from siam.anchors import score_size, tracker_anchors
from siam.model import SiamRPN, build_model, winograd_variables
from tracking.boxes import validate_box_xywh
from tracking.subwindow import context_size, get_subwindow


def _change(ratio):
    return np.maximum(ratio, 1.0 / ratio)


def cosine_window(size: int, anchor_num: int) -> np.ndarray:
    """outer(hanning(S), hanning(S)), flattened row-major, tiled per anchor: [A*S*S] float64."""
    hann = np.hanning(size)
    return np.tile(np.outer(hann, hann).flatten(), anchor_num)


def foreground_scores(cls: np.ndarray, anchor_num: int) -> np.ndarray:
    """cls [S, S, 2A] logits (channel k * A + a) -> [A*S*S] float32 foreground softmax, index
    a * S * S + y * S + x."""
    logits = np.transpose(np.asarray(cls, np.float32), (2, 0, 1)).reshape(2, -1)
    shifted = np.exp(logits - logits.max(axis=0, keepdims=True))
    return shifted[1] / (shifted[0] + shifted[1])


def decode_boxes(loc: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """loc [S, S, 4A] deltas (channel coord * A + a), anchors [A*S*S, 4] (cx, cy, w, h) ->
    [4, A*S*S] float32 (cx, cy, w, h) in search-crop pixels relative to the crop centre."""
    delta = np.transpose(np.asarray(loc, np.float32), (2, 0, 1)).reshape(4, -1)
    boxes = np.empty_like(delta)
    boxes[0] = delta[0] * anchors[:, 2] + anchors[:, 0]
    boxes[1] = delta[1] * anchors[:, 3] + anchors[:, 1]
    boxes[2] = np.exp(delta[2]) * anchors[:, 2]
    boxes[3] = np.exp(delta[3]) * anchors[:, 3]
    return boxes


class SiamRPNTracker:
    """config: the full config (configs/siamrpn.py); variables: {'params', 'batch_stats'}.

    `initialize(frame, box_xywh)` then `track(frame) -> [4] float64 xywh`; `best_score` holds the
    last frame's foreground score of the chosen anchor.
    """

    def __init__(self, config, variables):
        self.config = config
        self.test = config.test
        model_config = config.model
        self.template_size = int(model_config.template_size)
        # TRACK.INSTANCE_SIZE: the search crop while tracking (AlexNet: 287, trained on 255).
        self.search_size = int(self.test.get('instance_size', None) or model_config.search_size)
        self.anchor_num = int(model_config.rpn.anchor_num)
        anchor = model_config.anchor
        self.score_size = score_size(self.search_size, self.template_size, anchor.stride,
                                     self.test.base_size)
        self.anchors = tracker_anchors(self.score_size, anchor.stride, tuple(anchor.ratios),
                                       tuple(anchor.scales))
        if len(anchor.ratios) * len(anchor.scales) != self.anchor_num:
            raise ValueError(f'SiamRPNTracker: {len(anchor.ratios)} ratios x {len(anchor.scales)} '
                             f'scales != rpn.anchor_num {self.anchor_num}')
        self.window = cosine_window(self.score_size, self.anchor_num)
        conv_impl = self.test.get('conv_impl', 'xla')
        model = build_model(model_config, conv_impl)
        if conv_impl == 'winograd':
            variables = winograd_variables(variables, model_config)
        self.variables = jax.device_put(variables)
        self._template_fn = jax.jit(
            lambda v, z: model.apply(v, z, method=SiamRPN.template_outputs))
        self._track_fn = jax.jit(
            lambda v, x, zf: model.apply(v, x, zf, method=SiamRPN.track_forward))
        self.center = self.size = self.channel_average = self._zf = None
        self.best_score = float('nan')

    # -- network -----------------------------------------------------------------------------
    def run_template(self, z_crops):
        """z_crops [B, 127, 127, 3] float32 (BGR 0..255) -> dict(backbone, neck) (NHWC tuples)."""
        return self._template_fn(self.variables, np.asarray(z_crops, np.float32))

    def run_track(self, x_crops, zf):
        """x_crops [B, X, X, 3] float32 (X = search_size) -> dict(cls [B,S,S,2A],
        loc [B,S,S,4A], neck_x)."""
        return self._track_fn(self.variables, np.asarray(x_crops, np.float32), zf)

    # -- tracking ----------------------------------------------------------------------------
    def _context_size(self):
        """sqrt(w_z h_z) with w_z = w + c (w + h), h_z = h + c (w + h) (unrounded, float64)."""
        return context_size(self.size[0], self.size[1], self.test.context_amount)

    def initialize(self, frame: np.ndarray, box_xywh) -> None:
        """frame [H, W, 3] uint8 RGB; box_xywh (x, y, w, h) in 0-based pixels."""
        image = _to_bgr(frame)
        x, y, w, h = validate_box_xywh(np.asarray(box_xywh, np.float64).reshape(-1),
                                       'SiamRPNTracker.initialize').tolist()
        img_h, img_w = image.shape[:2]
        if x >= img_w or y >= img_h or x + w <= 0 or y + h <= 0:
            raise ValueError(f'SiamRPNTracker.initialize: box {[x, y, w, h]} (x, y, w, h) lies '
                             f'entirely outside the {img_w}x{img_h} frame')
        self.center = np.array([x + (w - 1) / 2, y + (h - 1) / 2])
        self.size = np.array([w, h])
        crop_side = max(1, round(self._context_size()))
        self.channel_average = np.mean(image, axis=(0, 1))
        z_crop = get_subwindow(image, self.center, self.template_size, crop_side,
                               self.channel_average)
        self._zf = self.run_template(z_crop[None].astype(np.float32))['neck']
        self.best_score = 1.0

    def track(self, frame: np.ndarray) -> np.ndarray:
        """frame [H, W, 3] uint8 RGB -> [4] float64 (x, y, w, h) in pixels."""
        if self._zf is None:
            raise RuntimeError('SiamRPNTracker.track called before initialize')
        image = _to_bgr(frame)
        side_z = self._context_size()
        scale_z = self.template_size / side_z
        search_side = side_z * (self.search_size / self.template_size)
        x_crop = get_subwindow(image, self.center, self.search_size, max(1, round(search_side)),
                               self.channel_average)
        outputs = self.run_track(x_crop[None].astype(np.float32), self._zf)
        cls, loc = jax.device_get((outputs['cls'][0], outputs['loc'][0]))
        if cls.shape[0] != self.score_size:
            raise ValueError(f'SiamRPNTracker: score map {cls.shape[:2]} but anchors for '
                             f'{self.score_size}x{self.score_size}')
        score = foreground_scores(cls, self.anchor_num)
        # An untrained or diverging network can overflow exp(); anchors whose box or score is
        # not finite are never chosen (pysot would return NaN). If none is left, the target
        # keeps its last box.
        with np.errstate(over='ignore', invalid='ignore', divide='ignore'):
            boxes = decode_boxes(loc, self.anchors)
            scale_change = _change(context_size(boxes[2], boxes[3])
                                   / context_size(self.size[0] * scale_z,
                                                  self.size[1] * scale_z))
            ratio_change = _change((self.size[0] / self.size[1]) / (boxes[2] / boxes[3]))
            penalty = np.exp(-(ratio_change * scale_change - 1) * self.test.penalty_k)
        influence = self.test.window_influence
        pscore = penalty * score * (1 - influence) + self.window * influence
        valid = np.isfinite(pscore) & np.all(np.isfinite(boxes), axis=0)
        if not valid.any():
            self.best_score = 0.0
            return np.array([*(self.center - self.size / 2), *self.size], np.float64)
        best = int(np.argmax(np.where(valid, pscore, -np.inf)))

        box = boxes[:, best] / scale_z
        rate = penalty[best] * score[best] * self.test.lr
        cx = box[0] + self.center[0]
        cy = box[1] + self.center[1]
        width = self.size[0] * (1 - rate) + box[2] * rate
        height = self.size[1] * (1 - rate) + box[3] * rate
        img_h, img_w = image.shape[:2]
        cx = max(0, min(cx, img_w))
        cy = max(0, min(cy, img_h))
        width = max(10, min(width, img_w))
        height = max(10, min(height, img_h))
        self.center = np.array([cx, cy])
        self.size = np.array([width, height])
        self.best_score = float(score[best])
        return np.array([cx - width / 2, cy - height / 2, width, height], np.float64)


def _to_bgr(frame: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 RGB (or grey [H, W] / [H, W, 1], repeated to 3 channels) -> BGR."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] not in (1, 3) \
            or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f'SiamRPNTracker: frame must be [H, W, 3] (RGB) or [H, W] (grey) '
                         f'uint8, got {frame.shape} {frame.dtype}')
    if frame.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(frame, 3, axis=2))
    return np.ascontiguousarray(frame[..., ::-1])
