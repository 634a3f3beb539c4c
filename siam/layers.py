"""Layers shared by the Siamese models: PyTorch-style convs and BatchNorm (NHWC).

BatchNorm follows torch.nn.BatchNorm2d exactly (eps 1e-5, momentum 0.1):
  eval (train=False): y = x * alpha + beta, alpha = scale / sqrt(var + eps),
                      beta = bias - mean * alpha (PyTorch's CPU arithmetic);
  train (train=True): normalise with the batch mean and the *biased* batch variance over
                      (N, H, W), and update running_mean <- 0.9 running_mean + 0.1 mean,
                      running_var <- 0.9 running_var + 0.1 unbiased variance (n / (n - 1)).
Flax's own nn.BatchNorm keeps the biased variance in its running average, which is why this one
exists. Variables are named as flax's: params `scale`/`bias`, batch_stats `mean`/`var`.
Running statistics are updated only when the caller makes 'batch_stats' mutable.
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

BN_EPS = 1e-5
BN_MOMENTUM = 0.1   # PyTorch's convention: weight of the new batch statistic


def conv(features, kernel, stride=1, padding=0, dilation=1, name=None, precision=None,
         use_bias=False, groups=1, impl='xla'):
    """A square conv with PyTorch-style symmetric padding (pixels); bias-free by default.

    impl 'winograd' / 'winograd4': a `WinogradConv3x3` of F(2x2, 3x3) / F(4x4, 3x3) where
    `winograd_eligible` (inference only; its variables come from
    `siam.model.winograd_variables`), a matmul for bias-free 1x1 convs (same variables as the
    conv), the XLA conv elsewhere.
    """
    if impl not in CONV_IMPLS:
        raise ValueError(f'conv: unknown impl {impl!r} (known: {CONV_IMPLS})')
    if impl in WINOGRAD_TILES and winograd_eligible(kernel, stride, padding, dilation, groups,
                                                    use_bias):
        return WinogradConv3x3(features, padding, dilation, precision, WINOGRAD_TILES[impl],
                               name=name)
    if impl in WINOGRAD_TILES and kernel == 1 and stride == 1 and padding == 0 and groups == 1 \
            and not use_bias:
        return PointwiseConv(features, precision, name=name)
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                   padding=((padding, padding), (padding, padding)),
                   kernel_dilation=(dilation, dilation), use_bias=use_bias,
                   feature_group_count=groups, precision=precision, name=name)


class BatchNorm(nn.Module):
    """torch.nn.BatchNorm2d over the last axis; `train` selects batch or running statistics."""
    epsilon: float = BN_EPS
    momentum: float = BN_MOMENTUM

    @nn.compact
    def __call__(self, x, train: bool = False):
        channels = x.shape[-1]
        scale = self.param('scale', nn.initializers.ones, (channels,))
        bias = self.param('bias', nn.initializers.zeros, (channels,))
        running_mean = self.variable('batch_stats', 'mean', jnp.zeros, (channels,))
        running_var = self.variable('batch_stats', 'var', jnp.ones, (channels,))
        if not train:
            alpha = scale * (1.0 / jnp.sqrt(running_var.value + self.epsilon))
            beta = bias - running_mean.value * alpha
            return x * alpha + beta
        axes = tuple(range(x.ndim - 1))
        count = 1
        for axis in axes:
            count *= x.shape[axis]
        mean = jnp.mean(x, axis=axes)
        var = jnp.mean(jnp.square(x - mean), axis=axes)
        if not self.is_initializing() and self.is_mutable_collection('batch_stats'):
            unbiased = var * (count / max(count - 1, 1))
            m = self.momentum
            running_mean.value = (1.0 - m) * running_mean.value + m * mean
            running_var.value = (1.0 - m) * running_var.value + m * unbiased
        return (x - mean) * (scale / jnp.sqrt(var + self.epsilon)) + bias


def batch_norm(name):
    """A BatchNorm with PyTorch's eps and momentum (see BatchNorm)."""
    return BatchNorm(name=name)


def layer_of(module_name: str) -> str:
    """pysot layer a backbone module belongs to: 'layer2_0' -> 'layer2', 'bn1' -> 'bn1'."""
    return module_name.split('_')[0]


# -- Winograd F(m x m, 3x3) convolutions (faster CPU inference paths) -----------------------
# Y = A^T [ (G g G^T) * (B^T d B) ] A over n x n input tiles (n = m + 2) taken with stride m
# (Lavin & Gray 2016): n^2 batched matmuls instead of 9 m^2 multiply-adds per m x m outputs per
# channel pair, i.e. 2.25x fewer multiplies for m = 2 (conv_impl 'winograd') and 4x fewer for
# m = 4 ('winograd4'). The matrices are the Cook-Toom construction on the points below plus the
# point at infinity. For m = 4 the points 0, +-1, 1/2, -2 (Barabasz et al. 2020, "Error
# analysis and improving the accuracy of Winograd convolution") give about 1.2x lower mean and
# 2.5x lower max float32 error than the textbook 0, +-1, +-2 (measured here on a 256 -> 64
# channel 31x31 conv against a float64 reference: mean 1.43e-6 vs 1.75e-6, max 2.1e-5 vs 5.4e-5).
WINOGRAD_POINTS = {2: (0.0, 1.0, -1.0), 4: (0.0, 1.0, -1.0, 0.5, -2.0)}
WINOGRAD_TILES = {'winograd': 2, 'winograd4': 4}     # conv_impl -> output tile side m
CONV_IMPLS = ('xla',) + tuple(WINOGRAD_TILES)


def winograd_matrices(m: int, points=None):
    """(A^T [m, n], G [n, 3], B^T [n, n]) float64 numpy arrays of Winograd F(m, 3), n = m + 2.

    Cook-Toom on the n - 1 finite `points` p_j (default WINOGRAD_POINTS[m]) and infinity:
    A^T[i, j] = p_j^i, G[j, k] = p_j^k / prod_{l != j} (p_j - p_l), B^T[j] = the coefficients
    (x^0 first) of prod_{l != j} (x - p_l); the infinity row/column picks the top coefficient.
    Then for a 1-D signal d [n] and filter g [3]: y_i = sum_k g_k d_{i+k} = A^T ((G g) * (B^T d)).
    All entries of A^T and B^T are exact in float32 for dyadic points.
    """
    points = tuple(WINOGRAD_POINTS[m] if points is None else points)
    n = m + 2
    if len(points) != n - 1:
        raise ValueError(f'winograd_matrices: F({m}, 3) needs {n - 1} finite points, got {points}')
    at = np.zeros((m, n))
    g = np.zeros((n, 3))
    bt = np.zeros((n, n))
    for j, p in enumerate(points):
        others = [q for q in points if q != p]
        at[:, j] = [p ** i for i in range(m)]
        g[j] = [p ** k / np.prod([p - q for q in others]) for k in range(3)]
        bt[j, :n - 1] = np.poly(others)[::-1]
    at[m - 1, n - 1] = 1.0
    g[n - 1, 2] = 1.0
    bt[n - 1] = np.poly(points)[::-1]
    return at, g, bt


def winograd_eligible(kernel, stride, padding, dilation, groups=1, use_bias=False) -> bool:
    """Whether `conv(...)` with these arguments has a Winograd form here: 3x3, stride 1, no
    groups or bias, and padding equal to the dilation (or no padding and no dilation)."""
    return (kernel == 3 and stride == 1 and groups == 1 and not use_bias
            and (padding == dilation or (padding == 0 and dilation == 1)))


def winograd_weights(kernel, tile: int = 2):
    """[3, 3, C, O] conv kernel (HWIO) -> [n, n, C, O] Winograd-domain weights G g G^T of
    F(tile x tile, 3x3), n = tile + 2 (computed once, e.g. by `siam.model.winograd_variables`)."""
    g = jnp.asarray(winograd_matrices(tile)[1], kernel.dtype)
    return jnp.einsum('ia,abco,jb->ijco', g, kernel, g, precision='highest')


def _winograd_dense(x, u, padding, precision):
    """3x3 stride-1 undilated conv of x [B, H, W, C] with Winograd weights u [n, n, C, O]
    (F(m x m, 3x3), m = n - 2).

    Three matmuls: the n^2 strided slices of the padded input (one per tile position) stacked
    into [n^2, tiles * C] and transformed by B^T (x) B^T [n^2, n^2]; the n^2 products, one
    batched matmul [n^2, tiles, C] x [n^2, C, O]; and A^T (x) A^T [m^2, n^2] on those. The two
    transforms are small dense matmuls (n^2 = 36 terms), cheap against the products and quick
    to compile (an unrolled sum-of-slices form compiled 3x slower and ran no faster here).
    """
    n = u.shape[0]
    m = n - 2
    at, _, bt = winograd_matrices(m)
    b, h, w, c = x.shape
    o = u.shape[-1]
    ho, wo = h + 2 * padding - 2, w + 2 * padding - 2
    th, tw = -(-ho // m), -(-wo // m)
    xp = jnp.pad(x, ((0, 0), (padding, padding + m * th - ho), (padding, padding + m * tw - wo),
                     (0, 0)))
    tiles = jnp.stack([xp[:, i:i + m * (th - 1) + 1:m, j:j + m * (tw - 1) + 1:m]
                       for i in range(n) for j in range(n)])             # [n^2, B, th, tw, C]
    v = jnp.dot(jnp.asarray(np.kron(bt, bt), x.dtype), tiles.reshape(n * n, -1),
                precision='highest').reshape(n * n, b * th * tw, c)
    prod = jnp.einsum('kpc,kco->kpo', v, u.reshape(n * n, c, o), precision=precision)
    y = jnp.dot(jnp.asarray(np.kron(at, at), x.dtype), prod.reshape(n * n, -1),
                precision='highest').reshape(m, m, b, th, tw, o)
    y = jnp.transpose(y, (2, 3, 0, 4, 1, 5)).reshape(b, m * th, m * tw, o)
    return y[:, :ho, :wo]


def winograd_conv3x3(x, u, padding: int, dilation: int, precision=None):
    """The conv `conv(O, 3, 1, padding, dilation)` of x [B, H, W, C] from Winograd weights u
    [n, n, C, O] (`winograd_weights(kernel, tile=n - 2)`; the tile is read from u's shape).

    A dilated conv (padding == dilation == d) is split into d x d interleaved phases of the
    input, each an undilated conv with padding 1, and interleaved back.
    """
    if u.shape[0] - 2 not in WINOGRAD_POINTS or u.shape[0] != u.shape[1]:
        raise ValueError(f'winograd_conv3x3: weights of shape {u.shape} are not [n, n, C, O] with '
                         f'n - 2 in {tuple(WINOGRAD_POINTS)}')
    if dilation == 1:
        return _winograd_dense(x, u, padding, precision)
    if padding != dilation:
        raise ValueError(f'winograd_conv3x3: padding {padding} must equal dilation {dilation}')
    d = dilation
    b, h, w, c = x.shape
    hp, wp = -(-h // d) * d, -(-w // d) * d
    xp = jnp.pad(x, ((0, 0), (0, hp - h), (0, wp - w), (0, 0)))
    phases = xp.reshape(b, hp // d, d, wp // d, d, c).transpose(2, 4, 0, 1, 3, 5)
    y = _winograd_dense(phases.reshape(d * d * b, hp // d, wp // d, c), u, 1, precision)
    y = y.reshape(d, d, b, hp // d, wp // d, -1).transpose(2, 3, 0, 4, 1, 5)
    return y.reshape(b, hp, wp, -1)[:, :h, :w]


class PointwiseConv(nn.Module):
    """A bias-free 1x1 conv as one matmul (XLA's CPU matmul is faster than its 1x1 conv);
    variable `kernel` [1, 1, C, O] as nn.Conv's."""
    features: int
    precision: object = None

    @nn.compact
    def __call__(self, x):
        kernel = self.param('kernel', nn.initializers.lecun_normal(),
                            (1, 1, x.shape[-1], self.features))
        return jnp.einsum('bhwc,co->bhwo', x, kernel[0, 0], precision=self.precision)


class WinogradConv3x3(nn.Module):
    """Inference twin of `conv(features, 3, 1, padding, dilation)` holding `winograd_kernel`
    [n, n, C, O], n = tile + 2 (see `siam.model.winograd_variables`) instead of `kernel`."""
    features: int
    padding: int = 1
    dilation: int = 1
    precision: object = None
    tile: int = 2

    @nn.compact
    def __call__(self, x):
        init = lambda key, shape: winograd_weights(  # noqa: E731
            nn.initializers.lecun_normal()(key, (3, 3) + shape[2:]), self.tile)
        n = self.tile + 2
        u = self.param('winograd_kernel', init, (n, n, x.shape[-1], self.features))
        return winograd_conv3x3(x, u, self.padding, self.dilation, self.precision)
