"""pysot's AlexNet backbone (`alexnetlegacy` / `alexnet`, NHWC; PyTorch-semantics BatchNorm).

Five stages (see /work/shared/specs/siamrpn.md section 1.2), every conv with a bias and no
padding, channels [96, 256, 384, 384, 256] x width_mult (int-truncated):
  layer1: conv 11x11 s2 -> BN -> maxpool 3x3 s2 -> ReLU
  layer2: conv 5x5      -> BN -> maxpool 3x3 s2 -> ReLU
  layer3: conv 3x3      -> BN -> ReLU
  layer4: conv 3x3      -> BN -> ReLU
  layer5: conv 3x3      -> BN              (no final ReLU)
Sizes: template 127 -> 6x6, search 255 -> 22x22, tracking search 287 -> 26x26.

Module names `layer{L}_0` (conv) and `layer{L}_1` (BN) follow the `alexnet` key layout
(`backbone.layer1.0.weight`); `siam.convert` maps them to the `alexnetlegacy` layout
(`backbone.features.{0,1,4,5,8,9,11,12,14,15}.*`) when the config asks for it.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn

from siam.layers import batch_norm, conv, layer_of

BASE_CHANNELS = (96, 256, 384, 384, 256)
KERNELS = (11, 5, 3, 3, 3)
STRIDES = (2, 1, 1, 1, 1)
POOLED = (True, True, False, False, False)      # 3x3 s2 max-pool after the BN
RELU = (True, True, True, True, False)

# `alexnetlegacy`'s `features` Sequential index of each (layer, 0 conv | 1 BN) module.
LEGACY_INDEX = {(1, 0): 0, (1, 1): 1, (2, 0): 4, (2, 1): 5, (3, 0): 8, (3, 1): 9,
                (4, 0): 11, (4, 1): 12, (5, 0): 14, (5, 1): 15}


def channels(width_mult: float = 1.0) -> tuple[int, ...]:
    """Output channels of layer1..layer5: int(c * width_mult) (pysot's rule)."""
    return tuple(int(c * width_mult) for c in BASE_CHANNELS)


class AlexNet(nn.Module):
    """Input [B, H, W, 3] float32 (raw BGR 0..255 for the official weights).

    train_layers (call argument): pysot layer names ('layer1'..'layer5') whose BatchNorms use
    batch statistics (pysot trains layer4 and layer5). Returns a 1-tuple with the layer5 map
    [B, h, w, 256 * width_mult] (h = 6 for a 127 input, 26 for 287).
    """
    width_mult: float = 1.0
    precision: Any = None

    @nn.compact
    def __call__(self, x, train_layers: Sequence[str] = ()):
        for index, features in enumerate(channels(self.width_mult)):
            layer = index + 1
            name = f'layer{layer}_0'
            x = conv(features, KERNELS[index], STRIDES[index], 0, name=name, use_bias=True,
                     precision=self.precision)(x)
            x = batch_norm(f'layer{layer}_1')(x, layer_of(name) in train_layers)
            if POOLED[index]:
                x = nn.max_pool(x, (3, 3), strides=(2, 2), padding='VALID')
            if RELU[index]:
                x = nn.relu(x)
        return (x,)


def output_channels(width_mult: float = 1.0) -> tuple[int, ...]:
    """Channels of each returned map (one map: layer5)."""
    return (channels(width_mult)[-1],)
