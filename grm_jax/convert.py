"""Official GRM checkpoint (PyTorch state_dict) <-> Flax variables.

Usage: python -m grm_jax.convert IN.pth.tar OUT_DIR --config configs/grm.py:vitb_256
(IN may also be a .npz of official key -> array.)
"""
from __future__ import annotations

import copy
import dataclasses
import sys
from typing import Any

import numpy as np

from grm_jax.model_config import model_config_of

BRANCHES = ('ctr', 'offset', 'size')
BRANCH_OUT = {'ctr': 1, 'offset': 2, 'size': 2}
IGNORED_SUFFIXES = ('num_batches_tracked',)


@dataclasses.dataclass(frozen=True)
class Entry:
    """Where one official tensor lives in the Flax variables and how to lay it out.

    kind: 'linear' (torch [out, in] -> kernel [in, out]), 'conv' (OIHW -> HWIO) or 'plain'.
    """
    collection: str
    path: tuple
    torch_shape: tuple
    kind: str


def _to_flax(value: np.ndarray, kind: str) -> np.ndarray:
    if kind == 'linear':
        return value.T
    if kind == 'conv':
        return value.transpose(2, 3, 1, 0)
    return value


def _to_torch(value: np.ndarray, kind: str) -> np.ndarray:
    if kind == 'linear':
        return value.T
    if kind == 'conv':
        return value.transpose(3, 2, 0, 1)
    return value


def official_layout(config) -> dict[str, Entry]:
    """Official state_dict key -> Entry for a GRM config (ordered as the official model)."""
    cfg = model_config_of(config)
    c, p = cfg.embed_dim, cfg.patch_size
    hidden = int(c * cfg.mlp_ratio)
    h1, h2 = cfg.division_hidden
    layout: dict[str, Entry] = {}

    def add(key, collection, path, shape, kind='plain'):
        layout[key] = Entry(collection, tuple(path), tuple(shape), kind)

    def add_linear(key, path, out_dim, in_dim):
        add(f'{key}.weight', 'params', path + ('kernel',), (out_dim, in_dim), 'linear')
        add(f'{key}.bias', 'params', path + ('bias',), (out_dim,))

    def add_norm(key, path, dim):
        add(f'{key}.weight', 'params', path + ('scale',), (dim,))
        add(f'{key}.bias', 'params', path + ('bias',), (dim,))

    bb = ('backbone',)
    num_z = (cfg.template_size // p) ** 2
    num_x = (cfg.search_size // p) ** 2
    pretrain_len = (224 // p) ** 2 + 1
    add('backbone.cls_token', 'params', bb + ('cls_token',), (1, 1, c))
    add('backbone.pos_embed', 'params', bb + ('pos_embed',), (1, pretrain_len, c))
    add('backbone.pos_embed_x', 'params', bb + ('pos_embed_x',), (1, num_x, c))
    add('backbone.pos_embed_z', 'params', bb + ('pos_embed_z',), (1, num_z, c))
    add('backbone.patch_embed.proj.weight', 'params', bb + ('patch_embed', 'proj', 'kernel'),
        (c, 3, p, p), 'conv')
    add('backbone.patch_embed.proj.bias', 'params', bb + ('patch_embed', 'proj', 'bias'), (c,))
    for i in range(cfg.depth):
        key = f'backbone.blocks.{i}'
        path = bb + (f'blocks_{i}',)
        add_norm(f'{key}.norm1', path + ('norm1',), c)
        add_linear(f'{key}.attn.qkv', path + ('attn', 'qkv'), 3 * c, c)
        add_linear(f'{key}.attn.proj', path + ('attn', 'proj'), c, c)
        if i > 0:
            div_key, div_path = f'{key}.attn.divide_predict', path + ('attn', 'divide_predict')
            add_linear(f'{div_key}.0', div_path + ('dense0',), h1, 2 * c)
            add_linear(f'{div_key}.2', div_path + ('dense1',), h2, h1)
            add_linear(f'{div_key}.4', div_path + ('dense2',), 2, h2)
        add_norm(f'{key}.norm2', path + ('norm2',), c)
        add_linear(f'{key}.mlp.fc1', path + ('mlp', 'fc1'), hidden, c)
        add_linear(f'{key}.mlp.fc2', path + ('mlp', 'fc2'), c, hidden)
    add_norm('backbone.norm', bb + ('norm',), c)

    hc = cfg.head_channels
    widths = [c, hc, hc // 2, hc // 4, hc // 8]
    for branch in BRANCHES:
        for level in range(1, 5):
            key = f'box_head.conv{level}_{branch}'
            path = ('box_head', f'conv{level}_{branch}')
            cin, cout = widths[level - 1], widths[level]
            add(f'{key}.0.weight', 'params', path + ('conv', 'kernel'), (cout, cin, 3, 3), 'conv')
            add(f'{key}.0.bias', 'params', path + ('conv', 'bias'), (cout,))
            add(f'{key}.1.weight', 'params', path + ('bn', 'scale'), (cout,))
            add(f'{key}.1.bias', 'params', path + ('bn', 'bias'), (cout,))
            add(f'{key}.1.running_mean', 'batch_stats', path + ('bn', 'mean'), (cout,))
            add(f'{key}.1.running_var', 'batch_stats', path + ('bn', 'var'), (cout,))
        key = f'box_head.conv5_{branch}'
        path = ('box_head', f'conv5_{branch}')
        add(f'{key}.weight', 'params', path + ('kernel',), (BRANCH_OUT[branch], widths[4], 1, 1),
            'conv')
        add(f'{key}.bias', 'params', path + ('bias',), (BRANCH_OUT[branch],))
    return layout


def as_numpy(value: Any) -> np.ndarray:
    """A torch tensor (anything with .detach().cpu().numpy()) or array-like -> numpy array."""
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _set(tree: dict, path: tuple, value) -> None:
    for name in path[:-1]:
        tree = tree.setdefault(name, {})
    tree[path[-1]] = value


def _get(tree, path: tuple):
    for name in path:
        tree = tree[name]
    return tree


def _checked(key: str, value: Any, entry: Entry) -> np.ndarray:
    array = as_numpy(value)
    if tuple(array.shape) != entry.torch_shape:
        raise ValueError(f'official checkpoint key {key!r}: shape {tuple(array.shape)}, expected '
                         f'{entry.torch_shape} for this config')
    return np.ascontiguousarray(_to_flax(array.astype(np.float32), entry.kind))


def _unwrap(state_dict) -> dict:
    if 'net' in state_dict and not hasattr(state_dict['net'], 'shape'):
        state_dict = state_dict['net']
    return state_dict


def from_official(state_dict: dict, config) -> dict:
    """Official GRM state_dict (key -> tensor/array; a full trainer dict with 'net' also works)
    -> {'params': ..., 'batch_stats': ...} of numpy float32 arrays.

    Raises ValueError naming the key for unknown keys, missing keys and shape mismatches;
    num_batches_tracked entries are ignored.
    """
    state_dict = _unwrap(state_dict)
    layout = official_layout(config)
    variables: dict = {'params': {}, 'batch_stats': {}}
    unknown = [k for k in state_dict if k not in layout and not k.endswith(IGNORED_SUFFIXES)]
    if unknown:
        raise ValueError(f'official checkpoint has {len(unknown)} unknown key(s), e.g. '
                         f'{unknown[:5]} (a "module." prefix or another model/config?)')
    missing = [k for k in layout if k not in state_dict]
    if missing:
        raise ValueError(f'official checkpoint lacks {len(missing)} key(s) needed by this config, '
                         f'e.g. {missing[:5]}')
    for key, entry in layout.items():
        _set(variables[entry.collection], entry.path, _checked(key, state_dict[key], entry))
    return variables


def assign_official(variables: dict, partial_state_dict: dict, config,
                    allow_unknown: bool = False) -> dict:
    """Returns a copy of `variables` with the given official keys overwritten (shape-checked).

    Keys not in the layout raise ValueError unless allow_unknown (then they are skipped).
    """
    layout = official_layout(config)
    out = {col: copy.deepcopy(_plain(tree)) for col, tree in variables.items()}
    for key, value in partial_state_dict.items():
        if key.endswith(IGNORED_SUFFIXES):
            continue
        if key not in layout:
            if allow_unknown:
                continue
            raise ValueError(f'unknown official key {key!r}')
        entry = layout[key]
        _set(out.setdefault(entry.collection, {}), entry.path, _checked(key, value, entry))
    return out


def _plain(tree):
    """Nested mapping -> nested dict (leaves untouched)."""
    if hasattr(tree, 'items'):
        return {k: _plain(v) for k, v in tree.items()}
    return tree


def to_official(variables: dict, config) -> dict[str, np.ndarray]:
    """Flax variables -> official state_dict (key -> float32 numpy, PyTorch layout)."""
    state_dict = {}
    for key, entry in official_layout(config).items():
        try:
            value = np.asarray(_get(variables[entry.collection], entry.path), np.float32)
        except KeyError as e:
            raise ValueError(f'variables lack {entry.collection}/{"/".join(entry.path)} '
                             f'(official key {key!r})') from e
        state_dict[key] = np.ascontiguousarray(_to_torch(value, entry.kind))
    return state_dict


# ------------------------------------------------------------------------------------------ CLI

def main(argv=None) -> None:
    """python -m grm_jax.convert IN.pth.tar OUT_DIR --config configs/grm.py:vitb_256"""
    from tracking.checkpoint import convert_main  # orbax: only for the command line
    convert_main(argv, 'Convert an official GRM checkpoint to an orbax checkpoint.',
                 'configs/grm.py:vitb_256', from_official)


if __name__ == '__main__':
    main(sys.argv[1:])
