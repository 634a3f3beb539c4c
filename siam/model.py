"""SiamRPN++ (pysot ModelBuilder, inference): backbone -> neck -> multi-level depthwise RPN.

Inputs are NHWC float32 crops in the value range the weights were trained on (official pysot
weights: raw BGR 0..255, no normalisation). Outputs keep PyTorch's channel layout on the last
axis: cls [B, S, S, 2A] (channel k * A + a), loc [B, S, S, 4A] (channel coord * A + a).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from siam.backbones import build_backbone
from siam.neck import AdjustAllLayer
from siam.rpn import DepthwiseRPN, MultiRPN, UPChannelRPN

RPN_TYPES = ('multi', 'depthwise', 'up')


class SiamRPN(nn.Module):
    """config: the `model` section of configs/siamrpn.py (backbone, neck, rpn, precision)."""
    config: Any
    conv_impl: str = 'xla'   # 'winograd'/'winograd4': inference variables from `winograd_variables`

    def setup(self):
        c = self.config
        precision = c.get('precision', None) or None
        self.backbone = build_backbone(c.backbone, precision, self.conv_impl)
        if _has_neck(c):
            self.neck = AdjustAllLayer(out_channels=tuple(c.neck.out_channels),
                                       center_size=c.neck.center_size, precision=precision)
        else:
            self.neck = NoNeck()
        self.rpn_head = build_rpn(c.rpn, precision, self.conv_impl)

    def extract(self, images):
        """images [B, H, W, 3] -> dict(backbone=tuple of [B, h, w, C_i],
        neck=tuple of [B, h', w', 256])."""
        backbone = self.backbone(images)
        return dict(backbone=backbone, neck=self.neck(backbone))

    def template_outputs(self, z):
        """z [B, 127, 127, 3] -> dict(backbone=(3 x [B, 15, 15, C]), neck=(3 x [B, 7, 7, 256]))."""
        return self.extract(z)

    def template_features(self, z):
        """z [B, 127, 127, 3] -> zf: tuple of 3 x [B, 7, 7, 256] (the neck's cropped maps)."""
        return self.extract(z)['neck']

    def track_forward(self, x, zf):
        """x [B, 255, 255, 3], zf from template_features ->
        dict(cls [B, 25, 25, 2A], loc [B, 25, 25, 4A], neck_x (3 x [B, 31, 31, 256]))."""
        xf = self.extract(x)['neck']
        cls, loc = self.rpn_head(tuple(zf), xf)
        return dict(cls=cls, loc=loc, neck_x=xf)

    def train_forward(self, z, x, backbone_train_layers=()):
        """Training forward as pysot's ModelBuilder.forward: z [B, 127, 127, 3] and
        x [B, 255, 255, 3] go through the backbone one after the other (so BatchNorm running
        statistics are updated twice, first with template statistics); neck and head
        BatchNorms use batch statistics, backbone ones only in `backbone_train_layers`
        (pysot layer names, e.g. ('layer2', 'layer3', 'layer4')).
        Returns dict(cls [B, S, S, 2A], loc [B, S, S, 4A])."""
        layers = tuple(backbone_train_layers)
        zb = self.backbone(z, layers)
        xb = self.backbone(x, layers)
        zf = self.neck(zb, train=True)
        xf = self.neck(xb, train=True)
        cls, loc = self.rpn_head(tuple(zf), xf, train=True)
        return dict(cls=cls, loc=loc)

    def __call__(self, z, x):
        return self.track_forward(x, self.template_features(z))


class NoNeck(nn.Module):
    """The identity neck of models without one (pysot ADJUST False, e.g. AlexNet)."""

    def __call__(self, features, train: bool = False):
        return tuple(features)


def _has_neck(model_config) -> bool:
    """False when config.model.neck is None or has `enabled=False`."""
    neck = model_config.get('neck', None)
    return neck is not None and bool(neck.get('enabled', True))


def build_rpn(rpn_config, precision=None, conv_impl='xla'):
    """The RPN head for config.model.rpn: type 'multi' (MultiRPN over in_channels), 'depthwise'
    (one DepthwiseRPN of in_channels[0]) or 'up' (UPChannelRPN of in_channels[0]).
    conv_impl: siam.layers.conv's impl for the depthwise heads' bias-free convs (the UP-channel
    head's convs have biases and stay XLA convs)."""
    rpn_type = rpn_config.get('type', 'multi')
    if rpn_type not in RPN_TYPES:
        raise ValueError(f'model.rpn.type: unknown RPN {rpn_type!r} (known: {RPN_TYPES})')
    channels = tuple(rpn_config.in_channels)
    if rpn_type == 'multi':
        return MultiRPN(anchor_num=rpn_config.anchor_num, in_channels=channels,
                        weighted=rpn_config.weighted, precision=precision, conv_impl=conv_impl)
    if len(channels) != 1:
        raise ValueError(f'model.rpn.in_channels: the {rpn_type!r} RPN is single-level, got '
                         f'{channels}')
    if rpn_type == 'depthwise':
        return DepthwiseRPN(anchor_num=rpn_config.anchor_num, channels=channels[0],
                            precision=precision, conv_impl=conv_impl)
    return UPChannelRPN(anchor_num=rpn_config.anchor_num, feature_in=channels[0],
                        precision=precision)


def build_model(model_config, conv_impl: str = 'xla') -> SiamRPN:
    """SiamRPN from the config's `model` section (a ConfigDict, frozen here so it is hashable).
    conv_impl 'winograd' (F(2x2, 3x3)) or 'winograd4' (F(4x4, 3x3)) builds the inference twin
    whose variables come from `winograd_variables` (ResNet backbones and depthwise RPN heads)."""
    from siam.layers import CONV_IMPLS
    if conv_impl not in CONV_IMPLS:
        raise ValueError(f'test.conv_impl: unknown {conv_impl!r} (known: {CONV_IMPLS})')
    if isinstance(model_config, ml_collections.ConfigDict):
        model_config = ml_collections.FrozenConfigDict(model_config)
    return SiamRPN(model_config, conv_impl)


def dummy_inputs(model_config, batch: int = 1):
    """Zero template [B, Z, Z, 3] and search [B, X, X, 3] crops of the configured sizes."""
    z = jnp.zeros((batch, model_config.template_size, model_config.template_size, 3), jnp.float32)
    x = jnp.zeros((batch, model_config.search_size, model_config.search_size, 3), jnp.float32)
    return z, x


def winograd_variables(variables, model_config, conv_impl: str = 'winograd') -> dict:
    """`variables` for `build_model(model_config, conv_impl)` (conv_impl 'winograd' or
    'winograd4'): every eligible 3x3 kernel [3, 3, C, O] (siam.layers.winograd_eligible: ResNet
    backbone and depthwise RPN heads) becomes its Winograd weights [n, n, C, O] (n = 4 for
    F(2x2, 3x3), 6 for F(4x4, 3x3)); the rest is shared. Computed once (e.g. when a tracker is
    built), so each frame skips the weight transform."""
    from flax import traverse_util
    from siam.layers import WINOGRAD_TILES, winograd_weights

    if conv_impl not in WINOGRAD_TILES:
        raise ValueError(f'winograd_variables: conv_impl {conv_impl!r} is not a Winograd impl '
                         f'({tuple(WINOGRAD_TILES)})')
    fast = build_model(model_config, conv_impl=conv_impl)
    shapes = jax.eval_shape(fast.init, jax.random.PRNGKey(0), *dummy_inputs(model_config))
    flat = traverse_util.flatten_dict(variables)
    out = {}
    for path in traverse_util.flatten_dict(shapes):
        if path[-1] == 'winograd_kernel':
            out[path] = winograd_weights(jnp.asarray(flat[path[:-1] + ('kernel',)]),
                                         WINOGRAD_TILES[conv_impl])
        else:
            out[path] = flat[path]
    return traverse_util.unflatten_dict(out)


def init_variables(model_config, rng) -> dict:
    """Fresh {'params', 'batch_stats'} for the configured model (BN stats: mean 0, var 1)."""
    model = build_model(model_config)
    return jax.jit(model.init)(rng, *dummy_inputs(model_config))


def variable_shapes(model_config) -> dict:
    """The variables' tree as jax.ShapeDtypeStruct leaves, without computing anything."""
    model = build_model(model_config)
    return jax.eval_shape(model.init, jax.random.PRNGKey(0), *dummy_inputs(model_config))
