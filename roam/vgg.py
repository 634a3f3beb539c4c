"""Frozen VGG-16 feature extractor of ROAM: conv1_1 .. relu4_3 with pool3 removed (stride 4).

Layout (official `networks.VGG16`): ten 3x3 stride-1 'same' convolutions, each followed by ReLU,
with a zero pad of one row/column at the bottom/right and a 2x2 stride-2 max pool after conv1_2
and after conv2_2 only. A 281x281 crop gives 282 -> 141 -> 142 -> 71 cells, 512 channels.

Everything is NHWC. Input: float32 RGB in 0..255 minus the per-channel mean
(`preprocess`); no division (MatConvNet-style). Parameters are the plain pytree
{'conv1_1': {'kernel': [3, 3, I, O], 'bias': [O]}, ..., 'conv4_3': ...} (HWIO).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

LAYER_NAMES = ('conv1_1', 'conv1_2', 'conv2_1', 'conv2_2', 'conv3_1', 'conv3_2', 'conv3_3',
               'conv4_1', 'conv4_2', 'conv4_3')
# Channels of the ten convolutions of VGG-16 (conv1_1 .. conv4_3).
VGG16_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512)
# A pool follows these layers (pool1, pool2; pool3 is removed in ROAM).
_POOL_AFTER = ('conv1_2', 'conv2_2')
RGB_MEAN = (123.68, 116.779, 103.939)


def preprocess(rgb, mean=RGB_MEAN):
    """[..., 3] RGB 0..255 (uint8 or float) -> float32 minus `mean` (no scaling)."""
    return jnp.asarray(rgb, jnp.float32) - jnp.asarray(mean, jnp.float32)


def _pad_pool(x):
    """ZeroPad2d((0, 1, 0, 1)) then MaxPool2d(2, 2) on NHWC."""
    x = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
    return nn.max_pool(x, (2, 2), strides=(2, 2), padding='VALID')


class VGG16Features(nn.Module):
    """x [N, H, W, 3] preprocessed -> relu4_3 [N, ceil(ceil(H/2)/2) ..., channels[-1]]
    (281 -> 71). `channels`: the ten conv widths (VGG16_CHANNELS; smaller for tests)."""
    channels: tuple = VGG16_CHANNELS
    precision: str | None = 'highest'

    @nn.compact
    def __call__(self, x):
        if len(self.channels) != len(LAYER_NAMES):
            raise ValueError(f'roam.vgg.VGG16Features: channels needs {len(LAYER_NAMES)} entries, '
                             f'got {len(self.channels)}')
        for name, width in zip(LAYER_NAMES, self.channels):
            x = nn.Conv(width, (3, 3), padding=((1, 1), (1, 1)), name=name,
                        precision=self.precision)(x)
            x = nn.relu(x)
            if name in _POOL_AFTER:
                x = _pad_pool(x)
        return x


def feature_size(crop_size: int) -> int:
    """Side of the relu4_3 map for a square crop of `crop_size` px (281 -> 71)."""
    side = crop_size
    for _ in _POOL_AFTER:
        side = (side + 1) // 2
    return side


def vgg_features(params, x, channels=VGG16_CHANNELS):
    """Pure function: params (the pytree above), x [N, H, W, 3] preprocessed -> [N, h, w, C].
    The result is wrapped in stop_gradient: the extractor is frozen in ROAM."""
    out = VGG16Features(tuple(channels)).apply({'params': params}, x)
    return jax.lax.stop_gradient(out)


def init_params(seed: int = 0, channels=VGG16_CHANNELS) -> dict:
    """Random VGG parameters of the given widths (He-normal kernels, zero biases; numpy, so no
    compilation): for tests and the tiny config, whose extractor is trained from scratch."""
    rng = np.random.default_rng(seed)
    params, fan_in = {}, 3
    for name, width in zip(LAYER_NAMES, channels):
        std = np.sqrt(2.0 / (9 * fan_in))
        params[name] = {'kernel': (rng.standard_normal((3, 3, fan_in, width)) * std
                                   ).astype(np.float32),
                        'bias': np.zeros((width,), np.float32)}
        fan_in = width
    return params
