"""pysot's dilated MobileNetV2 backbone (NHWC; PyTorch-semantics BatchNorm, ReLU6).

See /work/shared/specs/siamrpn.md section 1.3. `layer0`: 3x3 s2 conv (no padding, no bias),
3 -> int(32 * width_mult), BN, ReLU6. Then seven stages of inverted residual blocks with
settings (t expansion, c channels, n blocks, s stride, d dilation) below; stages 4..7 keep
stride 1 and are dilated, so the total stride is 8 (template 127 -> 15x15, search 255 -> 31x31).
Block: 1x1 expand (t * in) -> BN -> ReLU6 -> 3x3 depthwise (stride s, dilation d, padding 0 for
stride 2, else d) -> BN -> ReLU6 -> 1x1 project -> BN, plus the input when stride 1 and in == out.
When a stage's dilation differs from the previous stage's, its first block uses max(d // 2, 1).

Module names follow the PyTorch keys: `layer0_0`/`layer0_1` <-> `layer0.0`/`layer0.1`,
`layer3_1` / `conv_4` <-> `layer3.1.conv.4`.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn

from siam.layers import batch_norm, conv, layer_of

# (t, c, n, s, d) per stage layer1..layer7.
SETTINGS = ((1, 16, 1, 1, 1), (6, 24, 2, 2, 1), (6, 32, 3, 2, 1), (6, 64, 4, 1, 2),
            (6, 96, 3, 1, 2), (6, 160, 3, 1, 4), (6, 320, 1, 1, 4))
STEM_CHANNELS = 32


def relu6(x):
    return nn.relu6(x)


class InvertedResidual(nn.Module):
    """Expand 1x1 -> depthwise 3x3 -> project 1x1 (`conv_0..conv_7`), residual if stride 1
    and in == out. [B, H, W, in] -> [B, H', W', out_channels]."""
    out_channels: int
    stride: int = 1
    expand_ratio: int = 6
    dilation: int = 1
    precision: Any = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        p = self.precision
        in_channels = x.shape[-1]
        hidden = in_channels * self.expand_ratio
        padding = self.dilation if self.dilation > 1 else 2 - self.stride
        out = conv(hidden, 1, name='conv_0', precision=p)(x)
        out = relu6(batch_norm('conv_1')(out, train))
        out = conv(hidden, 3, self.stride, padding, self.dilation, name='conv_3', precision=p,
                   groups=hidden)(out)
        out = relu6(batch_norm('conv_4')(out, train))
        out = conv(self.out_channels, 1, name='conv_6', precision=p)(out)
        out = batch_norm('conv_7')(out, train)
        if self.stride == 1 and in_channels == self.out_channels:
            out = out + x
        return out


def block_layout(width_mult: float = 1.0):
    """Per stage (1..7) a list of per-block dicts (out_channels, stride, expand_ratio, dilation),
    following pysot's rule for the first block of a stage whose dilation changes."""
    stages, last_dilation = [], 1
    for t, c, n, s, d in SETTINGS:
        out_channels = int(c * width_mult)
        first_dilation = d if d == last_dilation else max(d // 2, 1)
        blocks = [dict(out_channels=out_channels, stride=s, expand_ratio=t,
                       dilation=first_dilation)]
        blocks += [dict(out_channels=out_channels, stride=1, expand_ratio=t, dilation=d)
                   for _ in range(1, n)]
        stages.append(blocks)
        last_dilation = d
    return stages


class MobileNetV2(nn.Module):
    """Input [B, H, W, 3] float32. used_layers: which of layer0..layer7 to return (pysot:
    (3, 5, 7) -> 44, 134, 448 channels at width 1.4). train_layers (call argument): pysot layer
    names ('layer0'..'layer7') whose BatchNorms use batch statistics.
    Returns a tuple of [B, h, w, C] maps in used_layers order."""
    width_mult: float = 1.4
    used_layers: Sequence[int] = (3, 5, 7)
    precision: Any = None

    @nn.compact
    def __call__(self, x, train_layers: Sequence[str] = ()):
        x = conv(int(STEM_CHANNELS * self.width_mult), 3, 2, 0, name='layer0_0',
                 precision=self.precision)(x)
        x = relu6(batch_norm('layer0_1')(x, 'layer0' in train_layers))
        outputs = [x]
        for stage, blocks in enumerate(block_layout(self.width_mult), start=1):
            for index, block in enumerate(blocks):
                name = f'layer{stage}_{index}'
                x = InvertedResidual(precision=self.precision, name=name, **block)(
                    x, layer_of(name) in train_layers)
            outputs.append(x)
        return tuple(outputs[i] for i in self.used_layers)


def output_channels(width_mult: float = 1.4, used_layers: Sequence[int] = (3, 5, 7)):
    """Channels of each returned map: layer0 int(32 w), layer L int(c_L w)."""
    widths = [int(STEM_CHANNELS * width_mult)] + [int(s[1] * width_mult) for s in SETTINGS]
    return tuple(widths[i] for i in used_layers)
