"""The GRM network: ViT backbone with token division + center head."""
from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from grm_jax import head as head_lib
from grm_jax import mae, vit
from grm_jax.model_config import model_config_of


class GRM(nn.Module):
    """GRM tracker network.

    config: the `config.model` section of configs/grm.py (patch_size, embed_dim, depth, num_heads,
    mlp_ratio, division_hidden, drop_path_rate, head_channels, template_size, search_size).

    __call__(template [B, Ht, Wt, 3], search [B, Hs, Ws, 3], threshold=0.0, train=False):
    inputs are ImageNet-normalised float32 NHWC crops; `threshold` (scalar or [B], may be traced)
    is the inference division threshold (0 = argmax); `train` (static) switches on drop path
    (rng 'dropout'), Gumbel decisions (rng 'gumbel') and BatchNorm batch statistics.
    Returns a dict:
      backbone_out [B, N, C] (final LayerNorm), score_map [B, F, F], size_map [B, F, F, 2] (w, h),
      offset_map [B, F, F, 2] (x, y), pred_boxes [B, 4] (cx, cy, w, h as fractions of the search
      crop, argmax of the unwindowed score map), division_logprobs [L, B, Nx, 2],
      decisions [L, B, Nx] float (1 = interacts with the template), decision_fraction [B, L].
    """
    config: Any

    @nn.compact
    def __call__(self, template, search, threshold=0.0, train: bool = False):
        cfg = self.config
        threshold = jnp.asarray(threshold, jnp.float32)
        if threshold.ndim == 1:
            threshold = threshold[:, None]          # per-sample thresholds, broadcast over tokens
        tokens, logprobs, decisions = vit.VisionTransformer(
            patch_size=cfg.patch_size, embed_dim=cfg.embed_dim, depth=cfg.depth,
            num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio,
            division_hidden=tuple(cfg.division_hidden), drop_path_rate=cfg.drop_path_rate,
            template_size=cfg.template_size, search_size=cfg.search_size,
            name='backbone')(template, search, threshold, train)
        b, _, c = tokens.shape
        feat = cfg.search_size // cfg.patch_size
        search_tokens = tokens[:, -feat * feat:].reshape(b, feat, feat, c)
        score, size, offset = head_lib.CenterPredictor(cfg.head_channels, name='box_head')(
            search_tokens, train)
        return {
            'backbone_out': tokens,
            'score_map': score,
            'size_map': size,
            'offset_map': offset,
            'pred_boxes': head_lib.decode_boxes(score, size, offset),
            'division_logprobs': logprobs,
            'decisions': decisions,
            'decision_fraction': jnp.mean(decisions, axis=-1).T,
        }


def build_model(config) -> GRM:
    """GRM module from a full config or its `model` section."""
    return GRM(model_config_of(config))


def _init_rule(path: tuple, shape: tuple, flat_shapes: dict) -> tuple:
    """Initial value rule of one variable: ('normal', std), ('uniform', bound) or ('const', v).

    The same rules as the modules' own initializers (official init): Dense kernels and the
    token/position tensors trunc_normal(0.02) (bounds +-2 absolute, so in effect a plain
    normal), Dense biases 0, norms 1/0, head convs xavier_uniform, the patch conv and every conv
    bias PyTorch's default U(+-1/sqrt(fan_in)), BatchNorm statistics 0/1.
    """
    collection, names, leaf = path[0], path[1:-1], path[-1]
    if collection == 'batch_stats':
        return ('const', 1.0 if leaf == 'var' else 0.0)
    if 'bn' in names or leaf == 'scale':
        return ('const', 1.0 if leaf == 'scale' else 0.0)
    if leaf in ('cls_token', 'pos_embed', 'pos_embed_z', 'pos_embed_x'):
        return ('normal', 0.02)
    is_conv = names[0] == 'box_head' or 'patch_embed' in names
    if not is_conv:
        return ('normal', 0.02) if leaf == 'kernel' else ('const', 0.0)
    kernel_shape = flat_shapes[path[:-1] + ('kernel',)]
    fan_in = int(np.prod(kernel_shape[:-1]))
    if leaf == 'bias' or 'patch_embed' in names:
        return ('uniform', 1.0 / math.sqrt(fan_in))
    fan_out = int(np.prod(kernel_shape[:-2])) * kernel_shape[-1]
    return ('uniform', math.sqrt(6.0 / (fan_in + fan_out)))


def init_variables(config, rng) -> dict:
    """Random initial variables {'params', 'batch_stats'} (numpy float32), official init rules.

    See `_init_rule`. All random values come from one jax.random.normal and one
    jax.random.uniform draw (cheap to compile, unlike one draw per variable).
    pos_embed_z / pos_embed_x are then the bicubic resize of the random pretrained-layout
    pos_embed, as the official model builds them.
    """
    cfg = model_config_of(config)
    model = GRM(cfg)
    template = jnp.zeros((1, cfg.template_size, cfg.template_size, 3), jnp.float32)
    search = jnp.zeros((1, cfg.search_size, cfg.search_size, 3), jnp.float32)
    abstract = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), template, search))
    flat_shapes = {path: tuple(leaf.shape)
                   for path, leaf in traverse_util.flatten_dict(abstract).items()}
    rules = {path: _init_rule(path, shape, flat_shapes) for path, shape in flat_shapes.items()}
    totals = {kind: sum(int(np.prod(flat_shapes[p])) for p, r in rules.items() if r[0] == kind)
              for kind in ('normal', 'uniform')}
    normal_key, uniform_key = jax.random.split(rng)
    draws = {
        'normal': np.asarray(jax.random.normal(normal_key, (totals['normal'],), jnp.float32)),
        'uniform': np.asarray(jax.random.uniform(uniform_key, (totals['uniform'],), jnp.float32,
                                                 -1.0, 1.0)),
    }
    offsets = {'normal': 0, 'uniform': 0}
    flat = {}
    for path, (kind, value) in rules.items():
        shape = flat_shapes[path]
        if kind == 'const':
            flat[path] = np.full(shape, value, np.float32)
            continue
        size = int(np.prod(shape))
        start = offsets[kind]
        offsets[kind] += size
        flat[path] = (draws[kind][start:start + size].reshape(shape) * value).astype(np.float32)
    variables = traverse_util.unflatten_dict(flat)
    return mae.rebuild_track_pos_embeds(variables, cfg)
