"""Backbones of the Siamese trackers and a small registry keyed by `model.backbone.name`.

Every backbone is called as `backbone(images [B, H, W, 3], train_layers=())` and returns a
tuple of NHWC maps; `train_layers` are pysot layer names whose BatchNorms use batch statistics.
"""
from __future__ import annotations

from siam.backbones import alexnet, mobile_v2, resnet_atrous

# name -> key layout of the PyTorch checkpoint (see siam.convert).
BACKBONES = ('resnet_atrous', 'alexnet', 'alexnetlegacy', 'mobilenetv2')


def _check(backbone_config):
    name = backbone_config.name
    if name not in BACKBONES:
        raise ValueError(f'model.backbone.name: unknown backbone {name!r} (known: {BACKBONES})')
    return name


def build_backbone(backbone_config, precision=None, conv_impl='xla'):
    """The Flax backbone module for config.model.backbone (unbound; name it by assignment).
    conv_impl 'winograd' (ResNet only): 3x3 stride-1 convs in Winograd form, for inference."""
    name = _check(backbone_config)
    if name == 'resnet_atrous':
        return resnet_atrous.ResNetAtrous(blocks=tuple(backbone_config.blocks),
                                          base_width=backbone_config.base_width,
                                          used_layers=tuple(backbone_config.used_layers),
                                          precision=precision, conv_impl=conv_impl)
    if name in ('alexnet', 'alexnetlegacy'):
        return alexnet.AlexNet(width_mult=backbone_config.width_mult, precision=precision)
    return mobile_v2.MobileNetV2(width_mult=backbone_config.width_mult,
                                 used_layers=tuple(backbone_config.used_layers),
                                 precision=precision)


def output_channels(backbone_config) -> tuple[int, ...]:
    """Channels of each map the configured backbone returns."""
    name = _check(backbone_config)
    if name == 'resnet_atrous':
        return resnet_atrous.output_channels(backbone_config.base_width,
                                             tuple(backbone_config.used_layers))
    if name in ('alexnet', 'alexnetlegacy'):
        return alexnet.output_channels(backbone_config.width_mult)
    return mobile_v2.output_channels(backbone_config.width_mult,
                                     tuple(backbone_config.used_layers))
