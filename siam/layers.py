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
         use_bias=False, groups=1):
    """A square conv with PyTorch-style symmetric padding (pixels); bias-free by default."""
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
