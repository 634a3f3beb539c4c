"""pysot AdjustLayer / AdjustAllLayer: 1x1 conv + BN to the RPN width, template centre crop."""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn

from siam.layers import batch_norm, conv

# pysot crops a map to its centre only when its width is below this (templates: 15 -> 7).
CROP_WIDTH_LIMIT = 20


def center_crop(x, center_size: int):
    """Keeps the centre center_size x center_size window of [B, H, W, C] when W < 20.

    The window starts at l = (W - center_size) // 2 on both axes (pysot checks the width only).
    """
    width = x.shape[2]
    if width >= CROP_WIDTH_LIMIT:
        return x
    start = (width - center_size) // 2
    return x[:, start:start + center_size, start:start + center_size, :]


class AdjustLayer(nn.Module):
    """1x1 conv (no bias) -> BN (no ReLU) -> centre crop. [B, H, W, Cin] -> [B, h, w, Cout]."""
    out_channels: int
    center_size: int = 7
    precision: Any = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = conv(self.out_channels, 1, name='downsample_0', precision=self.precision)(x)
        x = batch_norm('downsample_1')(x, train)
        return center_crop(x, self.center_size)


class AdjustAllLayer(nn.Module):
    """One AdjustLayer per level: `downsample2..` (pysot names them i + 2), or `downsample`
    when there is a single level. features: tuple of [B, H, W, C_i]; returns a tuple."""
    out_channels: Sequence[int]
    center_size: int = 7
    precision: Any = None

    @nn.compact
    def __call__(self, features, train: bool = False):
        if len(features) != len(self.out_channels):
            raise ValueError(f'AdjustAllLayer: {len(features)} feature maps for '
                             f'{len(self.out_channels)} levels')
        if len(self.out_channels) == 1:
            return (AdjustLayer(self.out_channels[0], self.center_size, self.precision,
                                name='downsample')(features[0], train),)
        return tuple(AdjustLayer(channels, self.center_size, self.precision,
                                 name=f'downsample{i + 2}')(feature, train)
                     for i, (channels, feature) in enumerate(zip(self.out_channels, features)))
