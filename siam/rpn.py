"""pysot RPN heads (NHWC): depthwise (SiamRPN++), multi-level, and UP-channel (SiamRPN).

Output channel layout is PyTorch's: cls channel k * A + a (k = 0 background, 1 foreground),
loc channel coord * A + a with coord in (dx, dy, dw, dh); anchor a in ratio order.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from siam.layers import batch_norm, conv
from siam.xcorr import xcorr_depthwise, xcorr_fast


class ConvBNReLU(nn.Module):
    """Unpadded k x k conv (no bias) -> BN -> ReLU; names `0`/`1` as in pysot's Sequentials."""
    features: int
    kernel: int = 3
    precision: Any = None
    conv_impl: str = 'xla'   # siam.layers.conv's impl (Winograd: inference variables)

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = conv(self.features, self.kernel, name='0', precision=self.precision,
                 impl=self.conv_impl)(x)
        return nn.relu(batch_norm('1')(x, train))


class DepthwiseXCorr(nn.Module):
    """conv_kernel(z) (7 -> 5), conv_search(x) (31 -> 29), depthwise xcorr (-> 25), 1x1 head.

    z: [B, hz, wz, C]; x: [B, H, W, C]. Returns [B, H - hz + 1, W - wz + 1, out_channels]
    (the two unpadded 3x3 convs shrink both maps by 2).
    """
    hidden: int
    out_channels: int
    kernel_size: int = 3
    precision: Any = None
    conv_impl: str = 'xla'   # siam.layers.conv's impl for the bias-free convs

    @nn.compact
    def __call__(self, z, x, train: bool = False):
        p, impl = self.precision, self.conv_impl
        kernel = ConvBNReLU(self.hidden, self.kernel_size, p, impl, name='conv_kernel')(z, train)
        search = ConvBNReLU(self.hidden, self.kernel_size, p, impl, name='conv_search')(x, train)
        feature = xcorr_depthwise(search, kernel, precision=p)
        out = conv(self.hidden, 1, name='head_0', precision=p, impl=impl)(feature)
        out = nn.relu(batch_norm('head_1')(out, train))
        out = nn.Conv(self.out_channels, (1, 1), use_bias=True, precision=p, name='head_3')(out)
        return out


def single_level(z, x, name):
    """Unwraps 1-tuples of maps (what a neck or backbone returns) into the maps themselves."""
    if isinstance(z, (tuple, list)) != isinstance(x, (tuple, list)):
        raise ValueError(f'{name}: template and search must both be maps or both be tuples')
    if isinstance(z, (tuple, list)):
        if len(z) != 1 or len(x) != 1:
            raise ValueError(f'{name}: single-level head given {len(z)} template and {len(x)} '
                             f'search maps')
        z, x = z[0], x[0]
    return z, x


class DepthwiseRPN(nn.Module):
    """Separate `cls` (2A channels) and `loc` (4A channels) DepthwiseXCorr branches.

    z, x: [B, h, w, C] / [B, H, W, C] maps, or 1-tuples of them (single-level use as
    `rpn_head`, e.g. AlexNet). Returns (cls [B, S, S, 2A], loc [B, S, S, 4A]).
    """
    anchor_num: int = 5
    channels: int = 256
    precision: Any = None
    conv_impl: str = 'xla'

    @nn.compact
    def __call__(self, z, x, train: bool = False):
        z, x = single_level(z, x, 'DepthwiseRPN')
        cls = DepthwiseXCorr(self.channels, 2 * self.anchor_num, precision=self.precision,
                             conv_impl=self.conv_impl, name='cls')(z, x, train)
        loc = DepthwiseXCorr(self.channels, 4 * self.anchor_num, precision=self.precision,
                             conv_impl=self.conv_impl, name='loc')(z, x, train)
        return cls, loc


def combine_levels(outputs, level_logits=None):
    """Sum of per-level maps weighted by softmax(level_logits), or their plain mean if None."""
    stacked = jnp.stack(outputs, axis=0)
    if level_logits is None:
        return jnp.mean(stacked, axis=0)
    weights = jax.nn.softmax(level_logits.astype(stacked.dtype))
    return jnp.tensordot(weights, stacked, axes=(0, 0))


class MultiRPN(nn.Module):
    """One DepthwiseRPN per level (`rpn2`, `rpn3`, ...). weighted: learnt level logits
    `cls_weight`/`loc_weight` (3,), softmax-normalised at use; otherwise the plain mean.

    zs, xs: tuples of [B, h, w, C_i] / [B, H, W, C_i].
    Returns (cls [B, S, S, 2A], loc [B, S, S, 4A]).
    """
    anchor_num: int = 5
    in_channels: Sequence[int] = (256, 256, 256)
    weighted: bool = True
    precision: Any = None
    conv_impl: str = 'xla'

    @nn.compact
    def __call__(self, zs, xs, train: bool = False):
        if not len(zs) == len(xs) == len(self.in_channels):
            raise ValueError(f'MultiRPN: {len(zs)} template and {len(xs)} search maps for '
                             f'{len(self.in_channels)} levels')
        cls_levels, loc_levels = [], []
        for i, (channels, z, x) in enumerate(zip(self.in_channels, zs, xs)):
            cls, loc = DepthwiseRPN(self.anchor_num, channels, self.precision, self.conv_impl,
                                    name=f'rpn{i + 2}')(z, x, train)
            cls_levels.append(cls)
            loc_levels.append(loc)
        cls_logits = loc_logits = None
        if self.weighted:
            levels = len(self.in_channels)
            cls_logits = self.param('cls_weight', nn.initializers.ones, (levels,))
            loc_logits = self.param('loc_weight', nn.initializers.ones, (levels,))
        return combine_levels(cls_levels, cls_logits), combine_levels(loc_levels, loc_logits)


class UPChannelRPN(nn.Module):
    """pysot UPChannelRPN (original SiamRPN's up-channel cross-correlation); every conv has a
    bias, there is no BN and no ReLU (`train` is accepted and ignored).

    template_cls_conv / template_loc_conv: 3x3 C -> C * 2A / C * 4A; search_cls_conv /
    search_loc_conv: 3x3 C -> C; each template map is then 2A (4A) full-depth kernels
    correlated over its search map (siam.xcorr.xcorr_fast), and loc goes through the 1x1
    `loc_adjust` (4A -> 4A). z, x: [B, h, w, C] / [B, H, W, C] or 1-tuples of them.
    Returns (cls [B, S, S, 2A], loc [B, S, S, 4A]) with S = H - h + 1 (AlexNet: 26, 6 -> 21).
    """
    anchor_num: int = 5
    feature_in: int = 256
    precision: Any = None

    @nn.compact
    def __call__(self, z, x, train: bool = False):
        del train
        z, x = single_level(z, x, 'UPChannelRPN')
        p, c = self.precision, self.feature_in
        cls_out, loc_out = 2 * self.anchor_num, 4 * self.anchor_num
        cls_kernel = conv(c * cls_out, 3, name='template_cls_conv', use_bias=True, precision=p)(z)
        loc_kernel = conv(c * loc_out, 3, name='template_loc_conv', use_bias=True, precision=p)(z)
        cls_feature = conv(c, 3, name='search_cls_conv', use_bias=True, precision=p)(x)
        loc_feature = conv(c, 3, name='search_loc_conv', use_bias=True, precision=p)(x)
        cls = xcorr_fast(cls_feature, cls_kernel, precision=p)
        loc = xcorr_fast(loc_feature, loc_kernel, precision=p)
        loc = conv(loc_out, 1, name='loc_adjust', use_bias=True, precision=p)(loc)
        return cls, loc
