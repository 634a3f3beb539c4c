"""Cross-correlations of the Siamese heads, each one grouped convolution over the batch.

`lax.conv_general_dilated` is a cross-correlation (no kernel flip), like PyTorch's conv2d:
out[b, i, j, c] = sum_{u, v} search[b, i + u, j + v, c] * kernel[b, u, v, c].
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

_DIMENSIONS = ('NHWC', 'HWIO', 'NHWC')


def _check_pair(search, kernel, name):
    if search.ndim != 4 or kernel.ndim != 4:
        raise ValueError(f'{name}: search and kernel must be [B, H, W, C], got '
                         f'{search.shape} and {kernel.shape}')
    if search.shape[0] != kernel.shape[0]:
        raise ValueError(f'{name}: batch sizes differ: search {search.shape}, '
                         f'kernel {kernel.shape}')
    if kernel.shape[1] > search.shape[1] or kernel.shape[2] > search.shape[2]:
        raise ValueError(f'{name}: kernel {kernel.shape} larger than search {search.shape}')


def xcorr_depthwise(search, kernel, precision=None):
    """Per-sample, per-channel correlation (pysot `xcorr_depthwise`), no padding.

    search: [B, H, W, C]; kernel: [B, h, w, C]. Returns [B, H - h + 1, W - w + 1, C].
    The batch is folded into the channels (channel b * C + c) and one conv with
    feature_group_count = B * C slides each kernel channel over its own search channel.
    """
    _check_pair(search, kernel, 'xcorr_depthwise')
    if search.shape[3] != kernel.shape[3]:
        raise ValueError(f'xcorr_depthwise: channel counts differ: search {search.shape}, '
                         f'kernel {kernel.shape}')
    batch, height, width, channels = search.shape
    _, k_height, k_width, _ = kernel.shape
    lhs = jnp.transpose(search, (1, 2, 0, 3)).reshape(1, height, width, batch * channels)
    rhs = jnp.transpose(kernel, (1, 2, 0, 3)).reshape(k_height, k_width, 1, batch * channels)
    out = lax.conv_general_dilated(lhs, rhs, window_strides=(1, 1), padding='VALID',
                                   dimension_numbers=_DIMENSIONS,
                                   feature_group_count=batch * channels, precision=precision)
    out_h, out_w = out.shape[1], out.shape[2]
    return jnp.transpose(out.reshape(out_h, out_w, batch, channels), (2, 0, 1, 3))


def xcorr_fast(search, kernel, precision=None):
    """Full-channel correlation of the UP-channel RPN (pysot `xcorr_fast`), no padding.

    search: [B, H, W, C]; kernel: [B, h, w, K * C], where output channel k uses the kernel
    channels [k * C, (k + 1) * C) (the PyTorch layout of the template conv's output).
    Returns [B, H - h + 1, W - w + 1, K]:
    out[b, i, j, k] = sum_{u, v, c} search[b, i + u, j + v, c] * kernel[b, u, v, k * C + c].
    One conv with feature_group_count = B (group b: search channels of sample b).
    """
    _check_pair(search, kernel, 'xcorr_fast')
    batch, height, width, channels = search.shape
    _, k_height, k_width, k_channels = kernel.shape
    if k_channels % channels:
        raise ValueError(f'xcorr_fast: kernel channels {k_channels} are not a multiple of the '
                         f'search channels {channels}')
    outputs = k_channels // channels
    lhs = jnp.transpose(search, (1, 2, 0, 3)).reshape(1, height, width, batch * channels)
    rhs = kernel.reshape(batch, k_height, k_width, outputs, channels)
    rhs = jnp.transpose(rhs, (1, 2, 4, 0, 3)).reshape(k_height, k_width, channels, batch * outputs)
    out = lax.conv_general_dilated(lhs, rhs, window_strides=(1, 1), padding='VALID',
                                   dimension_numbers=_DIMENSIONS,
                                   feature_group_count=batch, precision=precision)
    out_h, out_w = out.shape[1], out.shape[2]
    return jnp.transpose(out.reshape(out_h, out_w, batch, outputs), (2, 0, 1, 3))
