"""SiamAttn's region refinement: fusion neck, deformable RoI pooling, box head and mask head (NHWC).

Official code: pysot/models/neck/feature_fusion.py (`FeatureFusionNeck`), pysot/models/head/
detection.py (`FCx2DetHead`), pysot/models/head/mask.py (`FusedSemanticHead`), the
`DeformRoIPoolingPack` of pysot/models/head/dcn; semantics in /work/shared/specs/siamattn_port.md
sections 3 and 5. Module names follow the PyTorch keys (`feature_fusion.lateral_convs.0.BN256.*`
<-> feature_fusion/lateral_convs_0/BN256/*). Every Linear layer that reads a pooled map reads it
flattened in PyTorch's (C, H, W) order.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from siam.deform import deform_roi_pool
from siam.layers import batch_norm, conv
from siam.rpn import DepthwiseXCorr

SEARCH_SIZE = 255          # RoIs are in search-crop pixels; the pools map the whole crop
DEFORM_FC_CHANNELS = 1024
TRANS_STD = 0.1


class ConvModule(nn.Module):
    """mmdetection ConvModule: k x k conv (no bias, 'same' padding) -> BN (`BN256`) -> ReLU."""
    features: int
    kernel: int = 1
    precision: Any = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = conv(self.features, self.kernel, padding=(self.kernel - 1) // 2, name='conv',
                 precision=self.precision)(x)
        return nn.relu(batch_norm('BN256')(x, train))


def resize_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out, in] float32 weights of PyTorch's bilinear `interpolate(align_corners=True)` on one
    axis: source = dst * float32((in - 1) / (out - 1)), i0 = floor, lambda = source - i0,
    i1 = min(i0 + 1, in - 1); weights (1 - lambda, lambda). No antialiasing."""
    scale = np.float32((in_size - 1) / (out_size - 1)) if out_size > 1 else np.float32(0)
    source = np.arange(out_size, dtype=np.float32) * scale
    i0 = np.minimum(np.floor(source).astype(np.int64), in_size - 1)
    lam = (source - i0.astype(np.float32)).astype(np.float32)
    i1 = np.minimum(i0 + 1, in_size - 1)
    m = np.zeros((out_size, in_size), np.float32)
    np.add.at(m, (np.arange(out_size), i0), np.float32(1) - lam)
    np.add.at(m, (np.arange(out_size), i1), lam)
    return m


def resize_align_corners(x, size: int, precision=None):
    """Bilinear resize of x [B, H, W, C] to [B, size, size, C] with align_corners=True (PyTorch
    `F.interpolate(..., mode='bilinear', align_corners=True)`), separable, as two matmuls."""
    if x.shape[1] == size and x.shape[2] == size:
        return x
    rows = jnp.asarray(resize_matrix(x.shape[1], size))
    cols = jnp.asarray(resize_matrix(x.shape[2], size))
    x = jnp.einsum('oh,bhwc->bowc', rows, x, precision=precision)
    return jnp.einsum('pw,bowc->bopc', cols, x, precision=precision)


class FeatureFusion(nn.Module):
    """FeatureFusionNeck(num_ins=5, fusion_level=1).

    Box features: sum over levels l of convs_l(xcorr_l(z_l, x_l)) (DepthwiseXCorr then a 1x1
    ConvModule) on the DSA outputs -> [B, 25, 25, C].
    Mask features: sum over the five search maps (conv1, layer1, DSA levels) of
    lateral_convs_i(resize_63(map_i)): the align-corners resize to layer1's size comes first,
    then the 1x1 ConvModule (layer1 itself is not resized) -> [B, 63, 63, C].
    """
    channels: int = 256
    num_levels: int = 3
    num_ins: int = 5
    fusion_level: int = 1
    precision: Any = None

    def box_features(self, zs, xs, train: bool = False):
        """zs, xs: DSA outputs (tuples of [B, 7, 7, C] / [B, 31, 31, C]) -> [B, 25, 25, C]."""
        total = None
        for level, (z, x) in enumerate(zip(zs, xs)):
            out = self.xcorr[level](z, x, train)
            out = self.convs[level](out, train)
            total = out if total is None else total + out
        return total

    def mask_features(self, search_maps, train: bool = False):
        """search_maps: the five search maps (conv1 [B, 125, 125, 64], layer1 [B, 63, 63, 256],
        DSA levels [B, 31, 31, C]) -> [B, 63, 63, C]."""
        if len(search_maps) != self.num_ins:
            raise ValueError(f'FeatureFusion.mask_features: {len(search_maps)} maps, expected '
                             f'{self.num_ins}')
        size = search_maps[self.fusion_level].shape[1]
        total = self.lateral_convs[self.fusion_level](search_maps[self.fusion_level], train)
        for i, x in enumerate(search_maps):
            if i == self.fusion_level:
                continue
            out = self.lateral_convs[i](resize_align_corners(x, size, self.precision), train)
            total = total + out
        return total

    def setup(self):
        p = self.precision
        self.xcorr = [DepthwiseXCorr(self.channels, self.channels, precision=p,
                                     name=f'xcorr_{i}') for i in range(self.num_levels)]
        self.convs = [ConvModule(self.channels, 1, p, name=f'convs_{i}')
                      for i in range(self.num_levels)]
        self.lateral_convs = [ConvModule(self.channels, 1, p, name=f'lateral_convs_{i}')
                              for i in range(self.num_ins)]

    def __call__(self, zs, xs, search_maps, train: bool = False):
        return self.box_features(zs, xs, train), self.mask_features(search_maps, train)


def spatial_scale(map_size: int) -> float:
    """The pools' map pixels per crop pixel, computed as the official 1 / (255 / map_size)."""
    return 1.0 / (SEARCH_SIZE / map_size)


def flatten_chw(x):
    """[R, H, W, C] -> [R, C * H * W] in PyTorch's (C, H, W) order."""
    return jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)


class DeformRoIPool(nn.Module):
    """DeformRoIPoolingPack (no_trans False, trans_std 0.1, hidden 1024): pool without offsets,
    offset_fc (Linear C*P*P -> 1024 -> ReLU -> 1024 -> ReLU -> 2*P*P, last layer zero-init) on the
    (C, H, W)-flattened pool, viewed as (2, P, P) = (dx, dy) per bin, then pool again with them.

    features [B, H, W, C], rois [R, 5] (batch index, x1, y1, x2, y2 in search-crop pixels).
    Returns dict(pool0 [R, P, P, C], offsets [R, P, P, 2] (dx, dy before * trans_std),
    pool [R, P, P, C]).
    """
    out_size: int
    spatial_scale: float
    trans_std: float = TRANS_STD
    hidden: int = DEFORM_FC_CHANNELS
    precision: Any = None

    @nn.compact
    def __call__(self, features, rois):
        p, prec = self.out_size, self.precision
        pool0 = deform_roi_pool(features, rois, None, self.spatial_scale, p, self.trans_std)
        h = nn.relu(nn.Dense(self.hidden, precision=prec, name='offset_fc_0')(flatten_chw(pool0)))
        h = nn.relu(nn.Dense(self.hidden, precision=prec, name='offset_fc_2')(h))
        h = nn.Dense(2 * p * p, kernel_init=nn.initializers.zeros, precision=prec,
                     name='offset_fc_4')(h)
        offsets = jnp.transpose(h.reshape(-1, 2, p, p), (0, 2, 3, 1))
        pool = deform_roi_pool(features, rois, offsets, self.spatial_scale, p, self.trans_std)
        return dict(pool0=pool0, offsets=offsets, pool=pool)


class BoxHead(nn.Module):
    """FCx2DetHead: roi_pool_b (P x P on the 25x25 box features, scale 25/255) -> (C, H, W)
    flatten -> FC 512 -> ReLU -> FC 512 -> ReLU -> FC 4 (`tail_det_box`).

    box_features [B, S, S, C], rois [R, 5]. Returns dict(pool0, offsets, pool, deltas [R, 4])
    (normalised deltas (dx, dy, dw, dh), before * stds)."""
    pool_size: int = 4
    hidden: int = 512
    offset_hidden: int = DEFORM_FC_CHANNELS
    precision: Any = None

    @nn.compact
    def __call__(self, box_features, rois):
        scale = spatial_scale(box_features.shape[1])
        out = DeformRoIPool(self.pool_size, scale, hidden=self.offset_hidden,
                            precision=self.precision, name='roi_pool_b')(box_features, rois)
        h = nn.relu(nn.Dense(self.hidden, precision=self.precision,
                             name='tail_det_0')(flatten_chw(out['pool'])))
        h = nn.relu(nn.Dense(self.hidden, precision=self.precision, name='tail_det_2')(h))
        deltas = nn.Dense(4, kernel_init=nn.initializers.normal(0.001), precision=self.precision,
                          name='tail_det_box')(h)
        return dict(out, deltas=deltas)


class PatchConvTranspose(nn.Module):
    """ConvTranspose2d with kernel == stride (no overlap, no padding), plus bias: output pixel
    (k * i + a, k * j + b) = sum_c x[i, j, c] * W[c, o, a, b] + bias[o].

    Variable `transpose_kernel` [k, k, C, O] (PyTorch's (C, O, k, k) transposed (2, 3, 0, 1)),
    `bias` [O]. x: [B, H, W, C] -> [B, k H, k W, O]."""
    features: int
    kernel_size: int
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        k = self.kernel_size
        b, h, w, c = x.shape
        kernel = self.param('transpose_kernel', nn.initializers.lecun_normal(),
                            (k, k, c, self.features))
        bias = self.param('bias', nn.initializers.zeros, (self.features,))
        y = jnp.einsum('nijc,abco->niajbo', x, kernel, precision=self.precision)
        return y.reshape(b, h * k, w * k, self.features) + bias


class MaskHead(nn.Module):
    """FusedSemanticHead: roi_pool_m (P x P on the 63x63 mask features, scale 63/255) ->
    4 x [3x3 conv (no bias) + BN + ReLU] -> ConvTranspose 4x4 stride 4 + ReLU -> 1x1 conv to one
    logit. mask_features [B, S, S, C], rois [R, 5].
    Returns dict(pool0, offsets, pool, logits [R, 4P, 4P, 1]) (logits before the sigmoid)."""
    pool_size: int = 16
    channels: int = 256
    num_convs: int = 4
    upsample: int = 4
    offset_hidden: int = DEFORM_FC_CHANNELS
    precision: Any = None

    @nn.compact
    def __call__(self, mask_features, rois, train: bool = False):
        p = self.precision
        scale = spatial_scale(mask_features.shape[1])
        out = DeformRoIPool(self.pool_size, scale, hidden=self.offset_hidden, precision=p,
                            name='roi_pool_m')(mask_features, rois)
        x = out['pool']
        for i in range(self.num_convs):
            x = ConvModule(self.channels, 3, p, name=f'convs_{i}')(x, train)
        x = nn.relu(PatchConvTranspose(self.channels, self.upsample, p, name='upsample')(x))
        logits = nn.Conv(1, (1, 1), precision=p, name='conv_logits')(x)
        return dict(out, logits=logits)


def pool_sizes(refine_config) -> tuple[int, int]:
    """(box, mask) RoI pooling sizes: ROIPOOL_OUTSIZE // 4 and ROIPOOL_OUTSIZE (4 and 16), or
    `box_pool_size` for the box pool where the config sets it (tiny: 4x4 box pool beside an
    8x8 mask pool)."""
    size = int(refine_config.roi_pool_size)
    box = refine_config.get('box_pool_size', None)
    return (int(box) if box else size // 4), size

