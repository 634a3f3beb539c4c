"""OSTrack center head (`CenterPredictor`) and box decoding."""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from grm_jax.vit import torch_conv_bias_init

BATCH_NORM_EPS = 1e-5
BATCH_NORM_MOMENTUM = 0.9    # flax convention: PyTorch momentum 0.1
SCORE_CLAMP = 1e-4
BRANCHES = ('ctr', 'offset', 'size')
BRANCH_OUT = {'ctr': 1, 'offset': 2, 'size': 2}


class ConvBNReLU(nn.Module):
    """conv 3x3 (stride 1, pad 1, bias) -> BatchNorm -> ReLU, NHWC."""
    features: int

    @nn.compact
    def __call__(self, x, train: bool):
        fan_in = 9 * x.shape[-1]
        x = nn.Conv(self.features, (3, 3), padding=((1, 1), (1, 1)), name='conv',
                    kernel_init=nn.initializers.xavier_uniform(),
                    bias_init=torch_conv_bias_init(fan_in))(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=BATCH_NORM_MOMENTUM,
                         epsilon=BATCH_NORM_EPS, name='bn')(x)
        return nn.relu(x)


class CenterPredictor(nn.Module):
    """Three conv branches on the search feature map [B, F, F, C].

    Returns score_map [B, F, F] (sigmoid, clamped), size_map [B, F, F, 2] (w, h; sigmoid, clamped;
    fractions of the search crop), offset_map [B, F, F, 2] (x, y; raw, in feature cells).
    """
    channels: int = 256

    @nn.compact
    def __call__(self, features, train: bool = False):
        widths = [self.channels, self.channels // 2, self.channels // 4, self.channels // 8]
        outputs = {}
        for branch in BRANCHES:
            x = features
            for level, width in enumerate(widths, start=1):
                x = ConvBNReLU(width, name=f'conv{level}_{branch}')(x, train)
            outputs[branch] = nn.Conv(
                BRANCH_OUT[branch], (1, 1), name=f'conv5_{branch}',
                kernel_init=nn.initializers.xavier_uniform(),
                bias_init=torch_conv_bias_init(widths[-1]))(x)
        score = jnp.clip(nn.sigmoid(outputs['ctr'][..., 0]), SCORE_CLAMP, 1.0 - SCORE_CLAMP)
        size = jnp.clip(nn.sigmoid(outputs['size']), SCORE_CLAMP, 1.0 - SCORE_CLAMP)
        return score, size, outputs['offset']


def decode_boxes(score_map, size_map, offset_map, window=None):
    """Box at the argmax of the (optionally windowed) score map.

    score_map: [B, F, F]; size_map, offset_map: [B, F, F, 2]; window: [F, F] or None.
    Returns [B, 4] float32 (cx, cy, w, h), fractions of the search crop:
    ((ix + off_x) / F, (iy + off_y) / F, w, h) read at the argmax cell (first one on ties).
    """
    b, fh, fw = score_map.shape
    response = score_map if window is None else score_map * window
    idx = jnp.argmax(response.reshape(b, fh * fw), axis=-1)
    iy = idx // fw
    ix = idx % fw
    rows = jnp.arange(b)
    size = size_map.reshape(b, fh * fw, 2)[rows, idx]
    offset = offset_map.reshape(b, fh * fw, 2)[rows, idx]
    cx = (ix.astype(jnp.float32) + offset[:, 0]) / fw
    cy = (iy.astype(jnp.float32) + offset[:, 1]) / fh
    return jnp.stack([cx, cy, size[:, 0], size[:, 1]], axis=-1)
