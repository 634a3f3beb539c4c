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

from siam.backbones.resnet_atrous import ResNetAtrous
from siam.neck import AdjustAllLayer
from siam.rpn import MultiRPN


class SiamRPN(nn.Module):
    """config: the `model` section of configs/siamrpn.py (backbone, neck, rpn, precision)."""
    config: Any

    def setup(self):
        c = self.config
        precision = c.get('precision', None) or None
        if c.backbone.name != 'resnet_atrous':
            raise ValueError(f'SiamRPN: unknown backbone {c.backbone.name!r} '
                             f'(known: resnet_atrous)')
        self.backbone = ResNetAtrous(blocks=tuple(c.backbone.blocks),
                                     base_width=c.backbone.base_width,
                                     used_layers=tuple(c.backbone.used_layers),
                                     precision=precision)
        self.neck = AdjustAllLayer(out_channels=tuple(c.neck.out_channels),
                                   center_size=c.neck.center_size, precision=precision)
        self.rpn_head = MultiRPN(anchor_num=c.rpn.anchor_num,
                                 in_channels=tuple(c.rpn.in_channels),
                                 weighted=c.rpn.weighted, precision=precision)

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


def build_model(model_config) -> SiamRPN:
    """SiamRPN from the config's `model` section (a ConfigDict, frozen here so it is hashable)."""
    if isinstance(model_config, ml_collections.ConfigDict):
        model_config = ml_collections.FrozenConfigDict(model_config)
    return SiamRPN(model_config)


def dummy_inputs(model_config, batch: int = 1):
    """Zero template [B, Z, Z, 3] and search [B, X, X, 3] crops of the configured sizes."""
    z = jnp.zeros((batch, model_config.template_size, model_config.template_size, 3), jnp.float32)
    x = jnp.zeros((batch, model_config.search_size, model_config.search_size, 3), jnp.float32)
    return z, x


def init_variables(model_config, rng) -> dict:
    """Fresh {'params', 'batch_stats'} for the configured model (BN stats: mean 0, var 1)."""
    model = build_model(model_config)
    return jax.jit(model.init)(rng, *dummy_inputs(model_config))


def variable_shapes(model_config) -> dict:
    """The variables' tree as jax.ShapeDtypeStruct leaves, without computing anything."""
    model = build_model(model_config)
    return jax.eval_shape(model.init, jax.random.PRNGKey(0), *dummy_inputs(model_config))
