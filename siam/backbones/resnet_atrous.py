"""pysot's ResNet 'atrous' (NHWC; BatchNorm with PyTorch semantics, see siam/layers.py).

Differences from torchvision's ResNet-50 (see /work/shared/specs/siamrpn.md section 1.1):
conv1 has padding 0; a stride-2 3x3 conv has padding 0; layer3/layer4 keep stride 1 and use
dilation 2/4 (their first block uses half the dilation); every stage that is strided or dilated
gets a 3x3 downsample conv. Total stride 8: a 127 template gives 15x15 maps, a 255 search 31x31.

Module names follow the PyTorch keys (`layer2_0` <-> `layer2.0`, `downsample_0` <->
`downsample.0`) so that `siam.convert` can map them mechanically.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn

from siam.layers import batch_norm, conv, layer_of

EXPANSION = 4
# Per stage: (stride, dilation) of pysot's resnet50 with used_layers [2, 3, 4].
STAGE_STRIDES = (1, 2, 1, 1)
STAGE_DILATIONS = (1, 1, 2, 4)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride, dilation) -> 1x1 (x4 channels), residual, ReLU.

    downsample: None, or (kernel, stride, padding, dilation) of the residual branch's conv.
    """
    planes: int
    stride: int = 1
    padding: int = 1
    dilation: int = 1
    downsample: Any = None
    precision: Any = None
    conv_impl: str = 'xla'

    @nn.compact
    def __call__(self, x, train: bool = False):
        p, impl = self.precision, self.conv_impl
        out = conv(self.planes, 1, name='conv1', precision=p, impl=impl)(x)
        out = nn.relu(batch_norm('bn1')(out, train))
        out = conv(self.planes, 3, self.stride, self.padding, self.dilation, name='conv2',
                   precision=p, impl=impl)(out)
        out = nn.relu(batch_norm('bn2')(out, train))
        out = conv(self.planes * EXPANSION, 1, name='conv3', precision=p, impl=impl)(out)
        out = batch_norm('bn3')(out, train)
        residual = x
        if self.downsample is not None:
            kernel, stride, padding, dilation = self.downsample
            residual = conv(self.planes * EXPANSION, kernel, stride, padding, dilation,
                            name='downsample_0', precision=p, impl=impl)(x)
            residual = batch_norm('downsample_1')(residual, train)
        return nn.relu(out + residual)


def stage_layout(stage_index, num_blocks, in_channels, planes):
    """Per-block Bottleneck arguments of one stage, following pysot's `_make_layer` rule.

    Returns a list of dicts (stride, padding, dilation, downsample) for blocks 0..num_blocks-1.
    """
    stride = STAGE_STRIDES[stage_index]
    dilation = STAGE_DILATIONS[stage_index]
    if stride == 1 and dilation == 1:
        downsample = None if in_channels == planes * EXPANSION else (1, 1, 0, 1)
    elif dilation == 1:
        downsample = (3, stride, 0, 1)
    else:
        downsample = (3, stride, dilation // 2, dilation // 2)
    if dilation > 1:
        first = dict(stride=stride, padding=dilation // 2, dilation=dilation // 2)
    else:
        first = dict(stride=stride, padding=2 - stride, dilation=1)
    blocks = [dict(first, downsample=downsample)]
    for _ in range(1, num_blocks):
        blocks.append(dict(stride=1, padding=dilation, dilation=dilation, downsample=None))
    return blocks


class ResNetAtrous(nn.Module):
    """pysot ResNet atrous. Input [B, H, W, 3] float32 (raw BGR 0..255 for the official weights).

    blocks: blocks per stage (ResNet-50: (3, 4, 6, 3)); base_width: planes of layer1 (64).
    used_layers: which of [stem, layer1, layer2, layer3, layer4] (0..4) to return.
    train_layers (call argument): pysot layer names ('bn1' for the stem, 'layer1'..'layer4')
    whose BatchNorms use batch statistics (training); all others use running statistics.
    Returns a tuple of [B, h, w, C] maps in used_layers order (for ResNet-50 l234 at 255 input:
    (512, 1024, 2048) channels at 31x31).
    """
    blocks: Sequence[int] = (3, 4, 6, 3)
    base_width: int = 64
    used_layers: Sequence[int] = (2, 3, 4)
    precision: Any = None
    conv_impl: str = 'xla'    # 'winograd': 3x3 stride-1 convs in Winograd form (inference)

    @nn.compact
    def __call__(self, x, train_layers: Sequence[str] = ()):
        x = conv(self.base_width, 7, stride=2, padding=0, name='conv1',
                 precision=self.precision)(x)
        x = nn.relu(batch_norm('bn1')(x, 'bn1' in train_layers))
        outputs = [x]
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        in_channels = self.base_width
        last_stage = max(self.used_layers)
        for stage_index, num_blocks in enumerate(self.blocks):
            if stage_index + 1 > last_stage:
                break
            planes = self.base_width * 2 ** stage_index
            layout = stage_layout(stage_index, num_blocks, in_channels, planes)
            for block_index, block in enumerate(layout):
                name = f'layer{stage_index + 1}_{block_index}'
                x = Bottleneck(planes, precision=self.precision, conv_impl=self.conv_impl,
                               name=name, **block)(
                    x, layer_of(name) in train_layers)
            in_channels = planes * EXPANSION
            outputs.append(x)
        return tuple(outputs[i] for i in self.used_layers)


def output_channels(base_width: int, used_layers: Sequence[int]) -> tuple[int, ...]:
    """Channels of each returned map: stem base_width, layer L 4 * base_width * 2**(L-1)."""
    return tuple(base_width if i == 0 else EXPANSION * base_width * 2 ** (i - 1)
                 for i in used_layers)


