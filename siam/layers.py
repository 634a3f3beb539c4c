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

BN_EPS = 1e-5
BN_MOMENTUM = 0.1   # PyTorch's convention: weight of the new batch statistic


def conv(features, kernel, stride=1, padding=0, dilation=1, name=None, precision=None,
         use_bias=False, groups=1, impl='xla'):
    """A square conv with PyTorch-style symmetric padding (pixels); bias-free by default.

    impl 'winograd': a `WinogradConv3x3` where `winograd_eligible` (inference only; its
    variables come from `siam.model.winograd_variables`), a matmul for bias-free 1x1 convs
    (same variables as the conv), the XLA conv elsewhere.
    """
    if impl == 'winograd' and winograd_eligible(kernel, stride, padding, dilation, groups,
                                                use_bias):
        return WinogradConv3x3(features, padding, dilation, precision, name=name)
    if impl == 'winograd' and kernel == 1 and stride == 1 and padding == 0 and groups == 1 \
            and not use_bias:
        return PointwiseConv(features, precision, name=name)
    if impl not in ('xla', 'winograd'):
        raise ValueError(f"conv: unknown impl {impl!r} (known: 'xla', 'winograd')")
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


# -- Winograd F(2x2, 3x3) convolution (a faster CPU inference path) --------------------------
# Y = A^T [ (G g G^T) * (B^T d B) ] A over 4x4 input tiles with stride 2 (Lavin & Gray 2016):
# 16 matmuls instead of 36 multiply-adds per 2x2 outputs per channel pair.
_WINO_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))
_WINO_BT = ((1.0, 0.0, -1.0, 0.0), (0.0, 1.0, 1.0, 0.0), (0.0, -1.0, 1.0, 0.0),
            (0.0, 1.0, 0.0, -1.0))
_WINO_AT = ((1.0, 1.0, 1.0, 0.0), (0.0, 1.0, -1.0, -1.0))


def winograd_eligible(kernel, stride, padding, dilation, groups=1, use_bias=False) -> bool:
    """Whether `conv(...)` with these arguments has a Winograd form here: 3x3, stride 1, no
    groups or bias, and padding equal to the dilation (or no padding and no dilation)."""
    return (kernel == 3 and stride == 1 and groups == 1 and not use_bias
            and (padding == dilation or (padding == 0 and dilation == 1)))


def winograd_weights(kernel):
    """[3, 3, C, O] conv kernel (HWIO) -> [4, 4, C, O] Winograd-domain weights G g G^T."""
    g = jnp.asarray(_WINO_G, kernel.dtype)
    return jnp.einsum('ia,abco,jb->ijco', g, kernel, g, precision='highest')


def _winograd_dense(x, u, padding, precision):
    """3x3 stride-1 undilated conv of x [B, H, W, C] with Winograd weights u [4, 4, C, O]."""
    b, h, w, _ = x.shape
    ho, wo = h + 2 * padding - 2, w + 2 * padding - 2
    th, tw = -(-ho // 2), -(-wo // 2)
    xp = jnp.pad(x, ((0, 0), (padding, padding + 2 * th - ho), (padding, padding + 2 * tw - wo),
                     (0, 0)))
    tiles = jnp.stack([jnp.stack([xp[:, i:i + 2 * th:2, j:j + 2 * tw:2] for j in range(4)])
                       for i in range(4)])                           # [4, 4, B, th, tw, C]
    bt = jnp.asarray(_WINO_BT, x.dtype)
    at = jnp.asarray(_WINO_AT, x.dtype)
    v = jnp.einsum('ia,abnhwc,jb->ijnhwc', bt, tiles, bt, precision='highest')
    m = jnp.einsum('ijnhwc,ijco->ijnhwo', v, u, precision=precision)
    y = jnp.einsum('pi,ijnhwo,qj->pqnhwo', at, m, at, precision='highest')  # [2, 2, B, th, tw, O]
    y = jnp.transpose(y, (2, 3, 0, 4, 1, 5)).reshape(b, 2 * th, 2 * tw, -1)
    return y[:, :ho, :wo]


def winograd_conv3x3(x, u, padding: int, dilation: int, precision=None):
    """The conv `conv(O, 3, 1, padding, dilation)` of x [B, H, W, C] from Winograd weights u.

    A dilated conv (padding == dilation == d) is split into d x d interleaved phases of the
    input, each an undilated conv with padding 1, and interleaved back.
    """
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
    [4, 4, C, O] (see `siam.model.winograd_variables`) instead of `kernel`."""
    features: int
    padding: int = 1
    dilation: int = 1
    precision: object = None

    @nn.compact
    def __call__(self, x):
        init = lambda key, shape: winograd_weights(  # noqa: E731
            nn.initializers.lecun_normal()(key, (3, 3) + shape[2:]))
        u = self.param('winograd_kernel', init, (4, 4, x.shape[-1], self.features))
        return winograd_conv3x3(x, u, self.padding, self.dilation, self.precision)
