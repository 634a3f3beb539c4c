"""MAE initialisation of the GRM ViT and a PyTorch-exact bicubic resize for position embeddings."""
from __future__ import annotations

import math

import numpy as np

from grm_jax import convert  # numpy only: the official key layout (imports no model)
from grm_jax.model_config import model_config_of

CUBIC_A = -0.75     # PyTorch's bicubic coefficient
MAE_PREFIXES = ('patch_embed.', 'blocks.', 'norm.', 'pos_embed', 'cls_token')


def _cubic_near(t, a=CUBIC_A):
    """Keys cubic kernel for |t| <= 1."""
    return ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0


def _cubic_far(t, a=CUBIC_A):
    """Keys cubic kernel for 1 < |t| < 2."""
    return ((a * t - 5.0 * a) * t + 8.0 * a) * t - 4.0 * a


def bicubic_weights(in_size: int, out_size: int) -> np.ndarray:
    """[out_size, in_size] float64 matrix of torch bicubic (align_corners=False) along one axis.

    Source coordinate s = (in/out) * (dst + 0.5) - 0.5 (not clamped, as for cubic), taps
    floor(s) - 1 .. floor(s) + 2 clamped to the border, weights Keys(A = -0.75).
    """
    scale = in_size / out_size
    matrix = np.zeros((out_size, in_size), np.float64)
    for dst in range(out_size):
        src = scale * (dst + 0.5) - 0.5
        base = math.floor(src)
        t = src - base
        weights = (_cubic_far(t + 1.0), _cubic_near(t), _cubic_near(1.0 - t), _cubic_far(2.0 - t))
        for offset, weight in zip(range(-1, 3), weights):
            index = min(max(base + offset, 0), in_size - 1)
            matrix[dst, index] += weight
    return matrix


def torch_bicubic_resize(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """F.interpolate(mode='bicubic', align_corners=False) on x [H, W, C] -> [out_h, out_w, C].

    No antialias; computed in float64, returned in x's float dtype.
    """
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f'torch_bicubic_resize: expected [H, W, C], got shape {x.shape}')
    rows = bicubic_weights(x.shape[0], out_h)
    cols = bicubic_weights(x.shape[1], out_w)
    out = np.einsum('ph,hwc,qw->pqc', rows, x.astype(np.float64), cols)
    return out.astype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32)


def track_pos_embeds(pos_embed: np.ndarray, template_grid: int, search_grid: int):
    """Template / search position embeddings from a pretrained (1, 1 + G*G, C) pos_embed.

    Drops the cls row, reshapes row-major to [G, G, C], bicubic-resizes to each grid.
    Returns (pos_embed_z [1, Tz*Tz, C], pos_embed_x [1, Tx*Tx, C]) float32.
    """
    pos_embed = np.asarray(pos_embed, np.float32)
    patches = pos_embed[0, 1:]
    grid = int(round(math.sqrt(patches.shape[0])))
    if grid * grid != patches.shape[0]:
        raise ValueError(f'pos_embed: {patches.shape[0]} patch rows is not a square grid')
    patches = patches.reshape(grid, grid, -1)
    outs = []
    for size in (template_grid, search_grid):
        resized = torch_bicubic_resize(patches, size, size)
        outs.append(resized.reshape(1, size * size, -1).astype(np.float32))
    return outs[0], outs[1]


def rebuild_track_pos_embeds(variables: dict, model_config) -> dict:
    """Returns variables whose pos_embed_z / pos_embed_x are resized from backbone pos_embed."""
    params = dict(variables['params'])
    backbone = dict(params['backbone'])
    p = model_config.patch_size
    pos_z, pos_x = track_pos_embeds(np.asarray(backbone['pos_embed']),
                                    model_config.template_size // p,
                                    model_config.search_size // p)
    backbone['pos_embed_z'] = pos_z
    backbone['pos_embed_x'] = pos_x
    params['backbone'] = backbone
    return {**variables, 'params': params}


def load_mae_into(variables: dict, mae_state_dict: dict, config) -> dict:
    """Copies MAE ViT weights into `variables` and rebuilds pos_embed_z / pos_embed_x.

    mae_state_dict: MAE key -> array (or `{'model': ...}` as MAE's .pth stores it). Keys outside
    the ViT encoder (decoder_*, mask_token, ...) are ignored, as the official strict=False load
    does; division MLPs and the head keep their values. Raises ValueError naming a key whose
    shape does not match, or if the MAE dict has none of the encoder keys.
    """
    cfg = model_config_of(config)
    if 'model' in mae_state_dict and not hasattr(mae_state_dict['model'], 'shape'):
        mae_state_dict = mae_state_dict['model']
    encoder = {f'backbone.{k}': v for k, v in mae_state_dict.items()
               if k.startswith(MAE_PREFIXES)}
    if not encoder:
        raise ValueError('load_mae_into: the MAE state dict has no ViT encoder keys '
                         f'(expected {MAE_PREFIXES}); got e.g. {list(mae_state_dict)[:5]}')
    variables = convert.assign_official(variables, encoder, cfg, allow_unknown=True)
    return rebuild_track_pos_embeds(variables, cfg)
