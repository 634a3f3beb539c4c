"""SiamAttn (CVPR 2020; official ModelBuilder `siammaskrcnn_feature_enhance_dcnv1`), inference.

backbone (5 maps: conv1, layer1..4) -> neck (layer2..4 -> 256, template cropped to 7x7)
-> DSA per level (siam.attention) -> multi-level depthwise RPN (siam.rpn) on the DSA outputs
-> fusion neck, box head, mask head (siam.refine) on one or more RoIs.

The backbone, neck and RPN are SiamRPN++'s modules (siam.backbones, siam.neck, siam.rpn); only
the DSA and the refinement are new. NHWC float32 throughout; crops raw BGR 0..255 for the
official weights. Template features (backbone + neck) can be cached; the DSA of both branches is
re-run for every search crop because of its cross-attention (as the official `track`).
Module names follow the PyTorch keys so `siam.convert` maps them mechanically.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from siam.attention import FeatureEnhance
from siam.backbones import build_backbone
from siam.model import build_rpn
from siam.neck import AdjustAllLayer
from siam.refine import BoxHead, FeatureFusion, MaskHead, pool_sizes

ARCH = 'siamattn'


class SiamAttn(nn.Module):
    """config: the `model` section of configs/siamattn.py (backbone with used_layers
    (0, 1, 2, 3, 4), neck, attention, rpn, refine, precision)."""
    config: Any

    def setup(self):
        c = self.config
        precision = c.get('precision', None) or None
        channels = tuple(c.neck.out_channels)
        self.backbone = build_backbone(c.backbone, precision)
        self.neck = AdjustAllLayer(out_channels=channels, center_size=c.neck.center_size,
                                   precision=precision)
        self.feature_enhance = FeatureEnhance(in_channels=channels, precision=precision)
        self.rpn_head = build_rpn(c.rpn, precision)
        width = c.refine.channels
        self.feature_fusion = FeatureFusion(channels=width, num_levels=len(channels),
                                            num_ins=len(c.backbone.used_layers),
                                            fusion_level=c.refine.fusion_level,
                                            precision=precision)
        box_pool, mask_pool = pool_sizes(c.refine)
        self.bbox_head = BoxHead(pool_size=box_pool, hidden=c.refine.box_hidden,
                                 offset_hidden=c.refine.offset_hidden, precision=precision)
        self.mask_head = MaskHead(pool_size=mask_pool, channels=width,
                                  num_convs=c.refine.mask_convs,
                                  offset_hidden=c.refine.offset_hidden, precision=precision)

    def _levels(self):
        return len(self.config.neck.out_channels)

    def template_features(self, z):
        """z [B, 127, 127, 3] -> dict(backbone (5 maps; layer4 [B, 15, 15, 2048]),
        neck (3 x [B, 7, 7, 256], the cached template features))."""
        backbone = self.backbone(z)
        return dict(backbone=backbone, neck=self.neck(backbone[-self._levels():]))

    def track_forward(self, x, zf):
        """x [B, 255, 255, 3], zf: template_features(z)['neck'] ->
        dict(backbone_x (5 maps: conv1 [B, 125, 125, 64], layer1 [B, 63, 63, 256], ...),
        neck_x (3 x [B, 31, 31, 256]), dsa_z (3 x [B, 7, 7, 256]), dsa_x (3 x [B, 31, 31, 256]),
        cls [B, 25, 25, 2A], loc [B, 25, 25, 4A], box_features [B, 25, 25, 256],
        mask_features [B, 63, 63, 256]). The DCN offsets are sown into 'intermediates'."""
        backbone = self.backbone(x)
        levels = self._levels()
        neck_x = self.neck(backbone[-levels:])
        dsa_z, dsa_x = self.feature_enhance(tuple(zf), neck_x)
        cls, loc = self.rpn_head(dsa_z, dsa_x)
        search_maps = tuple(backbone[:-levels]) + tuple(dsa_x)
        box_features, mask_features = self.feature_fusion(dsa_z, dsa_x, search_maps)
        return dict(backbone_x=backbone, neck_x=neck_x, dsa_z=dsa_z, dsa_x=dsa_x, cls=cls,
                    loc=loc, box_features=box_features, mask_features=mask_features)

    def train_forward(self, z, x, select_rois, backbone_train_layers=()):
        """Training forward: z [B, 127, 127, 3] and x [B, 255, 255, 3] go through the backbone
        one after the other (as SiamRPN.train_forward); BatchNorms use batch statistics in the
        neck, RPN, fusion and mask head, and in the backbone only in `backbone_train_layers`.
        select_rois(cls, loc) -> dict with `box_rois` [Rb, 5] and `mask_rois` [Rm, 5] (and any
        other arrays), called on the RPN outputs with their gradient stopped (the RoIs are
        constants, as the detached proposals of the official training).
        Returns dict(cls, loc, box (refine_box dict), mask (refine_mask dict), rois (what
        select_rois returned))."""
        layers = tuple(backbone_train_layers)
        levels = self._levels()
        zb = self.backbone(z, layers)
        xb = self.backbone(x, layers)
        zf = self.neck(zb[-levels:], train=True)
        xf = self.neck(xb[-levels:], train=True)
        dsa_z, dsa_x = self.feature_enhance(tuple(zf), xf)
        cls, loc = self.rpn_head(dsa_z, dsa_x, train=True)
        search_maps = tuple(xb[:-levels]) + tuple(dsa_x)
        box_features, mask_features = self.feature_fusion(dsa_z, dsa_x, search_maps, train=True)
        rois = select_rois(jax.lax.stop_gradient(cls), jax.lax.stop_gradient(loc))
        return dict(cls=cls, loc=loc, box=self.refine_box(box_features, rois['box_rois']),
                    mask=self.refine_mask(mask_features, rois['mask_rois'], train=True),
                    rois=rois)

    def refine_box(self, box_features, rois):
        """box_features [B, 25, 25, 256], rois [R, 5] (batch index, x1, y1, x2, y2 in search-crop
        pixels) -> dict(pool0, offsets [R, 4, 4, 2], pool [R, 4, 4, 256], deltas [R, 4])."""
        return self.bbox_head(box_features, rois)

    def refine_mask(self, mask_features, rois, train: bool = False):
        """mask_features [B, 63, 63, 256], rois [R, 5] -> dict(pool0, offsets [R, 16, 16, 2],
        pool [R, 16, 16, 256], logits [R, 64, 64, 1]); train: batch-statistics BatchNorm."""
        return self.mask_head(mask_features, rois, train)

    def __call__(self, z, x, box_rois, mask_rois):
        """Everything on one (z, x) pair: track_forward's dict plus `box` and `mask` (the
        refine_box / refine_mask dicts for box_rois / mask_rois [R, 5])."""
        out = self.track_forward(x, self.template_features(z)['neck'])
        return dict(out, box=self.refine_box(out['box_features'], box_rois),
                    mask=self.refine_mask(out['mask_features'], mask_rois))


def is_siamattn(model_config) -> bool:
    """Whether a `model` config section describes SiamAttn (model.arch == 'siamattn')."""
    return model_config is not None and model_config.get('arch', None) == ARCH


def build_model(model_config) -> SiamAttn:
    """SiamAttn from the config's `model` section (frozen here so it is hashable)."""
    if isinstance(model_config, ml_collections.ConfigDict):
        model_config = ml_collections.FrozenConfigDict(model_config)
    return SiamAttn(model_config)


def dummy_inputs(model_config, batch: int = 1, rois: int = 1):
    """Zero template, search crops and `rois` RoIs covering the crop centre (batch index 0)."""
    z = jnp.zeros((batch, model_config.template_size, model_config.template_size, 3), jnp.float32)
    x = jnp.zeros((batch, model_config.search_size, model_config.search_size, 3), jnp.float32)
    roi = jnp.tile(jnp.array([[0.0, 100.0, 100.0, 155.0, 155.0]], jnp.float32), (rois, 1))
    return z, x, roi, roi


def init_variables(model_config, rng) -> dict:
    """Fresh {'params', 'batch_stats'} (official zero inits of the gains, the DCN offset convs
    and the last offset-MLP layers; BN stats mean 0, var 1)."""
    model = build_model(model_config)
    return _variables_only(jax.jit(model.init)(rng, *dummy_inputs(model_config)))


def variable_shapes(model_config) -> dict:
    """The variables' tree as jax.ShapeDtypeStruct leaves, without computing anything."""
    model = build_model(model_config)
    return _variables_only(jax.eval_shape(model.init, jax.random.PRNGKey(0),
                                          *dummy_inputs(model_config)))


def _variables_only(variables) -> dict:
    """Drops the 'intermediates' that init collects (the sown DCN offsets)."""
    return {k: v for k, v in variables.items() if k in ('params', 'batch_stats')}
