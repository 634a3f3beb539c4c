"""SiamAttn's deformable Siamese attention (DSA), NHWC.

Official code: pysot/models/neck/enhance.py (`FeatureEnhance`) and pysot/models/head/attention.py
(`PAM_Module`, `CAM_Calculate`, `CAM_Use`); semantics in /work/shared/specs/siamattn_port.md
section 4. Per level, with weights shared by the template Z [B, 7, 7, C] and the search
X [B, 31, 31, C]:

    A_z = channel_affinity(Z), A_x = channel_affinity(X)
    Z' = PAM(Z) + CAM_Use(Z, A_z) + CAM_Use(Z, A_x)
    X' = PAM(X) + CAM_Use(X, A_x) + CAM_Use(X, A_z)
    Z_out = DCN(Z'), X_out = DCN(X')

Each of the three terms carries its own residual (with every gain 0 the sum is 3 x input), and
one CAM_Use gain serves the self and the cross term. Module names follow the PyTorch keys
(`feature_enhance.pams.0.query_conv.weight` <-> feature_enhance/pams_0/query_conv/kernel).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from siam.deform import deform_conv2d

QUERY_CHANNELS = 32     # PAM query/key width (256 // 8)


def _flatten(x):
    """[B, H, W, C] -> [B, N, C], N = H * W in row-major order (PyTorch's view(B, C, N))."""
    b, h, w, c = x.shape
    return x.reshape(b, h * w, c)


def channel_affinity(x, precision=None):
    """CAM_Calculate: x [B, H, W, C] -> A [B, C, C], row i a softmax over channels j of
    rowmax(G)_i - G_ij with G = X X^T the Gram matrix of the raw features (DANet's form:
    weight goes to the channels least correlated with channel i)."""
    f = _flatten(x)
    gram = jnp.einsum('bnc,bnd->bcd', f, f, precision=precision)
    energy = jnp.max(gram, axis=-1, keepdims=True) - gram
    return jax.nn.softmax(energy, axis=-1)


class PositionAttention(nn.Module):
    """PAM_Module: gamma * (softmax_j(q_i . k_j) applied to v) + x, no 1/sqrt(d) scaling.

    x: [B, H, W, C] -> [B, H, W, C]. q, k: 1x1 convs to 32 channels, v: 1x1 conv to C (all with
    bias); `gamma` a (1,) gain (0 at init, as the official init).
    """
    query_channels: int = QUERY_CHANNELS
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        p = self.precision
        q = nn.Conv(self.query_channels, (1, 1), precision=p, name='query_conv')(x)
        k = nn.Conv(self.query_channels, (1, 1), precision=p, name='key_conv')(x)
        v = nn.Conv(c, (1, 1), precision=p, name='value_conv')(x)
        energy = jnp.einsum('bic,bjc->bij', _flatten(q), _flatten(k), precision=p)
        attention = jax.nn.softmax(energy, axis=-1)
        out = jnp.einsum('bij,bjc->bic', attention, _flatten(v), precision=p).reshape(b, h, w, c)
        gamma = self.param('gamma', nn.initializers.zeros, (1,))
        return gamma[0] * out + x


class ChannelAttentionUse(nn.Module):
    """CAM_Use: gamma * (A X) + x for an affinity A [B, C, C] from `channel_affinity`
    (of x itself or of the other branch). x: [B, H, W, C] -> [B, H, W, C]."""
    precision: Any = None

    @nn.compact
    def __call__(self, x, affinity):
        out = jnp.einsum('bnd,bcd->bnc', _flatten(x), affinity,
                         precision=self.precision).reshape(x.shape)
        gamma = self.param('gamma', nn.initializers.zeros, (1,))
        return gamma[0] * out + x


class DeformConv(nn.Module):
    """DeformConvPack(C, C, 3, padding 1), no bias: offsets from `conv_offset` (3x3, 18 channels,
    bias; zero-initialised as the official init) on the same input, then `deform_conv2d`.
    x: [B, H, W, C] -> ([B, H, W, features], offsets [B, H, W, 18] (2k: y, 2k + 1: x of tap k))."""
    features: int
    kernel_size: int = 3
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        k = self.kernel_size
        pad = (k - 1) // 2
        offsets = nn.Conv(2 * k * k, (k, k), padding=((pad, pad), (pad, pad)),
                          kernel_init=nn.initializers.zeros, precision=self.precision,
                          name='conv_offset')(x)
        kernel = self.param('kernel', nn.initializers.lecun_normal(),
                            (k, k, x.shape[-1], self.features))
        return deform_conv2d(x, offsets, kernel, 1, pad, 1, precision=self.precision), offsets


def dsa_level(pam, cam_use, deform_conv, z, x, precision=None):
    """One level of the DSA with its modules (shared by both branches).

    z: [B, h, w, C] template, x: [B, H, W, C] search. Returns (z_out, x_out, offsets_z,
    offsets_x), offsets as `DeformConv` returns them. The op order is the official one:
    the three terms summed left to right, PAM first.
    """
    affinity_z = channel_affinity(z, precision)
    affinity_x = channel_affinity(x, precision)
    z_sum = pam(z) + cam_use(z, affinity_z) + cam_use(z, affinity_x)
    x_sum = pam(x) + cam_use(x, affinity_x) + cam_use(x, affinity_z)
    z_out, offsets_z = deform_conv(z_sum)
    x_out, offsets_x = deform_conv(x_sum)
    return z_out, x_out, offsets_z, offsets_x


class FeatureEnhance(nn.Module):
    """The DSA on every level (official `FeatureEnhance`): `pams_{l}`, `cam_uses_{l}`,
    `deform_convs_{l}` per level l.

    zs, xs: tuples of [B, h, w, C_l] / [B, H, W, C_l]. Returns (zs_out, xs_out), tuples of the same
    shapes; the DCN offsets are sown into the 'intermediates' collection as
    `dcn_offset_z{l}` / `dcn_offset_x{l}` ([B, h, w, 18] / [B, H, W, 18]).
    """
    in_channels: tuple = (256, 256, 256)
    precision: Any = None

    @nn.compact
    def __call__(self, zs, xs):
        if not len(zs) == len(xs) == len(self.in_channels):
            raise ValueError(f'FeatureEnhance: {len(zs)} template and {len(xs)} search maps '
                             f'for {len(self.in_channels)} levels')
        z_out, x_out = [], []
        for level, (channels, z, x) in enumerate(zip(self.in_channels, zs, xs)):
            p = self.precision
            z_l, x_l, off_z, off_x = dsa_level(
                PositionAttention(precision=p, name=f'pams_{level}'),
                ChannelAttentionUse(precision=p, name=f'cam_uses_{level}'),
                DeformConv(channels, precision=p, name=f'deform_convs_{level}'),
                z, x, precision=p)
            self.sow('intermediates', f'dcn_offset_z{level}', off_z)
            self.sow('intermediates', f'dcn_offset_x{level}', off_x)
            z_out.append(z_l)
            x_out.append(x_l)
        return tuple(z_out), tuple(x_out)
